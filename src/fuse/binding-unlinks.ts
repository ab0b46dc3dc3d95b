/**
 * Unlinks the binding does itself (patches/README.md, strata_cunlink_try): an UNLINK of a name the
 * lower layers give, in a directory the upper already has, while JS serves no request. The binding
 * links the whiteout and answers; JS learns which paths went before it serves its next request
 * (`take`), so nothing it keeps about them outlives them. `STRATA_NO_CUNLINK=1` in the daemon's
 * environment leaves every unlink to JS (for measurements).
 */
import { OpStats } from '../union/stats'
import { binding } from './binding'

type UnlinkBinding = {
  fuse_native_strata_cunlink_setup(upper: string, sharedWhiteout: string, volumes: string[]): number
  fuse_native_strata_cunlinked(): string[] | null
  fuse_native_strata_cunlink_counters(): number[]
}
const native = binding as unknown as UnlinkBinding

/** Lets the binding unlink in `upper` with links to `sharedWhiteout`, never under `volumes` (FUSE paths). */
export function enableBindingUnlinks(upper: string, sharedWhiteout: string, volumes: string[]): void {
  if (process.env.STRATA_NO_CUNLINK === '1') return
  const res = native.fuse_native_strata_cunlink_setup(upper, sharedWhiteout, volumes)
  if (res < 0) throw new Error(`fuse binding: unlinks: errno ${-res}`)
}

/** The FUSE paths the binding unlinked since the last call, or null. */
export const takeBindingUnlinks = (): string[] | null => native.fuse_native_strata_cunlinked()

/** The binding's unlinks, in the shape of the daemon's own counters. */
export function bindingUnlinkStats(): Map<string, OpStats> {
  const raw = native.fuse_native_strata_cunlink_counters()
  const s = new OpStats()
  s.count = raw[0]!
  s.totalUs = raw[1]! / 1000
  s.latencyUs = raw.slice(2)
  return new Map([['unlink', s]])
}

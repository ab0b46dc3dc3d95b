/**
 * Unlinks the binding does itself (patches/README.md, strata_cunlink_try): an UNLINK of a name the
 * lower layers give, in a directory the upper already has, while JS serves no request. The binding
 * links the whiteout and answers; JS learns which paths went before it serves its next request
 * (`take`), so nothing it keeps about them outlives them. The binding counts them with its other
 * requests (direct-io.ts, bindingIoStats). `STRATA_NO_CUNLINK=1` in the daemon's
 * environment leaves every unlink to JS (for measurements).
 */
import { binding } from './binding'

type UnlinkBinding = {
  fuse_native_strata_cunlink_setup(upper: string, sharedWhiteout: string, volumes: string[], unlinks: boolean): number
  fuse_native_strata_cunlinked(): string[] | null
}
const native = binding as unknown as UnlinkBinding

/**
 * Tells the binding the upper, the shared whiteout and the data volumes' FUSE paths (never touched
 * there), for its own unlinks and creates (binding-creates.ts), and lets it unlink in `upper` with
 * links to `sharedWhiteout` unless STRATA_NO_CUNLINK=1.
 */
export function enableBindingUnlinks(upper: string, sharedWhiteout: string, volumes: string[]): void {
  const res = native.fuse_native_strata_cunlink_setup(upper, sharedWhiteout, volumes, process.env.STRATA_NO_CUNLINK !== '1')
  if (res < 0) throw new Error(`fuse binding: unlinks: errno ${-res}`)
}

/** The FUSE paths the binding unlinked since the last call, or null. */
export const takeBindingUnlinks = (): string[] | null => native.fuse_native_strata_cunlinked()

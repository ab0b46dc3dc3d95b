/**
 * Files the binding creates itself (patches/README.md, strata_ccreate_try): the CREATE of a new
 * regular file in a directory the upper already has, while JS serves no request. Under the same
 * rules it changes the mode, owner and times of the upper's regular files by path
 * (strata_csetattr_try), which JS learns of as a count (takeBindingSetattrs): their attributes in
 * the listings it keeps are old; and it opens the upper's regular files for writing
 * (strata_cwopen_try), which JS learns of and adopts as it does the files created. The binding
 * makes the file as UnionFs.create would and registers the handle as one of its own; JS learns of
 * each before it serves its next request or builds something from the upper for the binding
 * (takeBindingCreates, whileBuilding), forgets what it kept about the name and adopts the handle
 * (open for writing, like any it made). The binding counts them
 * with its other requests (direct-io.ts, bindingIoStats). `STRATA_NO_CCREATE=1` in the daemon's
 * environment leaves every create to JS (for measurements and tests).
 */
import { binding } from './binding'

type CreateBinding = {
  fuse_native_strata_ccreate_setup(ttlMs: number): number
  fuse_native_strata_ccreated(): Array<string | number> | null
  fuse_native_strata_csetattr_setup(on: number): number
  fuse_native_strata_csetattrs(): number
  fuse_native_strata_js_building(on: boolean): void
}
const native = binding as unknown as CreateBinding

/**
 * Lets the binding create files (after enableBindingUnlinks, whose upper and volumes it shares);
 * `ttlMs`: a new file's attribute cache time. Not with `STRATA_NO_FDIO=1` (direct-io.ts), under
 * which JS serves every write: a file created here would be written by the binding.
 */
export function enableBindingCreates(ttlMs: number): void {
  if (process.env.STRATA_NO_CCREATE === '1' || process.env.STRATA_NO_FDIO === '1') return
  const res = native.fuse_native_strata_ccreate_setup(ttlMs)
  if (res < 0) throw new Error(`fuse binding: creates: errno ${-res}`)
  // under the same rules: chmod, chown and utimens by path of the upper's regular files
  // (strata_csetattr_try), and their opens for writing (strata_cwopen_try, adopted as a create's);
  // `STRATA_NO_CSETATTR=1` and `STRATA_NO_CWOPEN=1` leave them to JS
  const set = native.fuse_native_strata_csetattr_setup((process.env.STRATA_NO_CSETATTR === '1' ? 0 : 1) | (process.env.STRATA_NO_CWOPEN === '1' ? 0 : 2))
  if (set < 0) throw new Error(`fuse binding: setattrs and opens: errno ${-set}`)
}

/** How many chmods, chowns and utimens of the upper's files the binding made since the last call. */
export function takeBindingSetattrs(): number {
  return native.fuse_native_strata_csetattrs()
}

/** The files the binding created or opened for writing since the last call, as [FUSE path, handle id] pairs, or null. */
export function takeBindingCreates(): Array<[string, number]> | null {
  const flat = native.fuse_native_strata_ccreated()
  if (flat === null) return null
  const out: Array<[string, number]> = []
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i] as string, flat[i + 1] as number])
  return out
}

/**
 * Runs `build`, which reads the upper to hand the binding something (a listing built ahead, a
 * directory's prefetched attributes or names) outside any request, with the binding's own
 * unlinks and creates held off (as while JS serves a request), after `learn` took those done
 * before: a file created meanwhile would be missing from names said to be all, or listed as
 * one no handle writes.
 */
export function whileBuilding<T>(learn: () => void, build: () => T): T {
  native.fuse_native_strata_js_building(true)
  try {
    learn()
    return build()
  } finally {
    native.fuse_native_strata_js_building(false)
  }
}

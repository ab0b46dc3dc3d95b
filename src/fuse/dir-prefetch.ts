/**
 * When to hand the binding the attributes of a whole directory nobody listed. `xargs stat`, make,
 * `git status` or a test runner look up many names of directories they never list; each lookup
 * crosses to the JS thread and back (~40 µs here), where a lookup answered from a listing's
 * attributes by the binding costs ~7 µs. After enough lookups in one directory, its entries'
 * attributes are put in the binding's listing table as a listing would put them
 * (`fuse_native_strata_prefetch`), and the lookups after are answered there.
 *
 * Enough is a share of the directory: stat-ing every entry costs about what a few dozen lookups
 * through JS cost, so a program that looks up a handful of names in a large directory (a dynamic
 * linker in /usr/lib) must not make the daemon stat all of it. A directory is not prefetched again
 * while its last prefetch may still answer (the binding keeps listed attributes 10 s).
 *
 * A prefetch also tells the binding every name the directory has, so it answers lookups of other
 * names (ENOENT) itself while nothing changes. Misses are what PATH searches, the dynamic linker
 * and Python's imports mostly make; for them the names alone will do, which cost no stat: after a
 * few misses in a directory, its names go to the binding (up to MAX_NAMES).
 */
import { LRUCache } from 'lru-cache'

/** Lookups in a directory before it is considered, and the share of its entries they must reach. */
const MIN_LOOKUPS = 4
const SHARE = 1 / 32
/** A run of lookups in a directory ends after this long without one. */
const RUN_GAP_MS = 2000
/** The binding answers from listed attributes for 10 s (STRATA_PREFETCH_NS). */
const KEPT_MS = 10_000
/** Larger directories are left alone: the binding's table has 32Ki slots. */
export const MAX_ENTRIES = 8192
/** Names of a directory the binding keeps at most (STRATA_DIRSET_MAX_NAMES). */
export const MAX_NAMES = 16384

/** What to hand the binding: every entry's attributes (and the names), or only the names. */
export type Prefetch = 'attrs' | 'names' | null

interface Run {
  lookups: number
  misses: number
  lastMs: number
  /** entries, once listed */
  size: number
  prefetchedMs: number
  namesMs: number
}

export class DirPrefetch {
  private readonly runs = new LRUCache<string, Run>({ max: 512 })

  /**
   * A lookup in `dir` was answered by JS: it `found` the name or not. Returns what to prefetch
   * now. `sizeOf` gives the directory's entry count; it is asked at most once per run of lookups,
   * and only once there are enough of them to consider the directory.
   */
  lookedUp(dir: string, found: boolean, sizeOf: () => number, now = Date.now()): Prefetch {
    let run = this.runs.get(dir)
    if (!run || now - run.lastMs > RUN_GAP_MS) {
      run = { lookups: 0, misses: 0, lastMs: now, size: -1, prefetchedMs: run?.prefetchedMs ?? -Infinity, namesMs: run?.namesMs ?? -Infinity }
      this.runs.set(dir, run)
    }
    run.lastMs = now
    if (!found) {
      run.misses++
      if (run.misses < MIN_LOOKUPS || now - Math.max(run.namesMs, run.prefetchedMs) < KEPT_MS) return null
      if (run.size < 0) run.size = sizeOf()
      if (run.size > MAX_NAMES) return null
      run.namesMs = now
      run.misses = 0
      return 'names'
    }
    run.lookups++
    if (run.lookups < MIN_LOOKUPS || now - run.prefetchedMs < KEPT_MS) return null
    if (run.size < 0) run.size = sizeOf()
    if (run.size > MAX_ENTRIES || run.lookups < run.size * SHARE) return null
    run.prefetchedMs = now
    run.lookups = 0
    return 'attrs'
  }

  /** Something changed in the mount: nothing is known about any directory. */
  clear(): void {
    if (this.runs.size > 0) this.runs.clear()
  }
}

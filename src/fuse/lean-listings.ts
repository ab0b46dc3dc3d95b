/**
 * Which listings carry their entries' attributes. A full listing stats every entry (and asks it
 * for xattrs) so that the lookups which usually follow it (`ls -l`, `du`, `rm -r`) are answered by
 * the binding; but `find`, `ls -f` and name completion never look the entries up, and on a cold
 * cache those stats are inode reads the kernel's own readdir never makes (`find` of 30k files
 * cold: most of its time). Which kind a caller wants shows only afterwards, and not after a full
 * listing: the kernel takes a full listing's entries (READDIRPLUS) and answers the stats after it
 * without a request. So a process's first listing is full (`ls -l DIR` is one listing), and the
 * later ones (another directory) are lean (names, types and inode numbers; directories still
 * full, so that a walk descends without a trip to JS) until the process looks up an entry of a
 * lean listing. That lookup upgrades the directory at once (its entries' attributes go to the
 * binding, as dir-prefetch.ts does after several lookups) and marks the process, whose listings
 * are full from then on: `ls -lR` and `du` pay one directory's lookups, `find` lists lean.
 *
 * Processes are FUSE request pids (thread ids), forgotten after a minute without a listing: a pid
 * reused by another program gives that program one more full listing, or one lean one.
 */
import { LRUCache } from 'lru-cache'

/**
 * Larger directories are not upgraded: the binding's table has 32Ki slots, and the upgrade stats
 * every entry on the JS thread before the lookup that asked is answered.
 */
export const MAX_UPGRADE = 32768
/** Directories listed lean and not yet upgraded (path → nothing). */
const MAX_LEAN_DIRS = 4096
/** Processes remembered: the directory each listed first, and those known to look entries up. */
const MAX_PROCESSES = 1024
const PROCESS_MS = 60_000

export class LeanListings {
  private readonly leanDirs = new LRUCache<string, true>({ max: MAX_LEAN_DIRS })
  private readonly firstListed = new LRUCache<number, string>({ max: MAX_PROCESSES, ttl: PROCESS_MS, updateAgeOnGet: true })
  private readonly statters = new LRUCache<number, true>({ max: MAX_PROCESSES, ttl: PROCESS_MS, updateAgeOnHas: true })

  /** Whether a listing of `dir` for `pid` leaves its non-directory entries' attributes out. */
  leanFor(pid: number, dir: string): boolean {
    if (this.statters.has(pid)) return false
    const first = this.firstListed.get(pid)
    if (first === undefined) this.firstListed.set(pid, dir)
    return first !== undefined && first !== dir
  }

  /** The first directory `pid` listed (in the last minute), if any. */
  firstListedBy(pid: number): string | undefined {
    return this.firstListed.get(pid)
  }

  /** `dir` was just listed lean: the first lookup in it (by anyone) upgrades it. */
  listedLean(dir: string): void {
    this.leanDirs.set(dir, true)
  }

  /**
   * A lookup of an entry of `dir` by `pid` reached JS. Returns whether to upgrade `dir` now:
   * it was listed lean since its last upgrade. The caller is then known to look entries up.
   */
  lookedUp(dir: string, pid: number): boolean {
    if (!this.leanDirs.delete(dir)) return false
    this.statters.set(pid, true)
    return true
  }
}

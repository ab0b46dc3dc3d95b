/**
 * ReadAhead: the directories a walk lists next, read off the JS thread while it still works on
 * this one.
 *
 * A walk of a cold tree (`find`, `ls -lR`, `du`) waits on the disk for every directory it lists
 * and every inode its listing stats, one after another, and each wait holds the JS thread and the
 * walker alike. Once a process lists a second directory, it is taken for a walker: after each of
 * its listings, the subdirectories of the lower layers that have not been read yet are handed to
 * a worker thread (native.warmDirs), which reads them and stats their subdirectories (every entry
 * when the walker's listings are full ones, src/fuse/lean-listings.ts) for the host's caches only;
 * the listing made when the walker gets there finds its blocks and inodes in memory, and those
 * told (onReady: src/fuse/list-ahead.ts) may build it first; what the worker thread read is
 * handed to LowerTree (offerRead), which builds the listing from it instead of reading the
 * directory again on the JS thread. Lower layers never change, so nothing read ahead goes stale.
 *
 * Walkers go depth first, so the newest listing's subdirectories come first (a stack), the first
 * of them on top. The stack and the jobs in flight are bounded; what does not fit is dropped,
 * oldest first: it is read when it is listed, as it would be without this.
 */
import { LRUCache } from 'lru-cache'
import { LowerTree } from './lower-tree'
import { native, type RawDirList } from '../native'

/** directories waiting to be read ahead, at most (their layers' directories counted once) */
export const MAX_WAITING = 1024
/** directories per job on the worker thread */
const PER_JOB = 8
/** jobs at once: the thread pool also copies files up */
const MAX_JOBS = 2

interface Waiting {
  rel: string
  /** its directory in each layer that merges into it */
  abs: string[]
  statAll: boolean
}

export type WarmFn = (paths: string[], statAll: boolean, done: (statted: number, us: number, lists: Array<RawDirList | null> | null) => void) => void

export interface ReadAheadCounts {
  /** directories read ahead, those with every entry statted, the entries statted, and the worker thread's time for it */
  dirs: number
  allEntries: number
  statted: number
  ms: number
  /** directories dropped from a full stack */
  dropped: number
  /** layers' directories whose listing was built from what the worker thread read (LowerTree.offerRead) */
  used: number
  /** directories waiting or being read */
  pending: number
}

export class ReadAhead {
  private readonly waiting: Waiting[] = []
  private readonly readyFns: Array<(rel: string, statAll: boolean) => void> = []
  /** directories whose subdirectories were read ahead already */
  private readonly done = new LRUCache<string, true>({ max: MAX_WAITING * 4 })
  private jobs = 0
  private readonly totals: Omit<ReadAheadCounts, 'pending' | 'used'> = { dirs: 0, allEntries: 0, statted: 0, ms: 0, dropped: 0 }
  private reading = 0

  constructor(private readonly lower: LowerTree, private readonly warm: WarmFn = native.warmDirs) {}

  /** Calls `fn` with each directory read ahead, once it is (statAll: as the walker's listings are). */
  onReady(fn: (rel: string, statAll: boolean) => void): void {
    this.readyFns.push(fn)
  }

  /** The caches were trimmed (src/union/union-fs.ts): what was read ahead may be read again. */
  trim(): void {
    this.done.clear()
  }

  get counts(): ReadAheadCounts {
    return { ...this.totals, ms: Math.round(this.totals.ms), pending: this.waiting.length + this.reading, used: this.lower.readUsed }
  }

  /**
   * A process that lists more than one directory, `start` first, just listed `rel` (statAll: its
   * listings carry every entry's attributes): the subdirectories of both are read ahead, once. A
   * single listing (`ls -l DIR`) reads nothing ahead: its subdirectories may never be listed.
   */
  walked(start: string, rel: string, statAll: boolean): void {
    this.children(start, statAll)
    this.children(rel, statAll)
  }

  private children(rel: string, statAll: boolean): void {
    if (this.done.has(rel)) return
    this.done.set(rel, true)
    const dir = this.lower.dir(rel)
    if (!dir) return
    const next: Waiting[] = []
    for (const [name, entry] of dir.entries) {
      if (!entry.dirLayers) continue
      const child = rel === '' ? name : `${rel}/${name}`
      if (this.lower.isCached(child)) continue
      next.push({ rel: child, abs: entry.dirLayers.map((layer) => this.lower.abs(layer, child)), statAll })
    }
    if (next.length === 0) return
    for (let i = next.length - 1; i >= 0; i--) this.waiting.push(next[i]!)
    const over = this.waiting.length - MAX_WAITING
    if (over > 0) {
      this.waiting.splice(0, over)
      this.totals.dropped += over
    }
    this.start()
  }

  private start(): void {
    while (this.jobs < MAX_JOBS && this.waiting.length > 0) {
      const batch = this.waiting.splice(Math.max(0, this.waiting.length - PER_JOB)).reverse()
      const statAll = batch.some((w) => w.statAll)
      this.jobs++
      this.reading += batch.length
      const paths = batch.flatMap((w) => w.abs)
      this.warm(paths, statAll, (statted, us, lists) => {
        // what the worker thread read, for the listings to come: not read again
        for (let i = 0; lists && i < paths.length; i++) if (lists[i]) this.lower.offerRead(paths[i]!, lists[i]!)
        this.jobs--
        this.reading -= batch.length
        this.totals.dirs += batch.length
        if (statAll) this.totals.allEntries += batch.length
        this.totals.statted += statted
        this.totals.ms += us / 1000
        // the last of the batch first: a stack again, as the walker will come to the first first
        for (let i = batch.length - 1; i >= 0; i--) for (const fn of this.readyFns) fn(batch[i]!.rel, batch[i]!.statAll)
        this.start()
      })
    }
  }
}

/**
 * Listings built ahead, answered by the binding (patches/README.md, strata_ahead.h). Each listing
 * ListAhead (list-ahead.ts) builds goes to the binding as well, which answers the walker's READDIR
 * of it on the worker thread that gets it: a cold `find` otherwise handed every directory to a JS
 * thread busy building the next listing ahead, and waited. JS learns afterwards which listings
 * were served and to whom (`drain`, woken by the binding, and before any request JS serves), and
 * does for each what its own readdir would have done (lean-listings.ts, read-ahead of the walk,
 * counters).
 *
 * The binding serves a lean listing only to a walker JS named (`walker`): lean listings are for
 * processes that never looked an entry up, and never for the first directory a process lists.
 * `STRATA_NO_AHEAD=1` in the daemon's environment leaves every listing to JS (for measurements).
 */
import { LRUCache } from 'lru-cache'
import { binding } from './binding'
import { relFromFuse } from '../sys/rel'

type AheadBinding = {
  fuse_native_strata_ahead_epoch(): number
  fuse_native_strata_ahead_put(dir: string, names: string, packed: Uint32Array, lean: number, epoch: number, maxAgeMs: number): number
  fuse_native_strata_ahead_clear(): void
  fuse_native_strata_ahead_walker(pid: number, first: string, leanOk: number): void
  fuse_native_strata_ahead_notify(wake: () => void): number
  fuse_native_strata_ahead_served(): Array<string | number | boolean> | null
  fuse_native_strata_ahead_counters(): number[]
}
const native = binding as unknown as AheadBinding

/** How long a walker named to the binding stays named without being named again (it forgets after 60 s). */
const WALKER_REFRESH_MS = 20_000

export interface AheadCounters {
  /** listings handed to the binding, refused there (something changed while JS built them, or memory), served there, and found stale */
  kept: number
  refused: number
  served: number
  stale: number
  /** notes of served listings dropped before JS took them (more than 4,096 waiting) */
  notesDropped: number
}

export class BindingListings {
  readonly enabled = process.env.STRATA_NO_AHEAD !== '1'
  /** what the binding was last told about each walker */
  private readonly named = new LRUCache<number, { first: string, leanOk: boolean, at: number }>({ max: 1024 })

  /** `served` is called for each listing the binding served: its path (relative), the caller, and whether it was lean. */
  constructor(private readonly served: (rel: string, pid: number, lean: boolean) => void) {
    if (this.enabled && native.fuse_native_strata_ahead_notify(() => this.drain()) !== 0) this.enabled = false
  }

  /** The binding's change epoch, to pass to `put` for a listing about to be built. */
  epoch(): number {
    return this.enabled ? native.fuse_native_strata_ahead_epoch() : 0
  }

  /** Hands a listing built ahead to the binding (as the readdir answer carries it), from the state at `epoch`. */
  put(rel: string, names: string, packed: Uint32Array, lean: boolean, epoch: number, maxAgeMs: number): void {
    if (this.enabled) native.fuse_native_strata_ahead_put(`/${rel}`, names, packed, lean ? 1 : 0, epoch, maxAgeMs)
  }

  /** `pid` walks from `first`; `leanOk`: its listings may be lean. */
  walker(pid: number, first: string, leanOk: boolean): void {
    if (!this.enabled) return
    const was = this.named.get(pid)
    const now = Date.now()
    if (was && was.first === first && was.leanOk === leanOk && now - was.at < WALKER_REFRESH_MS) return
    this.named.set(pid, { first, leanOk, at: now })
    native.fuse_native_strata_ahead_walker(pid, `/${first}`, leanOk ? 1 : 0)
  }

  /** Listings the binding served since the last call, to `served`. */
  drain(): void {
    if (!this.enabled) return
    const list = native.fuse_native_strata_ahead_served()
    if (list === null) return
    for (let i = 0; i + 2 < list.length; i += 3) {
      try {
        this.served(relFromFuse(list[i] as string), list[i + 1] as number, list[i + 2] as boolean)
      } catch {
        // what a readdir does besides answering (reading ahead) failed: the listing went out all the same
      }
    }
  }

  /** Drops every listing the binding keeps (the caches were trimmed). */
  clear(): void {
    if (this.enabled) native.fuse_native_strata_ahead_clear()
  }

  get counters(): AheadCounters {
    const [kept = 0, refused = 0, served = 0, stale = 0, notesDropped = 0] = this.enabled ? native.fuse_native_strata_ahead_counters() : []
    return { kept, refused, served, stale, notesDropped }
  }
}

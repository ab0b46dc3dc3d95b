/**
 * Listings kept between readdirs of an unchanged directory. The kernel keeps listings itself
 * (src/fuse/mount.ts) except with data volumes, and asks again after a copy-up in a directory or
 * when memory pressure took its copy; with volumes every `find`, `ls` or `grep -r` of a directory
 * asks again, and building the answer (merge, a stat and an xattr check per entry, packing) was
 * about a third of a warm `find`. The answer is kept as sent and served again until anything
 * changes.
 *
 * Coherence is global and coarse on purpose: every request that may change something bumps the
 * generation when it arrives and again when it is answered (handlers.ts), and a listing is served
 * only if no bump happened since it was built; a listing built while a change was in flight is
 * thereby never served. Only read-only workloads profit, which are the ones that list a lot. Not
 * kept: listings with an entry open for writing (its writes go to the binding, not through here),
 * listings of data volumes (changed from outside), and anything older than the kernel's attribute
 * cache time (lower atimes move with reads).
 */
import { LRUCache } from 'lru-cache'
import { STAT_SLOTS } from './stat-pack'

export type ListingAnswer = unknown[]

interface Kept {
  at: number
  answer: ListingAnswer
  /** only directories carry attributes (lean-listings.ts) */
  lean: boolean
  /** built ahead of a walk (list-ahead.ts) and not served yet */
  ahead: boolean
}

/** Approximate bytes per listed entry kept: its name's share of the joined names and its packed stat (STAT_SLOTS x 4 bytes). */
const ENTRY_BYTES = 112

export class ListingCache {
  private generation = 0
  private readonly kept: LRUCache<string, Kept>

  constructor(private readonly maxAgeMs: number, maxBytes = 8 * 2 ** 20) {
    this.kept = new LRUCache<string, Kept>({ maxSize: maxBytes, sizeCalculation: (k) => 64 + ENTRY_BYTES * ((k.answer[1] as Uint32Array).length / STAT_SLOTS) })
  }

  /** Something may have changed: nothing kept so far is served again (all of it goes). */
  changed(): void {
    this.generation++
    if (this.kept.size > 0) this.kept.clear()
  }

  /** A kept listing of `rel`; a lean one only if `lean` ones will do. */
  get(rel: string, lean: boolean): Kept | undefined {
    const k = this.kept.get(rel)
    if (!k) return undefined
    if (Date.now() - k.at > this.maxAgeMs) {
      this.kept.delete(rel)
      return undefined
    }
    return k.lean && !lean ? undefined : k
  }

  /** The generation to pass to `set` for a listing about to be built. */
  get current(): number {
    return this.generation
  }

  /** Keeps an answer built from the state at `generation` (unless something changed since). */
  set(rel: string, generation: number, answer: ListingAnswer, lean: boolean, ahead = false): void {
    if (generation === this.generation) this.kept.set(rel, { at: Date.now(), answer, lean, ahead })
  }

  clear(): void {
    this.kept.clear()
  }
}

/**
 * ListAhead: listings a walk will ask for, built while the JS thread has nothing else to do.
 *
 * A walk (`ls -lR`, `find`, `du`) waits for every listing it asks for, and building one (the
 * merge, a stat and an xattr check per entry, packing) is most of a directory's time on the JS
 * thread, which otherwise sits idle while the walker works through the listing before (a `ls -lR`
 * spends three quarters of it waiting). Once read-ahead (src/layers/read-ahead.ts) has brought a
 * directory into the host's caches, its listing is built here, one per turn of the event loop so
 * that a request arriving meanwhile waits for one listing at most, and kept (listing-cache.ts)
 * under the same rules as any kept listing: served only if nothing changed since it was built.
 *
 * Newest first (a walk goes depth first), bounded; what does not fit is dropped, oldest first,
 * and built when it is asked for.
 */

/** listings waiting to be built, at most */
const MAX_WAITING = 256

export class ListAhead {
  private readonly waiting: Array<{ rel: string, lean: boolean }> = []
  private scheduled = false
  /** listings built ahead, those served (counted by the caller), and those dropped before being built */
  built = 0
  served = 0
  dropped = 0

  /** `build` makes and keeps the listing of `rel` (lean or not) unless one is kept already. */
  constructor(private readonly build: (rel: string, lean: boolean) => boolean) {}

  /** A walker will likely list `rel` soon, lean or full. */
  push(rel: string, lean: boolean): void {
    this.waiting.push({ rel, lean })
    if (this.waiting.length > MAX_WAITING) {
      this.waiting.shift()
      this.dropped++
    }
    if (!this.scheduled) {
      this.scheduled = true
      setImmediate(this.next)
    }
  }

  private readonly next = (): void => {
    this.scheduled = false
    const w = this.waiting.pop()
    if (w && this.build(w.rel, w.lean)) this.built++
    if (this.waiting.length > 0) {
      this.scheduled = true
      setImmediate(this.next)
    }
  }
}

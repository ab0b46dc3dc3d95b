/**
 * Open files. A FUSE file handle is a number we choose: a key into this table, never a host fd, so
 * that copy-up can move a handle opened read-only on a lower file to the new upper file (go-fuse's
 * unionfs does the same; kernel overlayfs re-opens the real file after copy-up, ovl_real_fdget).
 * A host fd is closed only when no read or write is in flight on it, so a retargeted fd number is
 * never reused under a running operation.
 */
import * as fs from 'node:fs'

/**
 * Another user of each handle's host fd, kept in step with this table: the FUSE binding answers
 * reads and writes with it on its own threads (src/fuse/direct-io.ts). Once there is a mirror it
 * closes the fds too, when its own reads and writes on them are done.
 */
export interface FdMirror {
  /** (re)registers h.fd for handle h.id, and what h is now (writable? hidden?) */
  set(h: Handle): void
  drop(id: number): void
  close(fd: number): void
}

/** A handle the FUSE binding opened itself (for reading, or a file it created), handed over to this table. */
export interface AdoptedHandle {
  id: number
  fd: number
  rel: string
  /** -1: the upper */
  layer: number
  /** a file the binding created in the upper, open for writing */
  writable: boolean
}

/**
 * Handles opened outside this table, by the FUSE binding (src/fuse/direct-io.ts): read-only opens
 * of files a listing just showed, and files it created, with ids from ID_LIMIT up. The binding
 * serves their reads and release alone (and a created file's writes and attributes, as for any
 * handle open for writing); anything else about one (an op on it, a copy-up, rename or unlink of
 * its path) needs it here first, so the table adopts it then and it is a handle like any other
 * from there. Created files are adopted as soon as JS learns of them (their writers count).
 */
export interface HandleSource {
  adopt(id: number): AdoptedHandle | null
  /** the binding's handles at `rel` (and below it, with `below`) */
  adoptAt(rel: string, below: boolean): AdoptedHandle[]
}

/** Ids this table gives out stay below this; the binding's own handles start here. */
export const ID_LIMIT = 0x80000000

export interface Handle {
  id: number
  fd: number
  /** merged path; kept current across renames */
  rel: string
  writable: boolean
  /** where fd points: the upper, or lower layer `layer` */
  upper: boolean
  layer: number
  /** index of the data volume the file is in (src/union/volume-fs.ts), if any */
  volume?: number
  /** reads/writes in flight on fd */
  pending: number
  /** fds replaced by a retarget, closed once pending drops to 0 */
  retired: number[]
  released: boolean
}

export class HandleTable {
  private readonly byId = new Map<number, Handle>()
  /** open writable union handles per merged path (see hasWriter) */
  private readonly writers = new Map<string, number>()
  private next = 1
  mirror: FdMirror | null = null
  external: HandleSource | null = null

  get size(): number {
    return this.byId.size
  }

  add(fd: number, rel: string, writable: boolean, upper: boolean, layer: number, volume?: number): Handle {
    while (this.byId.has(this.next) || this.next === 0) this.next = (this.next + 1) % ID_LIMIT
    const h: Handle = { id: this.next, fd, rel, writable, upper, layer, pending: 0, retired: [], released: false }
    if (volume !== undefined) h.volume = volume
    this.byId.set(h.id, h)
    this.next = (this.next + 1) % ID_LIMIT
    this.countWriter(h, 1)
    this.mirror?.set(h)
    return h
  }

  get(id: number): Handle | undefined {
    const h = this.byId.get(id)
    if (h || id < ID_LIMIT || !this.external) return h
    const a = this.external.adopt(id)
    return a ? this.take(a) : undefined
  }

  /** The handle `id` if this table holds it (no adoption: for a handle being released). */
  peek(id: number): Handle | undefined {
    return this.byId.get(id)
  }

  private take(a: AdoptedHandle): Handle {
    const h: Handle = { id: a.id, fd: a.fd, rel: a.rel, writable: a.writable, upper: a.layer < 0, layer: a.layer, pending: 0, retired: [], released: false }
    this.byId.set(h.id, h)
    this.countWriter(h, 1)
    this.mirror?.set(h)
    return h
  }

  private adoptAt(rel: string, below: boolean): void {
    if (this.external) for (const a of this.external.adoptAt(rel, below)) this.take(a)
  }

  release(id: number): void {
    const h = this.byId.get(id)
    if (!h) return
    this.byId.delete(id)
    this.countWriter(h, -1)
    this.mirror?.drop(id)
    h.released = true
    h.retired.push(h.fd)
    this.closeIdle(h)
  }

  begin(h: Handle): number {
    h.pending++
    return h.fd
  }

  end(h: Handle): void {
    h.pending--
    this.closeIdle(h)
  }

  /** Points a handle at a new fd (after copy-up); the old one closes when idle. */
  retarget(h: Handle, fd: number, upper: boolean, layer: number): void {
    h.retired.push(h.fd)
    h.fd = fd
    h.upper = upper
    h.layer = layer
    this.mirror?.set(h)
    this.closeIdle(h)
  }

  /** Union (not volume) handles whose merged path is `rel`. */
  *at(rel: string): Iterable<Handle> {
    this.adoptAt(rel, false)
    for (const h of this.byId.values()) if (h.rel === rel && h.volume === undefined) yield h
  }

  /** Some handle (a union or a volume one) is open at merged path `rel`. */
  openAt(rel: string): boolean {
    this.adoptAt(rel, false)
    for (const h of this.byId.values()) if (h.rel === rel) return true
    return false
  }

  /** Renames `from` (and everything below it) to `to` in every handle's path. */
  moved(from: string, to: string): void {
    this.adoptAt(from, true)
    for (const h of this.byId.values()) {
      if (h.rel !== from && !h.rel.startsWith(`${from}/`)) continue
      this.countWriter(h, -1)
      h.rel = to + h.rel.slice(from.length)
      this.countWriter(h, 1)
      this.mirror?.set(h) // its attributes answer differently once it is hidden
    }
  }

  /**
   * Some open union handle may write the file at `rel`. Writes are answered by the FUSE binding
   * without this daemon, so attributes handed out for later (a listing's) must not be of such a file.
   */
  hasWriter(rel: string): boolean {
    return this.writers.has(rel)
  }

  private countWriter(h: Handle, by: 1 | -1): void {
    if (!h.writable || h.volume !== undefined) return
    const n = (this.writers.get(h.rel) ?? 0) + by
    if (n > 0) this.writers.set(h.rel, n)
    else this.writers.delete(h.rel)
  }

  private closeIdle(h: Handle): void {
    if (h.pending > 0) return
    for (const fd of h.retired.splice(0)) {
      if (this.mirror) this.mirror.close(fd)
      else fs.close(fd, () => { /* nothing to report to anyone */ })
    }
  }
}

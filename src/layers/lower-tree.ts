/**
 * LowerTree: the merged, read-only view of all lower layers (top first), built lazily one directory
 * at a time and cached without expiry, because lower layers never change while mounted.
 *
 * For a directory `rel` it knows every visible child: the topmost lower layer that has the name,
 * its d_type, and, for directories, which layers contribute to that child directory. Resolution
 * follows overlayfs (Documentation/filesystems/overlayfs.rst, "Directories"): a directory merges
 * the same-named directories of the layers below it until a layer has a non-directory there, a
 * whiteout for it, or the directory is opaque in that layer. Whiteouts are read in both formats
 * (src/layers/whiteout.ts).
 *
 * Safety: a layer's directory is only read at `rel` after every component of `rel` was seen as a
 * real directory (d_type DT_DIR, never a symlink) in that same layer, so nothing is followed out of
 * a layer. A lookup is one Map access however many layers there are.
 */
import { LRUCache } from 'lru-cache'
import { aufsWhitedOut, DT_CHR, isOpaqueValue, isWhiteout, OPAQUE_XATTR, WH_OPAQUE, WH_PREFIX } from './whiteout'
import * as host from '../sys/hostfs'
import { dirListOf, native, STAT_NAMES_STATTED, STAT_NAMES_XATTRS_KNOWN, STAT_NAMES_XATTR_FREE, type DirList, type ListedStats, type RawDirList } from '../native'
import { FsError } from '../sys/errors'
import { absIn, baseOf, parentOf } from '../sys/rel'

export const DT_UNKNOWN = 0
export const DT_DIR = 4
export const DT_REG = 8
export const DT_LNK = 10

export interface LowerEntry {
  /** index of the topmost lower layer holding the visible entry */
  layer: number
  /** d_type of the visible entry (never DT_UNKNOWN: resolved with lstat) */
  dtype: number
  /** for directories: the layers (top first) whose directory merges into this one */
  dirLayers?: number[]
  /** the directory listing it, and its position in that directory's per-entry arrays */
  dir?: LowerDir
  index: number
}

export interface LowerDir {
  entries: Map<string, LowerEntry>
  /** layers (top first) contributing to this directory */
  layers: number[]
  /**
   * lstat of each entry (STAT_SLOTS numbers at index * STAT_SLOTS), allocated at the first one
   * asked for: one buffer per directory instead of an object per entry, which is most of what a
   * walk of a big tree would otherwise leave behind
   */
  stats: Float64Array | null
  /** per entry: STATTED, XATTRS_KNOWN, XATTR_FREE */
  state: Uint8Array
  /** per entry: d_ino of the visible entry, as its layer's readdir gave it (a lean listing's st_ino) */
  inos: Float64Array
}

const STAT_SLOTS = 16
// the bits native.statNames sets
const STATTED = STAT_NAMES_STATTED
const XATTRS_KNOWN = STAT_NAMES_XATTRS_KNOWN
const XATTR_FREE = STAT_NAMES_XATTR_FREE
const STATTED_WITH_XATTRS = STATTED | XATTRS_KNOWN

/**
 * Approximate bytes a cached directory holds: per entry a Map slot, name and entry object, and its
 * share of the stats buffer (counted from the start, as it is allocated on the first stat).
 */
const dirBytes = (d: LowerDir): number => 256 + d.entries.size * (128 + STAT_SLOTS * 8)

/** Entries of layers' directories read ahead (offerRead) kept until their directory is built, at most. */
const MAX_READ_ENTRIES = 65_536

/** Default bound on the cached directories, in approximate bytes (dirBytes). */
export const LOWER_CACHE_BYTES = 32 * 2 ** 20

function dtypeFromMode(mode: number): number {
  return (mode & host.S_IFMT) >>> 12
}

export class LowerTree {
  readonly roots: string[]
  private readonly dirs: LRUCache<string, LowerDir>
  private readonly rootDir: LowerDir
  private rootStat: Float64Array | null = null
  /** layers' directories read ahead off the JS thread, by host path, oldest first (offerRead) */
  private readonly read = new Map<string, RawDirList>()
  private readEntries = 0
  /** directories built from what was read ahead */
  readUsed = 0

  constructor(roots: string[], opts: { maxBytes?: number } = {}) {
    this.roots = roots
    this.dirs = new LRUCache<string, LowerDir>({ maxSize: opts.maxBytes ?? LOWER_CACHE_BYTES, sizeCalculation: dirBytes })
    // The roots of all lower layers always merge (an opaque marker on a layer root is ignored).
    this.rootDir = this.build('', roots.map((_, i) => i), false)
  }

  /** The merged lower directory at `rel`, or null when the lower view has no directory there. */
  dir(rel: string): LowerDir | null {
    if (rel === '') return this.rootDir
    const cached = this.dirs.get(rel)
    if (cached) return cached
    const parent = this.dir(parentOf(rel))
    const entry = parent?.entries.get(baseOf(rel))
    if (!entry?.dirLayers) return null
    const built = this.build(rel, entry.dirLayers, true)
    this.dirs.set(rel, built)
    return built
  }

  /** Whether the directory at `rel` is built and cached (its layers' directories were read). */
  isCached(rel: string): boolean {
    return rel === '' || this.dirs.has(rel)
  }

  lookup(rel: string): LowerEntry | null {
    if (rel === '') return { layer: 0, dtype: DT_DIR, dirLayers: this.rootDir.layers, index: -1 }
    return this.dir(parentOf(rel))?.entries.get(baseOf(rel)) ?? null
  }

  /**
   * lstat of the visible lower entry; cached, since lower layers are immutable. The array is the
   * cache's own (a view into its directory's buffer): callers must not change it.
   */
  stat(rel: string, entry: LowerEntry): Float64Array {
    const dir = entry.dir
    if (!dir) return (this.rootStat ??= host.lstat(this.abs(entry.layer, rel)))
    const at = entry.index * STAT_SLOTS
    if (dir.state[entry.index]! & STATTED) return dir.stats!.subarray(at, at + STAT_SLOTS)
    dir.stats ??= new Float64Array(dir.entries.size * STAT_SLOTS)
    const st = dir.stats.subarray(at, at + STAT_SLOTS)
    const abs = this.abs(entry.layer, rel)
    const r = native.lstat(abs, st)
    if (r < 0) throw FsError.fromErrno(r, 'lstat', abs)
    dir.state[entry.index]! |= STATTED
    return st
  }

  /**
   * Stats every entry of the lower directory at `rel` and learns which have no xattrs, where not
   * known yet: one native call per layer the entries come from, for a listing that will ask for
   * all of them (stat and xattrFree then answer from what this kept). An entry the call could not
   * stat is left for stat() to try, and report.
   */
  statAll(rel: string): void {
    const dir = this.dir(rel)
    if (!dir || dir.entries.size === 0) return
    dir.stats ??= new Float64Array(dir.entries.size * STAT_SLOTS)
    const names: string[][] = []
    const slots: number[][] = []
    for (const [name, entry] of dir.entries) {
      if ((dir.state[entry.index]! & STATTED_WITH_XATTRS) === STATTED_WITH_XATTRS) continue
      ;(names[entry.layer] ??= []).push(name)
      ;(slots[entry.layer] ??= []).push(entry.index)
    }
    for (let layer = 0; layer < names.length; layer++) {
      if (!names[layer]) continue
      native.statNames(this.abs(layer, rel), names[layer]!, Uint32Array.from(slots[layer]!), dir.stats, dir.state, true)
    }
  }

  /** Whether the visible lower entry has no xattrs at all; cached, since lower layers are immutable. */
  xattrFree(rel: string, entry: LowerEntry): boolean {
    const dir = entry.dir
    if (!dir) return host.listxattr(this.abs(entry.layer, rel)).length === 0
    const state = dir.state[entry.index]!
    if (state & XATTRS_KNOWN) return (state & XATTR_FREE) !== 0
    const free = host.listxattr(this.abs(entry.layer, rel)).length === 0
    dir.state[entry.index] = state | XATTRS_KNOWN | (free ? XATTR_FREE : 0)
    return free
  }

  /**
   * A layer's directory `abs`, as read ahead off the JS thread (src/layers/read-ahead.ts): the
   * directory's build takes it instead of reading the directory again (layers never change, so it
   * cannot be stale). Kept until then, within MAX_READ_ENTRIES, the oldest dropped first.
   */
  offerRead(abs: string, list: RawDirList): void {
    if (this.read.has(abs) || list.types.length > MAX_READ_ENTRIES) return
    this.read.set(abs, list)
    this.readEntries += list.types.length
    for (const [oldest, l] of this.read) {
      if (this.readEntries <= MAX_READ_ENTRIES) break
      this.read.delete(oldest)
      this.readEntries -= l.types.length
    }
  }

  /** The directory `abs` of a layer: as read ahead if it was (with the lstats taken then), else read now. */
  private readLayerDir(abs: string): DirList & Partial<ListedStats> {
    const ahead = this.read.get(abs)
    if (!ahead) return host.readdir(abs)
    this.read.delete(abs)
    this.readEntries -= ahead.types.length
    this.readUsed++
    return dirListOf(ahead)
  }

  /** Approximate bytes of cached directories (the root's excluded: it stays). */
  get cachedBytes(): number {
    return this.dirs.calculatedSize
  }

  /** Drops every cached directory but the root (idle memory trim). */
  trim(): void {
    this.dirs.clear()
    this.read.clear()
    this.readEntries = 0
    this.rootDir.stats = null
    this.rootDir.state.fill(0)
  }

  abs(layer: number, rel: string): string {
    return absIn(this.roots[layer]!, rel)
  }

  private build(rel: string, layers: number[], honourOpaque: boolean): LowerDir {
    const entries = new Map<string, LowerEntry>()
    /** names deleted by a whiteout in a layer above the one being read */
    const hidden = new Set<string>()
    /** directories whose merge was cut by a non-directory or whiteout lower down */
    const closed = new Set<string>()
    const contributing: number[] = []
    const inos: number[] = []
    /** lstats read ahead with a layer's directory: [list, its entry index, the merged entry's index] */
    const readStats: Array<[ListedStats, number, number]> = []
    for (let i = 0; i < layers.length; i++) {
      const layer = layers[i]!
      const dirAbs = this.abs(layer, rel)
      const list = this.readLayerDir(dirAbs)
      contributing.push(layer)
      const whiteouts: string[] = []
      let opaque = false
      /** the merged entry index of each of this layer's entries that became the visible one */
      const visibleAt = list.statIdx ? new Int32Array(list.names.length).fill(-1) : null
      for (let k = 0; k < list.names.length; k++) {
        const name = list.names[k]!
        let dtype = list.types[k]!
        if (name.startsWith(WH_PREFIX)) {
          if (name === WH_OPAQUE) opaque = true
          else whiteouts.push(aufsWhitedOut(name)!)
          continue
        }
        if (dtype === DT_UNKNOWN || dtype === DT_CHR) {
          const st = host.lstat(`${dirAbs}/${name}`)
          if (isWhiteout(st[2]!, st[6]!)) { whiteouts.push(name); continue }
          dtype = dtypeFromMode(st[2]!)
        }
        if (hidden.has(name)) continue
        const seen = entries.get(name)
        if (!seen) {
          if (visibleAt) visibleAt[k] = entries.size
          inos.push(list.inos[k]!)
          entries.set(name, dtype === DT_DIR ? { layer, dtype, dirLayers: [layer], index: entries.size } : { layer, dtype, index: entries.size })
        } else if (seen.dirLayers && !closed.has(name)) {
          if (dtype === DT_DIR) seen.dirLayers.push(layer)
          else closed.add(name)
        }
      }
      if (visibleAt) {
        const stats = list as ListedStats
        for (let j = 0; j < stats.statIdx.length; j++) {
          const at = visibleAt[stats.statIdx[j]!] ?? -1
          if (at >= 0) readStats.push([stats, j, at])
        }
      }
      for (const name of whiteouts) {
        hidden.add(name)
        if (entries.has(name)) closed.add(name)
      }
      const isLast = i === layers.length - 1
      if (honourOpaque && !isLast && !opaque) opaque = isOpaqueValue(host.getxattr(dirAbs, OPAQUE_XATTR) ?? 0)
      if (opaque) break
    }
    const dir: LowerDir = { entries, layers: contributing, stats: null, state: new Uint8Array(entries.size), inos: Float64Array.from(inos) }
    for (const entry of entries.values()) entry.dir = dir
    if (readStats.length > 0) {
      const all = (dir.stats = new Float64Array(entries.size * STAT_SLOTS))
      for (const [from, j, at] of readStats) {
        all.set(from.stats.subarray(j * STAT_SLOTS, (j + 1) * STAT_SLOTS), at * STAT_SLOTS)
        dir.state[at] = from.statBits[j]!
      }
    }
    return dir
  }
}

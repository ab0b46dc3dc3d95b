/**
 * UnionFs: overlay semantics over one optional writable upper and the read-only LowerTree.
 * The reference is kernel overlayfs (Documentation/filesystems/overlayfs.rst); where this file and
 * the kernel disagree, the kernel is right. It knows nothing of FUSE: it takes `rel` paths and
 * throws FsError; src/fuse turns that into replies.
 *
 * Vocabulary: *lower* (read-only layer), *upper* (writable layer), *work* (scratch dir on the
 * upper's filesystem), *merged* (the view), *whiteout* (char device 0/0 in the upper: the name is
 * deleted), *opaque* (upper dir with trusted.overlay.opaque=y: lower contents do not show through),
 * *copy-up* (moving a lower entry into the upper before changing it), *resolve* (merged path → Node).
 *
 * Concurrency: metadata work is synchronous, so each request's reads-then-writes of the upper run
 * without interleaving on the single JS thread; only file data (copy-up, read, write, fsync) is
 * asynchronous. A copy-up in flight is registered in `inflight`; every mutation first waits for the
 * copy-ups of the paths it touches (`settle`), and two writers racing on one file copy it up once.
 *
 * Caches: resolved Nodes live in a bounded LRU keyed by rel. A Node is valid while no ancestor was
 * marked dead; rename and rmdir mark a directory dead (O(1)) and eviction does too, so nothing below
 * a moved directory is served stale. Upper entries are lstat'ed per request (only we change them);
 * lower entries are cached by LowerTree (they never change while mounted).
 */
import * as fs from 'node:fs'
import { LRUCache } from 'lru-cache'
import { native, ST, STAT_NAMES_STATTED, STAT_NAMES_XATTRS_KNOWN, STAT_NAMES_XATTR_FREE } from '../native'
import { FsError, fsError } from '../sys/errors'
import * as host from '../sys/hostfs'
import { absIn, baseOf, isWithin, joinRel, parentOf } from '../sys/rel'
import { DT_DIR, DT_REG, LowerTree, type LowerDir, type LowerEntry } from '../layers/lower-tree'
import { ReadAhead } from '../layers/read-ahead'
import { escapeXattr, isOpaqueValue, isWhiteout, OPAQUE_XATTR, unescapeXattr, WH_PREFIX } from '../layers/whiteout'
import { copyUpAsLink, copyUpDir, copyUpEntry, WorkDir } from '../cow/copy-up'
import { createFile, createMode, DEFAULT_ACL, type CreateMode } from './create-mode'
import { isLibfuseHidden } from './hidden-names'
import { HandleTable, type Handle } from './handles'
import { UnionStats } from './stats'

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NOFOLLOW, O_NOCTTY, O_DIRECT } = fs.constants
/** Node's fs.constants has no O_ACCMODE. */
const O_ACCMODE = 3
const OPAQUE_VALUE = Buffer.from('y')
const NAME_MAX = 255
/**
 * libfuse (without hard_remove) renames a file that is unlinked while open to a hidden name
 * (src/union/hidden-names.ts). stratafs carries out that rename by moving the file into the work
 * dir (or, for a lower file, just remembering it), so the file keeps answering fstat/fchmod/...
 * while nothing of it appears in the upper, and a crash leaves it only in the work dir, which is
 * emptied at the next mount.
 */

interface HiddenFile {
  abs: string
  /** the file lives in the work dir (ours to change and delete); else it is a lower file */
  own: boolean
  layer: number
}
/** ino tag (top 16 bits of st_ino) of the upper; lower layer i gets LOWER_TAG + i. */
export const UPPER_TAG = 1
const LOWER_TAG = 2
/** Whether the tag of an entry of a union listing (`Listed`, TaggedStat) is a lower layer's. */
export const isLowerTag = (tag: number): boolean => tag >= LOWER_TAG

export interface Caller {
  uid: number
  gid: number
  pid: number
  /** the kernel asked this write or truncate to drop set-id bits (src/fuse/direct-io.ts dropSetIdBits) */
  dropSetId?: boolean
  /** the caller's umask, for creates (create-mode.ts) */
  umask?: number
}

export interface UnionOptions {
  /** lower layer roots, top first (latin1 host paths) */
  lowers: string[]
  upper?: string
  workdir?: string
  /** fsync on copy-up and on fsync requests (false with fsync=0 / volatile) */
  fsync: boolean
  /** resolved nodes kept (LRU) */
  maxNodes?: number
  /** approximate bytes of cached lower directories (LowerTree) */
  maxLowerBytes?: number
}

/** A listed entry's attributes, and whether it has no xattrs at all (asked only when `ts.stable`). */
export interface ListedAttrs {
  ts: TaggedStat
  xattrFree: boolean
  /** a regular file the binding may open for reading itself: its layer (-1: the upper) */
  fileLayer?: number
}

/**
 * A listing's entries statted at once (UnionFs.statListed), for listedAttrs: the directory's node
 * and merged lower directory, looked up once for all entries; the upper entries' lstats, entry i
 * of the listing at slot slotOf[i] (-1: not the upper's) of `stats` (16 numbers a slot) and
 * `state` (STAT_NAMES_* bits). The lower entries' are kept in LowerTree.
 */
export interface ListedStats {
  dir: Node
  lowerDir: LowerDir | null
  names: string[]
  slotOf: Int32Array
  stats: Float64Array
  state: Uint8Array
}

/** Approximate bytes of a cached Node (object, its path, the LRU's slot). */
const NODE_BYTES = 200

export interface Node {
  rel: string
  parent: Node | null
  dead: boolean
  /** the visible entry lives in the upper */
  upper: boolean
  /** lower layer of the visible entry when !upper */
  layer: number
  /** S_IFMT bits of the visible entry */
  type: number
  /** directories: the lower view merges in (no opaque upper dir, lower has a directory here) */
  merged: boolean
}

/**
 * A merged listing: per name its d_type, and the st_ino its stat would give without the stat
 * (the host d_ino, the tag of the layer it comes from; a merged directory's differs, see statNode).
 */
export interface Listed {
  names: string[]
  types: number[]
  inos: number[]
  tags: number[]
}

/** A stat of a visible entry, with the ino tag of the layer it came from. */
export interface TaggedStat {
  st: Float64Array
  tag: number
  /** report st_nlink 1, as overlayfs does for merged directories */
  mergedDir: boolean
  /**
   * Only this mount changes these attributes, through this name alone: no other name shares the
   * inode (a directory, a lower entry, or an upper file with one link). The kernel may cache them
   * (src/fuse/mount.ts); hard-linked upper files and volume entries are asked for every time.
   */
  stable: boolean
}

export class UnionFs {
  readonly lower: LowerTree
  /** reads the subdirectories of what was just listed off the JS thread (read-ahead.ts) */
  readonly readAhead: ReadAhead
  readonly upperRoot: string | null
  readonly work: WorkDir | null
  readonly handles = new HandleTable()
  readonly stats = new UnionStats()
  private readonly fsyncOn: boolean
  private readonly nodes: LRUCache<string, Node>
  private readonly root: Node
  private readonly inflight = new Map<string, Promise<void>>()
  private readonly hidden = new Map<string, HiddenFile>()
  private readonly trimListeners: Array<() => void> = []
  private readonly copyUpListeners: Array<(rel: string) => void> = []

  constructor(opts: UnionOptions) {
    this.lower = new LowerTree(opts.lowers, { maxBytes: opts.maxLowerBytes })
    this.readAhead = new ReadAhead(this.lower)
    this.stats.addSection('readAhead', () => this.readAhead.counts)
    this.upperRoot = opts.upper ?? null
    this.work = opts.upper && opts.workdir ? new WorkDir(opts.workdir) : null
    this.fsyncOn = opts.fsync
    this.nodes = new LRUCache<string, Node>({
      max: opts.maxNodes ?? 50_000,
      dispose: (node) => { node.dead = true },
    })
    this.root = { rel: '', parent: null, dead: false, upper: this.upperRoot !== null, layer: 0, type: host.S_IFDIR, merged: true }
  }

  /** Approximate bytes held by the caches now. */
  get cachedBytes(): number {
    return this.nodes.size * NODE_BYTES + this.lower.cachedBytes
  }

  /**
   * Drops the caches (they refill on demand), when no copy-up is in flight: a copy-up holds a Node
   * it marks as copied up when done. Nodes dropped are marked dead, so no one keeps using them.
   */
  trim(): boolean {
    if (this.inflight.size > 0) return false
    this.nodes.clear()
    this.lower.trim()
    this.readAhead.trim()
    for (const fn of this.trimListeners) fn()
    return true
  }

  /** Runs `fn` whenever the caches are trimmed (caches kept above this layer). */
  onTrim(fn: () => void): void {
    this.trimListeners.push(fn)
  }

  /** Runs `fn` with the path of every entry copied up (its inode number changed). */
  onCopyUp(fn: (rel: string) => void): void {
    this.copyUpListeners.push(fn)
  }

  private copiedUp(rel: string): void {
    this.stats.copyUps++
    for (const fn of this.copyUpListeners) fn(rel)
  }

  /** Prepares the work directory (removing leftovers of a crash); returns how many were removed. */
  prepare(): number {
    return this.work ? this.work.prepare() : 0
  }

  // ---- resolution -------------------------------------------------------------------------------

  resolve(rel: string): Node {
    if (rel === '') return this.root
    const cached = this.nodes.get(rel)
    if (cached && isLive(cached)) {
      this.stats.nodeHits++
      return cached
    }
    this.stats.nodeMisses++
    const parent = this.resolve(parentOf(rel))
    if (parent.type !== host.S_IFDIR) throw fsError('ENOTDIR', 'lookup', rel)
    const node = this.lookupChild(parent, rel)
    if (!node) throw fsError('ENOENT', 'lookup', rel)
    this.nodes.set(rel, node)
    return node
  }

  /** resolve(), or null when the name does not exist in the merged view. */
  tryResolve(rel: string): Node | null {
    try {
      return this.resolve(rel)
    } catch (err) {
      if ((err as FsError).code === 'ENOENT') return null
      throw err
    }
  }

  /**
   * `seen`: gets the upper entry's lstat, when the child is the upper's (a listing stats it only
   * once); `known`: that lstat, taken just now by the caller.
   */
  private lookupChild(parent: Node, rel: string, seen?: { st: Float64Array | null }, known?: Float64Array): Node | null {
    const name = baseOf(rel)
    if (name.startsWith(WH_PREFIX)) return null
    if (name.length > NAME_MAX) throw fsError('ENAMETOOLONG', 'lookup', rel)
    if (parent.upper) {
      const abs = this.upperAbs(rel)
      const st = known ?? host.lstatOrNull(abs)
      if (seen) seen.st = st
      if (st) {
        const mode = st[ST.mode]!
        if (isWhiteout(mode, st[ST.rdev]!)) return null
        const type = host.fileType(mode)
        let merged = false
        if (type === host.S_IFDIR && parent.merged && !isOpaqueValue(host.getxattr(abs, OPAQUE_XATTR) ?? 0)) {
          merged = this.lower.lookup(rel)?.dtype === DT_DIR
        }
        return { rel, parent, dead: false, upper: true, layer: -1, type, merged }
      }
    }
    return this.lowerChild(parent, rel)
  }

  /** The child `rel` of `parent` as the lower layers have it (the upper has no such name). */
  private lowerChild(parent: Node, rel: string): Node | null {
    if (!parent.merged) return null
    const entry = this.lower.lookup(rel)
    if (!entry) return null
    return { rel, parent, dead: false, upper: false, layer: entry.layer, type: entry.dtype << 12, merged: entry.dtype === DT_DIR }
  }

  upperAbs(rel: string): string {
    if (this.upperRoot === null) throw fsError('EROFS', 'write', rel)
    return absIn(this.upperRoot, rel)
  }

  /** Host path of the visible entry. */
  visibleAbs(node: Node): string {
    return node.upper ? this.upperAbs(node.rel) : this.lower.abs(node.layer, node.rel)
  }

  // ---- reads --------------------------------------------------------------------------------------

  stat(rel: string): TaggedStat {
    const h = this.hidden.get(rel)
    if (h) return { st: host.lstat(h.abs), tag: h.own ? UPPER_TAG : LOWER_TAG + h.layer, mergedDir: false, stable: false }
    return this.statNode(this.resolve(rel))
  }

  /** Host path to read the entry at `rel` from (the visible entry, or a hidden open file). */
  private readAbs(rel: string): string {
    return this.hidden.get(rel)?.abs ?? this.visibleAbs(this.resolve(rel))
  }

  /** `upperStat`: the lstat of an upper node just taken (not taken again). */
  statNode(node: Node, upperStat?: Float64Array | null): TaggedStat {
    const isDir = node.type === host.S_IFDIR
    if (node.upper) {
      const st = upperStat ?? host.lstat(this.upperAbs(node.rel))
      if (isDir && node.merged) {
        // A merged directory keeps the st_ino of its lower directory (its copy-up origin), as
        // overlayfs reports it: the number does not change when a child's change copies it up.
        const entry = this.lower.lookup(node.rel)
        if (entry) {
          st[ST.ino] = this.lower.stat(node.rel, entry)[ST.ino]!
          return { st, tag: LOWER_TAG + entry.layer, mergedDir: true, stable: true }
        }
      }
      return { st, tag: UPPER_TAG, mergedDir: isDir && node.merged, stable: isDir || st[ST.nlink]! <= 1 }
    }
    const entry = this.lower.lookup(node.rel)
    if (!entry) throw fsError('ENOENT', 'lstat', node.rel)
    const layers = entry.dirLayers
    const mergedDir = isDir && layers !== undefined && layers.length > 1 && (this.lower.dir(node.rel)?.layers.length ?? 0) > 1
    // Lower entries never change; a lower hard link stays one (copy-up of another name breaks it).
    return { st: this.lower.stat(node.rel, entry), tag: LOWER_TAG + entry.layer, mergedDir, stable: true }
  }

  /**
   * The attributes of an entry being listed. A listing touches every child once: the child is
   * resolved without entering the node cache (caching each would churn it on big trees, and a
   * listing's lookups are answered from the listing itself), and asked for xattrs only where the
   * kernel may keep the attributes. `fromLower`: the listing just made (list) found the name in
   * the lower layers, not in the upper, so the upper is not asked again. `pre`, `i`: the listing's
   * entries statted at once (statListed), this one at index `i` of the listing.
   */
  listedAttrs(rel: string, fromLower = false, pre?: ListedStats | null, i = -1): ListedAttrs {
    if (pre && fromLower) {
      const entry = pre.lowerDir?.entries.get(pre.names[i]!)
      if (entry) return this.listedLower(rel, entry)
    }
    const slot = pre ? pre.slotOf[i]! : -1
    const bits = slot >= 0 ? pre!.state[slot]! : 0
    const known = bits & STAT_NAMES_STATTED ? pre!.stats.subarray(slot * 16, slot * 16 + 16) : undefined
    let node = this.nodes.get(rel)
    const seen: { st: Float64Array | null } = { st: known ?? null }
    if (!node || !isLive(node)) {
      const parent = pre ? pre.dir : this.resolve(parentOf(rel))
      if (parent.type !== host.S_IFDIR) throw fsError('ENOTDIR', 'lookup', rel)
      const found = fromLower ? this.lowerChild(parent, rel) : this.lookupChild(parent, rel, seen, known)
      if (!found) throw fsError('ENOENT', 'lookup', rel)
      node = found
    }
    const ts = this.statNode(node, node.upper ? seen.st : null)
    if (!ts.stable) return { ts, xattrFree: false }
    const fileLayer = node.type !== host.S_IFREG || this.hidden.has(rel) ? undefined : node.upper ? -1 : node.layer
    if (node.upper) {
      const xattrFree = known && bits & STAT_NAMES_XATTRS_KNOWN ? (bits & STAT_NAMES_XATTR_FREE) !== 0
        : host.listxattr(this.upperAbs(rel)).length === 0
      return { ts, xattrFree, fileLayer }
    }
    const entry = this.lower.lookup(rel)
    return { ts, xattrFree: entry !== null && this.lower.xattrFree(rel, entry), fileLayer }
  }

  /** listedAttrs of a listed lower entry (what statNode and listedAttrs give for its node). */
  private listedLower(rel: string, entry: LowerEntry): ListedAttrs {
    const layers = entry.dirLayers
    const mergedDir = layers !== undefined && layers.length > 1 && (this.lower.dir(rel)?.layers.length ?? 0) > 1
    const ts: TaggedStat = { st: this.lower.stat(rel, entry), tag: LOWER_TAG + entry.layer, mergedDir, stable: true }
    const fileLayer = entry.dtype !== DT_REG || this.hidden.has(rel) ? undefined : entry.layer
    return { ts, xattrFree: this.lower.xattrFree(rel, entry), fileLayer }
  }

  readlink(rel: string): string {
    const node = this.resolve(rel)
    if (node.type !== host.S_IFLNK) throw fsError('EINVAL', 'readlink', rel)
    return host.readlink(this.visibleAbs(node))
  }

  /**
   * Stats every entry of `listed` (the listing of `rel` just made) at once, for a listing with
   * attributes: the lower ones into LowerTree's cache, the upper ones into what this returns, for
   * listedAttrs to use instead of an lstat and llistxattr each.
   */
  statListed(rel: string, listed: Listed): ListedStats {
    const dir = this.resolve(rel)
    const lowerDir = dir.merged ? this.lower.dir(rel) : null
    if (lowerDir) this.lower.statAll(rel)
    const slotOf = new Int32Array(listed.names.length).fill(-1)
    const names: string[] = []
    if (dir.upper) {
      for (let i = 0; i < listed.names.length; i++) {
        if (listed.tags[i] !== UPPER_TAG) continue
        slotOf[i] = names.length
        names.push(listed.names[i]!)
      }
    }
    const pre = { dir, lowerDir, names: listed.names, slotOf, stats: new Float64Array(names.length * 16), state: new Uint8Array(names.length) }
    if (names.length > 0) native.statNames(this.upperAbs(rel), names, Uint32Array.from(names.keys()), pre.stats, pre.state, true)
    return pre
  }

  /** The merged listing of a directory: names and d_types, each name once, whiteouts applied. */
  list(rel: string): Listed {
    const node = this.resolve(rel)
    if (node.type !== host.S_IFDIR) throw fsError('ENOTDIR', 'readdir', rel)
    return this.listNode(node)
  }

  private listNode(node: Node): Listed {
    const names: string[] = []
    const types: number[] = []
    const inos: number[] = []
    const tags: number[] = []
    const seen = new Set<string>()
    if (node.upper) {
      const abs = this.upperAbs(node.rel)
      const list = host.readdirTypingWhiteouts(abs)
      for (let i = 0; i < list.names.length; i++) {
        const name = list.names[i]!
        let dtype = list.types[i]!
        if (name.startsWith(WH_PREFIX)) continue
        seen.add(name)
        if (dtype === host.DT_WHT) continue
        if (dtype === 0) { // the native lstat failed (gone, or an error this one reports)
          const st = host.lstatOrNull(`${abs}/${name}`)
          if (!st || isWhiteout(st[ST.mode]!, st[ST.rdev]!)) continue
          dtype = host.fileType(st[ST.mode]!) >>> 12
        }
        names.push(name)
        types.push(dtype)
        inos.push(list.inos[i]!)
        tags.push(UPPER_TAG)
      }
    }
    if (node.merged) {
      const dir = this.lower.dir(node.rel)
      if (dir) {
        for (const [name, entry] of dir.entries) {
          if (seen.has(name)) continue
          names.push(name)
          types.push(entry.dtype)
          inos.push(dir.inos[entry.index]!)
          tags.push(LOWER_TAG + entry.layer)
        }
      }
    }
    return { names, types, inos, tags }
  }

  private isEmptyDir(node: Node): boolean {
    return this.listNode(node).names.length === 0
  }

  statfs(): Float64Array {
    const out = new Float64Array(16)
    const r = native.statvfs(this.upperRoot ?? this.lower.roots[0]!, out)
    if (r < 0) throw FsError.fromErrno(r, 'statfs')
    return out
  }

  getxattr(rel: string, name: string): Buffer {
    const value = host.getxattr(this.readAbs(rel), escapeXattr(name))
    if (value === null) throw fsError('ENODATA', 'getxattr', rel)
    return value
  }

  /** The visible entry at `rel` has no xattrs at all (hidden overlay ones included). */
  xattrFree(rel: string): boolean {
    if (this.hidden.has(rel)) return false
    const node = this.resolve(rel)
    if (node.upper) return host.listxattr(this.upperAbs(rel)).length === 0
    const entry = this.lower.lookup(rel)
    return entry !== null && this.lower.xattrFree(rel, entry)
  }

  listxattr(rel: string): string[] {
    const names: string[] = []
    for (const n of host.listxattr(this.readAbs(rel))) {
      const shown = unescapeXattr(n)
      if (shown !== null) names.push(shown)
    }
    return names
  }

  // ---- copy-up ------------------------------------------------------------------------------------

  /** Waits for copy-ups in flight at `rel` (and below it, with subtree). */
  private async settle(rel: string, subtree = false): Promise<void> {
    for (;;) {
      let pending: Promise<void> | undefined
      for (const [key, p] of this.inflight) {
        if (key === rel || (subtree && isWithin(key, rel))) { pending = p; break }
      }
      if (!pending) return
      await pending.catch(() => undefined)
    }
  }

  /** Makes sure the directory `node` exists in the upper, copying up missing parents first. */
  private ensureUpperDir(node: Node): void {
    if (node.upper) return
    if (node.parent) this.ensureUpperDir(node.parent)
    const entry = this.lower.lookup(node.rel)
    if (!entry) throw fsError('ENOENT', 'copy-up', node.rel)
    copyUpDir(this.lower.abs(entry.layer, node.rel), this.lower.stat(node.rel, entry), this.upperAbs(node.rel), this.work!)
    node.upper = true
    this.copiedUp(node.rel)
  }

  /** Copies the entry at `rel` up (once, however many callers race) and returns its Node. */
  async copyUp(rel: string, data = true): Promise<Node> {
    this.writable(rel)
    for (;;) {
      const pending = this.inflight.get(rel)
      if (pending) {
        await pending.catch(() => undefined)
        continue
      }
      const node = this.resolve(rel)
      if (node.upper) return node
      if (node.type === host.S_IFDIR) {
        this.ensureUpperDir(node)
        return node
      }
      const job = this.copyUpFile(node, data)
      this.inflight.set(rel, job)
      try {
        await job
      } finally {
        this.inflight.delete(rel)
      }
    }
  }

  private async copyUpFile(node: Node, data: boolean): Promise<void> {
    if (node.parent) this.ensureUpperDir(node.parent)
    const entry = this.lower.lookup(node.rel)
    if (!entry) throw fsError('ENOENT', 'copy-up', node.rel)
    const st = this.lower.stat(node.rel, entry)
    const dest = this.upperAbs(node.rel)
    const bytes = await copyUpEntry(this.lower.abs(entry.layer, node.rel), st, dest, this.work!, { data, fsync: this.fsyncOn })
    node.upper = true
    node.layer = -1
    this.copiedUp(node.rel)
    this.stats.copyUpBytes += bytes
    // Handles opened read-only on the lower file now read the upper one (overlayfs: ovl_real_fdget).
    for (const h of this.handles.at(node.rel)) {
      if (h.upper) continue
      this.handles.retarget(h, host.open(dest, O_RDONLY | O_NOFOLLOW), true, -1)
    }
  }

  /**
   * Copies a whole directory tree up (for rename of a directory that has lower content). Hard links
   * among the lower files of the tree stay hard links, as they do when mv copies across filesystems.
   */
  private async copyUpTree(node: Node, links = new Map<string, string>()): Promise<void> {
    this.ensureUpperDir(node)
    if (!node.merged) return
    // Filling it and dropping its whiteouts must not change the directory's times (mv keeps them).
    const times = host.lstat(this.upperAbs(node.rel))
    const { names } = this.listNode(node)
    for (const name of names) {
      const child = this.resolve(joinRel(node.rel, name))
      if (child.type === host.S_IFDIR) {
        await this.copyUpTree(child, links)
        continue
      }
      if (child.upper) continue
      const st = this.statNode(child).st
      const key = `${child.layer}:${st[ST.ino]}`
      const first = st[ST.nlink]! > 1 ? links.get(key) : undefined
      if (first !== undefined) {
        copyUpAsLink(first, this.upperAbs(child.rel))
        child.upper = true
        child.layer = -1
      } else {
        await this.copyUp(child.rel)
        if (st[ST.nlink]! > 1) links.set(key, this.upperAbs(child.rel))
      }
    }
    host.setxattr(this.upperAbs(node.rel), OPAQUE_XATTR, OPAQUE_VALUE)
    node.merged = false
    dropWhiteouts(this.upperAbs(node.rel))
    host.utimens(this.upperAbs(node.rel), times[ST.atimeSec]!, times[ST.atimeNsec]!, times[ST.mtimeSec]!, times[ST.mtimeNsec]!)
  }

  // ---- mutations ----------------------------------------------------------------------------------

  private writable(rel: string): void {
    if (this.upperRoot === null || this.work === null) throw fsError('EROFS', 'write', rel)
  }

  /** The lower view has something at `rel` that would show through without a whiteout. */
  private lowerHas(parent: Node, rel: string): boolean {
    return parent.merged && this.lower.lookup(rel) !== null
  }

  /**
   * The upper and the shared whiteout every whiteout in it links to (WorkDir), for the binding's
   * own unlinks (removedByBinding); null when nothing can be written.
   */
  get whiteoutTarget(): { upper: string, sharedWhiteout: string } | null {
    return this.upperRoot !== null && this.work !== null ? { upper: this.upperRoot, sharedWhiteout: this.work.sharedWhiteout } : null
  }

  /**
   * The binding unlinked the lower name `rel` itself (a whiteout linked in the upper directory it
   * is in, while no request was with JS: patches/README.md): what is kept of it goes.
   */
  removedByBinding(rel: string): void {
    this.forget(rel)
  }

  /**
   * The binding created the regular file `rel` itself, in its upper directory, as create() would,
   * or opened the upper's file there for writing, as open() would (while no request was with JS:
   * src/fuse/binding-creates.ts): what is kept of the name goes.
   */
  createdByBinding(rel: string): void {
    this.forget(rel)
  }

  private forget(rel: string): void {
    const node = this.nodes.get(rel)
    if (node) node.dead = true
    this.nodes.delete(rel)
  }

  private whiteoutAt(abs: string): void {
    this.work!.whiteout(abs)
  }

  /** Checks a name for creation and returns the parent directory node, copied up. */
  private prepareCreate(rel: string): Node {
    this.writable(rel)
    const name = baseOf(rel)
    if (name.length > NAME_MAX) throw fsError('ENAMETOOLONG', 'create', rel)
    // `.wh.` names would read as whiteouts in OCI layers made from this upper (fuse-overlayfs: EINVAL).
    if (name.startsWith(WH_PREFIX)) throw fsError('EINVAL', 'create', rel)
    const parent = this.resolve(parentOf(rel))
    if (parent.type !== host.S_IFDIR) throw fsError('ENOTDIR', 'create', rel)
    if (this.tryResolve(rel)) throw fsError('EEXIST', 'create', rel)
    this.ensureUpperDir(parent)
    return parent
  }

  /**
   * Creates a new upper entry at `rel` with `make(abs)`. Over a whiteout, the entry is built in the
   * work dir and renamed over it in one step; a directory made there becomes opaque, so the deleted
   * lower directory's contents stay deleted (overlayfs.rst, "whiteouts and opaque directories").
   */
  private placeNew(rel: string, isDir: boolean, make: (abs: string) => void, defaultAcl: Buffer | null = null): void {
    const abs = this.upperAbs(rel)
    const existing = host.lstatOrNull(abs)
    if (!existing) {
      makeOrUndo(abs, make)
    } else if (!isWhiteout(existing[ST.mode]!, existing[ST.rdev]!)) {
      throw fsError('EEXIST', 'create', rel)
    } else {
      // The work dir has no default ACL: made in a directory of its own that carries the parent's,
      // the entry gets from the host what it would have got in place (overlayfs computes it alike).
      const nest = defaultAcl ? this.work!.tempName() : null
      if (nest) {
        host.mkdir(nest, 0o700)
        host.setxattr(nest, DEFAULT_ACL, defaultAcl!)
      }
      try {
        const tmp = nest ? `${nest}/new` : this.work!.tempName()
        makeOrUndo(tmp, make)
        if (isDir) {
          host.setxattr(tmp, OPAQUE_XATTR, OPAQUE_VALUE)
          exchangeOrReplace(tmp, abs)
          host.unlink(tmp)
        } else {
          host.rename(tmp, abs)
        }
      } finally {
        if (nest) {
          try { host.rmdir(nest) } catch { /* left for the work dir's cleanup; the error that matters is thrown */ }
        }
      }
    }
    this.forget(rel)
  }

  /** The mode a new entry in `parent` (in the upper) is made with, and the default ACL it inherits. */
  private createMode(parent: Node, mode: number, caller: Caller): CreateMode {
    return createMode(this.upperAbs(parent.rel), mode, caller.umask ?? 0)
  }

  private owner(parent: Node, caller: Caller): { uid: number, gid: number, sgid: boolean } {
    const pst = host.lstat(this.upperAbs(parent.rel))
    const sgid = (pst[ST.mode]! & host.S_ISGID) !== 0
    return { uid: caller.uid, gid: sgid ? pst[ST.gid]! : caller.gid, sgid }
  }

  async create(rel: string, mode: number, flags: number, caller: Caller): Promise<Handle> {
    await this.settle(rel)
    const parent = this.prepareCreate(rel)
    const own = this.owner(parent, caller)
    const cm = this.createMode(parent, mode, caller)
    let fd = -1
    this.placeNew(rel, false, (abs) => { fd = createFile(abs, flags, cm.mode, own.uid, own.gid) }, cm.defaultAcl)
    return this.handles.add(fd, rel, (flags & O_ACCMODE) !== O_RDONLY, true, -1)
  }

  async mkdir(rel: string, mode: number, caller: Caller): Promise<void> {
    await this.settle(rel)
    const parent = this.prepareCreate(rel)
    const own = this.owner(parent, caller)
    const cm = this.createMode(parent, mode, caller)
    this.placeNew(rel, true, (abs) => {
      host.mkdir(abs, cm.mode & 0o7777)
      host.lchown(abs, own.uid, own.gid)
      // made in the work dir (over a whiteout), it did not inherit the parent's setgid bit; a
      // chmod of the bits it has keeps what a default ACL gave (the group bits are its mask)
      const made = host.lstat(abs)[ST.mode]!
      if (own.sgid && !(made & host.S_ISGID)) host.chmod(abs, made | host.S_ISGID)
    }, cm.defaultAcl)
  }

  async mknod(rel: string, mode: number, rdev: number, caller: Caller): Promise<void> {
    if (host.fileType(mode) === host.S_IFREG || host.fileType(mode) === 0) {
      const h = await this.create(rel, mode & 0o7777, O_WRONLY, caller)
      this.release(h.id)
      return
    }
    await this.settle(rel)
    const parent = this.prepareCreate(rel)
    const own = this.owner(parent, caller)
    const cm = this.createMode(parent, mode, caller)
    this.placeNew(rel, false, (abs) => {
      host.mknod(abs, cm.mode, rdev)
      host.lchown(abs, own.uid, own.gid)
    }, cm.defaultAcl)
  }

  async symlink(target: string, rel: string, caller: Caller): Promise<void> {
    await this.settle(rel)
    const parent = this.prepareCreate(rel)
    const own = this.owner(parent, caller)
    this.placeNew(rel, false, (abs) => {
      host.symlink(target, abs)
      host.lchown(abs, own.uid, own.gid)
    })
  }

  async link(from: string, to: string): Promise<void> {
    const src = await this.copyUp(from)
    if (src.type === host.S_IFDIR) throw fsError('EPERM', 'link', from)
    await this.settle(to)
    this.prepareCreate(to)
    const srcAbs = this.upperAbs(from)
    this.placeNew(to, false, (abs) => host.link(srcAbs, abs))
  }

  async unlink(rel: string): Promise<void> {
    this.writable(rel)
    if (this.dropHidden(rel)) return
    await this.settle(rel)
    const node = this.resolve(rel)
    if (node.type === host.S_IFDIR) throw fsError('EISDIR', 'unlink', rel)
    const parent = node.parent!
    if (node.upper) {
      const abs = this.upperAbs(rel)
      if (this.lowerHas(parent, rel)) {
        const tmp = this.work!.tempName()
        this.whiteoutAt(tmp)
        host.rename(tmp, abs)
      } else {
        host.unlink(abs)
      }
    } else {
      this.ensureUpperDir(parent)
      this.whiteoutAt(this.upperAbs(rel))
    }
    this.forget(rel)
  }

  /** Forgets the hidden file at `rel` and deletes its own copy; false if `rel` is not one. */
  dropHidden(rel: string): boolean {
    const h = this.hidden.get(rel)
    if (!h) return false
    this.hidden.delete(rel)
    if (h.own) host.unlink(h.abs)
    return true
  }

  async rmdir(rel: string): Promise<void> {
    this.writable(rel)
    if (rel === '') throw fsError('EBUSY', 'rmdir', rel)
    await this.settle(rel, true)
    const node = this.resolve(rel)
    if (node.type !== host.S_IFDIR) throw fsError('ENOTDIR', 'rmdir', rel)
    if (!this.isEmptyDir(node)) throw fsError('ENOTEMPTY', 'rmdir', rel)
    const parent = node.parent!
    if (node.upper) {
      const abs = this.upperAbs(rel)
      const tmp = this.work!.tempName()
      if (this.lowerHas(parent, rel)) {
        // Swap in a whiteout atomically; the old directory (holding only whiteouts) goes to work.
        this.whiteoutAt(tmp)
        exchangeOrReplace(tmp, abs)
      } else {
        host.rename(abs, tmp)
      }
      host.removeTree(tmp)
    } else {
      this.ensureUpperDir(parent)
      this.whiteoutAt(this.upperAbs(rel))
    }
    this.forget(rel)
  }

  /** libfuse's rename of an open file being unlinked to a hidden name (see HiddenFile). */
  private async hide(from: string, to: string): Promise<void> {
    await this.settle(from)
    const node = this.resolve(from)
    if (node.type === host.S_IFDIR) throw fsError('EISDIR', 'rename', from)
    if (node.upper) {
      const tmp = this.work!.tempName()
      if (this.lowerHas(node.parent!, from)) renameWithWhiteout(this.upperAbs(from), tmp)
      else host.rename(this.upperAbs(from), tmp)
      this.hidden.set(to, { abs: tmp, own: true, layer: -1 })
    } else {
      this.hidden.set(to, { abs: this.lower.abs(node.layer, from), own: false, layer: node.layer })
      this.ensureUpperDir(node.parent!)
      this.whiteoutAt(this.upperAbs(from))
    }
    this.forget(from)
    this.handles.moved(from, to)
  }

  async rename(from: string, to: string): Promise<void> {
    this.writable(from)
    if (from === to) return
    if (isLibfuseHidden(to)) return this.hide(from, to)
    if (from === '' || to === '') throw fsError('EBUSY', 'rename', from)
    if (isWithin(to, from)) throw fsError('EINVAL', 'rename', from)
    const toName = baseOf(to)
    if (toName.startsWith(WH_PREFIX)) throw fsError('EINVAL', 'rename', to)
    if (toName.length > NAME_MAX) throw fsError('ENAMETOOLONG', 'rename', to)
    await this.settle(from, true)
    await this.settle(to, true)

    let src = this.resolve(from)
    const isDir = src.type === host.S_IFDIR
    const dst = this.tryResolve(to)
    const dstParent = this.resolve(parentOf(to))
    if (dstParent.type !== host.S_IFDIR) throw fsError('ENOTDIR', 'rename', to)
    if (dst) {
      const dstIsDir = dst.type === host.S_IFDIR
      if (isDir && !dstIsDir) throw fsError('ENOTDIR', 'rename', to)
      if (!isDir && dstIsDir) throw fsError('EISDIR', 'rename', to)
      if (dstIsDir && !this.isEmptyDir(dst)) throw fsError('ENOTEMPTY', 'rename', to)
    }

    // Bring the source wholly into the upper. A directory with lower content is copied up as a
    // tree and made opaque: without redirect_dir, overlayfs itself would answer EXDEV here.
    if (isDir) await this.copyUpTree(src)
    else await this.copyUp(from)
    src = this.resolve(from)
    this.ensureUpperDir(this.resolve(parentOf(to)))

    const srcAbs = this.upperAbs(from)
    const dstAbs = this.upperAbs(to)
    const srcParent = src.parent!
    const needWhiteout = this.lowerHas(srcParent, from)
    // A directory moved to where the lower view has something must hide it.
    if (isDir && src.merged === false && this.lowerHas(this.resolve(parentOf(to)), to)) {
      host.setxattr(srcAbs, OPAQUE_XATTR, OPAQUE_VALUE)
    }
    const dstUpper = host.lstatOrNull(dstAbs)
    if (dstUpper && host.isDirMode(dstUpper[ST.mode]!)) {
      // An empty merged directory may still hold whiteouts in the upper; rename(2) needs it empty.
      const tmp = this.work!.tempName()
      host.rename(dstAbs, tmp)
      host.removeTree(tmp)
    }
    const dstIsWhiteout = dstUpper !== null && isWhiteout(dstUpper[ST.mode]!, dstUpper[ST.rdev]!)
    if (isDir && dstIsWhiteout) {
      // rename(2) cannot put a directory over a device node: swap, then drop or keep the whiteout.
      host.rename(srcAbs, dstAbs, native.RENAME_EXCHANGE)
      if (!needWhiteout) host.unlink(srcAbs)
    } else if (needWhiteout) {
      renameWithWhiteout(srcAbs, dstAbs)
    } else {
      host.rename(srcAbs, dstAbs)
    }
    this.forget(from)
    this.forget(to)
    this.handles.moved(from, to)
  }

  // ---- attribute changes (all copy up first) ------------------------------------------------------

  /** Copies `rel` up if needed and returns the host path to change (a hidden file's own copy too). */
  private async changeableAbs(rel: string, data = true): Promise<{ abs: string, type: number }> {
    const h = this.hidden.get(rel)
    if (!h) {
      const node = await this.copyUp(rel, data)
      return { abs: this.upperAbs(rel), type: node.type }
    }
    if (!h.own) {
      // A lower file unlinked while open is changed: give it its own copy in the work dir.
      this.writable(rel)
      const tmp = this.work!.tempName()
      await copyUpEntry(h.abs, host.lstat(h.abs), tmp, this.work!, { data, fsync: false })
      this.hidden.set(rel, { abs: tmp, own: true, layer: -1 })
      for (const handle of this.handles.at(rel)) {
        if (!handle.upper) this.handles.retarget(handle, host.open(tmp, O_RDONLY | O_NOFOLLOW), true, -1)
      }
      return { abs: tmp, type: host.S_IFREG }
    }
    return { abs: h.abs, type: host.S_IFREG }
  }

  async chmod(rel: string, mode: number): Promise<void> {
    const { abs, type } = await this.changeableAbs(rel)
    if (type === host.S_IFLNK) throw fsError('EOPNOTSUPP', 'chmod', rel)
    host.chmod(abs, mode)
  }

  async chown(rel: string, uid: number, gid: number): Promise<void> {
    host.lchown((await this.changeableAbs(rel)).abs, uid, gid)
  }

  async utimens(rel: string, aSec: number, aNsec: number, mSec: number, mNsec: number): Promise<void> {
    host.utimens((await this.changeableAbs(rel)).abs, aSec, aNsec, mSec, mNsec)
  }

  /** `after`: called with the truncated file's fd (to drop its set-id bits: Caller.dropSetId). */
  async truncate(rel: string, size: number, after?: (fd: number) => void): Promise<void> {
    const { abs, type } = await this.changeableAbs(rel, size > 0)
    if (type === host.S_IFDIR) throw fsError('EISDIR', 'truncate', rel)
    const fd = host.open(abs, O_WRONLY | O_NOFOLLOW)
    try {
      fs.ftruncateSync(fd, size)
      after?.(fd)
    } finally {
      fs.closeSync(fd)
    }
  }

  async setxattr(rel: string, name: string, value: Buffer, flags: number): Promise<void> {
    host.setxattr((await this.changeableAbs(rel)).abs, escapeXattr(name), value, flags)
  }

  async removexattr(rel: string, name: string): Promise<void> {
    // Removing a name a lower entry does not have fails without a copy-up (overlayfs checks first).
    this.writable(rel)
    const node = this.hidden.has(rel) ? null : this.resolve(rel)
    if (node && !node.upper && host.getxattr(this.visibleAbs(node), escapeXattr(name)) === null) {
      throw fsError('ENODATA', 'removexattr', rel)
    }
    host.removexattr((await this.changeableAbs(rel)).abs, escapeXattr(name))
  }

  // ---- open files ---------------------------------------------------------------------------------

  async open(rel: string, flags: number): Promise<Handle> {
    const acc = flags & O_ACCMODE
    const writes = acc === O_WRONLY || acc === O_RDWR || (flags & O_TRUNC) !== 0
    const hostFlags = (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT)) | O_NOFOLLOW
    if (this.hidden.has(rel)) {
      const abs = writes ? (await this.changeableAbs(rel)).abs : this.hidden.get(rel)!.abs
      const h = this.hidden.get(rel)!
      return this.handles.add(host.open(abs, h.own ? hostFlags : (hostFlags & ~O_ACCMODE) | O_RDONLY), rel, writes, h.own, h.layer)
    }
    if (writes) {
      const node = await this.copyUp(rel, (flags & O_TRUNC) === 0)
      if (node.type === host.S_IFDIR) throw fsError('EISDIR', 'open', rel)
      const fd = host.open(this.upperAbs(rel), hostFlags)
      return this.handles.add(fd, rel, acc !== O_RDONLY, true, -1)
    }
    const node = this.resolve(rel)
    // A lower file is only ever opened read-only, whatever the caller asked for.
    const readFlags = (hostFlags & ~(O_ACCMODE | O_TRUNC | O_APPEND)) | O_RDONLY
    const fd = host.open(this.visibleAbs(node), node.upper ? hostFlags : readFlags)
    return this.handles.add(fd, rel, false, node.upper, node.layer)
  }

  release(id: number): void {
    this.handles.release(id)
  }

  handle(id: number): Handle {
    const h = this.handles.get(id)
    if (!h) throw fsError('EBADF', 'handle')
    return h
  }

  fstat(id: number): TaggedStat {
    const h = this.handle(id)
    const st = host.fstat(h.fd)
    return { st, tag: h.upper ? UPPER_TAG : LOWER_TAG + h.layer, mergedDir: false, stable: !h.upper || st[ST.nlink]! === 1 }
  }

  get fsyncEnabled(): boolean {
    return this.fsyncOn
  }
}

function isLive(node: Node): boolean {
  for (let n: Node | null = node; n; n = n.parent) if (n.dead) return false
  return true
}

/** Runs `make(abs)`; if it fails half-way (say, chown after the create), removes what it made. */
function makeOrUndo(abs: string, make: (abs: string) => void): void {
  try {
    make(abs)
  } catch (err) {
    // EEXIST: the entry is not ours to remove.
    if ((err as FsError).code !== 'EEXIST') {
      try { host.removeTree(abs) } catch { /* the original error is what matters */ }
    }
    throw err
  }
}

/**
 * Removes the whiteouts in an upper tree that no longer has anything below it (a tree copied up
 * whole and made opaque). They hide nothing there, and kernel overlayfs lists whiteouts in such
 * pure-upper directories instead of hiding them.
 */
function dropWhiteouts(abs: string): void {
  const list = host.readdir(abs)
  for (let i = 0; i < list.names.length; i++) {
    const t = list.types[i]!
    const child = `${abs}/${list.names[i]}`
    if (t === 4) dropWhiteouts(child)
    else if (t === 2 || t === 0) {
      const st = host.lstat(child)
      if (isWhiteout(st[ST.mode]!, st[ST.rdev]!)) host.unlink(child)
    }
  }
}

/** renameat2(RENAME_EXCHANGE), or a plain two-step replace where the filesystem lacks it. */
function exchangeOrReplace(tmp: string, abs: string): void {
  try {
    host.rename(tmp, abs, native.RENAME_EXCHANGE)
  } catch (err) {
    if ((err as FsError).code !== 'EINVAL') throw err
    const aside = `${tmp}.old`
    host.rename(abs, aside)
    host.rename(tmp, abs)
    host.rename(aside, tmp)
  }
}

/** rename leaving a whiteout at the source in the same step (RENAME_WHITEOUT), else in two. */
function renameWithWhiteout(from: string, to: string): void {
  try {
    host.rename(from, to, native.RENAME_WHITEOUT)
  } catch (err) {
    if ((err as FsError).code !== 'EINVAL') throw err
    host.rename(from, to)
    host.mknod(from, host.S_IFCHR, 0)
  }
}


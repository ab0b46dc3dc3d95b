/**
 * One adapter per FUSE op: decode the binding's arguments, call UnionFs, answer with exactly one
 * signal carrying an integer result (fuse-native aborts the process, leaving the kernel request
 * hanging, if a signal gets anything else). Every adapter catches; none throws.
 *
 * Argument shapes come from the patched fuse-native.c dispatchers: (threadLocals, opcode, ...args),
 * paths are latin1 strings ('/a/b') or null for handle ops (flag_nopath).
 */
import * as fs from 'node:fs'
import { FsError } from '../sys/errors'
import type { Logger } from '../sys/log'
import { joinRel, parentOf, relFromFuse } from '../sys/rel'
import { isLowerTag, type Caller, type Listed, type ListedStats, type TaggedStat } from '../union/union-fs'
import type { Router } from '../union/router'
import { binding, opcode, signalFn as bindingSignal } from './binding'
import { bindingFds, bindingHandles, bindingIoStats, dropSetIdBits, killPrivStats, setBindingLayers } from './direct-io'
import { enableBindingUnlinks, takeBindingUnlinks } from './binding-unlinks'
import { enableBindingCreates, takeBindingCreates, takeBindingSetattrs, whileBuilding } from './binding-creates'
import { BindingListings } from './binding-listings'
import { toNegErrno } from './errno'
import { requestStats } from './request-stats'
import { layerCode, packLean, packStat, packStatfs, packTypeOnly, STAT_LAYER_SHIFT, STAT_NO_XATTRS, STAT_SLOTS } from './stat-pack'
import { LeanListings, MAX_UPGRADE } from './lean-listings'
import { ListAhead } from './list-ahead'
import { DT_DIR } from '../layers/lower-tree'
import { DirPrefetch, MAX_ENTRIES, MAX_NAMES } from './dir-prefetch'
import { ListingCache, type ListingAnswer } from './listing-cache'
import { ATTR_CACHE_MS } from './mount'

type Handler = (...args: never[]) => void
const TWO32 = 4294967296
const EMPTY_STAT = new Uint32Array(STAT_SLOTS)
const EMPTY_STATFS = new Uint32Array(11)
/** A prefetch's stats when only the names go to the binding. */
const NO_STATS = new Uint32Array(0)
const UID_AT = binding.offsetof_fuse_thread_locals_t_caller_uid
const GID_AT = binding.offsetof_fuse_thread_locals_t_caller_gid
const PID_AT = binding.offsetof_fuse_thread_locals_t_caller_pid
const DROP_SET_ID_AT = binding.offsetof_fuse_thread_locals_t_caller_kill_suidgid
const UMASK_AT = binding.offsetof_fuse_thread_locals_t_caller_umask
const CHANGED_AT = binding.offsetof_fuse_thread_locals_t_strata_changed
const XATTR_STABLE_AT = binding.offsetof_fuse_thread_locals_t_strata_xattr_stable

function callerOf(l: Buffer): Caller {
  return { uid: l.readUInt32LE(UID_AT), gid: l.readUInt32LE(GID_AT), pid: l.readUInt32LE(PID_AT), dropSetId: l.readUInt32LE(DROP_SET_ID_AT) !== 0, umask: l.readUInt32LE(UMASK_AT) }
}

function pathArg(p: string | null): string {
  if (p === null) throw new FsError('ENOENT', 'the file was removed while open')
  return relFromFuse(p)
}

/** The ArrayBuffer the binding detaches when a request ends; a fresh one when the kernel gave none. */
const arrayBufferOf = (b: Buffer | undefined): ArrayBufferLike => b?.buffer ?? new ArrayBuffer(0)

/**
 * Requests that change nothing a listing shows (open and release are decided by their arguments).
 * fsync only makes durable what is there.
 */
const O_ACCMODE = 3
/**
 * Largest directory whose listing is built ahead of a walk: a request arriving meanwhile waits
 * for it (a full listing costs ~8 µs an entry here, so ~8 ms at most).
 */
const MAX_AHEAD_ENTRIES = 1024
const READ_ONLY_OPS = new Set(['init', 'getattr', 'fgetattr', 'statfs', 'readlink', 'opendir', 'readdir', 'access',
  'releasedir', 'fsync', 'getxattr', 'listxattr', 'read'])

export interface HandlerTable {
  handlers: Array<Handler | undefined>
  implemented: Uint32Array
}

export function makeHandlers(fsys: Router, log: Logger, onInit: () => void): HandlerTable {
  const handlers: Array<Handler | undefined> = []
  const implemented = new Uint32Array(35)
  const stats = fsys.stats
  // reads and writes of open files are answered by the binding (src/fuse/direct-io.ts)
  fsys.handles.mirror = bindingFds
  fsys.handles.external = bindingHandles
  setBindingLayers(fsys.union.upperRoot, fsys.union.lower.roots)
  stats.addSource('binding', bindingIoStats)
  stats.addSection('killPriv', killPrivStats)
  stats.addSection('requests', requestStats)
  const whiteouts = fsys.union.whiteoutTarget
  if (whiteouts) {
    enableBindingUnlinks(whiteouts.upper, whiteouts.sharedWhiteout, fsys.volumes.map((v) => `/${v.spec.rel}`))
    enableBindingCreates(ATTR_CACHE_MS)
  }
  const trace = log.isLevelEnabled('trace')

  function fail(op: string, err: unknown, start: bigint): number {
    const neg = toNegErrno(err, op, log)
    stats.record(op, start, (err as FsError).code ?? 'EIO')
    if (trace) log.trace({ op, err: (err as Error).message }, 'failed')
    return neg
  }

  /**
   * Copy-ups counted when each worker thread's request arrived (`l` is that thread's buffer, and a
   * thread serves one request at a time). A request during which the count moved may have copied
   * its entry up behind the kernel's attribute cache: the answer says so (CHANGED_AT) and the
   * binding invalidates the entry after replying (src/fuse/mount.ts). Another request's copy-up
   * in between only costs a needless invalidation.
   */
  const copyUpsAtStart = new Map<Buffer, number>()

  /** Kept listings (listing-cache.ts), and which thread's request may change something. */
  const listings = new ListingCache(ATTR_CACHE_MS)
  /** Directories whose entries are looked up without a listing (dir-prefetch.ts). */
  const prefetcher = new DirPrefetch()
  /** Which listings leave their entries' attributes out (lean-listings.ts). */
  const leanListings = new LeanListings()
  /** Listings built ahead that the binding answers (binding-listings.ts); what it served is learned before anything JS serves. */
  const bindingListings = new BindingListings((rel, pid, lean) => servedByBinding(rel, pid, lean))
  fsys.union.onTrim(() => {
    listings.clear()
    bindingListings.clear()
  })
  // the kernel's kept listing of the parent shows the entry's old inode number (src/fuse/mount.ts)
  fsys.union.onCopyUp((rel) => binding.fuse_native_strata_listing_stale(`/${parentOf(rel)}`))
  const changingAt = new Map<Buffer, boolean>()
  /** Whether a request may change anything a listing shows (args as the handler gets them). */
  const mayChange = (name: string, args: unknown[]): boolean => {
    if (name === 'open') return ((args[2] as number) & O_ACCMODE) !== fs.constants.O_RDONLY || ((args[2] as number) & fs.constants.O_TRUNC) !== 0
    if (name === 'release') return fsys.handles.get(args[2] as number)?.writable !== false
    return !READ_ONLY_OPS.has(name)
  }

  /**
   * Names the binding unlinked, files it created or opened for writing, and files whose mode, owner
   * or times it changed, while JS served nothing: learned before anything is served or built
   * (whileBuilding: a listing made without knowing a file is open for writing would hand out its
   * attributes for keeping, and the listings kept show old attributes). The handle of a file
   * created or opened there is adopted now: it counts as a writer of its path from here on, unless
   * it was released already.
   */
  const learnFromBinding = (): void => {
    const gone = takeBindingUnlinks()
    const made = takeBindingCreates()
    const changed = takeBindingSetattrs()
    if (gone === null && made === null && changed === 0) return
    for (const p of gone ?? []) fsys.union.removedByBinding(relFromFuse(p))
    for (const [p, fh] of made ?? []) {
      fsys.union.createdByBinding(relFromFuse(p))
      fsys.handles.get(fh)
    }
    listings.changed()
    prefetcher.clear()
  }

  function def(name: string, fn: Handler): void {
    const code = opcode(name)
    handlers[code] = ((l: Buffer, ...args: never[]) => {
      learnFromBinding()
      bindingListings.drain()
      copyUpsAtStart.set(l, stats.copyUps)
      const changes = mayChange(name, args)
      changingAt.set(l, changes)
      if (changes) {
        listings.changed()
        prefetcher.clear()
      }
      ;(fn as (...a: unknown[]) => void)(l, ...args)
    }) as Handler
    implemented[code] = 1
  }

  /** The binding's answer function for `name`, marking answers to requests that copied up. */
  function signalFn(name: string): (l: Buffer, ...args: unknown[]) => void {
    const signal = bindingSignal(name)
    return (l, ...args) => {
      if (stats.copyUps !== copyUpsAtStart.get(l)) l.writeUInt32LE(1, CHANGED_AT)
      if (changingAt.get(l)) listings.changed() // a listing built while it ran may show either side
      signal(l, ...args)
    }
  }

  /**
   * The attributes an entry has after an op changed or created it, for the binding to answer the
   * getattr libfuse makes right after the op (patches/README.md), or nothing if they cannot be had.
   * A new entry also says whether it has no xattrs at all (the binding then answers its getxattrs);
   * for other entries the binding does not use that, so it is not asked for.
   */
  function afterOp(read: () => { ts: TaggedStat, rel: string }, isNew: boolean): Uint32Array | undefined {
    try {
      const { ts, rel } = read()
      const out = packStat(ts)
      if (isNew && ts.stable && fsys.xattrFree(rel)) out[23] = STAT_NO_XATTRS
      return out
    } catch {
      return undefined
    }
  }
  const afterOpAt = (p: string | null, isNew = false): Uint32Array | undefined => afterOp(() => {
    const rel = pathArg(p)
    return { ts: fsys.stat(rel), rel }
  }, isNew)

  /** A directory's attributes after a change to one of its names (FUSE path `p`). */
  const parentAfter = (p: string | null): Uint32Array | undefined =>
    p === null ? undefined : afterOpAt(p.slice(0, Math.max(1, p.lastIndexOf('/'))))

  /**
   * Ops that answer with a status; `fn` may be sync or async. The answer carries attributes after
   * the change (`after`, given the op's arguments) for ops that change one entry: the entry's, and
   * for ops that change a directory's names, the directory's (patches/README.md).
   */
  function changing(name: string, after: (...args: never[]) => Array<Uint32Array | undefined>, fn: (caller: Caller, ...args: never[]) => void | Promise<void>): void {
    const signal = signalFn(name)
    def(name, ((l: Buffer, _op: number, ...args: never[]) => {
      const start = process.hrtime.bigint()
      if (trace) log.trace({ op: name, args: args.filter((a) => typeof a !== 'object' || a === null) }, 'request')
      const done = (): void => {
        stats.record(name, start, null)
        signal(l, 0, ...after(...args))
      }
      let result: void | Promise<void>
      try {
        result = fn(callerOf(l), ...args)
      } catch (err) {
        signal(l, fail(name, err, start))
        return
      }
      if (result instanceof Promise) result.then(done, (err) => signal(l, fail(name, err, start)))
      else done()
    }) as Handler)
  }

  const noAttributes = (): Array<Uint32Array | undefined> => []
  /** Ops that answer with just a status. */
  const status = (name: string, fn: (...args: never[]) => void | Promise<void>): void =>
    changing(name, noAttributes, (_caller, ...args) => fn(...args))

  const signalInit = signalFn('init')
  def('init', ((l: Buffer) => {
    signalInit(l, 0)
    onInit()
  }) as Handler)

  /**
   * Synchronous ops that answer with values: `compute` returns the signal's arguments after the
   * status; on failure the binding still needs placeholders of the same shape (`empty`).
   */
  function value(name: string, empty: unknown[], compute: (...args: never[]) => unknown[]): void {
    valueFor(name, empty, (_pid: number, ...args: never[]) => compute(...args))
  }
  /** As `value`, `compute` also given the caller's pid (thread id). */
  function valueFor(name: string, empty: unknown[], compute: (pid: number, ...args: never[]) => unknown[]): void {
    const signal = signalFn(name)
    def(name, ((l: Buffer, _op: number, ...args: never[]) => {
      const start = process.hrtime.bigint()
      try {
        const out = compute(l.readUInt32LE(PID_AT), ...args)
        stats.record(name, start, null)
        signal(l, 0, ...out)
      } catch (err) {
        signal(l, fail(name, err, start), ...empty)
      }
    }) as Handler)
  }

  /**
   * A lookup in `dir` by `pid` reached JS, found or not: a directory listed lean is upgraded now
   * (the lookups of its other entries follow), one looked into often enough is prefetched (its
   * names then answer misses too, in the binding).
   */
  const lookedUpIn = (dir: string, found: boolean, pid: number): void => {
    if (leanListings.lookedUp(dir, pid)) {
      stats.leanUpgrades++
      const first = leanListings.firstListedBy(pid)
      if (first !== undefined) bindingListings.walker(pid, first, false) // its listings are full from now on
      prefetchDir(dir, false, MAX_UPGRADE)
      return
    }
    if (fsys.inVolume(dir)) return
    const what = prefetcher.lookedUp(dir, found, () => entryCount(dir))
    if (what !== null) setImmediate(() => prefetchDir(dir, what === 'names'))
  }
  valueFor('getattr', [EMPTY_STAT], (pid: number, p: string | null) => {
    const rel = pathArg(p)
    let found = false
    try {
      const answer = [packStat(fsys.stat(rel))]
      found = true
      return answer
    } finally {
      if (rel !== '') lookedUpIn(parentOf(rel), found, pid)
    }
  })
  value('fgetattr', [EMPTY_STAT], (p: string | null, fh: number) => [packStat(fh ? fsys.fstat(fh) : fsys.stat(pathArg(p)))])
  value('statfs', [EMPTY_STATFS], () => [packStatfs(fsys.statfs())])
  value('readlink', [''], (p: string | null) => [fsys.readlink(pathArg(p))])
  value('opendir', [0], (p: string | null) => [fsys.opendir(pathArg(p))])
  /**
   * A listed entry's stat for the listing, packed at `at` of the listing's array: its full
   * attributes where the kernel may cache them (the binding then answers the lookup that usually
   * follows, `ls -l`, without a trip here, and an entry without xattrs answers getxattr in the
   * binding too), else just its type and inode number. A file open for writing is listed with its
   * attributes but not for keeping (cache time 0): its writes go to the binding and change them
   * without a request here. Returns whether it was such a file.
   */
  const packListed = (dir: string, listed: Listed, i: number, out: Uint32Array, at: number, pre: ListedStats | null): boolean => {
    try {
      const rel = joinRel(dir, listed.names[i]!)
      const { ts, xattrFree, fileLayer } = fsys.listedAttrs(rel, isLowerTag(listed.tags[i]!), pre, i)
      if (!ts.stable) {
        packLean(listed.types[i]!, listed.tags[i]!, listed.inos[i]!, out, at)
        return false
      }
      packStat(ts, out, at)
      if (fsys.handles.hasWriter(rel)) {
        out[at + 22] = 0
        return true
      }
      if (xattrFree) out[at + 23] = STAT_NO_XATTRS
      if (fileLayer !== undefined) out[at + 23] = (out[at + 23] ?? 0) | (layerCode(fileLayer) << STAT_LAYER_SHIFT)
      return false
    } catch {
      packLean(listed.types[i]!, listed.tags[i]!, listed.inos[i]!, out, at)
      return false
    }
  }
  /**
   * Packs every listed entry from slot `first` on; returns whether one is open for writing. A lean
   * listing (lean-listings.ts) packs only its directories' attributes.
   */
  const packEntries = (dir: string, listed: Listed, out: Uint32Array, first: number, lean = false): boolean => {
    let writer = false
    const pre = lean ? null : statListed(dir, listed)
    for (let i = 0; i < listed.names.length; i++) {
      const at = (i + first) * STAT_SLOTS
      if (lean && listed.types[i] !== DT_DIR) packLean(listed.types[i]!, listed.tags[i]!, listed.inos[i]!, out, at)
      else if (packListed(dir, listed, i, out, at, pre)) writer = true
    }
    return writer
  }
  /** Every entry's stat at once (Router.statListed); on failure each is statted on its own. */
  const statListed = (dir: string, listed: Listed): ListedStats | null => {
    try {
      return fsys.statListed(dir, listed)
    } catch {
      return null
    }
  }
  /** Entries of `dir`, for the prefetch decision; never fails the lookup that asks. */
  const entryCount = (dir: string): number => {
    try {
      return fsys.list(dir).names.length
    } catch {
      return Infinity // gone or unreadable meanwhile: not prefetched
    }
  }
  /**
   * Puts the attributes of every entry of `dir` in the binding's listing table, as a listing
   * would, and its names in the binding (dir-prefetch.ts); `namesOnly`: just the names, nothing
   * statted. On the JS thread, so the table's epoch rules hold as for a listing.
   */
  const prefetchDir = (dir: string, namesOnly: boolean, maxEntries = namesOnly ? MAX_NAMES : MAX_ENTRIES): void =>
    whileBuilding(learnFromBinding, () => prefetchDirNow(dir, namesOnly, maxEntries))
  const prefetchDirNow = (dir: string, namesOnly: boolean, maxEntries: number): void => {
    let listed: Listed
    try {
      listed = fsys.list(dir)
    } catch {
      return // gone meanwhile
    }
    if (listed.names.length > maxEntries) return
    if (namesOnly) {
      stats.dirNamePrefetches++
      binding.fuse_native_strata_prefetch(`/${dir}`, listed.names, NO_STATS)
      return
    }
    const packed = new Uint32Array(listed.names.length * STAT_SLOTS)
    packEntries(dir, listed, packed, 0)
    stats.dirPrefetches++
    stats.dirPrefetchEntries += binding.fuse_native_strata_prefetch(`/${dir}`, listed.names, packed)
  }
  /**
   * A listing: names with . and .., their stats packed in one array, and the directory's path;
   * kept (listing-cache.ts) unless an entry is open for writing or it is a data volume's.
   * `ahead`: built before anyone asked (list-ahead.ts).
   */
  const buildListing = (rel: string, lean: boolean, inVolume: boolean, ahead: boolean): ListingAnswer => {
    const generation = listings.current
    const epoch = ahead ? bindingListings.epoch() : 0
    const listed = fsys.list(rel)
    const packed = new Uint32Array((listed.names.length + 2) * STAT_SLOTS)
    packTypeOnly(DT_DIR, packed, 0)
    packTypeOnly(DT_DIR, packed, STAT_SLOTS)
    const writer = packEntries(rel, listed, packed, 2, lean)
    // the names as one NUL-separated string (no name holds a NUL): one copy for the binding
    const answer = [listed.names.length ? `.\0..\0${listed.names.join('\0')}` : '.\0..', packed, `/${rel}`]
    if (!writer && !inVolume) {
      listings.set(rel, generation, answer, lean, ahead)
      // the binding answers the walker's readdir of it without a trip here, if nothing changes first
      if (ahead && generation === listings.current) bindingListings.put(rel, answer[0] as string, packed, lean, epoch, ATTR_CACHE_MS)
    }
    return answer
  }
  /** Listings of the directories a walk reads ahead, built while the JS thread is idle. */
  const listAhead = new ListAhead((rel, lean) => whileBuilding(learnFromBinding, () => {
    if (fsys.inVolume(rel) || listings.get(rel, lean)) return false
    if ((fsys.union.lower.dir(rel)?.entries.size ?? Infinity) > MAX_AHEAD_ENTRIES) return false
    try {
      buildListing(rel, lean, false, true)
      return true
    } catch {
      return false // gone meanwhile: its readdir (if any) says so
    }
  }))
  fsys.union.readAhead.onReady((rel, statAll) => listAhead.push(rel, !statAll))
  stats.addSection('listAhead', () => ({ built: listAhead.built, served: listAhead.served, dropped: listAhead.dropped, binding: bindingListings.counters }))

  /** The binding answered a readdir of `rel` by `pid` with a listing built ahead: what the readdir below does besides answering. */
  const servedByBinding = (rel: string, pid: number, lean: boolean): void => {
    const kept = listings.get(rel, true)
    if (kept?.ahead) kept.ahead = false
    listAhead.served++
    leanListings.leanFor(pid, rel) // the walker's first listing stays remembered, as a readdir keeps it
    const walkFrom = leanListings.firstListedBy(pid)
    if (walkFrom !== undefined && walkFrom !== rel) fsys.union.readAhead.walked(walkFrom, rel, !lean)
    if (lean) {
      stats.leanListings++
      leanListings.listedLean(rel)
    }
  }

  /**
   * A readdir. Lean (lean-listings.ts) unless its caller looks entries up; data volumes' entries
   * are never kept by the kernel, so their listings are always lean. A process's listings after
   * its first read the next directories ahead (src/layers/read-ahead.ts).
   */
  valueFor('readdir', [[], [], null], (pid: number, p: string | null, fh: number) => {
    const rel = p === null ? fsys.dirPath(fh) : relFromFuse(p)
    const inVolume = fsys.inVolume(rel)
    const lean = inVolume || leanListings.leanFor(pid, rel)
    const walkFrom = inVolume ? undefined : leanListings.firstListedBy(pid)
    if (walkFrom !== undefined && walkFrom !== rel) {
      fsys.union.readAhead.walked(walkFrom, rel, !lean)
      bindingListings.walker(pid, walkFrom, lean) // the binding may answer its next listings (binding-listings.ts)
    }
    const kept = listings.get(rel, lean)
    const fresh = kept === undefined || kept.ahead
    if (kept?.ahead) {
      kept.ahead = false
      listAhead.served++
    } else if (kept) {
      stats.listingHits++
    }
    const answer = kept?.answer ?? buildListing(rel, lean, inVolume, false)
    if (!inVolume && (kept ? kept.lean : lean)) {
      if (fresh) stats.leanListings++
      leanListings.listedLean(rel)
    }
    return answer
  })
  status('access', (p: string | null) => { fsys.access(pathArg(p)) })
  status('releasedir', (_p: string | null, fh: number) => fsys.releasedir(fh))

  const signalOpen = signalFn('open')
  def('open', ((l: Buffer, _op: number, p: string | null, flags: number) => {
    const start = process.hrtime.bigint()
    fsys.open(pathArg(p), flags).then((h) => {
      stats.record('open', start, null)
      signalOpen(l, 0, h.id)
    }, (err) => signalOpen(l, fail('open', err, start), 0))
  }) as Handler)

  const signalCreate = signalFn('create')
  def('create', ((l: Buffer, _op: number, p: string | null, mode: number, flags: number) => {
    const start = process.hrtime.bigint()
    const caller = callerOf(l)
    fsys.create(pathArg(p), mode, flags, caller).then((h) => {
      stats.record('create', start, null)
      signalCreate(l, 0, h.id, afterOp(() => ({ ts: fsys.fstat(h.id), rel: h.rel }), true), parentAfter(p))
    }, (err) => signalCreate(l, fail('create', err, start), 0))
  }) as Handler)

  status('release', (_p: string | null, fh: number) => fsys.release(fh))
  // No flush or fsyncdir: they have nothing to do, and answering ENOSYS (not implemented) once
  // makes the kernel stop sending them; a flush is a round trip that close(2) waits for.

  /**
   * read and write of a handle the binding could not register (src/fuse/direct-io.ts): the same
   * shape, data moved by libuv's threadpool into/out of the kernel's buffer.
   */
  type Io = (fd: number, buf: Buffer, off: number, len: number, pos: number, cb: (err: NodeJS.ErrnoException | null, n: number) => void) => void
  function io(name: 'read' | 'write', move: Io): void {
    const signal = signalFn(name)
    def(name, ((l: Buffer, _op: number, _p: string | null, fh: number, buf: Buffer | undefined, len: number, lo: number, hi: number) => {
      const start = process.hrtime.bigint()
      const h = fsys.handles.get(fh)
      if (!h || !buf) {
        signal(l, h ? 0 : -9, 0, arrayBufferOf(buf))
        return
      }
      const fd = fsys.handles.begin(h)
      const caller = name === 'write' ? callerOf(l) : null
      if (caller?.dropSetId) { // a flagged write (the binding drops the bits itself for the handles it has)
        try {
          dropSetIdBits(fd, caller.pid)
        } catch (err) {
          fsys.handles.end(h)
          signal(l, fail(name, err, start), 0, buf.buffer)
          return
        }
      }
      move(fd, buf, 0, len, lo + hi * TWO32, (err, n) => {
        fsys.handles.end(h)
        signal(l, err ? fail(name, err, start) : (stats.record(name, start, null), n), 0, buf.buffer)
      })
    }) as Handler)
  }
  io('read', fs.read as unknown as Io)
  io('write', fs.write as unknown as Io)

  status('fsync', (_p: string | null, datasync: number, fh: number) => {
    const h = fsys.handle(fh)
    if (!fsys.fsyncEnabled) return
    const fd = fsys.handles.begin(h)
    return new Promise<void>((resolve, reject) => {
      const done = (err: NodeJS.ErrnoException | null): void => { fsys.handles.end(h); err ? reject(err) : resolve() }
      datasync ? fs.fdatasync(fd, done) : fs.fsync(fd, done)
    })
  })

  const afterOpOf = (_p: string | null, fh: number): Array<Uint32Array | undefined> => [afterOp(() => ({ ts: fsys.fstat(fh), rel: fsys.handle(fh).rel }), false)]
  changing('ftruncate', afterOpOf, (caller, _p: string | null, fh: number, lo: number, hi: number) => {
    const h = fsys.handle(fh)
    if (!h.writable && !h.upper) throw new FsError('EBADF', 'ftruncate of a read-only handle')
    const fd = fsys.handles.begin(h)
    return new Promise<void>((resolve, reject) => fs.ftruncate(fd, lo + hi * TWO32, (err) => {
      try {
        if (!err && caller.dropSetId) dropSetIdBits(fd, caller.pid)
      } catch (e) {
        err = e as NodeJS.ErrnoException
      }
      fsys.handles.end(h)
      err ? reject(err) : resolve()
    }))
  })
  const first = (p: string | null): Array<Uint32Array | undefined> => [afterOpAt(p)]
  const second = (_p: string | null, dest: string | null): Array<Uint32Array | undefined> => [afterOpAt(dest)]
  const firstNew = (p: string | null): Array<Uint32Array | undefined> => [afterOpAt(p, true), parentAfter(p)]
  const secondNew = (_p: string | null, dest: string | null): Array<Uint32Array | undefined> => [afterOpAt(dest, true), parentAfter(dest)]
  const gone = (p: string | null): Array<Uint32Array | undefined> => [parentAfter(p)]
  changing('truncate', first, (caller, p: string | null, lo: number, hi: number) =>
    fsys.truncate(pathArg(p), lo + hi * TWO32, caller.dropSetId ? (fd) => dropSetIdBits(fd, caller.pid) : undefined))
  changing('utimens', first, (_c, p: string | null, aLo: number, aHi: number, aNs: number, mLo: number, mHi: number, mNs: number) =>
    fsys.utimens(pathArg(p), aLo + aHi * TWO32, aNs, mLo + mHi * TWO32, mNs))
  changing('chmod', first, (_c, p: string | null, mode: number) => fsys.chmod(pathArg(p), mode))
  changing('chown', first, (_c, p: string | null, uid: number, gid: number) => fsys.chown(pathArg(p), uid, gid))
  changing('unlink', gone, (_c, p: string | null) => fsys.unlink(pathArg(p)))
  changing('rmdir', gone, (_c, p: string | null) => fsys.rmdir(pathArg(p)))
  status('rename', (p: string | null, dest: string | null) => fsys.rename(pathArg(p), pathArg(dest)))
  changing('link', second, (_c, p: string | null, dest: string | null) => fsys.link(pathArg(p), pathArg(dest)))
  changing('mkdir', firstNew, (caller, p: string | null, mode: number) => fsys.mkdir(pathArg(p), mode, caller))
  changing('mknod', firstNew, (caller, p: string | null, mode: number, dev: number) => fsys.mknod(pathArg(p), mode, dev, caller))
  changing('symlink', secondNew, (caller, target: string | null, p: string | null) => fsys.symlink(target ?? '', pathArg(p), caller))

  const signalSetxattr = signalFn('setxattr')
  def('setxattr', ((l: Buffer, _op: number, p: string | null, name: string, value: Buffer | undefined, _pos: number, flags: number) => {
    const start = process.hrtime.bigint()
    const ab = arrayBufferOf(value)
    let job: Promise<void>
    try {
      job = fsys.setxattr(pathArg(p), name, Buffer.from(value ?? Buffer.alloc(0)), flags)
    } catch (err) {
      signalSetxattr(l, fail('setxattr', err, start), ab)
      return
    }
    job.then(() => { stats.record('setxattr', start, null); signalSetxattr(l, 0, ab) },
      (err) => signalSetxattr(l, fail('setxattr', err, start), ab))
  }) as Handler)

  const absenceHolds = (p: string): boolean => {
    try {
      return fsys.stat(relFromFuse(p)).stable
    } catch {
      return false
    }
  }
  const signalGetxattr = signalFn('getxattr')
  def('getxattr', ((l: Buffer, _op: number, p: string | null, name: string, out: Buffer | undefined) => {
    const start = process.hrtime.bigint()
    const ab = arrayBufferOf(out)
    try {
      const value = fsys.getxattr(pathArg(p), name)
      const room = out?.length ?? 0
      let res = value.length
      if (room > 0) {
        if (value.length > room) res = -34 // ERANGE
        else value.copy(out!)
      }
      stats.record('getxattr', start, null)
      signalGetxattr(l, res, ab)
    } catch (err) {
      // The binding remembers an absence that holds until the name is set through this inode
      // (patches/README.md): not for volume entries or hard-linked upper files (`stable`).
      if ((err as FsError).code === 'ENODATA' && p !== null && absenceHolds(p)) l.writeUInt32LE(1, XATTR_STABLE_AT)
      signalGetxattr(l, fail('getxattr', err, start), ab)
    }
  }) as Handler)

  const signalListxattr = signalFn('listxattr')
  def('listxattr', ((l: Buffer, _op: number, p: string | null, out: Buffer | undefined) => {
    const start = process.hrtime.bigint()
    const ab = arrayBufferOf(out)
    try {
      const names = fsys.listxattr(pathArg(p))
      let total = 0
      for (const n of names) total += n.length + 1
      const room = out?.length ?? 0
      let res = total
      if (room > 0) {
        if (total > room) res = -34 // ERANGE
        else {
          let at = 0
          for (const n of names) {
            at += out!.write(n, at, 'latin1')
            out![at++] = 0
          }
        }
      }
      stats.record('listxattr', start, null)
      signalListxattr(l, res, ab)
    } catch (err) {
      signalListxattr(l, fail('listxattr', err, start), ab)
    }
  }) as Handler)

  status('removexattr', (p: string | null, name: string) => fsys.removexattr(pathArg(p), name))

  return { handlers, implemented }
}

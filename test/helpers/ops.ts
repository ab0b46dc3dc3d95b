/**
 * The operations a union test applies through a mount, written once as data (`{op, args}`) and
 * executed the same way on every target, so results can be compared.
 *
 * Owns: turning an Op into syscalls under a mount root and reporting a comparable Result: `{ok}`
 * with a value, or `{err: 'ENOENT'}` (errno name). Paths in args are relative to the mount root and
 * are latin1 strings (one code unit per byte: 'caf\xe9' is the raw byte 0xe9).
 * Must not: throw for an errno (every errno is a result), or put anything in a result that differs
 * between two correct filesystems (inode numbers, times the test did not set).
 *
 * `rename` follows what mv(1) does: rename(2), and on EXDEV (kernel overlayfs without
 * redirect_dir, for a directory that exists in a lower layer) copy the tree (mode, owner, times,
 * xattrs, hard links within it) and delete the source; an existing target is handled by
 * rename(2)'s rules first (empty dir replaced, non-empty dir ENOTEMPTY, non-dir ENOTDIR).
 * The result then says `via: 'EXDEV'`, so a test can both accept the outcome and record that the
 * kernel refused the rename.
 */
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import { native, ST } from '../../src/native/index'
import { errnoName } from './errno'
import { describe, lstat, major, minor, readXattrs } from './tree'

export type Arg = string | number | null | Arg[]
export interface Op { op: OpName; args: Arg[] }
export interface Result { ok?: unknown; err?: string; via?: string }

const C = fs.constants
const FLAG: Record<string, number> = {
  O_RDONLY: C.O_RDONLY, O_WRONLY: C.O_WRONLY, O_RDWR: C.O_RDWR, O_CREAT: C.O_CREAT, O_EXCL: C.O_EXCL,
  O_TRUNC: C.O_TRUNC, O_APPEND: C.O_APPEND, O_DIRECTORY: C.O_DIRECTORY, O_NOFOLLOW: C.O_NOFOLLOW, O_NONBLOCK: C.O_NONBLOCK,
}
const KIND: Record<string, number> = { fifo: 0o010000, chr: 0o020000, blk: 0o060000, sock: 0o140000, reg: 0o100000 }

/** Raised inside an op for a negative syscall return; turned into {err} by runOp. */
class Errno extends Error { constructor(readonly code: string) { super(code) } }
function chk(r: number): number { if (r < 0) throw new Errno(errnoName(r)); return r }
const B = (s: string) => Buffer.from(s, 'latin1')

/**
 * Every open adds O_NONBLOCK: opening a FIFO then never waits for a partner (O_RDONLY succeeds,
 * O_WRONLY fails with ENXIO), which would otherwise block the whole test; for regular files and
 * directories the flag changes nothing.
 */
/**
 * Never follows a symlink in the last component: the fixtures hold absolute links (bin/link-abs ->
 * /bin/tool), and following one from the test process would read or write the host, not the mount.
 * (Following links is the kernel's job, not the filesystem's, so nothing of stratafs is lost.)
 */
function openFd(abs: string, flags: number, mode = 0o644): number {
  return chk(native.open(abs, flags | C.O_NONBLOCK | C.O_NOFOLLOW, mode))
}
function writeAll(fd: number, data: string | Buffer): number {
  const buf = typeof data === 'string' ? B(data) : data
  let off = 0
  while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off)
  return off
}
/** Reads to EOF, but at most READ_CAP bytes: a char device such as 1:7 (/dev/full) never ends. */
const READ_CAP = 64 << 20
function readAll(fd: number): Buffer {
  const parts: Buffer[] = []
  const buf = Buffer.alloc(1 << 16)
  let total = 0
  while (total < READ_CAP) {
    const n = fs.readSync(fd, buf, 0, buf.length, null)
    if (n === 0) break
    parts.push(Buffer.from(buf.subarray(0, n))); total += n
  }
  return Buffer.concat(parts)
}
/** Short contents verbatim (latin1), long ones as size + sha256. */
function contents(b: Buffer): string {
  return b.length <= 200 ? b.toString('latin1') : `${b.length} bytes sha256:${crypto.createHash('sha256').update(b).digest('hex')}`
}
function withFd<T>(abs: string, flags: number, fn: (fd: number) => T, mode = 0o644): T {
  const fd = openFd(abs, flags, mode)
  try { return fn(fd) } finally { fs.closeSync(fd) }
}
function time(v: Arg | undefined): [number, number] {
  if (v === 'now') return [0, native.UTIME_NOW]
  if (v === 'omit') return [0, native.UTIME_OMIT]
  if (Array.isArray(v)) return [Number(v[0]), Number(v[1] ?? 0)]
  return [Number(v), 0]
}
/** A stat result without what differs between correct filesystems (ino, dev, unset times). */
function statResult(abs: string, st: Float64Array): unknown {
  const e = describe(abs, 'merged', st)
  return { ...e, blocksNonZero: e.type === 'f' ? st[ST.blocks]! > 0 : undefined }
}

export function rmrf(abs: string): void {
  const st = lstat(abs)
  if (typeof st === 'number') throw new Errno(errnoName(st))
  if ((st[ST.mode]! & 0o170000) === 0o040000) {
    const list = native.readdir(abs)
    if (typeof list === 'number') throw new Errno(errnoName(list))
    let first: Errno | null = null
    for (const n of list.names) {
      if (n === '.' || n === '..') continue
      try { rmrf(`${abs}/${n}`) } catch (e) { first ??= e as Errno }
    }
    if (first) throw first
    chk(native.rmdir(abs))
  } else chk(native.unlink(abs))
}

/** Per copyTree run: st_nlink and how many names of each inode were copied (key dev:ino). */
const linkCount = new Map<string, number>()
const copiedCount = new Map<string, number>()

/** cp -a of one tree (what mv does across filesystems): mode, owner, times, xattrs, hard links. */
function copyTree(src: string, dst: string, links = new Map<string, string>()): void {
  const st = lstat(src)
  if (typeof st === 'number') throw new Errno(errnoName(st))
  const mode = st[ST.mode]!
  const fmt = mode & 0o170000
  const key = `${st[ST.dev]}:${st[ST.ino]}`
  if (fmt !== 0o040000 && st[ST.nlink]! > 1 && links.has(key)) {
    chk(native.link(links.get(key)!, dst)); copiedCount.set(key, (copiedCount.get(key) ?? 0) + 1); return
  }
  if (fmt === 0o040000) {
    chk(native.mkdir(dst, 0o700))
    const list = native.readdir(src)
    if (typeof list === 'number') throw new Errno(errnoName(list))
    for (const n of list.names) if (n !== '.' && n !== '..') copyTree(`${src}/${n}`, `${dst}/${n}`, links)
  } else if (fmt === 0o100000) {
    const data = withFd(src, C.O_RDONLY | C.O_NOFOLLOW, readAll)
    withFd(dst, C.O_WRONLY | C.O_CREAT | C.O_EXCL, fd => writeAll(fd, data), 0o600)
  } else if (fmt === 0o120000) {
    const target = native.readlink(src)
    if (typeof target === 'number') throw new Errno(errnoName(target))
    chk(native.symlink(target, dst))
  } else {
    chk(native.mknod(dst, mode, major(st[ST.rdev]!), minor(st[ST.rdev]!)))
  }
  links.set(key, dst)
  if (fmt !== 0o040000) { linkCount.set(key, st[ST.nlink]!); copiedCount.set(key, (copiedCount.get(key) ?? 0) + 1) }
  chk(native.lchown(dst, st[ST.uid]!, st[ST.gid]!))
  if (fmt !== 0o120000) chk(native.chmod(dst, mode & 0o7777))
  for (const [name, hex] of Object.entries(readXattrs(src))) {
    if (name.startsWith('!')) continue
    chk(native.lsetxattr(dst, name, Buffer.from(hex, 'hex'), 0))
  }
  chk(native.utimens(dst, st[ST.atimeSec]!, st[ST.atimeNsec]!, st[ST.mtimeSec]!, st[ST.mtimeNsec]!))
}

type Impl = (root: string, a: Arg[]) => unknown
const p = (root: string, rel: Arg | undefined) => `${root}/${String(rel)}`


/** mv(1)'s EXDEV fallback: copy the tree (keeping hard links inside it), then delete the source. */
function mvByCopy(r: string, from: string, to: string): Result {
  // rename(2)'s rules for an existing target, which a plain copy would not give (mv(1) then
  // reports the same errors): a dir replaces only an empty dir; a dir never replaces a non-dir
  const dst = lstat(p(r, to))
  if (typeof dst !== 'number') {
    if ((dst[ST.mode]! & 0o170000) !== 0o040000) throw new Errno('ENOTDIR')
    const list = native.readdir(p(r, to))
    if (typeof list !== 'number' && list.names.some(n => n !== '.' && n !== '..')) throw new Errno('ENOTEMPTY')
    chk(native.rmdir(p(r, to)))
  }
  const links = new Map<string, string>()
  copyTree(p(r, from), p(r, to), links)
  // a file in the tree with links outside it is now two files (mv breaks such links;
  // rename(2) would keep them): say so, later differences in those files follow from it
  const broken = [...links.entries()].filter(([key]) => (linkCount.get(key) ?? 0) > (copiedCount.get(key) ?? 0)).map(([, d]) => d.slice(r.length + 1))
  linkCount.clear(); copiedCount.clear()
  rmrf(p(r, from))
  return { via: broken.length ? `EXDEV; hard links to outside the tree broken: ${broken.join(', ')}` : 'EXDEV' }
}

const IMPL = {
  /** create or replace: open(O_WRONLY|O_CREAT|O_TRUNC, mode) + write */
  write: (r, [rel, data, mode]) => withFd(p(r, rel), C.O_WRONLY | C.O_CREAT | C.O_TRUNC, fd => writeAll(fd, String(data)), Number(mode ?? 0o644)),
  append: (r, [rel, data]) => withFd(p(r, rel), C.O_WRONLY | C.O_APPEND, fd => writeAll(fd, String(data))),
  /** open with named flags, optionally write, close; ok = bytes written */
  open: (r, [rel, flags, mode, data]) => withFd(p(r, rel), (flags as string[]).reduce((f, n) => f | FLAG[n]!, 0),
    fd => (data === null || data === undefined ? 0 : writeAll(fd, String(data))), Number(mode ?? 0o644)),
  /** pwrite at an offset (no O_TRUNC): overwrite in the middle, or extend leaving a hole */
  pwrite: (r, [rel, off, data]) => withFd(p(r, rel), C.O_WRONLY, fd => fs.writeSync(fd, B(String(data)), 0, String(data).length, Number(off))),
  read: (r, [rel]) => contents(withFd(p(r, rel), C.O_RDONLY, readAll)),
  /** a file opened read-only before a write elsewhere copies it up must then read the new data */
  readStale: (r, [rel, data]) => withFd(p(r, rel), C.O_RDONLY, ro => {
    const before = fs.readSync(ro, Buffer.alloc(1), 0, 1, 0)
    withFd(p(r, rel), C.O_WRONLY | C.O_APPEND, w => writeAll(w, String(data)))
    const all = Buffer.alloc(1 << 16)
    const n = fs.readSync(ro, all, 0, all.length, 0)
    return { readBefore: before, after: contents(all.subarray(0, n)) }
  }),
  /** as Node does it (open O_RDWR + ftruncate), not truncate(2): the shim has no truncate */
  truncate: (r, [rel, len]) => withFd(p(r, rel), C.O_RDWR, fd => { fs.ftruncateSync(fd, Number(len)); return true }),
  ftruncate: (r, [rel, len]) => withFd(p(r, rel), C.O_WRONLY, fd => { fs.ftruncateSync(fd, Number(len)); return true }),
  chmod: (r, [rel, mode]) => chk(native.chmod(p(r, rel), Number(mode))),
  chown: (r, [rel, uid, gid]) => chk(native.lchown(p(r, rel), Number(uid), Number(gid))),
  /** utimensat(AT_SYMLINK_NOFOLLOW); each time is [sec, nsec], 'now' or 'omit' */
  utimes: (r, [rel, at, mt]) => { const [as, an] = time(at); const [ms, mn] = time(mt); return chk(native.utimens(p(r, rel), as, an, ms, mn)) },
  mkdir: (r, [rel, mode]) => chk(native.mkdir(p(r, rel), Number(mode ?? 0o755))),
  rmdir: (r, [rel]) => chk(native.rmdir(p(r, rel))),
  unlink: (r, [rel]) => chk(native.unlink(p(r, rel))),
  rename: (r, [from, to]) => {
    const res = native.rename(p(r, from), p(r, to), 0)
    if (res === -18 /* EXDEV */) return mvByCopy(r, String(from), String(to))
    return chk(res)
  },
  /** the copy + delete that mv(1) falls back to, done without trying rename(2) first */
  renameByCopy: (r, [from, to]) => mvByCopy(r, String(from), String(to)),
  /** what mv -n does where renameat2(RENAME_NOREPLACE) is refused: check, then rename(2) */
  renameIfAbsent: (r, [from, to]) => {
    if (typeof lstat(p(r, to)) !== 'number') throw new Errno('EEXIST')
    return chk(native.rename(p(r, from), p(r, to), 0))
  },
  renameNoReplace: (r, [from, to]) => chk(native.rename(p(r, from), p(r, to), native.RENAME_NOREPLACE)),
  symlink: (r, [target, rel]) => chk(native.symlink(String(target), p(r, rel))),
  readlink: (r, [rel]) => { const v = native.readlink(p(r, rel)); if (typeof v === 'number') chk(v); return v },
  link: (r, [from, to]) => chk(native.link(p(r, from), p(r, to))),
  /** kind: fifo | chr | blk | sock | reg */
  mknod: (r, [rel, kind, mode, maj, min]) => chk(native.mknod(p(r, rel), KIND[String(kind)]! | Number(mode), Number(maj ?? 0), Number(min ?? 0))),
  /** flags: 0, 'create' (XATTR_CREATE) or 'replace' (XATTR_REPLACE) */
  setxattr: (r, [rel, name, value, flags]) => chk(native.lsetxattr(p(r, rel), String(name), B(String(value)),
    flags === 'create' ? native.XATTR_CREATE : flags === 'replace' ? native.XATTR_REPLACE : 0)),
  getxattr: (r, [rel, name]) => { const v = native.lgetxattr(p(r, rel), String(name)); if (typeof v === 'number') chk(v); return (v as Buffer).toString('latin1') },
  listxattr: (r, [rel]) => { const v = native.llistxattr(p(r, rel)); if (typeof v === 'number') chk(v); return [...(v as string[])].sort() },
  removexattr: (r, [rel, name]) => chk(native.lremovexattr(p(r, rel), String(name))),
  rmrf: (r, [rel]) => { rmrf(p(r, rel)); return true },
  /** each name with its d_type (a character device is DT_CHR 2, a whiteout never listed) */
  readdir: (r, [rel]) => {
    const v = native.readdir(p(r, rel ?? '.'))
    if (typeof v === 'number') chk(v)
    const { names, types } = v as { names: string[], types: Uint8Array }
    return names.map((n, i) => `${n} ${types[i]}`).sort()
  },
  lstat: (r, [rel]) => { const st = lstat(p(r, rel)); if (typeof st === 'number') chk(st); return statResult(p(r, rel), st as Float64Array) },
  /** stat following symlinks: type, mode, owner, size only */
  stat: (r, [rel]) => { const s = fs.statSync(B(p(r, rel))); return { mode: s.mode.toString(8), uid: s.uid, gid: s.gid, size: s.isFile() ? s.size : undefined } },
  /** access(2): mode is a string of r, w, x, or 'f' */
  access: (r, [rel, mode]) => {
    const m = String(mode)
    const bits = m === 'f' ? C.F_OK : (m.includes('r') ? C.R_OK : 0) | (m.includes('w') ? C.W_OK : 0) | (m.includes('x') ? C.X_OK : 0)
    fs.accessSync(B(p(r, rel)), bits); return true
  },
} satisfies Record<string, Impl>

export type OpName = keyof typeof IMPL
export const OP_NAMES = Object.keys(IMPL) as OpName[]

export function runOp(root: string, op: Op): Result {
  try {
    const v = (IMPL[op.op] as Impl)(root, op.args)
    if (v && typeof v === 'object' && 'via' in v) return { ok: 0, via: String((v as { via: string }).via) }
    return { ok: v === undefined ? null : v }
  } catch (e) {
    if (e instanceof Errno) return { err: e.code }
    const code = (e as NodeJS.ErrnoException).code
    if (code) return { err: code }
    throw e
  }
}

/** An op for messages: `rename("a/b", "c")`, bytes outside printable ASCII as \xNN. */
export function showOp(op: Op): string {
  const s = JSON.stringify(op.args).slice(1, -1).replace(/[\u0080-\u00ff]/g, c => `\\x${c.charCodeAt(0).toString(16)}`)
  return `${op.op}(${s})`
}

/**
 * Applies tar members to a fresh layer tree (`diff/` inside an op dir), converting OCI whiteouts to
 * the kernel overlayfs format (Documentation/filesystems/overlayfs.rst, "Whiteouts and opaque
 * directories"; OCI image-spec layer.md, "Whiteouts"):
 *   <dir>/.wh.<name>     → character device 0/0 named <name> (kept as `.wh.<name>` if mknod is refused)
 *   <dir>/.wh..wh..opq   → xattr trusted.overlay.opaque=y on <dir> (kept as the file if refused)
 *
 * The tree is untrusted content built from untrusted input (STYLE.md lesson 5), so:
 * - names are normalized component by component: `..` and absolute names are refused (a member
 *   named `/`, `.` or `./` is the root itself, umoci writes one);
 * - nothing is ever resolved through a symlink: every parent is checked with lstat and created by
 *   us; final components are created with O_EXCL|O_NOFOLLOW or the l* syscalls;
 * - a member may appear once: duplicates and conflicts (a name and its whiteout, a child of a
 *   non-directory or of a whiteout) are refused;
 * - hard links must point to an earlier non-directory member of the same layer;
 * - device nodes need root; a literal char device 0/0 is refused (it would act as a whiteout);
 * - xattrs in trusted.overlay.* are refused (they would forge opaque dirs or redirects).
 * Directory metadata is applied last, deepest first, so read-only dirs and mtimes come out right.
 */
import * as fs from 'node:fs'
import { native, newStatBuf, ST } from '../../native'
import { check, FsError } from '../../sys/errors'
import { OVERLAY_XATTR_PREFIX, OPAQUE_XATTR, WH_OPAQUE, WH_PREFIX } from '../whiteout'
import type { TarEntry, TarReader } from './tar-reader'

const S_IFCHR = 0o020000
const S_IFBLK = 0o060000
const S_IFIFO = 0o010000
const S_IFMT = 0o170000
const S_IFDIR = 0o040000
const S_IFLNK = 0o120000

type Kind = 'dir' | 'implicit-dir' | 'file' | 'symlink' | 'special' | 'whiteout' | 'whiteout-file' | 'opaque-file'

const bad = (name: string, why: string): FsError => new FsError('EINVAL', `archive member "${Buffer.from(name, 'latin1').toString('utf8')}": ${why}`)

/** Member name → rel (components joined by '/', '' for the root). */
export function normalizeName(name: string): string {
  if (name === '') throw bad(name, 'empty name')
  if (name.startsWith('/') && name.replace(/^\/+/, '').replace(/^(\.\/?)*$/, '') !== '') throw bad(name, 'absolute name')
  const parts: string[] = []
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue
    if (c === '..') throw bad(name, '".." component escapes the layer')
    parts.push(c)
  }
  return parts.join('/')
}

const parentOf = (rel: string): string => (rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '')
const baseOf = (rel: string): string => rel.slice(rel.lastIndexOf('/') + 1)

export interface UnpackStats {
  entries: number
  whiteouts: number
  opaques: number
  /** whiteouts/opaques kept in the `.wh.` form because the kernel form was refused */
  aufsFallbacks: number
}

export class Unpacker {
  private readonly seen = new Map<string, Kind>()
  private readonly dirMeta: [string, TarEntry][] = []
  private readonly isRoot = process.getuid?.() === 0
  private readonly st = newStatBuf()
  readonly stats: UnpackStats = { entries: 0, whiteouts: 0, opaques: 0, aufsFallbacks: 0 }

  /** @param root latin1 absolute path of the (existing, empty) layer tree */
  constructor(private readonly root: string) {
    this.seen.set('', 'implicit-dir')
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`
  }

  /** Makes sure every parent of rel is a real directory of this layer, creating missing ones. */
  private ensureParents(name: string, rel: string): void {
    const parts = rel.split('/')
    let cur = ''
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur === '' ? parts[i]! : `${cur}/${parts[i]}`
      const kind = this.seen.get(cur)
      if (kind === 'dir' || kind === 'implicit-dir') continue
      if (kind === 'symlink') throw bad(name, `parent "${cur}" is a symlink (entries may not be written through symlinks)`)
      if (kind === 'whiteout') throw bad(name, `parent "${cur}" is whited out in the same layer`)
      if (kind !== undefined) throw bad(name, `parent "${cur}" is not a directory`)
      // not seen: it must not exist on disk either (we create everything in this tree)
      const r = native.lstat(this.abs(cur), this.st)
      if (r === 0) throw bad(name, `parent "${cur}" exists but was not created by this archive`)
      check(native.mkdir(this.abs(cur), 0o755), 'mkdir', this.abs(cur))
      this.seen.set(cur, 'implicit-dir')
    }
  }

  private claim(name: string, rel: string, kind: Kind): void {
    const prev = this.seen.get(rel)
    if (prev === undefined) {
      this.seen.set(rel, kind)
      return
    }
    if (prev === 'implicit-dir' && kind === 'dir') {
      this.seen.set(rel, 'dir')
      return
    }
    if (prev === 'implicit-dir') throw bad(name, 'conflicts with a directory created earlier in the archive')
    throw bad(name, prev === 'whiteout' || kind === 'whiteout' ? 'conflicts with a whiteout of the same name' : 'duplicate entry')
  }

  private applyMeta(rel: string, e: TarEntry, isLink: boolean): void {
    const abs = this.abs(rel)
    if (this.isRoot) check(native.lchown(abs, e.uid, e.gid), 'lchown', abs)
    if (!isLink) check(native.chmod(abs, e.mode & 0o7777), 'chmod', abs)
    for (const [k, v] of e.xattrs) {
      if (k.startsWith(OVERLAY_XATTR_PREFIX)) throw bad(e.name, `xattr ${k} is reserved for overlayfs`)
      const r = native.lsetxattr(abs, k, v, 0)
      if (r < 0) throw FsError.fromErrno(r, `lsetxattr ${k}`, abs)
    }
    const aSec = e.atimeSec ?? e.mtimeSec
    const aNsec = e.atimeSec === undefined ? e.mtimeNsec : e.atimeNsec ?? 0
    check(native.utimens(abs, aSec, aNsec, e.mtimeSec, e.mtimeNsec), 'utimens', abs)
  }

  /** Applies one member; reads its payload from `tr` when it is a regular file. */
  async apply(e: TarEntry, tr: TarReader): Promise<void> {
    this.stats.entries++
    const rel = normalizeName(e.name)
    const base = baseOf(rel)
    if (rel !== '') this.ensureParents(e.name, rel)

    if (base === WH_OPAQUE) {
      const dir = parentOf(rel)
      this.claim(e.name, rel, 'opaque-file')
      this.stats.opaques++
      const r = native.lsetxattr(this.abs(dir), OPAQUE_XATTR, Buffer.from('y'), 0)
      if (r < 0) {
        if (r !== -1 /* EPERM */ && r !== -95 /* EOPNOTSUPP */) throw FsError.fromErrno(r, 'lsetxattr', this.abs(dir))
        this.stats.aufsFallbacks++
        this.createEmptyFile(rel)
      }
      return
    }
    if (base.startsWith(WH_PREFIX)) {
      const target = base.slice(WH_PREFIX.length)
      if (target === '' || target === '.' || target === '..') throw bad(e.name, 'invalid whiteout name')
      const targetRel = rel === base ? target : `${parentOf(rel)}/${target}`
      this.claim(e.name, targetRel, 'whiteout')
      this.claim(e.name, rel, 'whiteout-file')
      this.stats.whiteouts++
      const r = native.mknod(this.abs(targetRel), S_IFCHR | 0o000, 0, 0)
      if (r < 0) {
        if (r !== -1 /* EPERM */) throw FsError.fromErrno(r, 'mknod', this.abs(targetRel))
        this.stats.aufsFallbacks++
        this.createEmptyFile(rel)
      }
      return
    }

    const abs = this.abs(rel)
    switch (e.type) {
      case '5': {
        this.claim(e.name, rel, 'dir')
        if (native.lstat(abs, this.st) < 0) check(native.mkdir(abs, 0o700), 'mkdir', abs)
        this.dirMeta.push([rel, e])
        return
      }
      case '0': {
        if (rel === '') throw bad(e.name, 'the root must be a directory')
        this.claim(e.name, rel, 'file')
        const fd = fs.openSync(Buffer.from(abs, 'latin1'), fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600)
        try {
          await tr.readData((chunk) => {
            let off = 0
            while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off)
          }, rel)
          fs.fsyncSync(fd)
        } finally {
          fs.closeSync(fd)
        }
        this.applyMeta(rel, e, false)
        return
      }
      case '1': {
        if (rel === '') throw bad(e.name, 'the root must be a directory')
        const target = normalizeName(e.linkname)
        const kind = this.seen.get(target)
        if (kind === undefined || kind === 'whiteout' || kind === 'whiteout-file' || kind === 'opaque-file') {
          throw bad(e.name, `hard link to "${Buffer.from(e.linkname, 'latin1').toString('utf8')}", which is not an earlier member of this layer`)
        }
        if (kind === 'dir' || kind === 'implicit-dir') throw bad(e.name, 'hard link to a directory')
        this.claim(e.name, rel, kind)
        check(native.link(this.abs(target), abs), 'link', abs)
        return
      }
      case '2': {
        if (rel === '') throw bad(e.name, 'the root must be a directory')
        this.claim(e.name, rel, 'symlink')
        check(native.symlink(e.linkname, abs), 'symlink', abs)
        this.applyMeta(rel, e, true)
        return
      }
      case '3':
      case '4':
      case '6': {
        if (rel === '') throw bad(e.name, 'the root must be a directory')
        if (e.type !== '6' && !this.isRoot) throw bad(e.name, 'device nodes can only be imported by root')
        if (e.type === '3' && e.devmajor === 0 && e.devminor === 0) throw bad(e.name, 'character device 0/0 would act as an overlayfs whiteout; use the .wh. form')
        this.claim(e.name, rel, 'special')
        const fmt = e.type === '3' ? S_IFCHR : e.type === '4' ? S_IFBLK : S_IFIFO
        check(native.mknod(abs, fmt | (e.mode & 0o7777), e.devmajor, e.devminor), 'mknod', abs)
        this.applyMeta(rel, e, false)
        return
      }
      default:
        throw bad(e.name, `unsupported member type "${e.type.replace(/[^\x20-\x7e]/g, '?')}"`)
    }
  }

  private createEmptyFile(rel: string): void {
    const abs = this.abs(rel)
    const fd = check(native.open(abs, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o000), 'open', abs)
    fs.closeSync(fd)
  }

  /** Applies directory metadata, deepest first. Call once after the last member. */
  finish(): void {
    this.dirMeta.sort((a, b) => b[0].split('/').length - a[0].split('/').length)
    for (const [rel, e] of this.dirMeta) this.applyMeta(rel, e, false)
  }
}

/** Kind of a host inode from its st_mode. */
export function modeKind(mode: number): 'dir' | 'file' | 'symlink' | 'chr' | 'blk' | 'fifo' | 'sock' {
  switch (mode & S_IFMT) {
    case S_IFDIR: return 'dir'
    case S_IFLNK: return 'symlink'
    case S_IFCHR: return 'chr'
    case S_IFBLK: return 'blk'
    case S_IFIFO: return 'fifo'
    case 0o140000: return 'sock'
    default: return 'file'
  }
}

export { ST }

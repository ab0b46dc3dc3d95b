/**
 * VolumeFs: a data volume inside the merged view. Everything at or below the volume's mountpoint
 * goes straight to the volume's host directory: no copy-up, no whiteouts, nothing in the upper, so
 * the data outlives the container and several containers can share it. A read-only volume answers
 * EROFS to every change. Paths are resolved one component at a time and never through a symlink
 * (the volume is the container's data, not trusted to point anywhere).
 *
 * `sub` is a path relative to the volume root ('' is the root, which behaves like a mountpoint:
 * it cannot be removed or renamed, EBUSY).
 */
import * as fs from 'node:fs'
import { ST } from '../native'
import { fsError } from '../sys/errors'
import * as host from '../sys/hostfs'
import { absIn, parentOf } from '../sys/rel'
import { createFile, createMode } from './create-mode'
import type { Caller, Listed, TaggedStat } from './union-fs'
import type { Handle, HandleTable } from './handles'

const { O_CREAT, O_EXCL, O_TRUNC, O_NOFOLLOW, O_NOCTTY, O_DIRECT, O_WRONLY, O_RDWR } = fs.constants
const O_ACCMODE = 3

export interface VolumeSpec {
  /** host directory (latin1) */
  source: string
  /** mountpoint inside the merged view, as a rel path */
  rel: string
  readOnly: boolean
}

export class VolumeFs {
  constructor(readonly spec: VolumeSpec, readonly index: number, private readonly handles: HandleTable, readonly tag: number) {}

  /** Host path of `sub`, after checking every directory on the way is a real directory. */
  private abs(sub: string): string {
    if (sub !== '') {
      let dir = ''
      for (const part of parentOf(sub).split('/')) {
        if (part === '') continue
        dir = dir === '' ? part : `${dir}/${part}`
        const st = host.lstatOrNull(absIn(this.spec.source, dir))
        if (!st) throw fsError('ENOENT', 'lookup', sub)
        if (!host.isDirMode(st[ST.mode]!)) throw fsError('ENOTDIR', 'lookup', sub)
      }
    }
    return absIn(this.spec.source, sub)
  }

  private writable(sub: string): void {
    if (this.spec.readOnly) throw fsError('EROFS', 'write', sub)
  }

  private notRoot(sub: string, op: string): void {
    if (sub === '') throw fsError('EBUSY', op, this.spec.rel)
  }

  private owner(sub: string, caller: Caller): { uid: number, gid: number } {
    const pst = host.lstat(this.abs(parentOf(sub)))
    return { uid: caller.uid, gid: (pst[ST.mode]! & host.S_ISGID) ? pst[ST.gid]! : caller.gid }
  }

  /** The mode `abs` is made with: the caller's umask applies unless its directory has a default ACL. */
  private createMode(abs: string, mode: number, caller: Caller): number {
    return createMode(parentOf(abs), mode, caller.umask ?? 0).mode
  }

  stat(sub: string): TaggedStat {
    const st = host.lstat(this.abs(sub))
    return { st, tag: this.tag, mergedDir: false, stable: false }
  }

  list(sub: string): Listed {
    const dir = this.abs(sub)
    const l = host.readdir(dir)
    const types: number[] = []
    for (let i = 0; i < l.names.length; i++) {
      let t = l.types[i]!
      if (t === 0) t = host.fileType(host.lstat(`${dir}/${l.names[i]}`)[ST.mode]!) >>> 12
      types.push(t)
    }
    return { names: l.names, types, inos: Array.from(l.inos), tags: l.names.map(() => this.tag) }
  }

  isDir(sub: string): boolean {
    return host.isDirMode(host.lstat(this.abs(sub))[ST.mode]!)
  }

  readlink(sub: string): string {
    return host.readlink(this.abs(sub))
  }

  getxattr(sub: string, name: string): Buffer {
    const v = host.getxattr(this.abs(sub), name)
    if (v === null) throw fsError('ENODATA', 'getxattr', sub)
    return v
  }

  listxattr(sub: string): string[] {
    return host.listxattr(this.abs(sub))
  }

  async open(rel: string, sub: string, flags: number): Promise<Handle> {
    const acc = flags & O_ACCMODE
    const writes = acc === O_WRONLY || acc === O_RDWR || (flags & O_TRUNC) !== 0
    if (writes) this.writable(sub)
    const fd = host.open(this.abs(sub), (flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT)) | O_NOFOLLOW)
    return this.handles.add(fd, rel, writes, true, -1, this.index)
  }

  async create(rel: string, sub: string, mode: number, flags: number, caller: Caller): Promise<Handle> {
    this.writable(sub)
    const own = this.owner(sub, caller)
    const abs = this.abs(sub)
    const fd = createFile(abs, flags, this.createMode(abs, mode, caller), own.uid, own.gid)
    return this.handles.add(fd, rel, (flags & O_ACCMODE) !== 0, true, -1, this.index)
  }

  async mkdir(sub: string, mode: number, caller: Caller): Promise<void> {
    this.writable(sub)
    const own = this.owner(sub, caller)
    const abs = this.abs(sub)
    host.mkdir(abs, this.createMode(abs, mode, caller) & 0o7777)
    host.lchown(abs, own.uid, own.gid)
  }

  async mknod(sub: string, mode: number, rdev: number, caller: Caller): Promise<void> {
    this.writable(sub)
    const own = this.owner(sub, caller)
    const abs = this.abs(sub)
    const made = this.createMode(abs, mode, caller)
    host.mknod(abs, host.fileType(made) === 0 ? made | host.S_IFREG : made, rdev)
    host.lchown(abs, own.uid, own.gid)
  }

  async symlink(target: string, sub: string, caller: Caller): Promise<void> {
    this.writable(sub)
    const own = this.owner(sub, caller)
    const abs = this.abs(sub)
    host.symlink(target, abs)
    host.lchown(abs, own.uid, own.gid)
  }

  async link(from: string, to: string): Promise<void> {
    this.writable(to)
    host.link(this.abs(from), this.abs(to))
  }

  async unlink(sub: string): Promise<void> {
    this.unlinkNow(sub)
  }

  /** unlink, done before returning (for a release, which does not wait). */
  unlinkNow(sub: string): void {
    this.writable(sub)
    this.notRoot(sub, 'unlink')
    host.unlink(this.abs(sub))
  }

  async rmdir(sub: string): Promise<void> {
    this.writable(sub)
    this.notRoot(sub, 'rmdir')
    host.rmdir(this.abs(sub))
  }

  async rename(from: string, to: string): Promise<void> {
    this.writable(from)
    this.notRoot(from, 'rename')
    this.notRoot(to, 'rename')
    host.rename(this.abs(from), this.abs(to))
  }

  async chmod(sub: string, mode: number): Promise<void> {
    this.writable(sub)
    host.chmod(this.abs(sub), mode)
  }

  async chown(sub: string, uid: number, gid: number): Promise<void> {
    this.writable(sub)
    host.lchown(this.abs(sub), uid, gid)
  }

  async utimens(sub: string, aSec: number, aNsec: number, mSec: number, mNsec: number): Promise<void> {
    this.writable(sub)
    host.utimens(this.abs(sub), aSec, aNsec, mSec, mNsec)
  }

  async truncate(sub: string, size: number): Promise<void> {
    this.writable(sub)
    const fd = host.open(this.abs(sub), O_WRONLY | O_NOFOLLOW)
    try {
      fs.ftruncateSync(fd, size)
    } finally {
      fs.closeSync(fd)
    }
  }

  async setxattr(sub: string, name: string, value: Buffer, flags: number): Promise<void> {
    this.writable(sub)
    host.setxattr(this.abs(sub), name, value, flags)
  }

  async removexattr(sub: string, name: string): Promise<void> {
    this.writable(sub)
    host.removexattr(this.abs(sub), name)
  }
}

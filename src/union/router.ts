/**
 * Router: the merged view the FUSE adapters talk to. Paths at or below a data volume's mountpoint
 * go to that VolumeFs, everything else to the UnionFs. A rename or link across the boundary is
 * EXDEV, as across real mounts. Directory handles live here, since listings may come from either.
 */
import { fsError } from '../sys/errors'
import * as host from '../sys/hostfs'
import { isWithin, joinRel } from '../sys/rel'
import type { Handle } from './handles'
import { isLibfuseHidden, RemovedHiddenNames } from './hidden-names'
import type { Caller, Listed, ListedAttrs, ListedStats, TaggedStat, UnionFs } from './union-fs'
import { VolumeFs, type VolumeSpec } from './volume-fs'

/** ino tags of volumes: far above any lower layer's. */
export const VOLUME_TAG = 0xf000

type Target = { vol: VolumeFs, sub: string } | null

export class Router {
  readonly volumes: VolumeFs[]
  private readonly dirHandles = new Map<number, string>()
  private nextDir = 1
  private readonly removedHidden = new RemovedHiddenNames()

  constructor(readonly union: UnionFs, specs: VolumeSpec[] = []) {
    // Longest mountpoint first, so nested volumes win over the volume they sit in.
    this.volumes = [...specs].sort((a, b) => b.rel.length - a.rel.length)
      .map((spec, i) => new VolumeFs(spec, i, union.handles, VOLUME_TAG + i))
  }

  get handles() { return this.union.handles }
  get stats() { return this.union.stats }
  get fsyncEnabled(): boolean { return this.union.fsyncEnabled }

  /**
   * Makes every volume mountpoint exist in the merged view (created in the upper as root:root 0755
   * when the image lacks it) and returns how many were created. A non-directory there is an error.
   */
  async prepare(): Promise<number> {
    let created = 0
    for (const v of [...this.volumes].sort((a, b) => a.spec.rel.length - b.spec.rel.length)) {
      let rel = ''
      for (const part of v.spec.rel.split('/')) {
        rel = joinRel(rel, part)
        const node = this.union.tryResolve(rel)
        if (!node) {
          await this.union.mkdir(rel, 0o755, { uid: 0, gid: 0, pid: 0 })
          created++
        } else if (node.type !== host.S_IFDIR) {
          throw fsError('ENOTDIR', 'volume mountpoint', rel)
        }
      }
    }
    return created
  }

  private pick(rel: string): Target {
    for (const vol of this.volumes) {
      if (isWithin(rel, vol.spec.rel)) return { vol, sub: rel === vol.spec.rel ? '' : rel.slice(vol.spec.rel.length + 1) }
    }
    return null
  }

  stat(rel: string): TaggedStat {
    const t = this.pick(rel)
    return t ? t.vol.stat(t.sub) : this.union.stat(rel)
  }

  /** `rel` is in a data volume (changed from outside: nothing about it is kept). */
  inVolume(rel: string): boolean {
    return this.pick(rel) !== null
  }

  /** A listed entry's attributes and xattr-freeness (UnionFs.listedAttrs); a volume's are never kept. */
  listedAttrs(rel: string, fromLower = false, pre?: ListedStats | null, i = -1): ListedAttrs {
    const t = this.pick(rel)
    return t ? { ts: t.vol.stat(t.sub), xattrFree: false } : this.union.listedAttrs(rel, fromLower, pre, i)
  }

  /** UnionFs.statListed; nothing for a data volume's listing (its entries are statted one by one). */
  statListed(rel: string, listed: Listed): ListedStats | null {
    return this.pick(rel) ? null : this.union.statListed(rel, listed)
  }

  fstat(id: number): TaggedStat {
    const h = this.union.handle(id)
    if (h.volume === undefined) return this.union.fstat(id)
    return { st: host.fstat(h.fd), tag: VOLUME_TAG + h.volume, mergedDir: false, stable: false }
  }

  /** Existence only: default_permissions has the kernel check the mode bits itself. */
  access(rel: string): void {
    const t = this.pick(rel)
    if (t) t.vol.stat(t.sub)
    else this.union.resolve(rel)
  }

  statfs(): Float64Array {
    return this.union.statfs()
  }

  readlink(rel: string): string {
    const t = this.pick(rel)
    return t ? t.vol.readlink(t.sub) : this.union.readlink(rel)
  }

  list(rel: string): Listed {
    const t = this.pick(rel)
    return t ? t.vol.list(t.sub) : this.union.list(rel)
  }

  opendir(rel: string): number {
    const t = this.pick(rel)
    if (t ? !t.vol.isDir(t.sub) : this.union.resolve(rel).type !== host.S_IFDIR) throw fsError('ENOTDIR', 'opendir', rel)
    while (this.dirHandles.has(this.nextDir) || this.nextDir === 0) this.nextDir = (this.nextDir + 1) >>> 0
    const id = this.nextDir
    this.dirHandles.set(id, rel)
    this.nextDir = (this.nextDir + 1) >>> 0
    return id
  }

  /** `rel` has no xattrs at all, and only this mount can give it one (not in a data volume). */
  xattrFree(rel: string): boolean {
    return this.pick(rel) === null && this.union.xattrFree(rel)
  }

  dirPath(id: number): string {
    const rel = this.dirHandles.get(id)
    if (rel === undefined) throw fsError('EBADF', 'readdir')
    return rel
  }

  releasedir(id: number): void {
    this.dirHandles.delete(id)
  }

  open(rel: string, flags: number): Promise<Handle> {
    const t = this.pick(rel)
    return t ? t.vol.open(rel, t.sub, flags) : this.union.open(rel, flags)
  }

  create(rel: string, mode: number, flags: number, caller: Caller): Promise<Handle> {
    const t = this.pick(rel)
    return t ? t.vol.create(rel, t.sub, mode, flags, caller) : this.union.create(rel, mode, flags, caller)
  }

  release(id: number): void {
    const rel = this.handles.peek(id)?.rel
    this.union.release(id)
    if (rel !== undefined) this.removeHiddenIfClosed(rel)
  }

  /**
   * A hidden file (hidden-names.ts) with no handle left open is removed here, in case libfuse's
   * own unlink of it was lost to the race described there. Never fails the release or rename it
   * follows: a file that cannot be removed (gone from a volume already) stays for libfuse's
   * unlink, or in the work dir for the next mount's clean-up.
   */
  private removeHiddenIfClosed(rel: string): void {
    if (!isLibfuseHidden(rel) || this.handles.openAt(rel)) return
    try {
      const t = this.pick(rel)
      if (t) t.vol.unlinkNow(t.sub)
      else if (!this.union.dropHidden(rel)) return
      this.removedHidden.add(rel)
    } catch { /* see above */ }
  }

  handle(id: number): Handle {
    return this.union.handle(id)
  }

  /** Both ends in the same place (the union, or one volume), or EXDEV. */
  private pair(from: string, to: string, op: string): { vol: VolumeFs, a: string, b: string } | null {
    const a = this.pick(from)
    const b = this.pick(to)
    if (a === null && b === null) return null
    if (a === null || b === null || a.vol !== b.vol) throw fsError('EXDEV', op, from)
    return { vol: a.vol, a: a.sub, b: b.sub }
  }

  async rename(from: string, to: string): Promise<void> {
    const p = this.pair(from, to, 'rename')
    if (p) {
      await p.vol.rename(p.a, p.b)
      this.handles.moved(from, to)
    } else {
      await this.union.rename(from, to)
    }
    // libfuse hides a file it saw open; if its last release came meanwhile, nothing unlinks it
    this.removeHiddenIfClosed(to)
  }

  link(from: string, to: string): Promise<void> {
    const p = this.pair(from, to, 'link')
    return p ? p.vol.link(p.a, p.b) : this.union.link(from, to)
  }

  truncate(rel: string, size: number, after?: (fd: number) => void): Promise<void> {
    const t = this.pick(rel)
    // data volumes never have the kernel leave set-id bits to the daemon (src/fuse/mount.ts)
    return t ? t.vol.truncate(t.sub, size) : this.union.truncate(rel, size, after)
  }

  utimens(rel: string, aSec: number, aNsec: number, mSec: number, mNsec: number): Promise<void> {
    const t = this.pick(rel)
    return t ? t.vol.utimens(t.sub, aSec, aNsec, mSec, mNsec) : this.union.utimens(rel, aSec, aNsec, mSec, mNsec)
  }

  chmod(rel: string, mode: number): Promise<void> {
    const t = this.pick(rel)
    return t ? t.vol.chmod(t.sub, mode) : this.union.chmod(rel, mode)
  }

  chown(rel: string, uid: number, gid: number): Promise<void> {
    const t = this.pick(rel)
    return t ? t.vol.chown(t.sub, uid, gid) : this.union.chown(rel, uid, gid)
  }

  unlink(rel: string): Promise<void> {
    if (this.removedHidden.take(rel)) return Promise.resolve()
    const t = this.pick(rel)
    return t ? t.vol.unlink(t.sub) : this.union.unlink(rel)
  }

  rmdir(rel: string): Promise<void> {
    const t = this.pick(rel)
    return t ? t.vol.rmdir(t.sub) : this.union.rmdir(rel)
  }

  mkdir(rel: string, mode: number, caller: Caller): Promise<void> {
    const t = this.pick(rel)
    return t ? t.vol.mkdir(t.sub, mode, caller) : this.union.mkdir(rel, mode, caller)
  }

  mknod(rel: string, mode: number, rdev: number, caller: Caller): Promise<void> {
    const t = this.pick(rel)
    return t ? t.vol.mknod(t.sub, mode, rdev, caller) : this.union.mknod(rel, mode, rdev, caller)
  }

  symlink(target: string, rel: string, caller: Caller): Promise<void> {
    const t = this.pick(rel)
    return t ? t.vol.symlink(target, t.sub, caller) : this.union.symlink(target, rel, caller)
  }

  getxattr(rel: string, name: string): Buffer {
    const t = this.pick(rel)
    return t ? t.vol.getxattr(t.sub, name) : this.union.getxattr(rel, name)
  }

  listxattr(rel: string): string[] {
    const t = this.pick(rel)
    return t ? t.vol.listxattr(t.sub) : this.union.listxattr(rel)
  }

  setxattr(rel: string, name: string, value: Buffer, flags: number): Promise<void> {
    const t = this.pick(rel)
    return t ? t.vol.setxattr(t.sub, name, value, flags) : this.union.setxattr(rel, name, value, flags)
  }

  removexattr(rel: string, name: string): Promise<void> {
    const t = this.pick(rel)
    return t ? t.vol.removexattr(t.sub, name) : this.union.removexattr(rel, name)
  }
}


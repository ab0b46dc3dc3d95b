/**
 * Copy-up of one entry from a lower layer into the upper, and nothing else (no FUSE, no union
 * rules). The copy is built under a temporary name in the work directory, given its owner, mode,
 * xattrs and times there, and published into the upper with one rename, so a crash never leaves a
 * partial entry in the upper (kernel overlayfs does the same: overlayfs.rst, "Copy up";
 * containerd and fuse-overlayfs likewise build in a work dir). Leftovers in the work directory are
 * removed at the next mount (WorkDir.clean).
 *
 * File data moves with copy_file_range off the JS thread and keeps the holes of sparse files
 * (src/native copyData). Owner is set before mode because chown clears setuid/setgid bits, which
 * copy-up keeps as overlayfs does. overlay's own trusted.overlay.* xattrs of the source are never
 * copied (an opaque marker from a lower layer must not make the upper directory opaque); escaped
 * user ones (trusted.overlay.overlay.*) are. Publishing restores the upper parent's atime/mtime, as
 * overlayfs does (ovl_copy_up_one): a copy-up is not a change to the directory it lands in.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import { native, ST } from '../native'
import { FsError } from '../sys/errors'
import * as host from '../sys/hostfs'
import { isWhiteout, unescapeXattr } from '../layers/whiteout'

const { O_RDONLY, O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants
const { ENOENT, EMLINK, EPERM, EXDEV, EOPNOTSUPP } = os.constants.errno

/** The private scratch directory inside the workdir (`<workdir>/work`, as kernel overlayfs names it). */
export class WorkDir {
  readonly abs: string
  /**
   * The whiteout every whiteout in the upper is a hard link to, as kernel overlayfs shares one
   * (ovl_whiteout): a link costs a fraction of a new inode (~7 us against ~60 us for mknod here),
   * most of an `rm -rf` of lower files. Readers know a whiteout by its type and device alone, so
   * the on-disk format is the same. Beside `work/`, which tests and users expect empty when idle.
   */
  readonly sharedWhiteout: string
  private sharing = true
  private seq = 0

  constructor(workdir: string) {
    this.abs = `${workdir}/work`
    this.sharedWhiteout = `${workdir}/whiteout`
  }

  /**
   * Creates the scratch directory and removes what an interrupted run left in it; drops a shared
   * whiteout that is not one (links to anything else would make deleted names reappear).
   */
  prepare(): number {
    if (!host.lstatOrNull(this.abs)) host.mkdir(this.abs, 0o700)
    let removed = 0
    for (const name of host.readdir(this.abs).names) {
      host.removeTree(`${this.abs}/${name}`)
      removed++
    }
    const shared = host.lstatOrNull(this.sharedWhiteout)
    if (shared && !isWhiteout(shared[ST.mode]!, shared[ST.rdev]!)) host.removeTree(this.sharedWhiteout)
    return removed
  }

  /** Makes a whiteout at `abs`: a link to the shared one, else (no hard links there) a new inode. */
  whiteout(abs: string): void {
    for (let attempt = 0; this.sharing && attempt < 2; attempt++) {
      const res = native.link(this.sharedWhiteout, abs)
      if (res === 0) return
      if (res === -ENOENT || res === -EMLINK) {
        // none yet, or full: a fresh one replaces it (links made so far keep the old inode)
        const tmp = this.tempName()
        host.mknod(tmp, host.S_IFCHR, 0)
        host.rename(tmp, this.sharedWhiteout)
      } else if (res === -EPERM || res === -EXDEV || res === -EOPNOTSUPP) {
        this.sharing = false
      } else {
        break // EEXIST, ENOSPC, ...: mknod says so, with the path
      }
    }
    host.mknod(abs, host.S_IFCHR, 0)
  }

  tempName(): string {
    return `${this.abs}/#${process.pid.toString(36)}-${(this.seq++).toString(36)}`
  }
}

export interface CopyUpOptions {
  /** copy file contents (false for opens with O_TRUNC and truncate to 0) */
  data: boolean
  /** fsync file data before publishing (off with fsync=0 / volatile) */
  fsync: boolean
}

/**
 * Copies the entry at `srcAbs` (whose lstat is `st`) to `destAbs` in the upper.
 * Returns the number of data bytes copied.
 */
export async function copyUpEntry(srcAbs: string, st: Float64Array, destAbs: string, work: WorkDir, opts: CopyUpOptions): Promise<number> {
  const tmp = work.tempName()
  const type = host.fileType(st[ST.mode]!)
  let bytes = 0
  try {
    switch (type) {
      case host.S_IFREG:
        bytes = await copyFile(srcAbs, st, tmp, opts)
        break
      case host.S_IFDIR:
        host.mkdir(tmp, 0o700)
        break
      case host.S_IFLNK:
        host.symlink(host.readlink(srcAbs), tmp)
        break
      default:
        host.mknod(tmp, st[ST.mode]!, st[ST.rdev]!)
    }
    if (type !== host.S_IFREG) applyMetadata(srcAbs, st, tmp)
    publish(tmp, destAbs)
  } catch (err) {
    try { host.removeTree(tmp) } catch { /* the original error matters more */ }
    throw err
  }
  return bytes
}

/** Renames the finished copy into place and puts the parent's times back. */
function publish(tmp: string, destAbs: string): void {
  keepingParentTimes(destAbs, () => host.rename(tmp, destAbs))
}

/**
 * Copy-up of a second name of a file already copied up in the same tree copy-up: a hard link to
 * that copy, so the names stay one file (as mv keeps them across filesystems).
 */
export function copyUpAsLink(existingUpperAbs: string, destAbs: string): void {
  keepingParentTimes(destAbs, () => host.link(existingUpperAbs, destAbs))
}

function keepingParentTimes(destAbs: string, change: () => void): void {
  const parent = destAbs.slice(0, destAbs.lastIndexOf('/'))
  const pst = host.lstat(parent)
  change()
  host.utimens(parent, pst[ST.atimeSec]!, pst[ST.atimeNsec]!, pst[ST.mtimeSec]!, pst[ST.mtimeNsec]!)
}

/** Copy-up of a directory is metadata only, and synchronous. */
export function copyUpDir(srcAbs: string, st: Float64Array, destAbs: string, work: WorkDir): void {
  const tmp = work.tempName()
  try {
    host.mkdir(tmp, 0o700)
    applyMetadata(srcAbs, st, tmp)
    publish(tmp, destAbs)
  } catch (err) {
    try { host.removeTree(tmp) } catch { /* keep the original error */ }
    throw err
  }
}

/**
 * A regular file: data (and its fsync) in one job off the JS thread, then the metadata through the
 * open descriptor, in applyMetadata's order (fchown/fchmod/futimens: no path to resolve, and none
 * of chmod's care about symlinks, which a file we just created cannot be).
 */
async function copyFile(srcAbs: string, st: Float64Array, tmp: string, opts: CopyUpOptions): Promise<number> {
  const src = host.open(srcAbs, O_RDONLY | O_NOFOLLOW)
  let dst = -1
  try {
    dst = host.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
    const bytes = opts.data ? await copyData(src, dst, opts.fsync, srcAbs) : 0
    fs.fchownSync(dst, st[ST.uid]!, st[ST.gid]!)
    fs.fchmodSync(dst, st[ST.mode]! & 0o7777)
    copyXattrs(srcAbs, tmp, false)
    const r = native.futimens(dst, st[ST.atimeSec]!, st[ST.atimeNsec]!, st[ST.mtimeSec]!, st[ST.mtimeNsec]!)
    if (r < 0) throw FsError.fromErrno(r, 'futimens', tmp)
    return bytes
  } finally {
    fs.closeSync(src)
    if (dst >= 0) fs.closeSync(dst)
  }
}

/** Copies the data, keeping holes; with `fsync`, makes it durable before returning (if any moved). */
function copyData(src: number, dst: number, fsync: boolean, srcAbs: string): Promise<number> {
  return new Promise((resolve, reject) => {
    native.copyData(src, dst, fsync, (err, bytes) => err < 0 ? reject(FsError.fromErrno(err, 'copy_file_range', srcAbs)) : resolve(bytes))
  })
}

/** Owner, then mode (chown clears set-id bits), then xattrs, then times (xattr writes touch ctime only). */
export function applyMetadata(srcAbs: string, st: Float64Array, dest: string): void {
  const type = host.fileType(st[ST.mode]!)
  host.lchown(dest, st[ST.uid]!, st[ST.gid]!)
  if (type !== host.S_IFLNK) host.chmod(dest, st[ST.mode]!)
  copyXattrs(srcAbs, dest, type === host.S_IFLNK)
  host.utimens(dest, st[ST.atimeSec]!, st[ST.atimeNsec]!, st[ST.mtimeSec]!, st[ST.mtimeNsec]!)
}

function copyXattrs(srcAbs: string, dest: string, isLink: boolean): void {
  for (const name of host.listxattr(srcAbs)) {
    if (unescapeXattr(name) === null) continue
    const value = host.getxattr(srcAbs, name)
    if (value === null) continue
    try {
      host.setxattr(dest, name, value)
    } catch (err) {
      // user.* xattrs are not allowed on symlinks; nothing could have set them on the source either.
      if (!(isLink && (err as FsError).code === 'EPERM')) throw err
    }
  }
}

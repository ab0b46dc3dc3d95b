/**
 * Host filesystem calls on absolute host paths in latin1 form (see src/native), throwing FsError.
 * Nothing here follows a symlink in the last component; callers make sure the components before it
 * are real directories (src/layers/lower-tree.ts and src/union resolve one component at a time).
 */
import { native, newStatBuf, type DirList } from '../native'
import { check, FsError } from './errors'

export const S_IFMT = 0o170000
export const S_IFDIR = 0o040000
export const S_IFREG = 0o100000
export const S_IFLNK = 0o120000
export const S_IFCHR = 0o020000
export const S_IFBLK = 0o060000
export const S_IFIFO = 0o010000
export const S_IFSOCK = 0o140000
export const S_ISGID = 0o2000

export const fileType = (mode: number): number => mode & S_IFMT
export const isDirMode = (mode: number): boolean => (mode & S_IFMT) === S_IFDIR

export function lstat(abs: string): Float64Array {
  const st = newStatBuf()
  check(native.lstat(abs, st), 'lstat', abs)
  return st
}

const ENOENT = -2
const ENOTDIR = -20

/** lstat, or null when nothing is there (ENOENT, ENOTDIR). */
export function lstatOrNull(abs: string): Float64Array | null {
  const st = newStatBuf()
  const r = native.lstat(abs, st)
  if (r === 0) return st
  if (r === ENOENT || r === ENOTDIR) return null
  throw FsError.fromErrno(r, 'lstat', abs)
}

export function fstat(fd: number): Float64Array {
  const st = newStatBuf()
  check(native.fstat(fd, st), 'fstat')
  return st
}

export const readdir = (abs: string): DirList => check(native.readdir(abs), 'readdir', abs)
/** d_type of a whiteout in readdirTypingWhiteouts */
export const DT_WHT = 14
/** readdir that types whiteouts DT_WHT and resolves DT_UNKNOWN (each lstat in the native call) */
export const readdirTypingWhiteouts = (abs: string): DirList => check(native.readdir(abs, true), 'readdir', abs)
export const open = (abs: string, flags: number, mode = 0): number => check(native.open(abs, flags, mode), 'open', abs)
export const mkdir = (abs: string, mode: number): void => { check(native.mkdir(abs, mode), 'mkdir', abs) }
export const rmdir = (abs: string): void => { check(native.rmdir(abs), 'rmdir', abs) }
export const unlink = (abs: string): void => { check(native.unlink(abs), 'unlink', abs) }
export const symlink = (target: string, abs: string): void => { check(native.symlink(target, abs), 'symlink', abs) }
export const readlink = (abs: string): string => check(native.readlink(abs), 'readlink', abs)
export const link = (from: string, to: string): void => { check(native.link(from, to), 'link', to) }
export const rename = (from: string, to: string, flags = 0): void => { check(native.rename(from, to, flags), 'rename', from) }
export const lchown = (abs: string, uid: number, gid: number): void => { check(native.lchown(abs, uid >>> 0, gid >>> 0), 'lchown', abs) }
export const chmod = (abs: string, mode: number): void => { check(native.chmod(abs, mode & 0o7777), 'chmod', abs) }
export const utimens = (abs: string, aSec: number, aNsec: number, mSec: number, mNsec: number): void => {
  check(native.utimens(abs, aSec, aNsec, mSec, mNsec), 'utimensat', abs)
}
export const listxattr = (abs: string): string[] => check(native.llistxattr(abs), 'listxattr', abs)
export const setxattr = (abs: string, name: string, value: Buffer, flags = 0): void => {
  check(native.lsetxattr(abs, name, value, flags), 'setxattr', abs)
}
export const removexattr = (abs: string, name: string): void => { check(native.lremovexattr(abs, name), 'removexattr', abs) }

const ENODATA = -61

/** lgetxattr, or null when the attribute is absent. */
export function getxattr(abs: string, name: string): Buffer | null {
  const v = native.lgetxattr(abs, name)
  if (typeof v !== 'number') return v
  if (v === ENODATA) return null
  throw FsError.fromErrno(v, 'getxattr', abs)
}

/** mknod with a kernel-encoded dev_t (as FUSE and st_rdev carry it). */
export function mknod(abs: string, mode: number, rdev: number): void {
  const major = (rdev >>> 8) & 0xfff
  const minor = (rdev & 0xff) | ((rdev >>> 12) & 0xfff00)
  check(native.mknod(abs, mode, major, minor), 'mknod', abs)
}

/**
 * Removes a tree this process owns (work-dir leftovers), without following symlinks: in one native
 * call; where that stops (a tree deeper than it goes, an error), by path from here, which names
 * the entry that failed.
 */
export function removeTree(abs: string): void {
  if (native.removeTree(abs) < 0) removeTreeByPath(abs)
}

function removeTreeByPath(abs: string): void {
  const st = lstatOrNull(abs)
  if (!st) return
  if (isDirMode(st[2]!)) {
    for (const name of readdir(abs).names) removeTreeByPath(`${abs}/${name}`)
    rmdir(abs)
  } else {
    unlink(abs)
  }
}

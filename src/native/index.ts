/**
 * Typed access to strata_sys.c, strata's syscall shim (see the header of that file for why it
 * exists). Every path and name here is a "latin1 string": one code unit per raw byte, so names that
 * are not valid UTF-8 survive unchanged. Calls return a result or a negative errno; `sys` wraps the
 * ones callers want as exceptions.
 */
import * as path from 'node:path'

export interface DirList {
  names: string[]
  /** d_type per name (DT_DIR = 4, DT_REG = 8, DT_LNK = 10, DT_CHR = 2, DT_UNKNOWN = 0 ...) */
  types: Uint8Array
  /** d_ino per name: the entry's st_ino on the filesystems layers live on (not for mount points) */
  inos: Float64Array
}

/** Entries of a directory read ahead that came with their lstat (warmDirs). */
export interface ListedStats {
  /** entry index of each statted entry */
  statIdx: Uint32Array
  /** 16 numbers per statted entry, as lstat fills them */
  stats: Float64Array
  /** STAT_NAMES_* bits per statted entry */
  statBits: Uint8Array
}

/** A directory as the addon reads it: names NUL-separated in one string (see dirListOf). */
export interface RawDirList extends Partial<ListedStats> {
  joined: string
  types: Uint8Array
  inos: Float64Array
}

/** The DirList of a RawDirList (one string per name, split here: cheaper than made one by one in C). */
export const dirListOf = (r: RawDirList): DirList & Partial<ListedStats> =>
  ({ names: r.types.length === 0 ? [] : r.joined.split('\0'), types: r.types, inos: r.inos, statIdx: r.statIdx, stats: r.stats, statBits: r.statBits })

export interface Native {
  lstat(path: string, out: Float64Array): number
  fstat(fd: number, out: Float64Array): number
  statvfs(path: string, out: Float64Array): number
  /**
   * with `whiteouts`, character devices and DT_UNKNOWN entries are lstatted in the call: a whiteout
   * is typed DT_WHT (14); one that could not be lstatted stays DT_UNKNOWN
   */
  readdir(path: string, whiteouts?: boolean): DirList | number
  open(path: string, flags: number, mode: number): number
  mkdir(path: string, mode: number): number
  rmdir(path: string): number
  /** removes the tree at path depth-first without following symlinks (nothing there: 0); -ELOOP below 64 levels */
  removeTree(path: string): number
  unlink(path: string): number
  symlink(target: string, path: string): number
  readlink(path: string): string | number
  link(existing: string, newPath: string): number
  rename(from: string, to: string, flags: number): number
  mknod(path: string, mode: number, major: number, minor: number): number
  lchown(path: string, uid: number, gid: number): number
  chmod(path: string, mode: number): number
  utimens(path: string, aSec: number, aNsec: number, mSec: number, mNsec: number): number
  futimens(fd: number, aSec: number, aNsec: number, mSec: number, mNsec: number): number
  lgetxattr(path: string, name: string): Buffer | number
  lsetxattr(path: string, name: string, value: Buffer, flags: number): number
  llistxattr(path: string): string[] | number
  lremovexattr(path: string, name: string): number
  /** copies srcFd to dstFd keeping holes, then (with fsync, if any data moved) fsyncs dstFd, off the JS thread */
  copyData(srcFd: number, dstFd: number, fsync: boolean, cb: (err: number, bytes: number) => void): void
  /**
   * reads each directory (and lstats its subdirectories, or every entry with statAll) off the JS
   * thread, for the host's caches; calls back with how many entries it statted, how many
   * microseconds it took, and what each directory held (lists[i] for paths[i]: null when not
   * read to its end, or bigger than 4,096 entries; dirListOf makes it a DirList)
   */
  warmDirs(paths: string[], statAll: boolean, cb: (statted: number, us: number, lists: Array<RawDirList | null> | null) => void): void
  /**
   * lstats `dir`/names[i] into stats[slots[i] * 16 ..] and, with `xattrs`, asks whether it has any
   * xattrs, setting state[slots[i]]'s bits (STAT_NAMES_*); entries whose bits are already set are
   * not asked again, one that fails keeps its bits clear. Returns how many it statted, or -errno
   * when `dir` cannot be opened.
   */
  statNames(dir: string, names: string[], slots: Uint32Array, stats: Float64Array, state: Uint8Array, xattrs: boolean): number
  /** malloc_trim(0): 1 if memory was given back to the kernel */
  mallocTrim(): number
  RENAME_NOREPLACE: number
  RENAME_EXCHANGE: number
  RENAME_WHITEOUT: number
  UTIME_NOW: number
  UTIME_OMIT: number
  XATTR_CREATE: number
  XATTR_REPLACE: number
}

// dist/src/native/index.js and src/native/index.ts both sit two levels below the repo root.
const root = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..')
// eslint-disable-next-line @typescript-eslint/no-require-imports
const addon = require(path.join(root, 'src/native/build/Release/strata_sys.node')) as Omit<Native, 'readdir'> & {
  readdir(path: string, whiteouts?: boolean): RawDirList | number
}

export const native: Native = {
  ...addon,
  readdir(path: string, whiteouts?: boolean): DirList | number {
    const r = addon.readdir(path, whiteouts)
    return typeof r === 'number' ? r : dirListOf(r)
  },
}

/** Indices into the Float64Array(16) that lstat/fstat fill. */
export const ST = {
  dev: 0, ino: 1, mode: 2, nlink: 3, uid: 4, gid: 5, rdev: 6, size: 7, blksize: 8, blocks: 9,
  atimeSec: 10, atimeNsec: 11, mtimeSec: 12, mtimeNsec: 13, ctimeSec: 14, ctimeNsec: 15,
} as const

export const newStatBuf = (): Float64Array => new Float64Array(16)

/** Converts a host path given as a normal (UTF-8) JS string into strata's latin1 form. */
export const toLatin1 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1')
/** Converts strata's latin1 form back to a normal JS string (for messages and Node's fs). */
export const fromLatin1 = (s: string): string => Buffer.from(s, 'latin1').toString('utf8')
/** A Buffer of the raw bytes, for Node's fs calls that take a path. */
export const pathBuf = (s: string): Buffer => Buffer.from(s, 'latin1')

/** Bits statNames sets per entry (src/layers/lower-tree.ts keeps the same ones per lower entry). */
export const STAT_NAMES_STATTED = 1
export const STAT_NAMES_XATTRS_KNOWN = 2
export const STAT_NAMES_XATTR_FREE = 4

/**
 * Packs a host stat (src/native layout) into the patched binding's 24-slot stat array:
 * [mode, uid, gid, size lo/hi, dev, nlink, ino lo/hi, rdev, blksize, blocks lo/hi,
 *  atime sec lo/hi nsec, mtime sec lo/hi nsec, ctime sec lo/hi nsec, attr cache ms, flags].
 * Slot 22 is how long the kernel may cache these attributes (getattr answers and listings, 0:
 * not at all); slot 23 is read from listings only (STAT_NO_XATTRS, the layer code).
 *
 * st_ino = (layer tag << 48) | host ino: stable across remounts of the same layer stack, unique in
 * the mount (host inos are unique per filesystem; each layer has its own tag), and the same for hard
 * links within a layer. Host inos above 2^48 (rare, XFS) are folded into 48 bits.
 */
import { ST } from '../native'
import type { TaggedStat } from '../union/union-fs'
import { ATTR_CACHE_MS } from './mount'

export const STAT_SLOTS = 24
/** slot 23 (a listing's stats only): flags; bit 0, the entry has no xattrs at all */
export const STAT_NO_XATTRS = 1
/**
 * slot 23 bits 8-23: a regular file the binding may open for reading itself (its strata_ropen.h),
 * and where: layer code 1 the upper, 2 + i lower layer i (0: not such a file)
 */
export const STAT_LAYER_SHIFT = 8
export const layerCode = (layer: number): number => layer < 0 ? 1 : layer + 2
/** The layer (-1: the upper) of a layer code. */
export const layerOfCode = (code: number): number => code === 1 ? -1 : code - 2

const TWO32 = 4294967296
const TWO48 = 281474976710656

function put64(out: Uint32Array, i: number, v: number): void {
  const lo = v % TWO32
  out[i] = lo
  out[i + 1] = (v - lo) / TWO32
}

/** Packs `ts` into `out` at slot `at` (a listing packs all its entries into one array). */
export function packStat(ts: TaggedStat, out: Uint32Array = new Uint32Array(STAT_SLOTS), at = 0): Uint32Array {
  const st = ts.st
  out[at] = st[ST.mode]!
  out[at + 1] = st[ST.uid]!
  out[at + 2] = st[ST.gid]!
  put64(out, at + 3, st[ST.size]!)
  out[at + 5] = 0
  out[at + 6] = ts.mergedDir ? 1 : st[ST.nlink]!
  const ino = st[ST.ino]! % TWO48
  out[at + 7] = ino % TWO32
  out[at + 8] = ((ino - (ino % TWO32)) / TWO32) + ts.tag * 65536
  out[at + 9] = st[ST.rdev]!
  out[at + 10] = st[ST.blksize]!
  put64(out, at + 11, st[ST.blocks]!)
  put64(out, at + 13, st[ST.atimeSec]!)
  out[at + 15] = st[ST.atimeNsec]!
  put64(out, at + 16, st[ST.mtimeSec]!)
  out[at + 18] = st[ST.mtimeNsec]!
  put64(out, at + 19, st[ST.ctimeSec]!)
  out[at + 21] = st[ST.ctimeNsec]!
  out[at + 22] = ts.stable ? ATTR_CACHE_MS : 0
  return out
}

/** Stat arrays carrying only a file type, for readdir entries (d_type) with an unknown inode. */
const TYPE_ONLY = Array.from({ length: 16 }, (_, dtype) => {
  const out = new Uint32Array(STAT_SLOTS)
  out[0] = dtype << 12
  out[7] = 0xffffffff
  return out
})

/**
 * Writes a listed entry without its attributes into `out` at slot `at`: its file type and the
 * st_ino its stat gives (d_type and d_ino), nothing the kernel or the binding may keep.
 */
export function packLean(dtype: number, tag: number, hostIno: number, out: Uint32Array, at: number): void {
  out.fill(0, at, at + STAT_SLOTS)
  out[at] = (dtype & 15) << 12
  const ino = hostIno % TWO48
  out[at + 7] = ino % TWO32
  out[at + 8] = ((ino - (ino % TWO32)) / TWO32) + tag * 65536
}

/** Writes a stat carrying only a file type (a d_type, inode unknown) into `out` at slot `at`. */
export function packTypeOnly(dtype: number, out: Uint32Array, at: number): void {
  out.set(TYPE_ONLY[dtype & 15]!, at)
}

/** statvfs → the binding's 11 uint32 slots, scaling the block size so counts fit 32 bits. */
export function packStatfs(s: Float64Array): Uint32Array {
  let frsize = s[1]! || s[0]!
  let blocks = s[2]!
  let bfree = s[3]!
  let bavail = s[4]!
  while (blocks > 0xffffffff) {
    frsize *= 2
    blocks = Math.floor(blocks / 2)
    bfree = Math.floor(bfree / 2)
    bavail = Math.floor(bavail / 2)
  }
  const clamp = (v: number): number => Math.min(v, 0xffffffff)
  return Uint32Array.from([frsize, frsize, blocks, bfree, bavail, clamp(s[5]!), clamp(s[6]!), clamp(s[7]!), 0, s[9]!, s[10]!])
}

/**
 * A container's changes, read from its upper dir (kernel overlayfs format, or the `.wh.` form that
 * stratafs also understands) against the image's layers:
 *   `strata container diff`   → A/C/D lines like `docker diff`
 *   `strata container commit` → an OCI layer tar (whiteouts as `.wh.<name>`, opaque dirs as
 *                               `.wh..wh..opq`, entries in byte order of names, parents first;
 *                               metadata: mode, uid/gid, whole-second mtime, xattrs, hard links)
 * The upper is walked with lstat and the l* syscalls only; nothing is followed.
 *
 * Data volumes (./volumes.ts) are not the container's changes: their contents never land in the
 * upper, and the mountpoint directories stratafs creates in the upper for them are left out too
 * (see volumeSkips), so `diff` and `commit` of a container with volumes show only what the
 * container itself changed.
 */
import * as fs from 'node:fs'
import { native, newStatBuf, ST, toLatin1 } from '../../native'
import { check, FsError } from '../../sys/errors'
import { isWithin, parentOf } from '../../sys/rel'
import { DT_DIR, LowerTree } from '../lower-tree'
import { isOpaqueValue, isWhiteout, OPAQUE_XATTR, OVERLAY_XATTR_PREFIX, WH_OPAQUE, WH_PREFIX } from '../whiteout'
import { header, pad, TarFileWriter } from './tar-writer'
import { modeKind } from './unpack'

const st = newStatBuf()

function lstatOrNull(abs: string): Float64Array | null {
  const buf = newStatBuf()
  return native.lstat(abs, buf) === 0 ? buf : null
}

function listNames(abs: string): string[] {
  const r = native.readdir(abs)
  if (typeof r === 'number') throw FsError.fromErrno(r, 'readdir', abs)
  return r.names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
}

function isOpaqueDir(abs: string): boolean {
  return isOpaqueValue(native.lgetxattr(abs, OPAQUE_XATTR)) || native.lstat(`${abs}/${WH_OPAQUE}`, st) === 0
}

const isDeleted = (abs: string, s: Float64Array): boolean => isWhiteout(s[ST.mode]!, s[ST.rdev]!)

/**
 * Does `rel` exist in the merged view of `lowers` (latin1 dirs, top first)? Follows overlayfs
 * rules: a whiteout or a non-directory at any prefix hides everything below it; an opaque dir
 * stops the search at its layer.
 */
export function existsInLowers(lowers: string[], rel: string): boolean {
  const parts = rel.split('/')
  for (const layer of lowers) {
    let cur = layer
    let stop = false
    let i = 0
    for (; i < parts.length; i++) {
      const parent = cur
      cur = `${cur}/${parts[i]}`
      const s = lstatOrNull(cur)
      if (!s) {
        if (native.lstat(`${parent}/${WH_PREFIX}${parts[i]}`, st) === 0) return false
        break
      }
      if (isDeleted(cur, s)) return false
      if (i === parts.length - 1) return true
      if (modeKind(s[ST.mode]!) !== 'dir') return false
      if (isOpaqueDir(cur)) stop = true
    }
    if (stop) return false
  }
  return false
}

/**
 * Upper paths (latin1 rels) that `diff` and `commit` leave out because of data volumes mounted at
 * `destinations` (absolute container paths):
 * - each destination and everything below it (stratafs keeps volume data out of the upper, but
 *   the mountpoint directory it creates there when the image lacks one is not a change);
 * - each ancestor directory of a destination whose only upper children are left out, which is not
 *   opaque, and which either is absent from the image (stratafs created it for the mountpoint) or
 *   has the image's mode and owner (copied up only so the mountpoint could be created in it; its
 *   mtime moved with that mkdir and is deliberately not compared).
 * An ancestor with any other change (a new file beside the mountpoint, a chmod) stays a change.
 */
export function volumeSkips(upper: string, lowers: string[], destinations: string[]): Set<string> {
  const skip = new Set<string>()
  if (destinations.length === 0) return skip
  const up = toLatin1(upper)
  const tree = new LowerTree(lowers.map(toLatin1))
  const dests = destinations.map((d) => toLatin1(d.replace(/^\/+/, '')))
  const ancestors = new Set<string>()
  for (const d of dests) {
    skip.add(d)
    for (let p = parentOf(d); p !== ''; p = parentOf(p)) ancestors.add(p)
  }
  // a child's rel is longer than its parent's: deepest first
  for (const a of [...ancestors].sort((x, y) => y.length - x.length)) {
    const abs = `${up}/${a}`
    const s = lstatOrNull(abs)
    if (!s || modeKind(s[ST.mode]!) !== 'dir' || isOpaqueDir(abs)) continue
    if (listNames(abs).some((n) => !skip.has(`${a}/${n}`))) continue
    const e = tree.lookup(a)
    if (e) {
      if (e.dtype !== DT_DIR) continue
      const ls = tree.stat(a, e)
      if (ls[ST.mode] !== s[ST.mode] || ls[ST.uid] !== s[ST.uid] || ls[ST.gid] !== s[ST.gid]) continue
    }
    skip.add(a)
  }
  return skip
}

export type Change = { kind: 'A' | 'C' | 'D', rel: string }

/**
 * Changes in `upper` against `lowers` (host paths, top first), sorted by path; `skip` (from
 * volumeSkips) names upper paths to leave out with everything below them.
 */
export function containerChanges(upper: string, lowers: string[], skip: Set<string> = new Set()): Change[] {
  const up = toLatin1(upper)
  const lows = lowers.map(toLatin1)
  const out: Change[] = []
  const walk = (rel: string): void => {
    const dirAbs = rel === '' ? up : `${up}/${rel}`
    const names = listNames(dirAbs)
    for (const name of names) {
      if (name === WH_OPAQUE) continue
      const childRel = rel === '' ? name : `${rel}/${name}`
      if (skip.has(childRel)) continue
      const abs = `${up}/${childRel}`
      const s = lstatOrNull(abs)
      if (!s) continue
      if (name.startsWith(WH_PREFIX)) {
        out.push({ kind: 'D', rel: rel === '' ? name.slice(WH_PREFIX.length) : `${rel}/${name.slice(WH_PREFIX.length)}` })
        continue
      }
      if (isDeleted(abs, s)) {
        out.push({ kind: 'D', rel: childRel })
        continue
      }
      const inLower = existsInLowers(lows, childRel)
      out.push({ kind: inLower ? 'C' : 'A', rel: childRel })
      if (modeKind(s[ST.mode]!) === 'dir') {
        if (inLower && isOpaqueDir(abs)) {
          // an opaque dir hides every lower child the upper does not list again
          const hidden = new Set<string>()
          for (const layer of lows) {
            const r = native.readdir(`${layer}/${childRel}`)
            if (typeof r === 'number') continue
            for (const n of r.names) {
              if (n.startsWith(WH_PREFIX)) continue
              if (native.lstat(`${abs}/${n}`, st) === 0) continue
              if (existsInLowers(lows, `${childRel}/${n}`)) hidden.add(n)
            }
          }
          for (const n of hidden) out.push({ kind: 'D', rel: `${childRel}/${n}` })
        }
        walk(childRel)
      }
    }
  }
  walk('')
  const skipped = (rel: string): boolean => [...skip].some((d) => isWithin(rel, d))
  const uniq = new Map(out.filter((c) => !skipped(c.rel)).map((c) => [c.rel, c]))
  return [...uniq.values()].sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0))
}

function xattrsOf(abs: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  const names = native.llistxattr(abs)
  if (typeof names === 'number') return out
  for (const n of names.sort()) {
    if (n.startsWith(OVERLAY_XATTR_PREFIX)) continue
    const v = native.lgetxattr(abs, n)
    if (typeof v !== 'number') out.set(n, v)
  }
  return out
}

/** Writes the upper as an OCI layer tar at `file`, leaving out `skip` (see volumeSkips). */
export async function writeUpperTar(upper: string, file: string, skip: Set<string> = new Set()): Promise<void> {
  const up = toLatin1(upper)
  const w = new TarFileWriter(file)
  const links = new Map<string, string>()
  const buf = Buffer.allocUnsafe(1 << 20)
  try {
    const walk = (rel: string): void => {
      const dirAbs = rel === '' ? up : `${up}/${rel}`
      for (const name of listNames(dirAbs)) {
        const childRel = rel === '' ? name : `${rel}/${name}`
        if (skip.has(childRel)) continue
        const abs = `${up}/${childRel}`
        const s = newStatBuf()
        check(native.lstat(abs, s), 'lstat', abs)
        const mode = s[ST.mode]!
        const meta = { mode: mode & 0o7777, uid: s[ST.uid]!, gid: s[ST.gid]!, mtime: s[ST.mtimeSec]! }
        const kind = modeKind(mode)
        if (isDeleted(abs, s)) {
          const wh = rel === '' ? `${WH_PREFIX}${name}` : `${rel}/${WH_PREFIX}${name}`
          w.write(header({ name: wh, type: '0', mode: 0, mtime: 0 }))
          continue
        }
        if (kind === 'dir') {
          w.write(header({ name: `${childRel}/`, type: '5', ...meta, xattrs: xattrsOf(abs) }))
          if (isOpaqueValue(native.lgetxattr(abs, OPAQUE_XATTR)) && native.lstat(`${abs}/${WH_OPAQUE}`, st) !== 0) {
            w.write(header({ name: `${childRel}/${WH_OPAQUE}`, type: '0', mode: 0, mtime: 0 }))
          }
          walk(childRel)
          continue
        }
        const key = `${s[ST.dev]}:${s[ST.ino]}`
        const first = s[ST.nlink]! > 1 ? links.get(key) : undefined
        if (first !== undefined) {
          w.write(header({ name: childRel, type: '1', ...meta, linkname: first }))
          continue
        }
        if (s[ST.nlink]! > 1) links.set(key, childRel)
        if (kind === 'symlink') {
          const target = native.readlink(abs)
          if (typeof target === 'number') throw FsError.fromErrno(target, 'readlink', abs)
          w.write(header({ name: childRel, type: '2', ...meta, linkname: target, xattrs: xattrsOf(abs) }))
        } else if (kind === 'chr' || kind === 'blk' || kind === 'fifo') {
          const rdev = s[ST.rdev]!
          // glibc's gnu_dev_major/minor
          const major = ((rdev >>> 8) & 0xfff) | Math.floor(rdev / 2 ** 32) & ~0xfff
          const minor = (rdev & 0xff) | ((rdev >>> 12) & ~0xff)
          w.write(header({ name: childRel, type: kind === 'chr' ? '3' : kind === 'blk' ? '4' : '6', ...meta, devmajor: major, devminor: minor, xattrs: xattrsOf(abs) }))
        } else if (kind === 'sock') {
          continue // sockets are not archived (as GNU tar and Docker)
        } else {
          const size = s[ST.size]!
          w.write(header({ name: childRel, type: '0', ...meta, size, xattrs: xattrsOf(abs) }))
          const fd = fs.openSync(Buffer.from(abs, 'latin1'), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
          try {
            let left = size
            while (left > 0) {
              const n = fs.readSync(fd, buf, 0, Math.min(left, buf.length), null)
              if (n === 0) throw new FsError('EIO', `${abs}: file shrank while committing`)
              w.write(buf.subarray(0, n))
              left -= n
            }
          } finally {
            fs.closeSync(fd)
          }
          w.write(pad(size))
        }
      }
    }
    walk('')
  } finally {
    w.close()
  }
}

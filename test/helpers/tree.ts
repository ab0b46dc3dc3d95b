/**
 * Snapshots of a directory tree, for comparing a merged view (or an upper) across targets.
 *
 * Owns: walking a tree WITHOUT following symlinks (lstat, readdir, readlink, llistxattr through
 * strata's syscall shim, so names are latin1 strings: one code unit per raw byte, and invalid
 * UTF-8 survives), describing every entry, grouping hard links, and printing a readable diff.
 * Must not: write anything.
 *
 * Views:
 *   merged  every xattr is recorded as-is (trusted.overlay.* must not be visible there at all, so
 *           nothing is filtered).
 *   upper   the overlay on-disk format: a char device 0/0 is a `whiteout` (its mode and owner are
 *           not significant), `trusted.overlay.opaque=y` becomes `opaque: true`; the other
 *           trusted.overlay.* xattrs (origin, impure, uuid: kernel bookkeeping that depends on
 *           file handles, overlayfs.rst "Index", "Non-standard behavior") are listed in `ovlPrivate`
 *           and not compared.
 *   raw     every xattr, nothing interpreted (for "lowers are byte-for-byte unchanged").
 * Times: only mtimes before TIME_CEILING (the fixture epoch) are recorded, so "an untouched
 * copied-up file keeps its mtime" is checked and times the test cannot control are not.
 */
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import { native, ST, newStatBuf } from '../../src/native/index'
import { errnoName } from './errno'

export type View = 'merged' | 'upper' | 'raw'

export interface Entry {
  /** 'unreadable': listed by readdir but lstat failed (mode then holds '!ERRNO') */
  type: 'f' | 'd' | 'l' | 'c' | 'b' | 'p' | 's' | 'whiteout' | 'unreadable'
  mode?: string
  uid?: number
  gid?: number
  size?: number
  sha256?: string
  target?: string
  rdev?: string
  nlink?: number
  mtime?: string
  xattrs?: Record<string, string>
  opaque?: boolean
  ovlPrivate?: string[]
}

export interface Snapshot {
  /** key: './a/b' as latin1 (root is '.'); sorted by raw bytes */
  entries: Map<string, Entry>
  /** each group: the sorted paths that share one inode (only groups of 2 or more) */
  linkGroups: string[][]
  /** lstat ino per path, for tests that check st_ino stability (not compared by diffSnapshots) */
  inos: Map<string, number>
}

/** All fixture times are below this (2010-01-01); times set "now" by a test are above it. */
export const TIME_CEILING = 1262304000

const S_IFMT = 0o170000
const TYPES: Record<number, Entry['type']> = {
  0o100000: 'f', 0o040000: 'd', 0o120000: 'l', 0o020000: 'c', 0o060000: 'b', 0o010000: 'p', 0o140000: 's',
}

export function major(rdev: number): number { return Number((BigInt(rdev) >> 8n) & 0xfffn) | Number((BigInt(rdev) >> 32n) & ~0xfffn) }
export function minor(rdev: number): number { return Number(BigInt(rdev) & 0xffn) | Number((BigInt(rdev) >> 12n) & ~0xffn) }

function fileSha(abs: string): string | { error: string } {
  try {
    const h = crypto.createHash('sha256')
    const fd = fs.openSync(Buffer.from(abs, 'latin1'), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
    try {
      const buf = Buffer.alloc(1 << 20)
      for (;;) { const n = fs.readSync(fd, buf, 0, buf.length, null); if (n === 0) break; h.update(buf.subarray(0, n)) }
    } finally { fs.closeSync(fd) }
    return h.digest('hex')
  } catch (e) {
    return { error: (e as NodeJS.ErrnoException).code ?? String(e) }
  }
}

/** xattrs of one entry (not following symlinks): name -> hex value; errors as '!ERRNO'. */
export function readXattrs(abs: string): Record<string, string> {
  const names = native.llistxattr(abs)
  if (typeof names === 'number') return names === 0 ? {} : { '!list': errnoName(names) }
  const out: Record<string, string> = {}
  for (const n of [...names].sort()) {
    const v = native.lgetxattr(abs, n)
    out[n] = typeof v === 'number' ? `!${errnoName(v)}` : v.toString('hex')
  }
  return out
}

/** One entry, as the snapshot records it. Exported for the op runner's `stat`. */
export function describe(abs: string, view: View, st: Float64Array): Entry {
  const mode = st[ST.mode]!
  const type = TYPES[mode & S_IFMT] ?? 'f'
  const rdev = st[ST.rdev]!
  if (view === 'upper' && type === 'c' && rdev === 0) return { type: 'whiteout' }
  const e: Entry = { type, mode: (mode & 0o7777).toString(8).padStart(4, '0'), uid: st[ST.uid]!, gid: st[ST.gid]! }
  if (type !== 'd') e.nlink = st[ST.nlink]!
  if (type === 'f') {
    e.size = st[ST.size]!
    const sha = fileSha(abs)
    e.sha256 = typeof sha === 'string' ? sha : `!${sha.error}`
  }
  if (type === 'l') {
    const target = native.readlink(abs)
    e.target = typeof target === 'number' ? `!${errnoName(target)}` : target
  }
  if (type === 'c' || type === 'b') e.rdev = `${major(rdev)}:${minor(rdev)}`
  if (st[ST.mtimeSec]! < TIME_CEILING) e.mtime = `${st[ST.mtimeSec]}.${String(st[ST.mtimeNsec]).padStart(9, '0')}`
  const xattrs = readXattrs(abs)
  if (view === 'upper') {
    for (const k of Object.keys(xattrs)) {
      if (!k.startsWith('trusted.overlay.')) continue
      if (k === 'trusted.overlay.opaque') { if (xattrs[k] === '79') e.opaque = true; else (e.ovlPrivate ??= []).push(`${k}=${xattrs[k]}`) }
      else (e.ovlPrivate ??= []).push(k)
      delete xattrs[k]
    }
  }
  if (Object.keys(xattrs).length) e.xattrs = xattrs
  return e
}

export function lstat(abs: string): Float64Array | number {
  const st = newStatBuf()
  const r = native.lstat(abs, st)
  return r < 0 ? r : st
}

/**
 * Snapshot of the tree at `root` (a host path; latin1 form, which for ASCII paths is the same).
 * Unreadable entries are recorded (as `!ERRNO` values), never skipped.
 */
export function snapshot(root: string, view: View = 'merged'): Snapshot {
  const entries = new Map<string, Entry>()
  const inos = new Map<string, number>()
  const byIno = new Map<string, string[]>()
  const walk = (abs: string, rel: string): void => {
    const st = lstat(abs)
    if (typeof st === 'number') { entries.set(rel, { type: 'unreadable', mode: `!${errnoName(st)}` }); return }
    const e = describe(abs, view, st)
    entries.set(rel, e)
    inos.set(rel, st[ST.ino]!)
    if (e.type !== 'd' && e.type !== 'whiteout') {
      const key = `${st[ST.dev]}:${st[ST.ino]}`
      const g = byIno.get(key); if (g) g.push(rel); else byIno.set(key, [rel])
    }
    if (e.type === 'd') {
      const list = native.readdir(abs)
      if (typeof list === 'number') { e.xattrs = { ...e.xattrs, '!readdir': errnoName(list) }; return }
      for (const n of list.names) if (n !== '.' && n !== '..') walk(`${abs}/${n}`, `${rel}/${n}`)
    }
  }
  walk(root, '.')
  const sorted = new Map([...entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  const linkGroups = [...byIno.values()].filter(g => g.length > 1).map(g => g.sort()).sort((a, b) => (a[0]! < b[0]! ? -1 : 1))
  return { entries: sorted, linkGroups, inos }
}

/** A path for messages: printable ASCII as is, every other byte as \xNN. */
export function show(latin1: string): string {
  return latin1.replace(/[^\x20-\x7e]/g, c => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}

function fmt(e: Entry): string {
  return Object.entries(e).map(([k, v]) => `${k}=${typeof v === 'string' ? show(v) : JSON.stringify(v)}`).join(' ')
}

export interface DiffOptions {
  /** entry fields not to compare (e.g. ['mtime']) */
  ignore?: (keyof Entry)[]
  /** ignore hard-link groups */
  ignoreLinks?: boolean
  /** paths (exact, latin1, './x') left out */
  skip?: (rel: string) => boolean
}

/**
 * Lines describing how `b` differs from `a` (empty when equal):
 *   `- ./p  (only in A) ...`, `+ ./p  (only in B) ...`, `~ ./p  field: A -> B`, `links: ...`
 */
export function diffSnapshots(a: Snapshot, b: Snapshot, opts: DiffOptions = {}, names: [string, string] = ['A', 'B']): string[] {
  const out: string[] = []
  const ign = new Set<string>(opts.ignore ?? [])
  const keys = [...new Set([...a.entries.keys(), ...b.entries.keys()])].sort()
  for (const k of keys) {
    if (opts.skip?.(k)) continue
    const x = a.entries.get(k); const y = b.entries.get(k)
    if (!x) { out.push(`+ ${show(k)}  only in ${names[1]}: ${fmt(y!)}`); continue }
    if (!y) { out.push(`- ${show(k)}  only in ${names[0]}: ${fmt(x)}`); continue }
    for (const f of [...new Set([...Object.keys(x), ...Object.keys(y)])] as (keyof Entry)[]) {
      if (ign.has(f) || f === 'ovlPrivate') continue
      const vx = JSON.stringify(x[f]); const vy = JSON.stringify(y[f])
      if (vx !== vy) out.push(`~ ${show(k)}  ${f}: ${names[0]} ${show(vx ?? 'absent')} vs ${names[1]} ${show(vy ?? 'absent')}`)
    }
  }
  if (!opts.ignoreLinks) {
    const filt = (s: Snapshot) => s.linkGroups.map(g => g.filter(p => !opts.skip?.(p))).filter(g => g.length > 1).map(g => g.map(show).join(' = '))
    const ga = new Set(filt(a)); const gb = new Set(filt(b))
    for (const g of ga) if (!gb.has(g)) out.push(`links: group only in ${names[0]}: ${g}`)
    for (const g of gb) if (!ga.has(g)) out.push(`links: group only in ${names[1]}: ${g}`)
  }
  return out
}

/** A compact listing (one line per entry) for comments and debugging. */
export function listing(s: Snapshot): string {
  return [...s.entries].map(([k, e]) => `${show(k)} ${fmt(e)}`).join('\n')
}

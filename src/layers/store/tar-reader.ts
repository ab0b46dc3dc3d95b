/**
 * A streaming tar reader for ustar, PAX (POSIX.1-2001) and GNU long names, written to accept what
 * real image tools produce and to reject what a hostile one might:
 * - every byte goes to a SplitRecorder (./tar-split.ts) unless the caller takes a payload as a file;
 * - header checksums are verified; truncation inside a header or a payload is an error;
 * - a clean end of stream right after a member's data (even unpadded, with no zero blocks) ends
 *   the archive, as Go's archive/tar does: umoci 0.4.7 writes such streams (fixtures README,
 *   quirk 1);
 * - bytes after the end-of-archive blocks are kept (raw) but not interpreted.
 * Names and link names are latin1 strings (raw bytes). GNU sparse members are refused.
 */
import { FsError } from '../../sys/errors'
import type { ByteReader } from './byte-reader'
import type { SplitRecorder } from './tar-split'

export interface TarEntry {
  name: string
  /** typeflag, with '\0' and '7' normalized to '0' */
  type: string
  size: number
  mode: number
  uid: number
  gid: number
  mtimeSec: number
  mtimeNsec: number
  atimeSec?: number
  atimeNsec?: number
  linkname: string
  devmajor: number
  devminor: number
  /** SCHILY.xattr.<name> records; names latin1 */
  xattrs: Map<string, Buffer>
}

const bad = (what: string): FsError => new FsError('EINVAL', what)

function cstr(b: Buffer, off: number, len: number): string {
  const f = b.subarray(off, off + len)
  const z = f.indexOf(0)
  return (z < 0 ? f : f.subarray(0, z)).toString('latin1')
}

function num(b: Buffer, off: number, len: number, field: string): number {
  const f = b.subarray(off, off + len)
  if (f.length && (f[0]! & 0x80) !== 0) {
    // GNU base-256: big-endian, first byte's top bit is the marker
    if (f[0] === 0xff) throw bad(`tar header: negative ${field}`)
    let v = f[0]! & 0x7f
    for (let i = 1; i < f.length; i++) {
      v = v * 256 + f[i]!
      if (v > Number.MAX_SAFE_INTEGER) throw bad(`tar header: ${field} too large`)
    }
    return v
  }
  const s = f.toString('latin1').replace(/\0.*$/s, '').trim()
  if (s === '') return 0
  if (!/^[0-7]+$/.test(s)) throw bad(`tar header: invalid ${field} "${s}"`)
  const v = parseInt(s, 8)
  if (!Number.isSafeInteger(v)) throw bad(`tar header: ${field} too large`)
  return v
}

function checksumOk(h: Buffer): boolean {
  const stored = num(h, 148, 8, 'checksum')
  let unsigned = 0
  let signed = 0
  for (let i = 0; i < 512; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : h[i]!
    unsigned += c
    signed += c > 127 ? c - 256 : c
  }
  return stored === unsigned || stored === signed
}

function parsePax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  let pos = 0
  while (pos < data.length) {
    if (data[pos] === 0) break // some writers pad the record block with NULs
    const sp = data.indexOf(0x20, pos)
    if (sp < 0) throw bad('PAX header: malformed record')
    const len = Number(data.subarray(pos, sp).toString('latin1'))
    if (!Number.isSafeInteger(len) || len <= sp - pos || pos + len > data.length) throw bad('PAX header: malformed record length')
    const rec = data.subarray(sp + 1, pos + len)
    if (rec[rec.length - 1] !== 0x0a) throw bad('PAX header: record does not end in newline')
    const eq = rec.indexOf(0x3d)
    if (eq < 0) throw bad('PAX header: record without "="')
    out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1, rec.length - 1)))
    pos += len
  }
  return out
}

function paxTime(v: Buffer): [number, number] {
  const m = /^(-?\d+)(?:\.(\d+))?$/.exec(v.toString('latin1'))
  if (!m?.[1]) throw bad(`PAX header: invalid time "${v.toString('latin1')}"`)
  return [Number(m[1]), Number(((m[2] ?? '') + '000000000').slice(0, 9))]
}

export class TarReader {
  private pendingData = 0
  private pendingPad = 0
  private finished = false
  /** true once the archive ended with zero blocks (false: it just stopped after a member) */
  sawTrailer = false

  constructor(private readonly br: ByteReader, private readonly rec: SplitRecorder) {}

  private async readRaw(n: number, what: string, eofOk = false): Promise<Buffer> {
    const b = await this.br.read(n)
    this.rec.raw(b)
    if (b.length < n && !eofOk) throw bad(`truncated archive: unexpected end of stream in ${what}`)
    return b
  }

  private async finishEntry(): Promise<void> {
    while (this.pendingData > 0) {
      const b = await this.br.readSome(Math.min(this.pendingData, 1 << 20))
      if (b.length === 0) throw bad('truncated archive: unexpected end of stream in file data')
      this.rec.raw(b)
      this.pendingData -= b.length
    }
    if (this.pendingPad > 0) {
      // an unpadded last member followed by end of stream is accepted (umoci quirk)
      await this.readRaw(this.pendingPad, 'padding', true)
      this.pendingPad = 0
    }
  }

  /**
   * Streams the current entry's payload to `sink`. With `asFile`, the payload is recorded as a
   * file segment (it can be read back from the tree) instead of raw bytes.
   */
  async readData(sink: (chunk: Buffer) => void | Promise<void>, asFile?: string): Promise<void> {
    if (asFile !== undefined) this.rec.file(asFile, this.pendingData)
    while (this.pendingData > 0) {
      const b = await this.br.readSome(Math.min(this.pendingData, 1 << 20))
      if (b.length === 0) throw bad('truncated archive: unexpected end of stream in file data')
      if (asFile === undefined) this.rec.raw(b)
      this.pendingData -= b.length
      await sink(b)
    }
  }

  async next(): Promise<TarEntry | null> {
    if (this.finished) return null
    await this.finishEntry()
    let pax = new Map<string, Buffer>()
    let longName: string | undefined
    let longLink: string | undefined
    for (;;) {
      const h = await this.readRaw(512, 'header', true)
      if (h.length === 0) {
        if (pax.size || longName !== undefined || longLink !== undefined) throw bad('truncated archive: extended header without a member')
        this.finished = true
        return null
      }
      if (h.length < 512) throw bad('truncated archive: unexpected end of stream in header')
      if (h.every((c) => c === 0)) {
        // end of archive: keep whatever follows verbatim (normally the second zero block)
        this.sawTrailer = true
        for await (const b of this.br.rest()) this.rec.raw(b)
        this.finished = true
        return null
      }
      if (!checksumOk(h)) throw bad(`corrupt archive: bad header checksum at offset ${this.br.consumed - 512}`)
      const magic = h.subarray(257, 263).toString('latin1')
      let name = cstr(h, 0, 100)
      if (magic === 'ustar\0') {
        const prefix = cstr(h, 345, 155)
        if (prefix) name = `${prefix}/${name}`
      }
      const tf = String.fromCharCode(h[156]!)
      let size = num(h, 124, 12, 'size')
      if (tf === 'x' || tf === 'g' || tf === 'L' || tf === 'K') {
        if (size > 1 << 20) throw bad(`corrupt archive: extended header of ${size} bytes`)
        const data = await this.readRaw(size, 'extended header')
        await this.readRaw((512 - (size % 512)) % 512, 'extended header padding')
        if (tf === 'x') pax = new Map([...pax, ...parsePax(data)])
        else if (tf === 'L') longName = cstr(data, 0, data.length)
        else if (tf === 'K') longLink = cstr(data, 0, data.length)
        continue // 'g' (global) records carry nothing a layer needs; they stay in the raw bytes
      }
      if (tf === 'S') throw bad(`unsupported archive member "${name}": GNU sparse files are not supported`)
      const entry: TarEntry = {
        name,
        type: tf === '\0' || tf === '7' ? '0' : tf,
        size,
        mode: num(h, 100, 8, 'mode'),
        uid: num(h, 108, 8, 'uid'),
        gid: num(h, 116, 8, 'gid'),
        mtimeSec: num(h, 136, 12, 'mtime'),
        mtimeNsec: 0,
        linkname: cstr(h, 157, 100),
        devmajor: magic.startsWith('ustar') ? num(h, 329, 8, 'devmajor') : 0,
        devminor: magic.startsWith('ustar') ? num(h, 337, 8, 'devminor') : 0,
        xattrs: new Map(),
      }
      if (longName !== undefined) entry.name = longName
      if (longLink !== undefined) entry.linkname = longLink
      for (const [k, v] of pax) {
        if (k === 'path') entry.name = v.toString('latin1')
        else if (k === 'linkpath') entry.linkname = v.toString('latin1')
        else if (k === 'size') size = entry.size = Number(v.toString('latin1'))
        else if (k === 'uid') entry.uid = Number(v.toString('latin1'))
        else if (k === 'gid') entry.gid = Number(v.toString('latin1'))
        else if (k === 'mtime') [entry.mtimeSec, entry.mtimeNsec] = paxTime(v)
        else if (k === 'atime') [entry.atimeSec, entry.atimeNsec] = paxTime(v)
        else if (k.startsWith('SCHILY.xattr.')) entry.xattrs.set(Buffer.from(k.slice(13), 'utf8').toString('latin1'), v)
        else if (k.startsWith('GNU.sparse.')) throw bad(`unsupported archive member "${entry.name}": PAX sparse files are not supported`)
      }
      for (const [f, v] of [['size', entry.size], ['uid', entry.uid], ['gid', entry.gid]] as const) {
        if (!Number.isSafeInteger(v) || v < 0) throw bad(`corrupt archive: invalid ${f} for "${entry.name}"`)
      }
      // A payload on a non-file member is odd but still in the stream: skipped, kept raw.
      this.pendingData = size
      this.pendingPad = (512 - (size % 512)) % 512
      return entry
    }
  }
}

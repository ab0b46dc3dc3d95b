/**
 * Deterministic tar headers (ustar, with a PAX 'x' record when a name, link name, id or xattr does
 * not fit), for committed layers and saved archives. No uname/gname, no atime/ctime, mtime in whole
 * seconds: the same tree gives the same bytes.
 */
import * as fs from 'node:fs'

export interface HeaderFields {
  /** latin1 */
  name: string
  type: string
  mode: number
  uid?: number
  gid?: number
  size?: number
  mtime?: number
  linkname?: string
  devmajor?: number
  devminor?: number
  /** name (latin1) → value */
  xattrs?: Map<string, Buffer>
}

function octal(v: number, len: number): string {
  return v.toString(8).padStart(len - 1, '0') + '\0'
}

function rawHeader(f: HeaderFields, name: Buffer, prefix: Buffer, linkname: Buffer, size: number, type: string): Buffer {
  const h = Buffer.alloc(512)
  name.copy(h, 0, 0, 100)
  h.write(octal(f.mode & 0o7777, 8), 100, 'latin1')
  h.write(octal(Math.min(f.uid ?? 0, 0o7777777), 8), 108, 'latin1')
  h.write(octal(Math.min(f.gid ?? 0, 0o7777777), 8), 116, 'latin1')
  h.write(octal(Math.min(size, 0o77777777777), 12), 124, 'latin1')
  h.write(octal(Math.max(0, Math.min(f.mtime ?? 0, 0o77777777777)), 12), 136, 'latin1')
  h.write(type, 156, 'latin1')
  linkname.copy(h, 157, 0, 100)
  h.write('ustar\x0000', 257, 'latin1')
  h.write(octal(f.devmajor ?? 0, 8), 329, 'latin1')
  h.write(octal(f.devminor ?? 0, 8), 337, 'latin1')
  prefix.copy(h, 345, 0, 155)
  h.fill(0x20, 148, 156)
  let sum = 0
  for (const c of h) sum += c
  h.write(octal(sum, 7) + ' ', 148, 'latin1')
  return h
}

function paxRecord(key: Buffer, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(' '), key, Buffer.from('='), value, Buffer.from('\n')])
  let len = body.length + 1
  while (String(len).length + body.length !== len) len++
  return Buffer.concat([Buffer.from(String(len)), body])
}

export const pad = (size: number): Buffer => Buffer.alloc((512 - (size % 512)) % 512)

/** ustar split of a long name into prefix + name, or null if it does not fit. */
function splitName(name: Buffer): [Buffer, Buffer] | null {
  if (name.length <= 100) return [Buffer.alloc(0), name]
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] === 0x2f && i <= 155 && name.length - i - 1 <= 100 && name.length - i - 1 > 0) {
      return [name.subarray(0, i), name.subarray(i + 1)]
    }
  }
  return null
}

export function header(f: HeaderFields): Buffer {
  const name = Buffer.from(f.name, 'latin1')
  const link = Buffer.from(f.linkname ?? '', 'latin1')
  const size = f.size ?? 0
  const records: Buffer[] = []
  const split = splitName(name)
  if (!split) records.push(paxRecord(Buffer.from('path'), name))
  if (link.length > 100) records.push(paxRecord(Buffer.from('linkpath'), link))
  if ((f.uid ?? 0) > 0o7777777) records.push(paxRecord(Buffer.from('uid'), Buffer.from(String(f.uid))))
  if ((f.gid ?? 0) > 0o7777777) records.push(paxRecord(Buffer.from('gid'), Buffer.from(String(f.gid))))
  if (size > 0o77777777777) records.push(paxRecord(Buffer.from('size'), Buffer.from(String(size))))
  for (const [k, v] of [...(f.xattrs ?? new Map<string, Buffer>())].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    records.push(paxRecord(Buffer.concat([Buffer.from('SCHILY.xattr.'), Buffer.from(k, 'latin1')]), v))
  }
  const [prefix, short] = split ?? [Buffer.alloc(0), name.subarray(0, 100)]
  const main = rawHeader(f, short, prefix, link.subarray(0, 100), size, f.type)
  if (!records.length) return main
  const body = Buffer.concat(records)
  const paxName = Buffer.from(`PaxHeaders/${short.toString('latin1')}`.slice(0, 100), 'latin1')
  return Buffer.concat([rawHeader({ name: '', type: 'x', mode: 0o644 }, paxName, Buffer.alloc(0), Buffer.alloc(0), body.length, 'x'), body, pad(body.length), main])
}

/** End-of-archive: two zero blocks. */
export const TRAILER = Buffer.alloc(1024)

/** Sequential writer to a file descriptor. */
export class TarFileWriter {
  readonly fd: number
  written = 0
  constructor(file: string) {
    this.fd = fs.openSync(file, 'wx', 0o600)
  }

  write(b: Buffer): void {
    let off = 0
    while (off < b.length) off += fs.writeSync(this.fd, b, off, b.length - off)
    this.written += b.length
  }

  async writeStream(src: AsyncIterable<Buffer>): Promise<number> {
    let n = 0
    for await (const b of src) {
      this.write(b)
      n += b.length
    }
    return n
  }

  /** Adds a member whose payload is a buffer. */
  addBuffer(name: string, data: Buffer, mode = 0o644): void {
    this.write(header({ name, type: '0', mode, size: data.length }))
    this.write(data)
    this.write(pad(data.length))
  }

  close(): void {
    this.write(TRAILER)
    fs.fsyncSync(this.fd)
    fs.closeSync(this.fd)
  }
}

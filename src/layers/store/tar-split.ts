/**
 * What is needed to re-create a layer tar byte for byte from its unpacked tree, as Docker's
 * tar-split does (github.com/vbatts/tar-split): the archive is a sequence of segments, either raw
 * bytes kept verbatim (headers, PAX and GNU long-name records, padding, the end-of-archive trailer
 * or its absence, payloads that are not stored as files) or the payload of a regular file, named by
 * its path inside the layer and its size. Saved as gzip'd JSON; names are latin1 strings.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import { pathBuf } from '../../native'
import { FsError } from '../../sys/errors'

export type Segment = { raw: string } | { file: string, size: number }

export class SplitRecorder {
  readonly segments: Segment[] = []
  private pending: Buffer[] = []

  raw(b: Buffer): void {
    if (b.length) this.pending.push(Buffer.from(b))
  }

  file(rel: string, size: number): void {
    this.flush()
    this.segments.push({ file: rel, size })
  }

  flush(): void {
    if (this.pending.length) {
      this.segments.push({ raw: Buffer.concat(this.pending).toString('base64') })
      this.pending = []
    }
  }

  serialize(): Buffer {
    this.flush()
    return zlib.gzipSync(JSON.stringify({ version: 1, segments: this.segments }))
  }
}

/** For reading archives whose bytes need not be kept (image archives). */
export class NullRecorder extends SplitRecorder {
  override raw(): void {}
  override file(): void {}
}

export function loadSplit(file: string): Segment[] {
  const parsed = JSON.parse(zlib.gunzipSync(fs.readFileSync(file)).toString('utf8')) as { version: number, segments: Segment[] }
  if (parsed.version !== 1) throw new FsError('EINVAL', `${file}: unknown tar-split version ${parsed.version}`)
  return parsed.segments
}

/** Streams the re-created tar. `diffRoot` is the layer's tree (a normal JS path string). */
export async function* reassemble(segments: Segment[], diffRoot: string): AsyncGenerator<Buffer> {
  const rootBuf = pathBuf(Buffer.from(diffRoot, 'utf8').toString('latin1'))
  for (const seg of segments) {
    if ('raw' in seg) {
      yield Buffer.from(seg.raw, 'base64')
      continue
    }
    const abs = Buffer.concat([rootBuf, Buffer.from(path.sep), pathBuf(seg.file)])
    const fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
    try {
      let left = seg.size
      const buf = Buffer.allocUnsafe(1 << 20)
      while (left > 0) {
        const n = fs.readSync(fd, buf, 0, Math.min(left, buf.length), null)
        if (n === 0) throw new FsError('EIO', `${seg.file}: file is shorter than recorded (${seg.size} bytes)`)
        left -= n
        yield Buffer.from(buf.subarray(0, n))
      }
      const extra = fs.readSync(fd, buf, 0, 1, null)
      if (extra !== 0) throw new FsError('EIO', `${seg.file}: file is longer than recorded (${seg.size} bytes)`)
    } finally {
      fs.closeSync(fd)
    }
  }
}

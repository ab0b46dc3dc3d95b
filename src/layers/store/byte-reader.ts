/**
 * Pull-style reading of an async byte stream: exactly-n reads for tar headers, bounded reads for
 * file data. Every byte handed out passes through `onBytes` first (the diffID hash), and the total
 * is checked against a limit as it arrives, so a decompression bomb stops at the limit instead of
 * filling the disk.
 */
import { FsError } from '../../sys/errors'

export class ByteReader {
  private readonly it: AsyncIterator<Buffer | Uint8Array | string>
  private chunks: Buffer[] = []
  private buffered = 0
  private eof = false
  /** bytes handed out so far */
  consumed = 0
  private received = 0

  constructor(
    src: AsyncIterable<Buffer | Uint8Array | string>,
    private readonly onBytes: (b: Buffer) => void = () => {},
    private readonly limit = Number.MAX_SAFE_INTEGER,
    private readonly what = 'input',
  ) {
    this.it = src[Symbol.asyncIterator]()
  }

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.eof) {
      const r = await this.it.next()
      if (r.done) {
        this.eof = true
        break
      }
      const b = typeof r.value === 'string' ? Buffer.from(r.value) : Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value)
      if (b.length === 0) continue
      this.received += b.length
      if (this.received > this.limit) {
        throw new FsError('EFBIG', `${this.what}: uncompressed size exceeds the limit of ${this.limit} bytes (decompression bomb?)`)
      }
      this.chunks.push(b)
      this.buffered += b.length
    }
  }

  private take(n: number): Buffer {
    let out: Buffer
    const first = this.chunks[0]
    if (first && first.length >= n) {
      out = first.subarray(0, n)
      if (first.length === n) this.chunks.shift()
      else this.chunks[0] = first.subarray(n)
    } else {
      out = Buffer.concat(this.chunks, this.buffered).subarray(0, n)
      const rest = Buffer.concat(this.chunks, this.buffered).subarray(n)
      this.chunks = rest.length ? [rest] : []
    }
    this.buffered -= n
    this.consumed += n
    this.onBytes(out)
    return out
  }

  /** Up to n bytes; fewer only at end of stream. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n)
    return this.take(Math.min(n, this.buffered))
  }

  /** Between 1 and max bytes, or an empty buffer at end of stream. */
  async readSome(max: number): Promise<Buffer> {
    if (this.buffered === 0) await this.fill(1)
    const first = this.chunks[0]
    if (!first) return Buffer.alloc(0)
    return this.take(Math.min(max, first.length))
  }

  /** Reads everything that is left. */
  async *rest(): AsyncGenerator<Buffer> {
    for (;;) {
      const b = await this.readSome(1 << 20)
      if (b.length === 0) return
      yield b
    }
  }
}

/**
 * `strata layer import`: a layer tarball (plain or gzip; zstd is not in Node 20's zlib and is not
 * supported) → layers/<hex>/ named by its diffID.
 *
 * The input is hashed twice while it streams: as given (the blob digest a manifest names) and
 * uncompressed (the diffID). Members are unpacked into an op dir (./unpack.ts) together with the
 * tar-split record (./tar-split.ts) and layer.json; the finished directory is published with one
 * RENAME_NOREPLACE under the store lock (STYLE.md lesson 4). If the layer is already there, the
 * unpacked copy is discarded and nothing new is stored. A failed import leaves only its op dir,
 * which is removed on the way out (or by `strata gc` if the process was killed).
 */
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Readable } from 'node:stream'
import * as zlib from 'node:zlib'
import { native, toLatin1 } from '../../native'
import { FsError } from '../../sys/errors'
import { ByteReader } from './byte-reader'
import { withLock } from './lock'
import type { Op } from './ops'
import { Progress } from './progress'
import { fsyncDir, type Store, writeJsonAtomic } from './store'
import { TarReader } from './tar-reader'
import { SplitRecorder } from './tar-split'
import { Unpacker, type UnpackStats } from './unpack'

export interface LayerInfo {
  /** diffID */
  digest: string
  /** bytes of the uncompressed tar */
  size: number
  created: string
  /** digest and size of the blob as it was imported (compressed or not) */
  blob?: { digest: string, size: number, compression: 'gzip' | 'none' }
  stats: UnpackStats
  /** false if the archive stopped without end-of-archive blocks (umoci) */
  trailer: boolean
}

export interface ImportResult {
  info: LayerInfo
  existed: boolean
}

/** Default ceiling for one layer's uncompressed size: STRATA_MAX_LAYER_BYTES or 64 GiB. */
export const maxLayerBytes = (): number => Number(process.env.STRATA_MAX_LAYER_BYTES ?? 64 * 2 ** 30)

async function* hashed(src: AsyncIterable<Buffer>, hash: crypto.Hash, count: { n: number }): AsyncGenerator<Buffer> {
  for await (const b of src) {
    hash.update(b)
    count.n += b.length
    yield b
  }
}

/** Peeks the first bytes to choose gunzip or pass-through. */
export async function decompressed(src: AsyncIterable<Buffer>): Promise<{ stream: AsyncIterable<Buffer>, compression: 'gzip' | 'none' }> {
  const it = src[Symbol.asyncIterator]()
  const head: Buffer[] = []
  let len = 0
  let done = false
  while (len < 4 && !done) {
    const r = await it.next()
    if (r.done) done = true
    else {
      head.push(r.value)
      len += r.value.length
    }
  }
  const first = Buffer.concat(head)
  async function* replay(): AsyncGenerator<Buffer> {
    if (first.length) yield first
    if (done) return
    for (;;) {
      const r = await it.next()
      if (r.done) return
      yield r.value
    }
  }
  if (first[0] === 0x1f && first[1] === 0x8b) {
    const gunzip = zlib.createGunzip()
    const input = Readable.from(replay())
    input.on('error', (err) => gunzip.destroy(err))
    input.pipe(gunzip)
    return { stream: gunzip, compression: 'gzip' }
  }
  if (first[0] === 0x28 && first[1] === 0xb5 && first[2] === 0x2f && first[3] === 0xfd) {
    throw new FsError('EINVAL', 'zstd-compressed layers are not supported (Node 20 has no zstd); decompress first')
  }
  return { stream: replay(), compression: 'none' }
}

export interface ImportOptions {
  /** what to call the input in messages */
  label: string
  expectBlobDigest?: string
  expectDiffId?: string
  progressTotal?: number
}

export async function importLayer(store: Store, op: Op, input: AsyncIterable<Buffer>, opts: ImportOptions): Promise<ImportResult> {
  const work = op.path('layer')
  fs.mkdirSync(work, { mode: 0o700 })
  const diff = path.join(work, 'diff')
  fs.mkdirSync(diff, { mode: 0o755 })

  const blobHash = crypto.createHash('sha256')
  const blobCount = { n: 0 }
  const progress = new Progress(`importing ${opts.label}`, opts.progressTotal)
  const raw = hashed(input, blobHash, blobCount)
  const { stream, compression } = await decompressed(raw)
  const diffHash = crypto.createHash('sha256')
  const br = new ByteReader(stream, (b) => {
    diffHash.update(b)
    progress.tick(blobCount.n)
  }, maxLayerBytes(), opts.label)
  const rec = new SplitRecorder()
  const tr = new TarReader(br, rec)
  const unpacker = new Unpacker(toLatin1(diff))
  try {
    for (;;) {
      const e = await tr.next()
      if (!e) break
      await unpacker.apply(e, tr)
    }
    unpacker.finish()
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'Z_DATA_ERROR' || code === 'Z_BUF_ERROR') throw new FsError('EINVAL', `${opts.label}: corrupt gzip stream (${(err as Error).message})`)
    if (err instanceof FsError) throw new FsError(err.code, `${opts.label}: ${err.message}`)
    throw err
  } finally {
    progress.done()
  }
  // drain whatever the decompressor still holds (gzip trailer) so the blob digest is complete
  for await (const b of raw) void b

  const digest = `sha256:${diffHash.digest('hex')}`
  const blobDigest = `sha256:${blobHash.digest('hex')}`
  if (opts.expectBlobDigest && opts.expectBlobDigest !== blobDigest) {
    throw new FsError('EINVAL', `${opts.label}: blob digest is ${blobDigest}, expected ${opts.expectBlobDigest}`)
  }
  if (opts.expectDiffId && opts.expectDiffId !== digest) {
    throw new FsError('EINVAL', `${opts.label}: diffID is ${digest}, expected ${opts.expectDiffId}`)
  }
  const info: LayerInfo = {
    digest,
    size: br.consumed,
    created: new Date().toISOString(),
    blob: { digest: blobDigest, size: blobCount.n, compression },
    stats: unpacker.stats,
    trailer: tr.sawTrailer,
  }
  fs.writeFileSync(path.join(work, 'tar-split.json.gz'), rec.serialize())
  writeJsonAtomic(path.join(work, 'layer.json'), info)
  op.pin(digest)
  const dest = store.layerDir(digest)
  const existed = await withLock(store, () => {
    const r = native.rename(toLatin1(work), toLatin1(dest), native.RENAME_NOREPLACE)
    if (r === 0) {
      fsyncDir(store.layersDir)
      return false
    }
    if (r === -17 /* EEXIST */ || r === -39 /* ENOTEMPTY */) return true
    throw FsError.fromErrno(r, 'rename', dest)
  })
  if (existed) {
    op.discard(work)
    return { info: readLayerInfo(store, digest), existed }
  }
  return { info, existed }
}

export function readLayerInfo(store: Store, digest: string): LayerInfo {
  try {
    return JSON.parse(fs.readFileSync(path.join(store.layerDir(digest), 'layer.json'), 'utf8')) as LayerInfo
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FsError('ENOENT', `layer ${digest}: not found`)
    throw err
  }
}

export const layerPresent = (store: Store, digest: string): boolean => fs.existsSync(path.join(store.layerDir(digest), 'layer.json'))

/** Imports a file path, or '-' for stdin. */
export async function importLayerFile(store: Store, op: Op, file: string, opts: Partial<ImportOptions> = {}): Promise<ImportResult> {
  if (file === '-') return importLayer(store, op, process.stdin, { label: 'stdin', ...opts })
  let size: number | undefined
  try {
    size = fs.statSync(file).size
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FsError('ENOENT', `${file}: not found`)
    throw err
  }
  return importLayer(store, op, fs.createReadStream(file, { highWaterMark: 1 << 20 }), { label: file, progressTotal: size, ...opts })
}

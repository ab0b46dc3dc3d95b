/**
 * The store root and its crash-safe file primitives.
 *
 * Vocabulary (see STYLE.md): a *layer* is an immutable tree named by its *diffID* (sha256 of the
 * uncompressed tar); an *image* is a config + manifest (blobs) naming layers bottom-first; a
 * *container* is an *upper* + *work* directory on top of an image.
 *
 * Layout (everything below ROOT; published only by rename, so a crash never leaves a half-written
 * object where a reader looks):
 *   ROOT/lock                         store lock (./lock.ts)
 *   ROOT/tmp/op-<pid>-<start>-<rand>/ scratch space of one running command; its pins file names the
 *                                     layers the command is about to reference. `strata gc` removes
 *                                     op dirs whose process is gone (./ops.ts)
 *   ROOT/layers/<hex>/diff/           the unpacked layer, kernel overlayfs whiteout format
 *   ROOT/layers/<hex>/layer.json      LayerInfo
 *   ROOT/layers/<hex>/tar-split.json.gz  what is needed to re-create the tar byte for byte
 *   ROOT/blobs/sha256/<hex>           image configs and manifests
 *   ROOT/images.json                  the image records
 *   ROOT/containers/<id>/             container.json, upper/, work/, merged/
 *   ROOT/volumes/<name>/              volume.json, _data/ (data volumes, ./volumes.ts)
 * Layer dirs are named by the bare hex (no "sha256:") because ':' separates overlayfs lowerdirs.
 *
 * This module must not know about tar, FUSE or the CLI.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { FsError } from '../../sys/errors'

export const DEFAULT_ROOT = '/var/lib/strata'

export function resolveRoot(opt?: string): string {
  return path.resolve(opt ?? process.env.STRATA_ROOT ?? DEFAULT_ROOT)
}

const HEX64 = /^[0-9a-f]{64}$/

/** "sha256:<hex>" → "<hex>", rejecting anything else (digests become path components). */
export function digestHex(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest)
  if (!m?.[1]) throw new FsError('EINVAL', `invalid digest "${digest}" (want sha256:<64 hex digits>)`)
  return m[1]
}

export const isHex64 = (s: string): boolean => HEX64.test(s)

export class Store {
  readonly root: string
  constructor(root: string) {
    this.root = root
  }

  get tmpDir(): string { return path.join(this.root, 'tmp') }
  get layersDir(): string { return path.join(this.root, 'layers') }
  get blobsDir(): string { return path.join(this.root, 'blobs', 'sha256') }
  get containersDir(): string { return path.join(this.root, 'containers') }
  get volumesDir(): string { return path.join(this.root, 'volumes') }
  get imagesFile(): string { return path.join(this.root, 'images.json') }
  get lockFile(): string { return path.join(this.root, 'lock') }

  layerDir(digest: string): string { return path.join(this.layersDir, digestHex(digest)) }
  blobPath(digest: string): string { return path.join(this.blobsDir, digestHex(digest)) }
  containerDir(id: string): string { return path.join(this.containersDir, id) }

  /** Creates the skeleton; safe to call concurrently and repeatedly. */
  init(): void {
    for (const d of [this.root, this.tmpDir, this.layersDir, this.blobsDir, this.containersDir, this.volumesDir]) {
      fs.mkdirSync(d, { recursive: true, mode: 0o700 })
    }
  }
}

export function fsyncDir(dir: string): void {
  let fd: number | undefined
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
    fs.fsyncSync(fd)
  } catch {
    // best effort: some filesystems refuse fsync on directories
  } finally {
    if (fd !== undefined) fs.closeSync(fd)
  }
}

/** Write temp file beside `file`, fsync, rename over it, fsync the directory. */
export function writeFileAtomic(file: string, data: string | Buffer, mode = 0o644): void {
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`
  const fd = fs.openSync(tmp, 'wx', mode)
  try {
    const buf = typeof data === 'string' ? Buffer.from(data) : data
    let off = 0
    while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off)
    fs.fsyncSync(fd)
  } finally {
    fs.closeSync(fd)
  }
  try {
    fs.renameSync(tmp, file)
  } catch (err) {
    fs.rmSync(tmp, { force: true })
    throw err
  }
  fsyncDir(path.dirname(file))
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`)
}

export function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T
}

export function readJsonOr<T>(file: string, fallback: T): T {
  try {
    return readJson<T>(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return fallback
    throw err
  }
}

export const notFound = (what: string): FsError => new FsError('ENOENT', `${what}: not found`)
export const conflict = (what: string): FsError => new FsError('EBUSY', what)
export const invalid = (what: string): FsError => new FsError('EINVAL', what)

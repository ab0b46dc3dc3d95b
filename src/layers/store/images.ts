/**
 * Images: import from what `podman save` writes (docker-archive, oci-archive) and OCI image layout
 * directories (OCI image-spec image-layout.md); save as an oci-archive `podman load` accepts.
 *
 * An image is its config blob (the id is the config's digest, as in podman and docker) plus the
 * layers it names by diffID. strata keeps one manifest form: OCI, with uncompressed layer
 * descriptors (digest = diffID), because stored layers are re-created byte for byte from their
 * trees; so `image save` writes the very layer digests that were imported, and the config (hence
 * the image id) is unchanged. Compressed blob digests of the source are checked at import only.
 * Every digest read from an archive is verified before it is trusted.
 */
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { FsError } from '../../sys/errors'
import { ByteReader } from './byte-reader'
import { decompressed, importLayerFile, layerPresent, maxLayerBytes, readLayerInfo } from './layer-import'
import { exportLayer } from './layers'
import { withLock } from './lock'
import type { Op } from './ops'
import { Progress } from './progress'
import { canonicalName, findImage, type ImageRecord, loadContainers, loadImages, saveImages } from './records'
import { digestHex, fsyncDir, type Store, writeFileAtomic } from './store'
import { TarReader } from './tar-reader'
import { header, pad, TarFileWriter } from './tar-writer'
import { NullRecorder } from './tar-split'
import { normalizeName } from './unpack'

export const MT_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
export const MT_INDEX = 'application/vnd.oci.image.index.v1+json'
export const MT_CONFIG = 'application/vnd.oci.image.config.v1+json'
export const MT_LAYER = 'application/vnd.oci.image.layer.v1.tar'
const REF_ANNOTATION = 'org.opencontainers.image.ref.name'

interface Descriptor { mediaType?: string, digest: string, size?: number, annotations?: Record<string, string>, platform?: { os?: string, architecture?: string } }
interface Manifest { mediaType?: string, config: Descriptor, layers: Descriptor[], manifests?: Descriptor[] }
export interface ImageConfig {
  created?: string
  architecture?: string
  os?: string
  config?: unknown
  rootfs: { type: string, diff_ids: string[] }
  history?: { created?: string, created_by?: string, comment?: string, empty_layer?: boolean }[]
}

export type Log = (line: string) => void

const sha256 = (b: Buffer): string => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`

function parseJson<T>(b: Buffer, what: string): T {
  try {
    return JSON.parse(b.toString('utf8')) as T
  } catch (err) {
    throw new FsError('EINVAL', `${what}: invalid JSON (${(err as Error).message})`)
  }
}

export function writeBlob(store: Store, data: Buffer): string {
  const digest = sha256(data)
  const file = store.blobPath(digest)
  if (!fs.existsSync(file)) writeFileAtomic(file, data)
  return digest
}

export function readBlob(store: Store, digest: string): Buffer {
  const data = fs.readFileSync(store.blobPath(digest))
  if (sha256(data) !== digest) throw new FsError('EIO', `blob ${digest} is corrupt`)
  return data
}

export function readConfig(store: Store, img: ImageRecord): ImageConfig {
  return parseJson<ImageConfig>(readBlob(store, img.config), `config ${img.config}`)
}

/**
 * Records an image whose layers are all present: writes the config and an OCI manifest, then
 * (under the lock) adds the record or merges names into an existing one. A name moves to this
 * image if another image held it.
 */
export async function registerImage(store: Store, configBytes: Buffer, names: string[]): Promise<{ image: ImageRecord, existed: boolean }> {
  const config = parseJson<ImageConfig>(configBytes, 'image config')
  const diffIds = config.rootfs?.diff_ids
  if (!Array.isArray(diffIds)) throw new FsError('EINVAL', 'image config has no rootfs.diff_ids')
  const manifest = {
    schemaVersion: 2,
    mediaType: MT_MANIFEST,
    config: { mediaType: MT_CONFIG, digest: sha256(configBytes), size: configBytes.length },
    layers: diffIds.map((d) => ({ mediaType: MT_LAYER, digest: d, size: readLayerInfo(store, d).size })),
  }
  const canon = names.map(canonicalName)
  return withLock(store, () => {
    // blobs are written under the lock so a concurrent gc cannot take them before the record exists
    const configDigest = writeBlob(store, configBytes)
    const manifestDigest = writeBlob(store, Buffer.from(JSON.stringify(manifest)))
    const images = loadImages(store)
    for (const d of diffIds) if (!layerPresent(store, d)) throw new FsError('ENOENT', `layer ${d}: not found`)
    for (const i of images) i.names = i.names.filter((n) => !canon.includes(n))
    let image = images.find((i) => i.id === configDigest)
    const existed = image !== undefined
    if (!image) {
      image = { id: configDigest, names: [], layers: diffIds, config: configDigest, manifest: manifestDigest, created: new Date().toISOString() }
      images.push(image)
    }
    for (const n of canon) if (!image.names.includes(n)) image.names.push(n)
    saveImages(store, images)
    return { image, existed }
  })
}

async function importLayers(store: Store, op: Op, files: { file: string, diffId: string, blobDigest?: string }[], log: Log): Promise<void> {
  for (const l of files) {
    op.pin(l.diffId)
    if (layerPresent(store, l.diffId)) {
      log(`layer ${l.diffId} already present`)
      continue
    }
    const r = await importLayerFile(store, op, l.file, { expectDiffId: l.diffId, ...(l.blobDigest ? { expectBlobDigest: l.blobDigest } : {}) })
    log(r.existed ? `layer ${l.diffId} already present` : `imported layer ${l.diffId}`)
  }
}

/** Path of a blob inside a layout dir; the digest is validated before it becomes a path. */
const layoutBlob = (dir: string, digest: string): string => path.join(dir, 'blobs', 'sha256', digestHex(digest))

function readVerified(file: string, digest: string, what: string): Buffer {
  let data: Buffer
  try {
    data = fs.readFileSync(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new FsError('ENOENT', `${what} ${digest}: blob missing from archive`)
    throw err
  }
  if (sha256(data) !== digest) throw new FsError('EINVAL', `${what} ${digest}: content does not match its digest`)
  return data
}

export async function importLayout(store: Store, op: Op, dir: string, tags: string[], log: Log): Promise<ImageRecord> {
  const index = parseJson<Manifest>(fs.readFileSync(path.join(dir, 'index.json')), `${dir}/index.json`)
  let desc: Descriptor | undefined
  let candidates = index.manifests ?? []
  for (let depth = 0; depth < 4; depth++) {
    desc = candidates.length === 1 ? candidates[0] : candidates.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64') ?? candidates[0]
    if (!desc) throw new FsError('EINVAL', `${dir}: index.json names no manifest`)
    if (desc.mediaType !== MT_INDEX) break
    candidates = parseJson<Manifest>(readVerified(layoutBlob(dir, desc.digest), desc.digest, 'index'), 'index').manifests ?? []
  }
  if (!desc) throw new FsError('EINVAL', `${dir}: no manifest`)
  const manifest = parseJson<Manifest>(readVerified(layoutBlob(dir, desc.digest), desc.digest, 'manifest'), 'manifest')
  const configBytes = readVerified(layoutBlob(dir, manifest.config.digest), manifest.config.digest, 'config')
  const config = parseJson<ImageConfig>(configBytes, 'config')
  const diffIds = config.rootfs?.diff_ids ?? []
  if (diffIds.length !== manifest.layers.length) throw new FsError('EINVAL', `manifest has ${manifest.layers.length} layers but config names ${diffIds.length}`)
  await importLayers(store, op, manifest.layers.map((l, i) => ({ file: layoutBlob(dir, l.digest), diffId: diffIds[i]!, blobDigest: l.digest })), log)
  const ref = desc.annotations?.[REF_ANNOTATION]
  const names = tags.length ? tags : ref && /[/:]/.test(ref) ? [ref] : []
  const { image, existed } = await registerImage(store, configBytes, names)
  log(`${existed ? 'image already present' : 'imported image'} ${image.id}${image.names.length ? ` (${image.names.join(', ')})` : ''}`)
  return image
}

async function importDockerArchive(store: Store, op: Op, dir: string, tags: string[], log: Log): Promise<ImageRecord> {
  const manifests = parseJson<{ Config: string, RepoTags?: string[] | null, Layers: string[] }[]>(fs.readFileSync(path.join(dir, 'manifest.json')), 'manifest.json')
  const m = manifests[0]
  if (!m || typeof m.Config !== 'string' || !Array.isArray(m.Layers)) throw new FsError('EINVAL', 'manifest.json: no image')
  const inside = (p: string): string => path.join(dir, normalizeName(p))
  const configBytes = fs.readFileSync(inside(m.Config))
  const config = parseJson<ImageConfig>(configBytes, m.Config)
  const diffIds = config.rootfs?.diff_ids ?? []
  if (diffIds.length !== m.Layers.length) throw new FsError('EINVAL', `manifest.json lists ${m.Layers.length} layers but the config names ${diffIds.length}`)
  // `<id>/layer.tar` entries are symlinks in podman's archives; manifest.json's Layers are the files
  await importLayers(store, op, m.Layers.map((l, i) => ({ file: inside(l), diffId: diffIds[i]! })), log)
  const { image, existed } = await registerImage(store, configBytes, tags.length ? tags : m.RepoTags ?? [])
  log(`${existed ? 'image already present' : 'imported image'} ${image.id}${image.names.length ? ` (${image.names.join(', ')})` : ''}`)
  return image
}

/**
 * Unpacks an image archive (tar, maybe gzip) into dir: directories and regular files only
 * (symlinks, like docker-archive's legacy layer.tar links, are skipped); names are normalized as
 * for layers, so nothing lands outside dir.
 */
async function extractArchive(file: string, dir: string): Promise<void> {
  const { stream } = await decompressed(fs.createReadStream(file, { highWaterMark: 1 << 20 }))
  const progress = new Progress(`reading ${file}`)
  const br = new ByteReader(stream, () => progress.tick(br.consumed), maxLayerBytes() * 4, file)
  const tr = new TarReader(br, new NullRecorder())
  fs.mkdirSync(dir, { recursive: true })
  try {
    for (;;) {
      const e = await tr.next()
      if (!e) break
      const rel = normalizeName(e.name)
      if (rel === '') continue
      const abs = path.join(dir, rel)
      if (e.type === '5') {
        fs.mkdirSync(abs, { recursive: true })
      } else if (e.type === '0') {
        fs.mkdirSync(path.dirname(abs), { recursive: true })
        const fd = fs.openSync(abs, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600)
        try {
          await tr.readData((b) => {
            let off = 0
            while (off < b.length) off += fs.writeSync(fd, b, off, b.length - off)
          })
        } finally {
          fs.closeSync(fd)
        }
      }
    }
  } finally {
    progress.done()
  }
}

/** ARCHIVE is an OCI layout dir, an oci-archive or a docker-archive (tar or tar.gz). */
export async function importImage(store: Store, op: Op, archive: string, tags: string[], log: Log): Promise<ImageRecord> {
  let st: fs.Stats
  try {
    st = fs.statSync(archive)
  } catch {
    throw new FsError('ENOENT', `${archive}: not found`)
  }
  let dir = archive
  if (!st.isDirectory()) {
    dir = op.path('archive')
    await extractArchive(archive, dir)
  }
  if (fs.existsSync(path.join(dir, 'oci-layout')) && fs.existsSync(path.join(dir, 'index.json'))) return importLayout(store, op, dir, tags, log)
  if (fs.existsSync(path.join(dir, 'manifest.json'))) return importDockerArchive(store, op, dir, tags, log)
  throw new FsError('EINVAL', `${archive}: neither an OCI layout nor a docker-archive (no oci-layout or manifest.json)`)
}

/** Writes IMAGE as an oci-archive at `file` (temp + rename). */
export async function saveImage(store: Store, ref: string, file: string): Promise<ImageRecord> {
  const img = findImage(loadImages(store), ref)
  const manifestBytes = readBlob(store, img.manifest)
  const configBytes = readBlob(store, img.config)
  const index = {
    schemaVersion: 2,
    mediaType: MT_INDEX,
    manifests: [{
      mediaType: MT_MANIFEST,
      digest: img.manifest,
      size: manifestBytes.length,
      ...(img.names[0] ? { annotations: { [REF_ANNOTATION]: img.names[0] } } : {}),
    }],
  }
  const tmp = `${file}.tmp-${process.pid}`
  const w = new TarFileWriter(tmp)
  try {
    w.addBuffer('oci-layout', Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' })))
    w.addBuffer('index.json', Buffer.from(JSON.stringify(index)))
    w.write(header({ name: 'blobs/', type: '5', mode: 0o755 }))
    w.write(header({ name: 'blobs/sha256/', type: '5', mode: 0o755 }))
    w.addBuffer(`blobs/sha256/${digestHex(img.manifest)}`, manifestBytes)
    w.addBuffer(`blobs/sha256/${digestHex(img.config)}`, configBytes)
    const total = img.layers.reduce((n, d) => n + readLayerInfo(store, d).size, 0)
    const progress = new Progress(`saving ${ref}`, total)
    let done = 0
    try {
      for (const d of img.layers) {
        const info = readLayerInfo(store, d)
        w.write(header({ name: `blobs/sha256/${digestHex(d)}`, type: '0', mode: 0o644, size: info.size }))
        const hash = crypto.createHash('sha256')
        let n = 0
        for await (const b of exportLayer(store, d)) {
          hash.update(b)
          n += b.length
          w.write(b)
          progress.tick(done + n)
        }
        done += n
        if (n !== info.size || `sha256:${hash.digest('hex')}` !== d) throw new FsError('EIO', `layer ${d} no longer matches its digest (run strata layer verify)`)
        w.write(pad(n))
      }
    } finally {
      progress.done()
    }
    w.close()
    fs.renameSync(tmp, file)
    fsyncDir(path.dirname(path.resolve(file)))
  } catch (err) {
    fs.rmSync(tmp, { force: true })
    throw err
  }
  return img
}

export async function tagImage(store: Store, ref: string, name: string): Promise<ImageRecord> {
  const canon = canonicalName(name)
  return withLock(store, () => {
    const images = loadImages(store)
    const img = findImage(images, ref)
    for (const i of images) i.names = i.names.filter((n) => n !== canon)
    img.names.push(canon)
    saveImages(store, images)
    return img
  })
}

/** Untags `ref` if it is one of several names; otherwise removes the image (refused while used). */
export async function removeImage(store: Store, ref: string): Promise<{ untagged?: string, removed?: string }> {
  return withLock(store, () => {
    const images = loadImages(store)
    const img = findImage(images, ref)
    const name = img.names.find((n) => n === ref) ?? (img.names.includes(safeCanonical(ref)) ? safeCanonical(ref) : undefined)
    if (name && img.names.length > 1) {
      img.names = img.names.filter((n) => n !== name)
      saveImages(store, images)
      return { untagged: name }
    }
    const users = loadContainers(store).filter((c) => c.image === img.id)
    if (users.length) throw new FsError('EBUSY', `image ${ref} is in use by container(s) ${users.map((c) => c.name).join(', ')}`)
    saveImages(store, images.filter((i) => i !== img))
    return { removed: img.id }
  })
}

function safeCanonical(ref: string): string {
  try {
    return canonicalName(ref)
  } catch {
    return ref
  }
}

export interface HistoryRow { created?: string, createdBy: string, size: number | null, layer: string | null, comment?: string }

/** History entries of the config, paired with layers (empty_layer entries have none). */
export function imageHistory(store: Store, img: ImageRecord): HistoryRow[] {
  const config = readConfig(store, img)
  const rows: HistoryRow[] = []
  let li = 0
  const history: NonNullable<ImageConfig['history']> = config.history ?? img.layers.map(() => ({}))
  for (const h of history) {
    const layer = h.empty_layer ? null : img.layers[li++] ?? null
    rows.push({
      ...(h.created ? { created: h.created } : {}),
      createdBy: h.created_by ?? '',
      size: layer ? readLayerInfo(store, layer).size : null,
      layer,
      ...(h.comment ? { comment: h.comment } : {}),
    })
  }
  for (; li < img.layers.length; li++) {
    const layer = img.layers[li]!
    rows.push({ createdBy: '', size: readLayerInfo(store, layer).size, layer })
  }
  return rows.reverse()
}

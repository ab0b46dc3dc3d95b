/**
 * The store's metadata records: images.json (all images, one atomic file) and
 * containers/<id>/container.json. Readers take no lock (every file is replaced by rename, so a
 * reader sees the old or the new version); writers hold the store lock (./lock.ts) around their
 * read-modify-write.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { FsError } from '../../sys/errors'
import { readJsonOr, type Store, writeJsonAtomic } from './store'
import type { VolumeMount } from './volumes'

export interface ImageRecord {
  /** sha256 of the config blob, as podman and docker name images */
  id: string
  names: string[]
  /** diffIDs, bottom first */
  layers: string[]
  config: string
  manifest: string
  created: string
}

export interface ContainerRecord {
  id: string
  name: string
  image: string
  created: string
  mount?: { mountpoint: string, at: string }
  /** data volumes served inside the merged view (./volumes.ts); absent means none */
  volumes?: VolumeMount[]
}

export function loadImages(store: Store): ImageRecord[] {
  return readJsonOr<{ images: ImageRecord[] }>(store.imagesFile, { images: [] }).images
}

export function saveImages(store: Store, images: ImageRecord[]): void {
  writeJsonAtomic(store.imagesFile, { images })
}

/** Turns a short name into the canonical form podman uses: "alpine" → "localhost/alpine:latest". */
export function canonicalName(name: string): string {
  if (!/^[a-zA-Z0-9][a-zA-Z0-9._\-/:@]*$/.test(name)) throw new FsError('EINVAL', `invalid image name "${name}"`)
  let n = name
  const lastSlash = n.lastIndexOf('/')
  if (!n.slice(lastSlash + 1).includes(':') && !n.includes('@')) n += ':latest'
  const first = n.split('/')[0] ?? ''
  if (!n.includes('/') || !(first.includes('.') || first.includes(':') || first === 'localhost')) n = `localhost/${n}`
  return n
}

/** Finds an image by name (short or canonical), full id, or unique id prefix. */
export function findImage(images: ImageRecord[], ref: string): ImageRecord {
  const byName = images.find((i) => i.names.includes(ref))
  if (byName) return byName
  let canonical: string | undefined
  try {
    canonical = canonicalName(ref)
  } catch {
    canonical = undefined
  }
  const byCanonical = canonical === undefined ? undefined : images.find((i) => i.names.includes(canonical))
  if (byCanonical) return byCanonical
  const hex = ref.replace(/^sha256:/, '')
  if (/^[0-9a-f]{3,64}$/.test(hex)) {
    const hits = images.filter((i) => i.id.slice(7).startsWith(hex))
    if (hits.length === 1 && hits[0]) return hits[0]
    if (hits.length > 1) throw new FsError('EINVAL', `image id prefix "${ref}" is ambiguous`)
  }
  throw new FsError('ENOENT', `image ${ref}: not found`)
}

export function loadContainers(store: Store): ContainerRecord[] {
  let ids: string[]
  try {
    ids = fs.readdirSync(store.containersDir)
  } catch {
    return []
  }
  const out: ContainerRecord[] = []
  for (const id of ids) {
    try {
      out.push(JSON.parse(fs.readFileSync(path.join(store.containerDir(id), 'container.json'), 'utf8')) as ContainerRecord)
    } catch {
      // a container dir without a record is a leftover; gc removes it
    }
  }
  return out.sort((a, b) => a.created.localeCompare(b.created))
}

export function saveContainer(store: Store, c: ContainerRecord): void {
  writeJsonAtomic(path.join(store.containerDir(c.id), 'container.json'), c)
}

export function findContainer(containers: ContainerRecord[], ref: string): ContainerRecord {
  const exact = containers.find((c) => c.name === ref || c.id === ref)
  if (exact) return exact
  if (/^[0-9a-f]{3,64}$/.test(ref)) {
    const hits = containers.filter((c) => c.id.startsWith(ref))
    if (hits.length === 1 && hits[0]) return hits[0]
  }
  throw new FsError('ENOENT', `container ${ref}: not found`)
}

/** Who uses a layer: image names/ids and container names. */
export function layerUsers(store: Store, digest: string): string[] {
  const images = loadImages(store)
  const users: string[] = []
  for (const i of images) if (i.layers.includes(digest)) users.push(`image ${i.names[0] ?? i.id.slice(7, 19)}`)
  for (const c of loadContainers(store)) {
    const img = images.find((i) => i.id === c.image)
    if (img?.layers.includes(digest)) users.push(`container ${c.name}`)
  }
  return users
}

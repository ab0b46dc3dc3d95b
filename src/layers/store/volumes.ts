/**
 * Volumes: directories outside the layer stack that stratafs serves inside a container's merged
 * view (mount option `volume=SRC:DEST[:ro]`, see src/union/volume-fs.ts). Reads and writes go
 * straight to the volume directory: no copy-up, nothing in the container's upper, so the data
 * outlives the container and several containers can share it.
 *
 *   volumes/<name>/volume.json   VolumeRecord
 *   volumes/<name>/_data/        the volume's contents (what stratafs serves)
 *
 * A *named volume* lives in the store; a *bind volume* is a host directory the caller names. A
 * volume is *in use* while any container record names it (mounted or not), as with Docker.
 *
 * A volume is built in an op dir and published with one rename under the store lock; its record is
 * replaced atomically. Removal moves the whole volume dir into the op dir (one rename) before
 * deleting it, so a crash never leaves half a volume under volumes/.
 *
 * Seeding (copying the image's content at the destination into an empty named volume on its first
 * use, as Docker does) needs a mount and lives in ./containers.ts; this module must not know about
 * FUSE or the CLI.
 */
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { FsError } from '../../sys/errors'
import { withLock } from './lock'
import type { Op } from './ops'
import { type ContainerRecord, loadContainers } from './records'
import { readJson, type Store, writeJsonAtomic } from './store'

export interface VolumeRecord {
  name: string
  created: string
  labels: Record<string, string>
  /**
   * Set once a container first used the volume (and seeding was decided): an empty volume is
   * seeded from the image only on its first use.
   */
  initialized?: boolean
}

/** One `--volume` of a container, as stored in its record. */
export interface VolumeMount {
  /** 'volume': `source` is a named volume in the store; 'bind': `source` is an absolute host dir */
  type: 'volume' | 'bind'
  source: string
  /** absolute path inside the container, normalized (no trailing or double slashes) */
  destination: string
  readOnly: boolean
}

export const VOLUME_NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/

export function checkVolumeName(name: string): void {
  if (!VOLUME_NAME_RE.test(name) || name.length > 255) {
    throw new FsError('EINVAL', `invalid volume name "${name}" (letters, digits, '_', '.', '-'; starting with a letter or digit)`)
  }
}

export const volumeDir = (store: Store, name: string): string => path.join(store.volumesDir, name)
export const volumeData = (store: Store, name: string): string => path.join(volumeDir(store, name), '_data')
const recordFile = (store: Store, name: string): string => path.join(volumeDir(store, name), 'volume.json')

/**
 * Parses `SRC:DEST[:ro|:rw]`. SRC starting with '/' is a bind volume, else a volume name. Throws
 * EINVAL with a message meant for the user; the CLI turns it into a usage error.
 */
export function parseVolumeSpec(spec: string): VolumeMount {
  const parts = spec.split(':')
  let readOnly = false
  if (parts.length === 3 && (parts[2] === 'ro' || parts[2] === 'rw')) readOnly = parts.pop() === 'ro'
  const [source, dest] = parts
  if (parts.length !== 2 || !source || !dest) throw new FsError('EINVAL', `--volume takes NAME:/path[:ro] or /host/dir:/path[:ro], not "${spec}"`)
  if (!dest.startsWith('/') || dest.split('/').some((c) => c === '.' || c === '..')) {
    throw new FsError('EINVAL', `volume destination must be an absolute path without . or .., not "${dest}"`)
  }
  const destination = dest.replace(/\/{2,}/g, '/').replace(/\/+$/, '')
  if (destination === '') throw new FsError('EINVAL', 'a volume cannot be mounted at /')
  if (destination.includes(',')) throw new FsError('EINVAL', `volume destination "${dest}" contains ',', which stratafs options cannot carry`)
  if (source.startsWith('/')) {
    if (source.includes(',')) throw new FsError('EINVAL', `bind volume source "${source}" contains ',', which stratafs options cannot carry`)
    return { type: 'bind', source: path.resolve(source), destination, readOnly }
  }
  checkVolumeName(source)
  return { type: 'volume', source, destination, readOnly }
}

export const formatMount = (m: VolumeMount): string => `${m.source}:${m.destination}${m.readOnly ? ':ro' : ''}`

export function loadVolume(store: Store, name: string): VolumeRecord | null {
  checkVolumeName(name)
  try {
    return readJson<VolumeRecord>(recordFile(store, name))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

export function findVolume(store: Store, name: string): VolumeRecord {
  const v = loadVolume(store, name)
  if (!v) throw new FsError('ENOENT', `volume ${name}: not found`)
  return v
}

export function loadVolumes(store: Store): VolumeRecord[] {
  let names: string[]
  try {
    names = fs.readdirSync(store.volumesDir)
  } catch {
    return []
  }
  const out: VolumeRecord[] = []
  for (const n of names) {
    if (!VOLUME_NAME_RE.test(n)) continue
    try {
      out.push(readJson<VolumeRecord>(recordFile(store, n)))
    } catch {
      // a volume dir without a record is a leftover; `strata volume prune` does not guess
    }
  }
  return out.sort((a, b) => a.name.localeCompare(b.name))
}

export function saveVolume(store: Store, v: VolumeRecord): void {
  writeJsonAtomic(recordFile(store, v.name), v)
}

/** Containers whose record names volume `name`. */
export function volumeUsers(containers: ContainerRecord[], name: string): ContainerRecord[] {
  return containers.filter((c) => (c.volumes ?? []).some((m) => m.type === 'volume' && m.source === name))
}

export const generateVolumeName = (): string => crypto.randomBytes(32).toString('hex')

/**
 * Builds a volume in the op dir (its _data is `seed` when given, moved in by rename, else a new
 * root-owned 0755 dir) and publishes it. Caller holds the store lock. EEXIST if the name is taken.
 */
export function publishVolume(store: Store, op: Op, rec: VolumeRecord, seed?: string): void {
  const staged = op.path('volume')
  fs.mkdirSync(staged, { mode: 0o700 })
  if (seed !== undefined) fs.renameSync(seed, path.join(staged, '_data'))
  else fs.mkdirSync(path.join(staged, '_data'), { mode: 0o755 })
  fs.writeFileSync(path.join(staged, 'volume.json'), `${JSON.stringify(rec, null, 2)}\n`)
  fs.mkdirSync(store.volumesDir, { recursive: true, mode: 0o700 })
  try {
    fs.renameSync(staged, volumeDir(store, rec.name))
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST' || code === 'ENOTEMPTY') throw new FsError('EEXIST', `volume ${rec.name} already exists`)
    throw err
  }
}

export async function createVolume(store: Store, op: Op, name: string | undefined, labels: Record<string, string>): Promise<VolumeRecord> {
  const finalName = name ?? generateVolumeName()
  checkVolumeName(finalName)
  return withLock(store, () => {
    const rec: VolumeRecord = { name: finalName, created: new Date().toISOString(), labels }
    publishVolume(store, op, rec)
    return rec
  })
}

export function isEmptyDir(abs: string): boolean {
  const d = fs.opendirSync(abs)
  try {
    return d.readSync() === null
  } finally {
    d.closeSync()
  }
}

/** Bytes on disk under `abs` (st_blocks), hard links counted once; nothing is followed. */
export function diskUsage(abs: string): number {
  const seen = new Set<string>()
  let total = 0
  const walk = (dir: Buffer): void => {
    let names: Buffer[]
    try {
      names = fs.readdirSync(dir, { encoding: 'buffer' })
    } catch {
      return
    }
    for (const n of names) {
      const child = Buffer.concat([dir, Buffer.from('/'), n])
      let st: fs.Stats
      try {
        st = fs.lstatSync(child)
      } catch {
        continue
      }
      const key = `${st.dev}:${st.ino}`
      if (st.nlink > 1 && seen.has(key)) continue
      if (st.nlink > 1) seen.add(key)
      total += st.blocks * 512
      if (st.isDirectory()) walk(child)
    }
  }
  try {
    total += fs.lstatSync(abs).blocks * 512
  } catch {
    return 0
  }
  walk(Buffer.from(abs))
  return total
}

/**
 * Removes volume `name`. Refused (EBUSY, naming the containers) while a container uses it unless
 * `force`; returns the containers that still name it.
 */
export async function removeVolume(store: Store, op: Op, name: string, force: boolean): Promise<{ volume: VolumeRecord, users: string[] }> {
  return withLock(store, () => {
    const v = findVolume(store, name)
    const users = volumeUsers(loadContainers(store), name).map((c) => c.name)
    if (users.length && !force) {
      throw new FsError('EBUSY', `volume ${name} is in use by container${users.length > 1 ? 's' : ''} ${users.join(', ')} (remove ${users.length > 1 ? 'them' : 'it'} first, or use --force)`)
    }
    op.discard(volumeDir(store, name))
    return { volume: v, users }
  })
}

/** Removes every volume no container names; reports names and bytes freed. */
export async function pruneVolumes(store: Store, op: Op, dryRun = false): Promise<{ removed: string[], bytes: number }> {
  return withLock(store, () => {
    const containers = loadContainers(store)
    const removed: string[] = []
    let bytes = 0
    for (const v of loadVolumes(store)) {
      if (volumeUsers(containers, v.name).length) continue
      bytes += diskUsage(volumeData(store, v.name))
      removed.push(v.name)
      if (!dryRun) op.discard(volumeDir(store, v.name))
    }
    return { removed, bytes }
  })
}

/** `label=k=v` or `label=k` filters, all of which must match. */
export function matchesLabels(v: VolumeRecord, filters: { key: string, value?: string }[]): boolean {
  return filters.every((f) => Object.prototype.hasOwnProperty.call(v.labels, f.key) && (f.value === undefined || v.labels[f.key] === f.value))
}

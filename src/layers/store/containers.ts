/**
 * Containers: an upper + work directory on top of an image's layers, mounted with stratafs.
 *
 *   containers/<id>/container.json   ContainerRecord (name, image, mount state)
 *   containers/<id>/upper/           the container's changes, kernel overlayfs format
 *   containers/<id>/work/            overlay workdir
 *   containers/<id>/merged/          default mountpoint
 *   containers/<id>/stratafs.log     the daemon's stderr
 *
 * Mounting runs `stratafs -o lowerdir=TOP:...:BOTTOM,upperdir=U,workdir=W MNT` (the binary is
 * $STRATAFS_BIN or <repo>/bin/stratafs); stratafs exits 0 once the mount is live and serves in the
 * background. A mount whose daemon died answers stat with ENOTCONN ("Transport endpoint is not
 * connected"); mount and umount detect that and detach it first.
 *
 * Data volumes (./volumes.ts) are passed as `volume=SRC:DEST[:ro]` options, so stratafs is still
 * the only mount. A named volume is created on a container's first use of it; an empty one is then
 * seeded from the image's content at DEST: the image is mounted read-only with stratafs in the op
 * dir and `cp -a` copies the directory (modes, owners, times, xattrs, symlinks, hard links) into
 * the op dir; the copy is published under the store lock by rename (or exchanged with the empty
 * _data by RENAME_EXCHANGE). Only the first use seeds; later an empty volume stays empty.
 */
import { spawnSync } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { native, toLatin1 } from '../../native'
import { FsError, isDeadFuseCode } from '../../sys/errors'
import { DT_DIR, LowerTree } from '../lower-tree'
import { diffDir } from './layers'
import { withLock } from './lock'
import type { Op } from './ops'
import { type ContainerRecord, findContainer, findImage, loadContainers, loadImages, saveContainer } from './records'
import { type Store } from './store'
import { isEmptyDir, loadVolume, publishVolume, saveVolume, type VolumeMount, volumeData } from './volumes'

const repoRoot = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../../..' : '../../..')
export const stratafsBin = (): string => process.env.STRATAFS_BIN ?? path.join(repoRoot, 'bin', 'stratafs')

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/

/**
 * Is there a directory at `destination` (absolute) in the image's merged lower view? Every
 * component must be a real directory (not a symlink: stratafs serves the destination literally
 * and refuses a non-directory there), else ENOTDIR.
 */
function imageHasDir(tree: LowerTree, destination: string): boolean {
  let rel = ''
  for (const part of toLatin1(destination).split('/').filter(Boolean)) {
    rel = rel === '' ? part : `${rel}/${part}`
    const e = tree.lookup(rel)
    if (!e) return false
    if (e.dtype !== DT_DIR) throw new FsError('ENOTDIR', `volume destination ${destination}: /${Buffer.from(rel, 'latin1').toString('utf8')} is not a directory in the image`)
  }
  return true
}

/** stratafs over `lowers` only (read-only), at a fresh mountpoint in the op dir. */
function mountReadOnly(op: Op, lowers: string[]): string {
  const mnt = op.path('image-ro')
  fs.mkdirSync(mnt)
  const r = spawnSync(stratafsBin(), ['-o', `lowerdir=${lowers.join(':')}`, mnt], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 })
  if (r.error || r.status !== 0 || !isMountpoint(mnt)) {
    if (isMountpoint(mnt)) detach(mnt)
    throw new FsError('EIO', `stratafs failed to mount the image read-only at ${mnt} (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr ?? '').trim().split('\n').slice(-2).join(' | ')}`)
  }
  return mnt
}

/** Copies the image's directory at `destination` into a new dir in the op dir; returns its path. */
function copyFromImage(op: Op, lowers: string[], destination: string): string {
  const seed = op.path('seed')
  const mnt = mountReadOnly(op, lowers)
  try {
    const r = spawnSync('cp', ['-a', '--', `${mnt}${destination}`, seed], { encoding: 'utf8' })
    if (r.error || r.status !== 0) throw new FsError('EIO', `seeding a volume from the image at ${destination}: cp: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`)
  } finally {
    detach(mnt)
  }
  return seed
}

export async function createContainer(store: Store, op: Op, imageRef: string, name?: string, volumes: VolumeMount[] = []): Promise<ContainerRecord> {
  if (name !== undefined && !NAME_RE.test(name)) throw new FsError('EINVAL', `invalid container name "${name}"`)
  const dests = new Set<string>()
  for (const m of volumes) {
    if (dests.has(m.destination)) throw new FsError('EINVAL', `two volumes at ${m.destination}`)
    dests.add(m.destination)
    if (m.type === 'bind') {
      let st: fs.Stats
      try {
        st = fs.statSync(m.source)
      } catch {
        throw new FsError('ENOENT', `bind volume source ${m.source}: not found`)
      }
      if (!st.isDirectory()) throw new FsError('ENOTDIR', `bind volume source ${m.source}: not a directory`)
      if (/[:,]/.test(m.source)) throw new FsError('EINVAL', `bind volume source ${m.source} contains ':' or ',', which stratafs options cannot carry`)
    }
  }
  const image = findImage(loadImages(store), imageRef)
  const lowers = image.layers.map((d) => diffDir(store, d)).reverse()
  const tree = new LowerTree(lowers.map(toLatin1))
  // seeds are copied before taking the lock (the long part); whether one is used is decided under it
  const seeds = new Map<string, string>()
  for (const m of volumes) {
    if (!imageHasDir(tree, m.destination) || m.type !== 'volume' || seeds.has(m.source)) continue
    const v = loadVolume(store, m.source)
    if (v && (v.initialized || !isEmptyDir(volumeData(store, m.source)))) continue
    seeds.set(m.source, copyFromImage(op, lowers, m.destination))
  }
  const id = crypto.randomBytes(32).toString('hex')
  const work = op.path('container')
  fs.mkdirSync(work, { mode: 0o700 })
  for (const d of ['upper', 'work', 'merged']) fs.mkdirSync(path.join(work, d), { mode: 0o755 })
  return withLock(store, () => {
    const img = findImage(loadImages(store), image.id)
    const containers = loadContainers(store)
    const finalName = name ?? `c-${id.slice(0, 12)}`
    if (containers.some((c) => c.name === finalName)) throw new FsError('EEXIST', `container name "${finalName}" is already in use`)
    const named = [...new Set(volumes.filter((m) => m.type === 'volume').map((m) => m.source))]
    for (const vname of named) {
      const seed = seeds.get(vname)
      const v = loadVolume(store, vname)
      if (!v) {
        publishVolume(store, op, { name: vname, created: new Date().toISOString(), labels: {}, initialized: true }, seed)
      } else if (!v.initialized) {
        const data = volumeData(store, vname)
        if (seed !== undefined && isEmptyDir(data)) {
          if (native.rename(toLatin1(seed), toLatin1(data), native.RENAME_EXCHANGE) < 0) throw new FsError('EIO', `cannot move the seeded data into volume ${vname}`)
        }
        v.initialized = true
        saveVolume(store, v)
      }
    }
    const rec: ContainerRecord = { id, name: finalName, image: img.id, created: new Date().toISOString(), ...(volumes.length ? { volumes } : {}) }
    fs.writeFileSync(path.join(work, 'container.json'), JSON.stringify(rec, null, 2))
    fs.renameSync(work, store.containerDir(id))
    return rec
  })
}

export function containerPaths(store: Store, c: ContainerRecord): { upper: string, work: string, merged: string, log: string } {
  const dir = store.containerDir(c.id)
  return { upper: path.join(dir, 'upper'), work: path.join(dir, 'work'), merged: path.join(dir, 'merged'), log: path.join(dir, 'stratafs.log') }
}

/** Lower dirs of a container's image, top layer first (overlayfs lowerdir order). */
export function lowerDirs(store: Store, c: ContainerRecord): string[] {
  const img = findImage(loadImages(store), c.image)
  return img.layers.map((d) => diffDir(store, d)).reverse()
}

function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

export function isMountpoint(mnt: string): boolean {
  const abs = path.resolve(mnt)
  const lines = fs.readFileSync('/proc/self/mountinfo', 'latin1').split('\n')
  return lines.some((l) => {
    const f = l.split(' ')
    return f[4] !== undefined && Buffer.from(unescapeMountinfo(f[4]), 'latin1').toString('utf8') === abs
  })
}

/** 'live', 'stale' (ENOTCONN: daemon gone) or 'none'. */
export function mountState(mnt: string): 'live' | 'stale' | 'none' {
  try {
    // statfs always reaches the daemon; stat of the root may come from the kernel's cache
    fs.statfsSync(mnt)
  } catch (err) {
    if (isDeadFuseCode((err as NodeJS.ErrnoException).code)) return 'stale'
    return 'none'
  }
  return isMountpoint(mnt) ? 'live' : 'none'
}

export function detach(mnt: string): void {
  const attempts: [string, string[]][] = [['fusermount3', ['-u', mnt]], ['fusermount', ['-u', mnt]], ['umount', ['-l', mnt]]]
  const errors: string[] = []
  for (const [cmd, args] of attempts) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' })
    if (r.status === 0) return
    errors.push(`${cmd}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`)
    if (!isMountpoint(mnt)) return
  }
  throw new FsError('EBUSY', `cannot unmount ${mnt}: ${errors.join('; ')}`)
}

/** Host directory served for a container's volume. */
export function volumeSource(store: Store, m: VolumeMount): string {
  return m.type === 'volume' ? volumeData(store, m.source) : m.source
}

/** `volume=SRC:DEST[:ro]` stratafs options for a container; a missing source is ENOENT. */
function volumeOptions(store: Store, c: ContainerRecord): string[] {
  return (c.volumes ?? []).map((m) => {
    const src = volumeSource(store, m)
    if (!fs.existsSync(src)) {
      throw new FsError('ENOENT', m.type === 'volume'
        ? `volume ${m.source} (at ${m.destination}) was removed; create it again with \`strata volume create ${m.source}\``
        : `bind volume source ${m.source} (at ${m.destination}): not found`)
    }
    if (/[:,]/.test(src)) throw new FsError('EINVAL', `volume source ${src} contains ':' or ',' and cannot be passed to stratafs`)
    return `volume=${src}:${m.destination}${m.readOnly ? ':ro' : ''}`
  })
}

export async function mountContainer(store: Store, ref: string, mnt?: string): Promise<{ container: ContainerRecord, mountpoint: string, cleanedStale: boolean }> {
  return withLock(store, () => {
    const c = findContainer(loadContainers(store), ref)
    const p = containerPaths(store, c)
    const mountpoint = path.resolve(mnt ?? p.merged)
    let cleanedStale = false
    if (c.mount) {
      const state = mountState(c.mount.mountpoint)
      if (state === 'live') throw new FsError('EBUSY', `container ${c.name} is already mounted at ${c.mount.mountpoint}`)
      if (state === 'stale') {
        detach(c.mount.mountpoint)
        cleanedStale = true
      }
      delete c.mount
      saveContainer(store, c)
    }
    if (mountState(mountpoint) === 'stale') {
      detach(mountpoint)
      cleanedStale = true
    }
    fs.mkdirSync(mountpoint, { recursive: true })
    if (isMountpoint(mountpoint)) throw new FsError('EBUSY', `${mountpoint} is already a mountpoint`)
    const lowers = lowerDirs(store, c)
    const volumeOpts = volumeOptions(store, c)
    for (const m of c.volumes ?? []) {
      // a mountpoint inside a volume source makes the daemon look up its own mount (a deadlock)
      const src = fs.realpathSync(volumeSource(store, m))
      if (mountpoint === src || mountpoint.startsWith(`${src}/`)) throw new FsError('EINVAL', `mountpoint ${mountpoint} is inside volume source ${src} (at ${m.destination})`)
    }
    for (const d of [...lowers, p.upper, p.work]) {
      if (/[:,]/.test(d)) throw new FsError('EINVAL', `store path ${d} contains ':' or ',' and cannot be passed to stratafs`)
    }
    const logFd = fs.openSync(p.log, 'a')
    let r
    try {
      r = spawnSync(stratafsBin(), ['-o', [`lowerdir=${lowers.join(':')}`, `upperdir=${p.upper}`, `workdir=${p.work}`, ...volumeOpts].join(','), mountpoint], {
        stdio: ['ignore', logFd, logFd],
        timeout: 60_000,
      })
    } finally {
      fs.closeSync(logFd)
    }
    if (r.error || r.status !== 0) {
      const tail = fs.readFileSync(p.log, 'utf8').trim().split('\n').slice(-3).join(' | ')
      throw new FsError('EIO', `stratafs failed to mount ${mountpoint} (${r.error?.message ?? `exit ${r.status}`}): ${tail}`)
    }
    if (!isMountpoint(mountpoint)) throw new FsError('EIO', `stratafs exited 0 but ${mountpoint} is not mounted`)
    c.mount = { mountpoint, at: new Date().toISOString() }
    saveContainer(store, c)
    return { container: c, mountpoint, cleanedStale }
  })
}

export async function umountContainer(store: Store, ref: string): Promise<{ container: ContainerRecord, mountpoint?: string, wasStale: boolean }> {
  return withLock(store, () => {
    const c = findContainer(loadContainers(store), ref)
    if (!c.mount) throw new FsError('EINVAL', `container ${c.name} is not mounted`)
    const mountpoint = c.mount.mountpoint
    const state = mountState(mountpoint)
    if (state !== 'none') detach(mountpoint)
    delete c.mount
    saveContainer(store, c)
    return { container: c, mountpoint, wasStale: state === 'stale' }
  })
}

export async function removeContainer(store: Store, op: Op, ref: string, force: boolean): Promise<ContainerRecord> {
  return withLock(store, () => {
    const c = findContainer(loadContainers(store), ref)
    if (c.mount) {
      const state = mountState(c.mount.mountpoint)
      if (state === 'live' && !force) throw new FsError('EBUSY', `container ${c.name} is mounted at ${c.mount.mountpoint} (umount it or use --force)`)
      if (state !== 'none') detach(c.mount.mountpoint)
    }
    op.discard(store.containerDir(c.id))
    return c
  })
}

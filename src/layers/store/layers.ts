/**
 * Stored layers: list, inspect, remove, export, verify. A layer is immutable once published; verify
 * re-creates its tar from the tree and the tar-split record and compares the diffID.
 */
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { FsError } from '../../sys/errors'
import { readLayerInfo, type LayerInfo } from './layer-import'
import { withLock } from './lock'
import { Op } from './ops'
import { layerUsers } from './records'
import { isHex64, type Store } from './store'
import { loadSplit, reassemble } from './tar-split'

export function listLayers(store: Store): (LayerInfo & { usedBy: string[] })[] {
  let names: string[]
  try {
    names = fs.readdirSync(store.layersDir)
  } catch {
    return []
  }
  const out: (LayerInfo & { usedBy: string[] })[] = []
  for (const hex of names.filter(isHex64)) {
    try {
      const info = readLayerInfo(store, `sha256:${hex}`)
      out.push({ ...info, usedBy: layerUsers(store, info.digest) })
    } catch {
      // not a complete layer: gc's business
    }
  }
  return out.sort((a, b) => a.created.localeCompare(b.created))
}

/** Accepts a full digest, bare hex or a unique prefix of either. */
export function resolveLayer(store: Store, ref: string): string {
  const hex = ref.replace(/^sha256:/, '')
  if (!/^[0-9a-f]{1,64}$/.test(hex)) throw new FsError('EINVAL', `invalid layer digest "${ref}"`)
  const hits = listLayers(store).filter((l) => l.digest.slice(7).startsWith(hex))
  if (hits.length === 1 && hits[0]) return hits[0].digest
  if (hits.length > 1) throw new FsError('EINVAL', `layer prefix "${ref}" is ambiguous`)
  throw new FsError('ENOENT', `layer ${ref}: not found`)
}

export const diffDir = (store: Store, digest: string): string => path.join(store.layerDir(digest), 'diff')

/** The layer's original tar, re-created byte for byte. */
export function exportLayer(store: Store, digest: string): AsyncGenerator<Buffer> {
  const dir = store.layerDir(digest)
  return reassemble(loadSplit(path.join(dir, 'tar-split.json.gz')), path.join(dir, 'diff'))
}

export async function verifyLayer(store: Store, digest: string): Promise<{ ok: boolean, actual?: string, error?: string }> {
  const hash = crypto.createHash('sha256')
  try {
    for await (const b of exportLayer(store, digest)) hash.update(b)
  } catch (err) {
    return { ok: false, error: (err as Error).message }
  }
  const actual = `sha256:${hash.digest('hex')}`
  return actual === digest ? { ok: true } : { ok: false, actual }
}

export async function removeLayer(store: Store, digest: string): Promise<void> {
  const op = new Op(store)
  try {
    await withLock(store, () => {
      readLayerInfo(store, digest)
      const users = layerUsers(store, digest)
      if (users.length) throw new FsError('EBUSY', `layer ${digest} is in use by ${users.join(', ')}`)
      op.discard(store.layerDir(digest))
    })
  } finally {
    op.done()
  }
}

/**
 * `strata container commit`: the container's upper → a new layer (./changes.ts writes the tar, the
 * ordinary import path stores it) → a new image whose config is the container image's config with
 * that layer's diffID and a history entry appended. Data volumes are left out (./changes.ts).
 */
import { containerChanges, volumeSkips, writeUpperTar } from './changes'
import { containerPaths, lowerDirs } from './containers'
import { type ImageConfig, readConfig, registerImage, type Log } from './images'
import { importLayerFile } from './layer-import'
import type { Op } from './ops'
import { findContainer, findImage, type ImageRecord, loadContainers, loadImages } from './records'
import type { Store } from './store'

export async function commitContainer(store: Store, op: Op, ref: string, tag: string | undefined, log: Log): Promise<ImageRecord> {
  const c = findContainer(loadContainers(store), ref)
  const parent = findImage(loadImages(store), c.image)
  const { upper } = containerPaths(store, c)
  const lowers = lowerDirs(store, c)
  const skip = volumeSkips(upper, lowers, (c.volumes ?? []).map((m) => m.destination))
  const tarFile = op.path('commit.tar')
  await writeUpperTar(upper, tarFile, skip)
  const { info, existed } = await importLayerFile(store, op, tarFile, { label: `container ${c.name}` })
  log(existed ? `layer ${info.digest} already present` : `committed layer ${info.digest}`)
  const config = JSON.parse(JSON.stringify(readConfig(store, parent))) as ImageConfig
  const now = new Date().toISOString()
  config.created = now
  config.rootfs = { type: 'layers', diff_ids: [...config.rootfs.diff_ids, info.digest] }
  const changes = containerChanges(upper, lowers, skip).length
  config.history = [...(config.history ?? []), { created: now, created_by: `strata container commit ${c.name}`, comment: `${changes} change(s)` }]
  const { image } = await registerImage(store, Buffer.from(JSON.stringify(config)), tag ? [tag] : [])
  log(`committed image ${image.id}${image.names.length ? ` (${image.names.join(', ')})` : ''}`)
  return image
}

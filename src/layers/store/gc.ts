/**
 * `strata gc`: removes, under the store lock,
 * - op dirs (tmp/) of processes that are gone: interrupted imports, half-made containers, trash;
 * - layers no image, container or running command (pins, see ./ops.ts) refers to, and layer dirs
 *   that never got a layer.json;
 * - blobs no image refers to; container dirs without a record; stray temp files of atomic writes.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { withLock } from './lock'
import { opDirs } from './ops'
import { loadContainers, loadImages } from './records'
import { isHex64, type Store } from './store'

export interface GcReport {
  tmp: string[]
  layers: string[]
  blobs: string[]
  containers: string[]
}

function rmTree(abs: string): void {
  fs.rmSync(abs, { recursive: true, force: true })
}

function ls(dir: string): string[] {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}

export async function gc(store: Store, dryRun = false): Promise<GcReport> {
  store.init()
  return withLock(store, () => {
    const report: GcReport = { tmp: [], layers: [], blobs: [], containers: [] }
    const pins = new Set<string>()
    for (const op of opDirs(store)) {
      if (op.alive) {
        op.pins.forEach((p) => pins.add(p))
        continue
      }
      report.tmp.push(op.name)
      if (!dryRun) rmTree(path.join(store.tmpDir, op.name))
    }
    const images = loadImages(store)
    const containers = loadContainers(store)
    const usedLayers = new Set<string>(pins)
    const usedBlobs = new Set<string>()
    for (const i of images) {
      i.layers.forEach((l) => usedLayers.add(l))
      usedBlobs.add(i.config)
      usedBlobs.add(i.manifest)
    }
    for (const name of ls(store.layersDir)) {
      const abs = path.join(store.layersDir, name)
      const complete = isHex64(name) && fs.existsSync(path.join(abs, 'layer.json'))
      if (complete && usedLayers.has(`sha256:${name}`)) continue
      report.layers.push(isHex64(name) ? `sha256:${name}` : name)
      if (!dryRun) rmTree(abs)
    }
    for (const name of ls(store.blobsDir)) {
      if (isHex64(name) && usedBlobs.has(`sha256:${name}`)) continue
      report.blobs.push(isHex64(name) ? `sha256:${name}` : name)
      if (!dryRun) fs.rmSync(path.join(store.blobsDir, name), { force: true })
    }
    const known = new Set(containers.map((c) => c.id))
    for (const name of ls(store.containersDir)) {
      if (known.has(name)) continue
      report.containers.push(name)
      if (!dryRun) rmTree(path.join(store.containersDir, name))
    }
    for (const name of ls(store.root)) {
      if (/\.tmp-\d+-/.test(name) && !dryRun) fs.rmSync(path.join(store.root, name), { force: true })
    }
    return report
  })
}

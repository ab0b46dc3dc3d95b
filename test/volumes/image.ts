/**
 * Test images for the volume tests: a directory tree → a one-layer OCI image layout (tar made by
 * GNU tar with xattrs and numeric owners) → `strata image import`.
 */
import { spawnSync } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { strata } from '../store/util'

const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex')

/** Writes `layerDirs` (bottom first) as an OCI layout at `out`. */
export function ociLayout(layerDirs: string[], out: string): void {
  const blobs = path.join(out, 'blobs', 'sha256')
  fs.mkdirSync(blobs, { recursive: true })
  const put = (b: Buffer): { digest: string, size: number } => {
    const hex = sha(b)
    fs.writeFileSync(path.join(blobs, hex), b)
    return { digest: `sha256:${hex}`, size: b.length }
  }
  const layers = layerDirs.map((dir) => {
    const r = spawnSync('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--sort=name', '-C', dir, '-cf', '-', '.'], { maxBuffer: 256 << 20 })
    if (r.status !== 0) throw new Error(`tar ${dir}: ${r.stderr.toString()}`)
    return put(r.stdout)
  })
  const config = put(Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: {},
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
    history: layers.map(() => ({ created_by: 'test/volumes' })),
  })))
  const manifest = put(Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
  })))
  fs.writeFileSync(path.join(out, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  fs.writeFileSync(path.join(out, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
  }))
}

/** Imports layer trees as image `tag` into the store at `root`; throws with strata's stderr. */
export function importImage(root: string, layerDirs: string[], tag: string, scratch: string): void {
  const out = path.join(scratch, `${tag}-oci`)
  ociLayout(layerDirs, out)
  const r = strata(root, ['image', 'import', out, '-t', tag])
  if (r.code !== 0) throw new Error(`image import: ${r.stderr}`)
}

/** `strata image import|ls|inspect|history|tag|rm|save`. */
import { Command } from 'commander'
import { imageHistory, importImage, readBlob, readConfig, removeImage, saveImage, tagImage } from '../../layers/store/images'
import { withOp } from '../../layers/store/ops'
import { findImage, loadImages } from '../../layers/store/records'
import { readLayerInfo } from '../../layers/store/layer-import'
import { humanSize, out, printJson, short, storeOf, table } from './common'

const collect = (v: string, prev: string[]): string[] => [...prev, v]

export function imageCommand(): Command {
  const image = new Command('image').description('images: configs naming layers')

  image.command('import')
    .description('import a docker-archive or oci-archive (tar or tar.gz, as podman save writes) or an OCI layout directory')
    .argument('<archive>', 'archive file or OCI layout directory')
    .option('-t, --tag <name>', 'name the image (repeatable; default: the names in the archive)', collect, [])
    .action(async (archive: string, opts: { tag: string[] }, cmd: Command) => {
      const store = storeOf(cmd)
      await withOp(store, (op) => importImage(store, op, archive, opts.tag, (l) => out(l)))
    })

  image.command('ls')
    .description('list images')
    .option('--json', 'JSON output')
    .action((opts: { json?: boolean }, cmd: Command) => {
      const store = storeOf(cmd)
      const images = loadImages(store)
      const rows = images.map((i) => ({ ...i, size: i.layers.reduce((n, d) => n + readLayerInfo(store, d).size, 0) }))
      if (opts.json) return printJson(rows)
      table(['ID', 'NAMES', 'LAYERS', 'SIZE', 'CREATED'], rows.map((i) => [short(i.id), i.names.join(',') || '<none>', String(i.layers.length), humanSize(i.size), i.created]))
    })

  image.command('inspect')
    .description('show an image record, its config and manifest (JSON)')
    .argument('<image>', 'name, id or id prefix')
    .option('--json', 'JSON output (the default)')
    .action((ref: string, _opts: unknown, cmd: Command) => {
      const store = storeOf(cmd)
      const img = findImage(loadImages(store), ref)
      printJson({ ...img, config: readConfig(store, img), manifest: JSON.parse(readBlob(store, img.manifest).toString('utf8')) as unknown })
    })

  image.command('history')
    .description('layers with sizes and the created-by lines of the config, newest first')
    .argument('<image>', 'name, id or id prefix')
    .option('--json', 'JSON output')
    .action((ref: string, opts: { json?: boolean }, cmd: Command) => {
      const store = storeOf(cmd)
      const rows = imageHistory(store, findImage(loadImages(store), ref))
      if (opts.json) return printJson(rows)
      table(['LAYER', 'CREATED', 'SIZE', 'CREATED BY'], rows.map((r) => [r.layer ? short(r.layer) : '<missing>', r.created ?? '-', r.size === null ? '0 B' : humanSize(r.size), r.createdBy]))
    })

  image.command('tag')
    .description('add a name to an image')
    .argument('<image>', 'name, id or id prefix')
    .argument('<name>', 'new name')
    .action(async (ref: string, name: string, _opts: unknown, cmd: Command) => {
      const img = await tagImage(storeOf(cmd), ref, name)
      out(`tagged ${img.id} as ${img.names[img.names.length - 1]}`)
    })

  image.command('rm')
    .description('untag a name, or remove an image no container uses (layers stay until strata gc)')
    .argument('<image...>', 'names, ids or id prefixes')
    .action(async (refs: string[], _opts: unknown, cmd: Command) => {
      const store = storeOf(cmd)
      for (const ref of refs) {
        const r = await removeImage(store, ref)
        out(r.untagged ? `untagged ${r.untagged}` : `removed image ${r.removed}`)
      }
    })

  image.command('save')
    .description('write an image as an oci-archive (podman load accepts it)')
    .argument('<image>', 'name, id or id prefix')
    .requiredOption('-o, --output <file>', 'output file')
    .action(async (ref: string, opts: { output: string }, cmd: Command) => {
      const img = await saveImage(storeOf(cmd), ref, opts.output)
      out(`saved ${img.id} to ${opts.output}`)
    })

  return image
}

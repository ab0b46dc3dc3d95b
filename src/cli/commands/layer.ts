/** `strata layer import|ls|inspect|rm|verify|export`. */
import * as fs from 'node:fs'
import { Command } from 'commander'
import { importLayerFile, readLayerInfo } from '../../layers/store/layer-import'
import { exportLayer, listLayers, removeLayer, resolveLayer, verifyLayer } from '../../layers/store/layers'
import { withOp } from '../../layers/store/ops'
import { layerUsers } from '../../layers/store/records'
import { FsError } from '../../sys/errors'
import { humanSize, out, printJson, short, storeOf, table } from './common'

export function layerCommand(): Command {
  const layer = new Command('layer').description('content-addressed layers (named by diffID)')

  layer.command('import')
    .description('import a layer tarball (plain or gzip) from FILE or stdin (-)')
    .argument('<file>', 'tar or tar.gz file, or - for stdin')
    .action(async (file: string, _opts: unknown, cmd: Command) => {
      const store = storeOf(cmd)
      const r = await withOp(store, (op) => importLayerFile(store, op, file))
      out(r.existed ? `layer ${r.info.digest} already present` : `imported layer ${r.info.digest}`)
    })

  layer.command('ls')
    .description('list layers: digest, size, created, used by')
    .option('--json', 'JSON output')
    .action((opts: { json?: boolean }, cmd: Command) => {
      const layers = listLayers(storeOf(cmd))
      if (opts.json) return printJson(layers)
      table(['DIGEST', 'SIZE', 'CREATED', 'USED BY'], layers.map((l) => [short(l.digest), humanSize(l.size), l.created, l.usedBy.join(', ') || '-']))
    })

  layer.command('inspect')
    .description('show a layer\'s metadata (JSON)')
    .argument('<digest>', 'digest or unique prefix')
    .option('--json', 'JSON output (the default)')
    .action((ref: string, _opts: unknown, cmd: Command) => {
      const store = storeOf(cmd)
      const digest = resolveLayer(store, ref)
      printJson({ ...readLayerInfo(store, digest), path: store.layerDir(digest), usedBy: layerUsers(store, digest) })
    })

  layer.command('rm')
    .description('remove layers no image or container uses')
    .argument('<digest...>', 'digests or unique prefixes')
    .action(async (refs: string[], _opts: unknown, cmd: Command) => {
      const store = storeOf(cmd)
      for (const ref of refs) {
        const digest = resolveLayer(store, ref)
        await removeLayer(store, digest)
        out(`removed layer ${digest}`)
      }
    })

  layer.command('verify')
    .description('re-create each layer\'s tar from the stored tree and check its digest')
    .argument('[digest...]', 'layers to check (default: all)')
    .option('--json', 'JSON output')
    .action(async (refs: string[], opts: { json?: boolean }, cmd: Command) => {
      const store = storeOf(cmd)
      const digests = refs.length ? refs.map((r) => resolveLayer(store, r)) : listLayers(store).map((l) => l.digest)
      const results: { digest: string, ok: boolean, actual?: string, error?: string }[] = []
      for (const digest of digests) {
        const r = await verifyLayer(store, digest)
        results.push({ digest, ...r })
        if (!opts.json) out(r.ok ? `${digest} OK` : `${digest} MISMATCH${r.actual ? ` (re-created tar is ${r.actual})` : ''}${r.error ? ` (${r.error})` : ''}`)
      }
      if (opts.json) printJson(results)
      const bad = results.filter((r) => !r.ok)
      if (bad.length) throw new FsError('EINVAL', `${bad.length} layer(s) do not match their digest: ${bad.map((b) => b.digest).join(', ')}`)
    })

  layer.command('export')
    .description('write a layer\'s original tar (byte for byte) to FILE or stdout')
    .argument('<digest>', 'digest or unique prefix')
    .option('-o, --output <file>', 'output file (default: stdout)')
    .action(async (ref: string, opts: { output?: string }, cmd: Command) => {
      const store = storeOf(cmd)
      const digest = resolveLayer(store, ref)
      const dest = opts.output ? fs.createWriteStream(opts.output) : process.stdout
      for await (const b of exportLayer(store, digest)) {
        if (!dest.write(b)) await new Promise<void>((resolve) => dest.once('drain', () => resolve()))
      }
      if (opts.output) await new Promise<void>((resolve, reject) => (dest as fs.WriteStream).end((err?: Error | null) => (err ? reject(err) : resolve())))
    })

  return layer
}

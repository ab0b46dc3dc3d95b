/** `strata gc`. */
import { Command } from 'commander'
import { gc } from '../../layers/store/gc'
import { out, printJson, storeOf } from './common'

export function gcCommand(): Command {
  return new Command('gc')
    .description('remove unreferenced layers and blobs and leftovers of interrupted commands')
    .option('-n, --dry-run', 'only list what would be removed')
    .option('--json', 'JSON output')
    .action(async (opts: { dryRun?: boolean, json?: boolean }, cmd: Command) => {
      const r = await gc(storeOf(cmd), opts.dryRun === true)
      if (opts.json) return printJson(r)
      const verb = opts.dryRun ? 'would remove' : 'removed'
      for (const t of r.tmp) out(`${verb} leftover tmp/${t}`)
      for (const l of r.layers) out(`${verb} layer ${l}`)
      for (const b of r.blobs) out(`${verb} blob ${b}`)
      for (const c of r.containers) out(`${verb} container dir ${c}`)
      out(`${verb} ${r.tmp.length} leftover(s), ${r.layers.length} layer(s), ${r.blobs.length} blob(s), ${r.containers.length} container dir(s)`)
    })
}

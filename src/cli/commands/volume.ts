/** `strata volume create|ls|inspect|rm|prune`: data volumes (src/layers/store/volumes.ts). */
import { Command, InvalidArgumentError } from 'commander'
import { withOp } from '../../layers/store/ops'
import { loadContainers } from '../../layers/store/records'
import { createVolume, diskUsage, findVolume, loadVolumes, matchesLabels, pruneVolumes, removeVolume, volumeData, volumeUsers } from '../../layers/store/volumes'
import { humanSize, out, printJson, storeOf, table } from './common'

/** `k=v` (or `k` for an empty value), collected into a record. */
function collectLabel(v: string, prev: Record<string, string> = {}): Record<string, string> {
  const eq = v.indexOf('=')
  const key = eq < 0 ? v : v.slice(0, eq)
  if (key === '') throw new InvalidArgumentError(`a label is KEY=VALUE, not "${v}"`)
  return { ...prev, [key]: eq < 0 ? '' : v.slice(eq + 1) }
}

/** `label=k=v` or `label=k`, collected. */
function collectFilter(v: string, prev: { key: string, value?: string }[] = []): { key: string, value?: string }[] {
  const m = /^label=([^=]+)(?:=(.*))?$/.exec(v)
  if (!m?.[1]) throw new InvalidArgumentError(`supported filters: label=KEY or label=KEY=VALUE, not "${v}"`)
  return [...prev, m[2] === undefined ? { key: m[1] } : { key: m[1], value: m[2] }]
}

export function volumeCommand(): Command {
  const volume = new Command('volume').description('data volumes: directories served inside containers, outside the layers')

  volume.command('create')
    .description('create a named volume (a generated name when NAME is omitted)')
    .argument('[name]', 'volume name')
    .option('-l, --label <key=value>', 'set a label (repeatable)', collectLabel)
    .action(async (name: string | undefined, opts: { label?: Record<string, string> }, cmd: Command) => {
      const store = storeOf(cmd)
      const v = await withOp(store, (op) => createVolume(store, op, name, opts.label ?? {}))
      out(v.name)
    })

  volume.command('ls')
    .alias('list')
    .description('list volumes')
    .option('-f, --filter <label=k[=v]>', 'only volumes with this label (repeatable; all must match)', collectFilter)
    .option('-q, --quiet', 'names only')
    .option('--json', 'JSON output')
    .action((opts: { filter?: { key: string, value?: string }[], quiet?: boolean, json?: boolean }, cmd: Command) => {
      const store = storeOf(cmd)
      const containers = loadContainers(store)
      const vs = loadVolumes(store).filter((v) => matchesLabels(v, opts.filter ?? []))
        .map((v) => ({ ...v, mountpoint: volumeData(store, v.name), usedBy: volumeUsers(containers, v.name).map((c) => c.name) }))
      if (opts.json) return printJson(vs)
      if (opts.quiet) return vs.forEach((v) => out(v.name))
      table(['NAME', 'USED BY', 'LABELS', 'CREATED'], vs.map((v) => [
        v.name, v.usedBy.join(',') || '-', Object.entries(v.labels).map(([k, val]) => `${k}=${val}`).join(',') || '-', v.created,
      ]))
    })

  volume.command('inspect')
    .description('show a volume record, its data directory, size and users (JSON)')
    .argument('<name...>', 'volume names')
    .option('--json', 'JSON output (the default)')
    .action((names: string[], _opts: unknown, cmd: Command) => {
      const store = storeOf(cmd)
      const containers = loadContainers(store)
      printJson(names.map((n) => {
        const v = findVolume(store, n)
        return { ...v, mountpoint: volumeData(store, n), size: diskUsage(volumeData(store, n)), usedBy: volumeUsers(containers, n).map((c) => c.name) }
      }))
    })

  volume.command('rm')
    .alias('remove')
    .description('remove volumes and their data (refused while a container uses one, unless --force)')
    .argument('<name...>', 'volume names')
    .option('-f, --force', 'remove even if containers use it (they will fail to mount until it exists again)')
    .action(async (names: string[], opts: { force?: boolean }, cmd: Command) => {
      const store = storeOf(cmd)
      for (const n of names) {
        const r = await withOp(store, (op) => removeVolume(store, op, n, opts.force === true))
        if (r.users.length) process.stderr.write(`strata: warning: volume ${n} was in use by ${r.users.join(', ')}\n`)
        out(`removed volume ${n}`)
      }
    })

  volume.command('prune')
    .description('remove every volume no container uses, and report the space freed')
    .option('-n, --dry-run', 'only list what would be removed')
    .option('--json', 'JSON output')
    .action(async (opts: { dryRun?: boolean, json?: boolean }, cmd: Command) => {
      const store = storeOf(cmd)
      const r = await withOp(store, (op) => pruneVolumes(store, op, opts.dryRun === true))
      if (opts.json) return printJson(r)
      const verb = opts.dryRun ? 'would remove' : 'removed'
      for (const n of r.removed) out(`${verb} volume ${n}`)
      out(`${verb} ${r.removed.length} volume(s), ${opts.dryRun ? 'would free' : 'freed'} ${humanSize(r.bytes)} (${r.bytes} bytes)`)
    })

  return volume
}

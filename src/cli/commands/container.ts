/** `strata container create|ls|inspect|rm|mount|umount|diff|commit`. */
import { Command, InvalidArgumentError } from 'commander'
import { containerChanges, volumeSkips } from '../../layers/store/changes'
import { commitContainer } from '../../layers/store/commit'
import { containerPaths, createContainer, lowerDirs, mountContainer, mountState, removeContainer, umountContainer, volumeSource } from '../../layers/store/containers'
import { withOp } from '../../layers/store/ops'
import { findContainer, loadContainers } from '../../layers/store/records'
import { parseVolumeSpec, type VolumeMount } from '../../layers/store/volumes'
import { fromLatin1 } from '../../native'
import { out, printJson, short, storeOf, table } from './common'

function collectVolume(spec: string, prev: VolumeMount[] = []): VolumeMount[] {
  try {
    return [...prev, parseVolumeSpec(spec)]
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message)
  }
}

export function containerCommand(): Command {
  const container = new Command('container').description('containers: a writable upper on top of an image')

  container.command('create')
    .description('create a container (upper + work) from an image')
    .argument('<image>', 'name, id or id prefix')
    .option('--name <name>', 'container name (default: c-<id prefix>)')
    .option('-v, --volume <spec>', 'NAME:/path[:ro] (a named volume, created on first use and seeded from the image when empty) or /host/dir:/path[:ro] (a bind volume); repeatable', collectVolume)
    .action(async (image: string, opts: { name?: string, volume?: VolumeMount[] }, cmd: Command) => {
      const store = storeOf(cmd)
      const c = await withOp(store, (op) => createContainer(store, op, image, opts.name, opts.volume ?? []))
      out(c.name)
    })

  container.command('ls')
    .description('list containers')
    .option('--json', 'JSON output')
    .action((opts: { json?: boolean }, cmd: Command) => {
      const cs = loadContainers(storeOf(cmd)).map((c) => ({ ...c, mounted: c.mount ? mountState(c.mount.mountpoint) : 'none' }))
      if (opts.json) return printJson(cs)
      table(['NAME', 'ID', 'IMAGE', 'MOUNT', 'CREATED'], cs.map((c) => [c.name, short(c.id), short(c.image), c.mount ? `${c.mount.mountpoint}${c.mounted === 'live' ? '' : ` (${c.mounted})`}` : '-', c.created]))
    })

  container.command('inspect')
    .description('show a container record and its paths (JSON)')
    .argument('<name>', 'name or id')
    .option('--json', 'JSON output (the default)')
    .action((ref: string, _opts: unknown, cmd: Command) => {
      const store = storeOf(cmd)
      const c = findContainer(loadContainers(store), ref)
      const volumes = (c.volumes ?? []).map((m) => ({ ...m, hostPath: volumeSource(store, m) }))
      printJson({ ...c, volumes, mounted: c.mount ? mountState(c.mount.mountpoint) : 'none', paths: containerPaths(store, c), lowerdirs: lowerDirs(store, c) })
    })

  container.command('rm')
    .description('remove a container and its upper (its volumes are kept)')
    .argument('<name...>', 'names or ids')
    .option('-f, --force', 'unmount first if mounted')
    .action(async (refs: string[], opts: { force?: boolean }, cmd: Command) => {
      const store = storeOf(cmd)
      for (const ref of refs) {
        const c = await withOp(store, (op) => removeContainer(store, op, ref, opts.force === true))
        out(`removed container ${c.name}`)
      }
    })

  container.command('mount')
    .description('mount the container with stratafs at MNT (default: inside the store)')
    .argument('<name>', 'name or id')
    .argument('[mnt]', 'mountpoint')
    .action(async (ref: string, mnt: string | undefined, _opts: unknown, cmd: Command) => {
      const r = await mountContainer(storeOf(cmd), ref, mnt)
      if (r.cleanedStale) process.stderr.write(`strata: cleaned a stale mount of ${r.container.name} (daemon had died)\n`)
      out(r.mountpoint)
    })

  container.command('umount')
    .alias('unmount')
    .description('unmount the container')
    .argument('<name>', 'name or id')
    .action(async (ref: string, _opts: unknown, cmd: Command) => {
      const r = await umountContainer(storeOf(cmd), ref)
      if (r.wasStale) process.stderr.write(`strata: ${r.mountpoint} was a stale mount (daemon had died); cleaned\n`)
      out(`unmounted ${r.mountpoint}`)
    })

  container.command('diff')
    .description('list changes like docker diff (A added, C changed, D deleted); volumes and their mountpoints are left out')
    .argument('<name>', 'name or id')
    .option('--json', 'JSON output')
    .action((ref: string, opts: { json?: boolean }, cmd: Command) => {
      const store = storeOf(cmd)
      const c = findContainer(loadContainers(store), ref)
      const { upper } = containerPaths(store, c)
      const lowers = lowerDirs(store, c)
      const skip = volumeSkips(upper, lowers, (c.volumes ?? []).map((m) => m.destination))
      const changes = containerChanges(upper, lowers, skip).map((ch) => ({ kind: ch.kind, path: `/${fromLatin1(ch.rel)}` }))
      if (opts.json) return printJson(changes)
      for (const ch of changes) out(`${ch.kind} ${ch.path}`)
    })

  container.command('commit')
    .description('turn the container\'s changes into a new layer and image (volume contents are left out)')
    .argument('<name>', 'name or id')
    .option('-t, --tag <name>', 'name for the new image')
    .action(async (ref: string, opts: { tag?: string }, cmd: Command) => {
      const store = storeOf(cmd)
      await withOp(store, (op) => commitContainer(store, op, ref, opts.tag, (l) => out(l)))
    })

  return container
}

/**
 * Checks a parsed stratafs command line against the filesystem before anything is mounted, so that
 * every refusal is one line naming the path and the reason (errno), and nothing is half-mounted.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { execFileSync } from 'node:child_process'
import { isDeadFuseCode } from '../sys/errors'
import type { StratafsArgs } from './stratafs-args'

export class ConfigError extends Error {}

export interface ResolvedConfig {
  mountpoint: string
  lowers: string[]
  upper: string | null
  work: string | null
  volumes: Array<{ source: string, rel: string, readOnly: boolean }>
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException
  const reasons: Record<string, string> = {
    ENOENT: 'No such file or directory', ENOTDIR: 'Not a directory', EACCES: 'Permission denied',
    ENOTCONN: 'Transport endpoint is not connected', ELOOP: 'Too many levels of symbolic links',
  }
  return e.code ? `${reasons[e.code] ?? e.message} (${e.code})` : String(err)
}

/** realpath of a directory, or a ConfigError naming `what` and the path. */
function realDir(what: string, p: string): string {
  let real: string
  try {
    real = fs.realpathSync(p)
  } catch (err) {
    throw new ConfigError(`${what} ${p}: ${describe(err)}`)
  }
  if (!fs.statSync(real).isDirectory()) throw new ConfigError(`${what} ${p}: Not a directory (ENOTDIR)`)
  return real
}

const within = (p: string, dir: string): boolean => p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`)

/**
 * A mount at `p` whose FUSE daemon died (isDeadFuseCode); it can be cleared with a lazy unmount.
 * Asked with statfs, which the kernel always sends to the daemon: a stat of the root may be
 * answered from the kernel's attribute cache.
 */
export function isDeadMount(p: string): boolean {
  try {
    fs.statfsSync(p)
    return false
  } catch (err) {
    return isDeadFuseCode((err as NodeJS.ErrnoException).code)
  }
}

function mountedAt(p: string): string | null {
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ')
    const dash = f.indexOf('-')
    if (f[4] && unescapeMountinfo(f[4]) === p && dash > 0) return f[dash + 1] ?? 'unknown'
  }
  return null
}

const unescapeMountinfo = (s: string): string => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)))

export function validate(args: StratafsArgs, cwd: string): ResolvedConfig {
  if (!fs.existsSync('/dev/fuse')) throw new ConfigError('/dev/fuse: No such file or directory (ENOENT); load the fuse module or give the container the device')
  const abs = (p: string): string => path.resolve(cwd, p)

  const mnt = abs(args.mountpoint)
  if (isDeadMount(mnt)) {
    // A previous daemon died: clear its mountpoint instead of making the user find the command.
    try {
      execFileSync('umount', ['-l', mnt], { stdio: 'ignore' })
    } catch {
      throw new ConfigError(`mountpoint ${mnt}: Transport endpoint is not connected (ENOTCONN): a dead mount is in the way and could not be cleared; run: umount -l ${mnt}`)
    }
  }
  const mountpoint = realDir('mountpoint', mnt)
  const existing = mountedAt(mountpoint)
  if (existing !== null) throw new ConfigError(`mountpoint ${mountpoint}: Device or resource busy (EBUSY): already a ${existing} mount`)

  const lowers = args.lowers.map((l) => realDir('lowerdir', abs(l)))
  const seen = new Set<string>()
  for (const [i, l] of lowers.entries()) {
    if (seen.has(l)) throw new ConfigError(`lowerdir ${args.lowers[i]}: listed twice (as ${l})`)
    seen.add(l)
  }
  let upper: string | null = null
  let work: string | null = null
  if (args.upper !== null && args.work !== null) {
    upper = realDir('upperdir', abs(args.upper))
    work = realDir('workdir', abs(args.work))
    for (const l of lowers) {
      if (within(upper, l)) throw new ConfigError(`upperdir ${upper}: inside lowerdir ${l}`)
      if (within(l, upper)) throw new ConfigError(`lowerdir ${l}: inside upperdir ${upper}`)
      if (within(work, l)) throw new ConfigError(`workdir ${work}: inside lowerdir ${l}`)
    }
    if (within(work, upper) || within(upper, work)) throw new ConfigError(`workdir ${work} and upperdir ${upper} must be separate directories, neither inside the other`)
    if (fs.statSync(work).dev !== fs.statSync(upper).dev) throw new ConfigError(`workdir ${work}: not on the same filesystem as upperdir ${upper} (EXDEV)`)
    try {
      fs.accessSync(upper, fs.constants.W_OK)
      fs.accessSync(work, fs.constants.W_OK)
    } catch (err) {
      throw new ConfigError(`upperdir/workdir not writable: ${describe(err)}`)
    }
  }
  for (const dir of [...lowers, ...(upper ? [upper, work!] : [])]) {
    if (within(mountpoint, dir)) throw new ConfigError(`mountpoint ${mountpoint}: inside layer ${dir}`)
    if (within(dir, mountpoint)) throw new ConfigError(`layer ${dir}: inside mountpoint ${mountpoint}`)
  }
  const volumes = args.volumes.map((v) => {
    const source = realDir('volume source', abs(v.source))
    if (within(source, mountpoint)) throw new ConfigError(`volume source ${source}: inside mountpoint ${mountpoint}`)
    // The reverse would make the daemon look up its own mount through the volume, and hang.
    if (within(mountpoint, source)) throw new ConfigError(`mountpoint ${mountpoint}: inside volume source ${source}`)
    return { source, rel: v.dest.slice(1), readOnly: v.readOnly }
  })
  const dests = new Set<string>()
  for (const v of volumes) {
    if (dests.has(v.rel)) throw new ConfigError(`volume destination /${v.rel}: given twice`)
    dests.add(v.rel)
  }
  return { mountpoint, lowers, upper, work, volumes }
}

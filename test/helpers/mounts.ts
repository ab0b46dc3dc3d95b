/**
 * Mounting a union for tests, on three targets with one interface:
 *   kernel          `mount -t overlay` (the reference: Documentation/filesystems/overlayfs.rst)
 *   stratafs        <repo>/bin/stratafs (or $STRATAFS_BIN), argv exactly `-o OPTS MNT`
 *   fuse-overlayfs  the Debian package, a peer and a stand-in while stratafs is not ready
 *
 * Owns: building the option string, starting the mount, proving it is live in /proc/self/mountinfo,
 * and unmounting it in the test's teardown, even when the test failed. Must not: kill any process
 * it did not start. A FUSE daemon forks away from the process we spawn; we find that daemon by its
 * exact argv (our own `-o OPTS MNT`, which names a fresh temp mountpoint) and only ever signal it if
 * all of fusermount3 -u, fusermount -u and umount -l failed to end the mount.
 *
 * Kernel options are pinned (redirect_dir=off, index=off, metacopy=off) so the reference does not
 * depend on the kernel's compiled-in defaults; with redirect_dir=off, rename(2) of a merged or
 * lower directory fails with EXDEV (overlayfs.rst "Renaming directories").
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawn, spawnSync } from 'node:child_process'
import { TestLike, mountTable } from './tmp'
import { fuseAbortPath } from './watchdog'

export type Target = 'kernel' | 'stratafs' | 'fuse-overlayfs'

export interface UnionDirs {
  /** Lower layers, top first (overlayfs order). */
  lowers: string[]
  /** Absent for a read-only mount. */
  upper?: string
  work?: string
  mnt: string
  /** more stratafs options (-o), e.g. passthrough=0 */
  options?: string[]
}

export interface Mounted extends UnionDirs {
  target: Target
  /** Unmounts (idempotent). Resolves once the mount is gone (and a FUSE daemon has exited). */
  unmount(): Promise<void>
  /** What the mount program printed (stratafs/fuse-overlayfs), for failure messages. */
  log(): string
  /** fusectl abort file for a FUSE mount (see watchdog.ts); null for the kernel. */
  abortPath: string | null
  /** After unmount(): true if the FUSE daemon was still running 5 s later (and was killed). */
  daemonLingered(): boolean
}

const REPO = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..')

/** This checkout's `strata` helper. */
export const strataBin = (): string => path.join(REPO, 'bin/strata')

/** The JSON counters of the stratafs daemon serving `mnt` (`strata stats MNT --json`); throws if none answers. */
export function strataStats<T = Record<string, unknown>>(mnt: string): T {
  const r = spawnSync(strataBin(), ['stats', mnt, '--json'], { encoding: 'utf8', timeout: 10_000 })
  if (r.status !== 0) throw new Error(`strata stats ${mnt}: ${r.stderr}`)
  return JSON.parse(r.stdout) as T
}

export function stratafsBin(): string {
  return process.env.STRATAFS_BIN ?? path.join(REPO, 'bin/stratafs')
}

/** The target the differential suite compares with the kernel: $DIFF_TARGET, default stratafs. */
export function diffTarget(): Target {
  const v = process.env.DIFF_TARGET ?? 'stratafs'
  if (v !== 'stratafs' && v !== 'fuse-overlayfs' && v !== 'kernel') throw new Error(`DIFF_TARGET=${v}: want stratafs or fuse-overlayfs`)
  return v
}

/** Why a target cannot be used on this machine, or null when it can. */
export function targetUnavailable(target: Target): string | null {
  if (target === 'stratafs') {
    const bin = stratafsBin()
    try { fs.accessSync(bin, fs.constants.X_OK) } catch { return `${bin} is missing or not executable` }
  } else if (target === 'fuse-overlayfs') {
    if (spawnSync('fuse-overlayfs', ['--version']).error) return 'fuse-overlayfs not installed (apt-get install fuse-overlayfs)'
  }
  if (process.getuid?.() !== 0) return 'must run as root'
  return null
}

export function optionString(d: UnionDirs, target: Target): string {
  const parts = [`lowerdir=${d.lowers.join(':')}`]
  if (d.upper !== undefined) parts.push(`upperdir=${d.upper}`, `workdir=${d.work ?? ''}`)
  if (target === 'kernel') parts.push('redirect_dir=off', 'index=off', 'metacopy=off')
  if (target === 'stratafs') parts.push(...(d.options ?? []))
  return parts.join(',')
}

export function isMounted(mnt: string): { fstype: string } | null {
  // the last entry for a path is the one on top
  const e = mountTable().filter(m => m.mnt === mnt).pop()
  return e ? { fstype: e.fstype } : null
}

const sleep = (ms: number) => new Promise(r => setTimeout(r, ms))

/** Pids of live processes whose argv ends with exactly `tail`. */
function pidsWithArgvTail(tail: string[]): number[] {
  const out: number[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    let argv: string[]
    try { argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').slice(0, -1) } catch { continue }
    if (argv.length < tail.length) continue
    const end = argv.slice(argv.length - tail.length)
    if (end.every((a, i) => a === tail[i])) out.push(Number(name))
  }
  return out
}

/** Each thread of `pid`: name, state and where it waits (wchan, syscall), to name a hang. */
function threadStates(pid: number): string {
  const read = (p: string): string => { try { return fs.readFileSync(p, 'latin1').trim() } catch { return '?' } }
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map((tid) => {
      const stat = read(`/proc/${pid}/task/${tid}/stat`)
      const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
      return `${tid}:${read(`/proc/${pid}/task/${tid}/comm`)}:${state}:${read(`/proc/${pid}/task/${tid}/wchan`)}:${read(`/proc/${pid}/task/${tid}/syscall`).split(' ')[0]}`
    }).join(' ')
  } catch { return 'gone' }
}

/** Running (a zombie, waiting for its reaper, counts as exited). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch { return false }
}

/**
 * Mounts `d` with `target`; registers an unmount in `t`'s teardown. Throws (with the program's
 * output) if the mount does not come up.
 */
export async function mountUnion(t: TestLike, target: Target, d: UnionDirs): Promise<Mounted> {
  const opts = optionString(d, target)
  let log = ''
  const daemonPids: number[] = []
  if (target === 'kernel') {
    const r = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', opts, d.mnt], { encoding: 'utf8' })
    log = r.stdout + r.stderr
    if (r.status !== 0) throw new Error(`mount -t overlay -o ${opts} ${d.mnt} failed (${r.status}): ${log.trim()}`)
  } else {
    const bin = target === 'stratafs' ? stratafsBin() : 'fuse-overlayfs'
    const argvTail = ['-o', opts, d.mnt]
    const child = spawn(bin, argvTail, { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout.setEncoding('utf8').on('data', (s: string) => { log += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { log += s })
    const started = Date.now()
    const code = await new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => resolve('timeout'), 30_000)
      child.on('error', (e) => { clearTimeout(timer); resolve(`spawn error ${e.message}`) })
      child.on('exit', (c, sig) => { clearTimeout(timer); resolve(c ?? `signal ${sig}`) })
    })
    // The daemon may keep our pipes open (it should not: issue 2 says it releases them); stop
    // reading so they never hold the test process open.
    setTimeout(() => { child.stdout.destroy(); child.stderr.destroy() }, 200).unref()
    if (code === 'timeout') {
      // the program did not return within 30 s: stop the one process we started
      if (child.pid !== undefined && alive(child.pid)) process.kill(child.pid, 'SIGKILL')
      throw new Error(`${bin} ${argvTail.join(' ')} did not exit within 30 s (it must return once the mount is live). Output: ${log}`)
    }
    if (code !== 0) {
      throw new Error(`${bin} ${argvTail.join(' ')} exited ${code}: ${log.trim()}`)
    }
    // Exit 0 must mean "mount is live": check at once, then allow a short grace to say how late.
    if (!isMounted(d.mnt)) {
      let late = -1
      for (let i = 0; i < 50; i++) { await sleep(100); if (isMounted(d.mnt)) { late = Date.now() - started; break } }
      if (late < 0) throw new Error(`${bin} exited 0 but ${d.mnt} is not in /proc/self/mountinfo. Output: ${log}`)
      throw new Error(`${bin} exited 0 before its mount was live (it appeared ${late} ms after start)`)
    }
    daemonPids.push(...pidsWithArgvTail(argvTail).filter(p => p !== child.pid))
  }
  const m = isMounted(d.mnt)
  const want = target === 'kernel' ? 'overlay' : 'fuse'
  if (!m || !m.fstype.startsWith(want)) {
    throw new Error(`${d.mnt}: expected an fstype starting with ${want} in /proc/self/mountinfo, found ${m?.fstype ?? 'no mount'}`)
  }

  let done = false
  let lingered = false
  const unmount = async (): Promise<void> => {
    if (done) return
    done = true
    const tries: string[][] = target === 'kernel'
      ? [['umount', d.mnt], ['umount', '-l', d.mnt]]
      : [['fusermount3', '-u', d.mnt], ['fusermount', '-u', d.mnt], ['umount', '-l', d.mnt]]
    const errors: string[] = []
    for (const [cmd, ...args] of tries) {
      if (!isMounted(d.mnt)) break
      const r = spawnSync(cmd!, args, { encoding: 'utf8' })
      if (r.status !== 0) errors.push(`${cmd} ${args.join(' ')}: ${(r.stderr ?? r.error?.message ?? '').trim()}`)
    }
    // a FUSE daemon must exit once unmounted; give it a moment, then kill only the pid we found
    for (let i = 0; i < 50 && daemonPids.some(alive); i++) await sleep(100)
    for (const pid of daemonPids.filter(alive)) {
      lingered = true
      t.comment(`${target} daemon pid ${pid} threads before SIGKILL: ${threadStates(pid)}`)
      // After a lazy unmount (umount -l) the connection stays open while anything still uses the
      // mount, and the daemon rightly keeps serving: say which unmount ran, so a failure names it.
      t.comment(`${target} daemon pid ${pid} still alive 5 s after unmount of ${d.mnt}; SIGKILL` +
        (errors.length ? ` (unmount attempts that failed first: ${errors.join('; ')})` : ' (fusermount3 -u succeeded)'))
      try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
    }
    if (isMounted(d.mnt)) throw new Error(`could not unmount ${d.mnt}: ${errors.join('; ')}`)
    if (errors.length && target === 'kernel') t.comment(`unmount ${d.mnt}: ${errors.join('; ')}`)
  }
  t.teardown(unmount)
  return { ...d, target, unmount, log: () => log, abortPath: target === 'kernel' ? null : fuseAbortPath(d.mnt), daemonLingered: () => lingered }
}

/**
 * Shared pieces of the real-program tests (issue 5): running commands, making a busybox root,
 * requiring system tools, finding the stratafs daemons a test started, and a private podman.
 *
 * Owns: temp roots for programs (busybox rootfs, private podman --root/--runroot/containers.conf),
 * their teardown (podman containers removed, image mounts released, every mount under the temp
 * dir unmounted). Must not: kill a process it did not start, touch the host's podman storage, or
 * skip silently in CI (a missing tool is a failure when $CI is set; scripts/install-deps.sh
 * installs every tool named here).
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawn, spawnSync, SpawnSyncOptions } from 'node:child_process'
import type { Test } from 'tap'
import { TestLike, mountsUnder } from '../helpers/tmp'
import { mountUnion, stratafsBin, Target } from '../helpers/mounts'
import { diffSnapshots, snapshot, Snapshot } from '../helpers/tree'

export const STRATAFS = stratafsBin()
/** Fixed mtime for every entry of a generated root (2001-01-01, below tree.ts's TIME_CEILING). */
export const ROOT_EPOCH = 978307200

export interface Run { code: number | null; stdout: string; stderr: string; signal: NodeJS.Signals | null }

/** Runs a program (no shell), captured as utf8. A timeout kills only that child. */
export function run(cmd: string, args: string[], opts: SpawnSyncOptions & { input?: string | Buffer } = {}): Run {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20, ...opts })
  return {
    code: r.status,
    stdout: String(r.stdout ?? ''),
    stderr: String(r.stderr ?? '') + (r.error ? `\n[spawn: ${r.error.message}]` : ''),
    signal: r.signal,
  }
}

/** Runs a program asynchronously (for concurrent containers / readers). */
export function runAsync(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts })
    let stdout = ''; let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    child.on('error', (e) => resolve({ code: null, stdout, stderr: stderr + e.message, signal: null }))
    child.on('close', (code, signal) => resolve({ code, stdout, stderr, signal }))
  })
}

/** "cmd exited N: stderr" for assertion messages. */
export function why(r: Run, what = ''): string {
  return `${what}${what ? ': ' : ''}exit ${r.code}${r.signal ? ` (${r.signal})` : ''}; stderr: ${r.stderr.trim().slice(-2000)}; stdout: ${r.stdout.trim().slice(-1000)}`
}

function haveCmd(cmd: string): boolean {
  return run('sh', ['-c', `command -v ${cmd}`]).code === 0
}

/**
 * tap `skip` value for a test that needs the given commands (cmd → Debian package). Outside CI a
 * missing tool skips with the apt-get line; under $CI nothing is skipped: the test runs and
 * `assertTools` fails it.
 */
export function needTools(tools: Record<string, string>): string | false {
  if (process.getuid?.() !== 0) return process.env.CI ? false : 'needs root'
  const missing = Object.entries(tools).filter(([c]) => !haveCmd(c))
  if (!missing.length) return false
  if (process.env.CI) return false
  return `missing ${missing.map(([c]) => c).join(', ')} (apt-get install ${[...new Set(missing.map(([, p]) => p))].join(' ')}; scripts/install-deps.sh does it)`
}

/** Fails (and returns false) when a tool is missing; used as the first line of a test. */
export function assertTools(t: Test, tools: Record<string, string>): boolean {
  const missing = Object.entries(tools).filter(([c]) => !haveCmd(c))
  if (process.getuid?.() !== 0) { t.fail('these tests need root'); return false }
  if (missing.length) { t.fail(`missing tools in CI: ${missing.map(([c, p]) => `${c} (${p})`).join(', ')}`); return false }
  return true
}

/**
 * A busybox root: /bin/busybox (static) and one symlink per applet, a few /etc files, empty
 * /proc /sys /dev /tmp; every entry's mtime set to ROOT_EPOCH so tree snapshots can check that
 * untouched lower entries keep their times.
 */
export function busyboxRoot(dir: string): string {
  const bb = ['/bin/busybox', '/usr/bin/busybox'].find(p => fs.existsSync(p))
  if (!bb) throw new Error('busybox not installed (apt-get install busybox-static)')
  fs.mkdirSync(dir, { recursive: true })
  for (const d of ['bin', 'sbin', 'usr/bin', 'usr/sbin', 'etc', 'root', 'tmp', 'proc', 'sys', 'dev', 'var/lib', 'home']) {
    fs.mkdirSync(path.join(dir, d), { recursive: true })
  }
  fs.chmodSync(path.join(dir, 'tmp'), 0o1777)
  fs.copyFileSync(bb, path.join(dir, 'bin/busybox'))
  fs.chmodSync(path.join(dir, 'bin/busybox'), 0o755)
  const applets = run(path.join(dir, 'bin/busybox'), ['--list']).stdout.split('\n').filter(a => a && a !== 'busybox')
  for (const a of applets) fs.symlinkSync('busybox', path.join(dir, 'bin', a))
  fs.writeFileSync(path.join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n')
  fs.writeFileSync(path.join(dir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n')
  fs.writeFileSync(path.join(dir, 'etc/hostname'), 'strata\n')
  fs.writeFileSync(path.join(dir, 'etc/motd'), 'welcome to a strata root\n')
  fs.writeFileSync(path.join(dir, 'etc/issue'), 'strata \\n \\l\n')
  // a few device nodes, so a chroot's shell has /dev/null (podman mounts its own /dev over them)
  for (const [n, maj, min] of [['null', 1, 3], ['zero', 1, 5], ['urandom', 1, 9]] as const) {
    const m = run('mknod', ['-m', '666', path.join(dir, 'dev', n), 'c', String(maj), String(min)])
    if (m.code !== 0) throw new Error(why(m, 'mknod'))
  }
  const r = run('sh', ['-c', `find "$1" -exec touch -h -d @${ROOT_EPOCH} {} +`, 'sh', dir])
  if (r.code !== 0) throw new Error(why(r, 'touch'))
  return dir
}

/**
 * Copies a host program into `root` at the same path, with the shared libraries ldd names (at
 * their real paths, e.g. /lib/x86_64-linux-gnu/libc.so.6 and /lib64/ld-linux-x86-64.so.2), so it
 * runs in a chroot. For tools busybox lacks (flock).
 */
export function copyHostProgram(root: string, prog: string): void {
  const abs = run('sh', ['-c', `command -v ${prog}`]).stdout.trim()
  if (!abs) throw new Error(`${prog} not found on the host`)
  const files = [abs]
  for (const line of run('ldd', [abs]).stdout.split('\n')) {
    const m = /(\/\S+) \(0x/.exec(line)
    if (m) files.push(m[1]!)
  }
  for (const f of files) {
    const real = fs.realpathSync(f)
    const dst = path.join(root, f)
    if (fs.existsSync(dst)) continue
    // /lib and /lib64 are symlinks into /usr on Debian 12; keep the path as the loader asks for it
    fs.mkdirSync(path.dirname(dst), { recursive: true })
    fs.copyFileSync(real, dst)
    fs.chmodSync(dst, fs.statSync(real).mode & 0o7777)
  }
}

/** Pids of live, non-zombie processes whose argv has an element containing `needle`. */
export function pidsWithArg(needle: string): { pid: number; argv: string[] }[] {
  const out: { pid: number; argv: string[] }[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').slice(0, -1)
      if (!argv.some(a => a.includes(needle))) continue
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'latin1')
      if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue
      out.push({ pid: Number(name), argv })
    } catch { /* gone */ }
  }
  return out
}

/** stratafs daemons (node running bin/stratafs) whose argv names a path under `dir`. */
export function stratafsDaemonsUnder(dir: string): { pid: number; argv: string[] }[] {
  // the program is argv[0] (exec'd directly) or argv[1] (node running the bin/stratafs shim);
  // conmon and podman name it only inside an option (overlay.mount_program=…)
  const isStratafs = (a: string | undefined) => a !== undefined && (a === STRATAFS || /(^|\/)stratafs$/.test(a))
  return pidsWithArg(dir).filter(p => isStratafs(p.argv[0]) || isStratafs(p.argv[1]))
}

export const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms))

/** Waits up to `ms` for no stratafs daemon naming `dir` to be left; returns those left. */
export async function waitNoDaemons(dir: string, ms = 5000): Promise<{ pid: number; argv: string[] }[]> {
  let left = stratafsDaemonsUnder(dir)
  for (let waited = 0; left.length && waited < ms; waited += 100) { await sleep(100); left = stratafsDaemonsUnder(dir) }
  return left
}

/** Unmounts everything still mounted under `dir` (deepest first); comments on what it had to do. */
export function unmountAllUnder(t: TestLike, dir: string): void {
  for (const m of mountsUnder(dir).sort().reverse()) {
    const r = run('umount', [m])
    if (r.code !== 0) { t.comment(`teardown: umount ${m}: ${r.stderr.trim()}; lazy`); run('umount', ['-l', m]) }
  }
}

export interface Podman {
  /** the graphroot (a temp dir) */
  root: string
  /** `podman --root … ARGS` (synchronous) */
  (...args: string[]): Run
  async(...args: string[]): Promise<Run>
  argv: string[]
  env: NodeJS.ProcessEnv
}

/**
 * A private rootful podman in `dir`: its own --root/--runroot, containers.conf (runc, cgroupfs,
 * file events, ulimits this machine allows), storage driver overlay, and with `mountProgram`
 * that program as overlay.mount_program (else kernel overlayfs). Teardown removes its containers,
 * releases image mounts, and unmounts anything left under `dir`.
 */
export function privatePodman(t: TestLike, dir: string, mountProgram: string | null): Podman {
  fs.mkdirSync(dir, { recursive: true })
  const hard = run('sh', ['-c', 'ulimit -Hn']).stdout.trim() || '1024'
  const conf = path.join(dir, 'containers.conf')
  fs.writeFileSync(conf, [
    '[containers]',
    `default_ulimits = ["nofile=${hard}:${hard}", "nproc=4096:4096"]`,
    '[engine]',
    'runtime = "runc"',
    'cgroup_manager = "cgroupfs"',
    'events_logger = "file"',
    `events_logfile_path = "${dir}/events.log"`,
    `tmp_dir = "${dir}/libpod-tmp"`,
    '',
  ].join('\n'))
  // an empty storage.conf so the host's never applies (podman 4.3 reads it even with --root)
  const storageConf = path.join(dir, 'storage.conf')
  fs.writeFileSync(storageConf, `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/root"\nrunroot = "${dir}/run"\n`)
  const env = { ...process.env, CONTAINERS_CONF: conf, CONTAINERS_STORAGE_CONF: storageConf, TMPDIR: dir }
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true })
  env.TMPDIR = path.join(dir, 'tmp')
  const argv = ['--root', `${dir}/root`, '--runroot', `${dir}/run`, '--storage-driver', 'overlay']
  if (mountProgram) argv.push('--storage-opt', `overlay.mount_program=${mountProgram}`)
  const p = ((...args: string[]) => run('podman', [...argv, ...args], { env })) as Podman
  p.async = (...args: string[]) => runAsync('podman', [...argv, ...args], { env })
  p.root = `${dir}/root`
  p.argv = argv
  p.env = env
  t.teardown(() => {
    p('rm', '--all', '--force', '--time', '0')
    p('image', 'unmount', '--all', '--force')
    p('unmount', '--all', '--force')
    unmountAllUnder(t, dir)
  })
  return p
}

/** `podman import` of a busybox root as `localhost/base`; returns the image id. */
export function importBase(p: Podman, rootfs: string, tag = 'localhost/base'): string {
  const tar = path.join(path.dirname(p.root), 'base.tar')
  const r1 = run('tar', ['--numeric-owner', '-C', rootfs, '-cf', tar, '.'])
  if (r1.code !== 0) throw new Error(why(r1, 'tar'))
  const r = p('import', tar, tag)
  if (r.code !== 0) throw new Error(why(r, 'podman import'))
  return r.stdout.trim().split('\n').pop()!.trim()
}

/**
 * Shell helpers a chroot script starts with: `step NAME CMD…` runs CMD (120 s limit, stdin
 * /dev/null) and prints `ok NAME` or `FAIL NAME rc=N <output tail>`; `out …` prints `= …`, a
 * line compared across targets.
 */
export const STEP_HELPERS = String.raw`
step() { name=$1; shift; if timeout 120 "$@" > /tmp/step.out 2>&1 < /dev/null; then echo "ok $name"; else echo "FAIL $name rc=$? $(tail -c 600 /tmp/step.out | tr '\n' '|')"; fi; }
out() { echo "= $*"; }
`

/**
 * In the new mount namespace, before chroot: lazily detach the copies of every FUSE and overlay
 * mount but the chroot's own. A namespace copies all mounts of the moment (they are private here,
 * so an unmount outside does not reach the copy), and a copy of another test's FUSE mount keeps
 * its connection, and so its daemon, alive after that test unmounts it, until the chroot exits.
 */
const DETACH_OTHER_UNIONS = String.raw`
awk -v m="$0" '{ split($0, p, " - "); split(p[2], f, " "); if ((f[1] ~ /^fuse/ || f[1] == "overlay") && $5 != m && index($5, m "/") != 1) print $5 }' /proc/self/mountinfo |
  sort -r | while read -r p; do umount -l "$p" 2>/dev/null; done
exec chroot "$0" /bin/sh -c "$1"
`

/** `unshare --mount --pid --fork --mount-proc=MNT/proc chroot MNT /bin/sh -c SCRIPT` (other unions detached first) */
export function inChroot(mnt: string, script: string): Run {
  return run('unshare', ['--mount', '--pid', '--fork', `--mount-proc=${mnt}/proc`, '/bin/sh', '-c', DETACH_OTHER_UNIONS, mnt, STEP_HELPERS + script],
    { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C' }, timeout: 600_000 })
}

/**
 * Runs `script` in a chroot over `lower` on kernel overlayfs, then on stratafs (upper/work/mnt
 * under `dir`). Asserts: every step is `ok` on both, at least `minLines` lines (the script ran to
 * the end), the stratafs view is identical after a remount and its daemon exits on unmount,
 * stratafs printed what the kernel printed, the merged trees are equal (paths for which
 * `volatile` is true left out), and the lower is unchanged (raw snapshot).
 */
export async function chrootOnBothTargets(t: Test, dir: string, lower: string, script: string,
  opts: { minLines: number; volatile?: (rel: string) => boolean }): Promise<void> {
  const lowerBefore = snapshot(lower, 'raw')
  const results: Partial<Record<Target, { out: string[]; tree: Snapshot }>> = {}
  for (const target of ['kernel', 'stratafs'] as const) {
    const d = { lowers: [lower], upper: path.join(dir, `${target}-upper`), work: path.join(dir, `${target}-work`), mnt: path.join(dir, `${target}-mnt`) }
    for (const p of [d.upper, d.work, d.mnt]) fs.mkdirSync(p)
    const m = await mountUnion(t, target, d)
    const r = inChroot(d.mnt, script)
    t.equal(r.code, 0, why(r, `${target}: chroot`))
    const lines = r.stdout.split('\n').filter(Boolean)
    for (const l of lines.filter(l => !l.startsWith('= '))) t.ok(l.startsWith('ok '), `${target}: ${l}`)
    t.ok(lines.length >= opts.minLines, `${target}: the script ran to the end (${lines.length} lines)`)
    const tree = snapshot(d.mnt)
    results[target] = { out: lines, tree }
    await m.unmount()
    if (target === 'stratafs') {
      const m2 = await mountUnion(t, target, d)
      t.same(diffSnapshots(tree, snapshot(d.mnt), {}, ['before remount', 'after remount']), [], 'stratafs view identical after a remount')
      await m2.unmount()
      t.notOk(m.daemonLingered() || m2.daemonLingered(), 'daemon exited on unmount')
    }
  }
  const k = results.kernel; const s = results.stratafs
  if (k && s) {
    t.same(s.out, k.out, 'stratafs printed what the kernel printed')
    // times set "now" in the chroot are not compared (tree.ts TIME_CEILING)
    t.same(diffSnapshots(k.tree, s.tree, { skip: opts.volatile }, ['kernel', 'stratafs']), [], 'merged tree: stratafs = kernel')
  }
  t.same(diffSnapshots(lowerBefore, snapshot(lower, 'raw'), {}, ['lower before', 'lower after']), [], 'lower unchanged (raw: content, metadata, xattrs)')
}

/**
 * stratafs's command line and daemon lifecycle, through the real binary and real mounts:
 * both argv shapes, containers/storage option strings, exit 0 only once live, the caller's
 * stderr released, unmount ends the daemon, signals, dead mountpoints, and every refusal.
 */
import t from 'tap'
import * as fs from 'node:fs'
import { spawn, spawnSync } from 'node:child_process'
import { isMounted } from '../helpers/mounts'
import { mountTable } from '../helpers/tmp'
import { alive, daemonPids, makeDirs, runStratafs, unmountLater, waitFor } from './util'

t.test('returns 0 once the mount is live; fusermount3 -u ends the daemon', async (t) => {
  const d = makeDirs(t)
  unmountLater(t, d.mnt)
  const r = runStratafs(['-o', `lowerdir=${d.lowers.join(':')},upperdir=${d.upper},workdir=${d.work}`, d.mnt])
  t.equal(r.status, 0, `exit 0 (stderr: ${r.stderr})`)
  t.equal(isMounted(d.mnt)?.fstype, 'fuse.stratafs', 'mounted as fuse.stratafs at the moment stratafs returned')
  t.equal(fs.readFileSync(`${d.mnt}/etc/motd`, 'utf8'), 'top motd\n', 'reads from the top layer')
  const pids = daemonPids(d.mnt)
  t.equal(pids.length, 1, 'one daemon serves the mount')
  t.equal(spawnSync('fusermount3', ['-u', d.mnt]).status, 0, 'fusermount3 -u')
  t.ok(await waitFor(() => !pids.some(alive)), 'the daemon exits after the unmount')
  t.notOk(isMounted(d.mnt), 'no mount left')
})

t.test("the background daemon does not hold the caller's stdout/stderr", async (t) => {
  const d = makeDirs(t)
  unmountLater(t, d.mnt)
  const child = spawn(process.execPath, [require.resolve('../../../bin/stratafs'), '-o', `lowerdir=${d.lowers.join(':')}`, d.mnt], { stdio: ['ignore', 'pipe', 'pipe'] })
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
  const code = await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r('timeout'), 15_000))])
  t.equal(code, 0, 'stdout and stderr reach EOF and the exit code is 0 while the mount stays up')
  t.ok(isMounted(d.mnt), 'still mounted')
  t.equal(spawnSync('fusermount3', ['-u', d.mnt]).status, 0)
})

t.test('mount.fuse form: SOURCE MNT -o rw,...,dev,suid', async (t) => {
  const d = makeDirs(t)
  unmountLater(t, d.mnt)
  const r = runStratafs(['mycontainer', d.mnt, '-o', `rw,lowerdir=${d.lowers.join(':')},upperdir=${d.upper},workdir=${d.work},dev,suid,noatime,defaults,x-systemd.automount`])
  t.equal(r.status, 0, r.stderr)
  const line = fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.includes(` ${d.mnt} `)) ?? ''
  t.match(line, / - fuse\.stratafs mycontainer /, 'SOURCE shows as the mount source')
  t.notMatch(line.split(' ')[5] ?? '', /nosuid|nodev/, 'dev and suid are honoured')
  fs.writeFileSync(`${d.mnt}/new`, 'x')
  t.ok(fs.existsSync(`${d.upper}/new`), 'writable')
  t.equal(spawnSync('umount', [d.mnt]).status, 0, 'umount works too')
})

t.test('containers/storage option strings: trailing comma, ,,volatile, context with commas, relative symlinked lowers', async (t) => {
  const d = makeDirs(t)
  unmountLater(t, d.mnt)
  fs.mkdirSync(`${d.root}/l`)
  fs.symlinkSync(d.lowers[0]!, `${d.root}/l/TOP`)
  fs.symlinkSync(d.lowers[1]!, `${d.root}/l/BOTTOM`)
  const opts = `lowerdir=l/TOP:l/BOTTOM,upperdir=${d.upper},workdir=${d.work},,volatile,context="system_u:object_r:container_file_t:s0:c1,c2",xattr_permissions=2,noxattrs,private,`
  const r = runStratafs(['-o', opts, 'mnt'], { cwd: d.root })
  t.equal(r.status, 0, r.stderr)
  t.equal(fs.readFileSync(`${d.mnt}/etc/only-bottom`, 'utf8'), 'b\n', 'relative, symlinked lowers resolve')
  t.equal(spawnSync('fusermount3', ['-u', d.mnt]).status, 0)
})

t.test('without upperdir the mount is read-only (EROFS)', async (t) => {
  const d = makeDirs(t)
  unmountLater(t, d.mnt)
  t.equal(runStratafs(['-o', `lowerdir=${d.lowers.join(':')}`, d.mnt]).status, 0)
  t.throws(() => fs.writeFileSync(`${d.mnt}/etc/motd`, 'x'), { code: 'EROFS' })
  t.throws(() => fs.mkdirSync(`${d.mnt}/newdir`), { code: 'EROFS' })
  t.throws(() => fs.unlinkSync(`${d.mnt}/etc/motd`), { code: 'EROFS' })
  t.equal(fs.readFileSync(`${d.mnt}/etc/motd`, 'utf8'), 'top motd\n')
  t.equal(spawnSync('fusermount3', ['-u', d.mnt]).status, 0)
})

t.test('SIGTERM and SIGINT unmount cleanly', async (t) => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    const d = makeDirs(t)
    unmountLater(t, d.mnt)
    t.equal(runStratafs(['-o', `lowerdir=${d.lowers.join(':')},upperdir=${d.upper},workdir=${d.work}`, d.mnt]).status, 0)
    const [pid] = daemonPids(d.mnt)
    t.ok(pid, 'found the daemon')
    process.kill(pid!, sig)
    t.ok(await waitFor(() => !isMounted(d.mnt)), `${sig}: unmounted`)
    t.ok(await waitFor(() => !alive(pid!)), `${sig}: daemon exited`)
  }
})

t.test('a dead mountpoint (daemon killed) is cleared by the next stratafs', async (t) => {
  const d = makeDirs(t)
  unmountLater(t, d.mnt)
  t.equal(runStratafs(['-o', `lowerdir=${d.lowers.join(':')},upperdir=${d.upper},workdir=${d.work}`, d.mnt]).status, 0)
  const [pid] = daemonPids(d.mnt)
  process.kill(pid!, 'SIGKILL')
  await waitFor(() => !alive(pid!))
  let code = ''
  try { fs.statfsSync(d.mnt) } catch (err) { code = (err as NodeJS.ErrnoException).code ?? '' } // statfs is never answered from cache
  // ECANCELED: the first request after the death, over io_uring (src/sys/errors.ts)
  t.match(code, /^(ENOTCONN|ECONNABORTED|ECANCELED)$/, `the dead mount answers ENOTCONN/ECONNABORTED/ECANCELED (${code})`)
  const r = runStratafs(['-o', `lowerdir=${d.lowers.join(':')},upperdir=${d.upper},workdir=${d.work}`, d.mnt])
  t.equal(r.status, 0, `remount over the dead mountpoint: ${r.stderr}`)
  t.equal(fs.readFileSync(`${d.mnt}/etc/motd`, 'utf8'), 'top motd\n')
  t.equal(mountTable().filter((m) => m.mnt === d.mnt).length, 1, 'exactly one mount at the mountpoint')
  t.equal(spawnSync('fusermount3', ['-u', d.mnt]).status, 0)
})

t.test('refusals: one line naming the path and the reason, nothing mounted', async (t) => {
  const d = makeDirs(t)
  unmountLater(t, d.mnt)
  const L = d.lowers.join(':')
  fs.writeFileSync(`${d.root}/afile`, '')
  fs.mkdirSync(`${d.lowers[0]}/inner-upper`)
  const tmpfs = `${d.root}/tmpfs`
  fs.mkdirSync(tmpfs)
  t.equal(spawnSync('mount', ['-t', 'tmpfs', 'tmpfs', tmpfs]).status, 0)
  t.teardown(() => { spawnSync('umount', [tmpfs]) })
  fs.mkdirSync(`${tmpfs}/work`)
  const cases: Array<[string, string[], RegExp, number]> = [
    ['missing lower', ['-o', `lowerdir=${d.root}/nope:${d.lowers[1]}`, d.mnt], /lowerdir .*nope: No such file or directory \(ENOENT\)/, 1],
    ['lower is a file', ['-o', `lowerdir=${d.root}/afile`, d.mnt], /afile: Not a directory \(ENOTDIR\)/, 1],
    ['layer listed twice', ['-o', `lowerdir=${d.lowers[0]}:${d.lowers[0]}`, d.mnt], /listed twice/, 1],
    ['empty lowerdir', ['-o', 'lowerdir=', d.mnt], /lowerdir needs a value/, 2],
    ['empty lowerdir entry', ['-o', `lowerdir=${d.lowers[0]}::${d.lowers[1]}`, d.mnt], /empty entry/, 2],
    ['no lowerdir', ['-o', `upperdir=${d.upper},workdir=${d.work}`, d.mnt], /no lowerdir/, 2],
    ['upper without work', ['-o', `lowerdir=${L},upperdir=${d.upper}`, d.mnt], /upperdir needs a workdir/, 2],
    ['upper inside a lower', ['-o', `lowerdir=${L},upperdir=${d.lowers[0]}/inner-upper,workdir=${d.work}`, d.mnt], /inside lowerdir/, 1],
    ['work on another filesystem', ['-o', `lowerdir=${L},upperdir=${d.upper},workdir=${tmpfs}/work`, d.mnt], /not on the same filesystem as upperdir .*EXDEV/, 1],
    ['mountpoint missing', ['-o', `lowerdir=${L}`, `${d.root}/nomnt`], /mountpoint .*nomnt: No such file or directory/, 1],
    ['mountpoint inside a layer', ['-o', `lowerdir=${L}`, `${d.lowers[0]}/etc`], /inside layer/, 1],
    ['unknown option', ['-o', `lowerdir=${L},frobnicate=3`, d.mnt], /unknown mount option: frobnicate=3/, 2],
    ['unbalanced quote', ['-o', `lowerdir=${L},context="abc`, d.mnt], /unbalanced quote/, 2],
    ['max_nodes not a count', ['-o', `lowerdir=${L},max_nodes=1e5`, d.mnt], /max_nodes takes a count \(0: no bound\), not "1e5"/, 2],
    ['max_nodes empty', ['-o', `lowerdir=${L},max_nodes=`, d.mnt], /option max_nodes needs a value/, 2],
    ['spin_us not a number', ['-o', `lowerdir=${L},spin_us=fast`, d.mnt], /spin_us takes microseconds from 0 to 10000, not "fast"/, 2],
    ['spin_us too long', ['-o', `lowerdir=${L},spin_us=20000`, d.mnt], /spin_us takes microseconds from 0 to 10000, not "20000"/, 2],
    ['passthrough not 0 or 1', ['-o', `lowerdir=${L},passthrough=yes`, d.mnt], /passthrough takes 0 or 1, not "yes"/, 2],
    ['uring_idle not 0, 1 or auto', ['-o', `lowerdir=${L},uring_idle=2`, d.mnt], /uring_idle takes 0, 1 or auto, not "2"/, 2],
    ['no mountpoint', ['-o', `lowerdir=${L}`], /no mountpoint/, 2],
    ['unsupported id mapping', ['-o', `lowerdir=${L},uidmapping=0:100000:65536`, d.mnt], /uidmapping is not supported/, 2],
    ['remount', ['mysrc', d.mnt, '-o', `remount,ro,lowerdir=${L}`], /remount is not supported: unmount .* and mount again/, 2],
  ]
  for (const [name, args, re, code] of cases) {
    const r = runStratafs(args)
    t.equal(r.status, code, `${name}: exit ${code}`)
    t.match(r.stderr.split('\n')[0], re, `${name}: ${r.stderr.split('\n')[0]}`)
    t.match(r.stderr, /^stratafs: /, `${name}: message starts with the program name`)
  }
  t.notOk(isMounted(d.mnt), 'nothing was mounted')
  // busy: a live mount already there
  t.equal(runStratafs(['-o', `lowerdir=${L}`, d.mnt]).status, 0)
  const r = runStratafs(['-o', `lowerdir=${L}`, d.mnt])
  t.equal(r.status, 1)
  t.match(r.stderr, /mountpoint .*: Device or resource busy \(EBUSY\): already a fuse.stratafs mount/)
  t.equal(mountTable().filter((m) => m.mnt === d.mnt).length, 1, 'the existing mount is untouched, no second mount')
  t.equal(spawnSync('fusermount3', ['-u', d.mnt]).status, 0)
})

t.test('strata stats MNT reads the live counters of the daemon', async (t) => {
  const d = makeDirs(t)
  unmountLater(t, d.mnt)
  t.equal(runStratafs(['-o', `lowerdir=${d.lowers.join(':')},upperdir=${d.upper},workdir=${d.work}`, d.mnt]).status, 0)
  fs.appendFileSync(`${d.mnt}/etc/motd`, 'more\n')
  t.throws(() => fs.statSync(`${d.mnt}/nope`), { code: 'ENOENT' })
  const strata = require.resolve('../../../bin/strata')
  const json = spawnSync(process.execPath, [strata, 'stats', d.mnt, '--json'], { encoding: 'utf8' })
  t.equal(json.status, 0, json.stderr)
  const s = JSON.parse(json.stdout) as { pid: number, copyUps: { count: number, bytes: number }, ops: Record<string, { count: number, errors: Record<string, number> }> }
  t.same(daemonPids(d.mnt), [s.pid], 'answered by the daemon of this mount')
  t.ok(s.copyUps.count >= 2 && s.copyUps.bytes === 'top motd\n'.length, `the copy-up of etc and etc/motd is counted: ${JSON.stringify(s.copyUps)}`)
  t.ok((s.ops.getattr?.errors.ENOENT ?? 0) >= 1, 'the failed lookup is counted as ENOENT')
  // the append is the kernel's (passthrough) where it allows: it opened the file, and counts that
  const pass = (s as { passthrough?: { opens: number, refused: number } }).passthrough
  t.ok(pass !== undefined && ((s.ops.write?.count ?? 0) >= 1 || pass.opens >= 1), `the write is counted, or its passthrough open: ${JSON.stringify(pass)}`)
  const text = spawnSync(process.execPath, [strata, 'stats', d.mnt], { encoding: 'utf8' })
  t.match(text.stdout, /^pid \d+, up \d+ s, rss \d+ MiB/, 'a readable summary')
  t.match(text.stdout, /\ninodes held by the kernel \d+ \(bound 100000, \d+ pruned\)\n/, 'and the kernel\'s inodes against the default max_nodes')
  const piped = spawnSync('bash', ['-c', 'set -o pipefail; "$0" "$1" stats "$2" | true', process.execPath, strata, d.mnt], { encoding: 'utf8' })
  t.same([piped.status, piped.stderr], [0, ''], 'piped into a reader that goes away (head, true): stops quietly')
  t.equal(spawnSync('fusermount3', ['-u', d.mnt]).status, 0)
  const gone = spawnSync(process.execPath, [strata, 'stats', d.mnt], { encoding: 'utf8' })
  t.not(gone.status, 0, 'no daemon, no stats')
  t.match(gone.stderr, /no stratafs daemon answers/)
})

t.test('--help and --version', async (t) => {
  const h = runStratafs(['--help'])
  t.equal(h.status, 0)
  t.match(h.stdout, /usage: stratafs .*lowerdir=/)
  const v = runStratafs(['--version'])
  t.equal(v.status, 0)
  t.match(v.stdout, /^stratafs \d+\.\d+\.\d+/)
})

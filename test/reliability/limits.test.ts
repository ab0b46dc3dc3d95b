/**
 * Limits (issue 6): thousands of files open through the mount (the client's own EMFILE, and the
 * daemon's: its RLIMIT_NOFILE lowered with prlimit, so its opens fail) give clean errors and no
 * leaked fds; walking a large tree keeps the daemon's memory bounded and it comes back down.
 * RELIABILITY_MILLION=1 walks a million entries instead of 150,000.
 */
import t from 'tap'
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { PY_PRELUDE, fdCount, layout, mountStratafs, py, pyBackground, rssKiB, sleep, tmpfs, waitFor } from './util'

const OPENER = `${PY_PRELUDE}
mnt, n, pid = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fds, errs = [], {}
for i in range(n):
    try:
        if i % 2 == 0: fds.append(os.open('%s/lower/f%d' % (mnt, i // 2), os.O_RDONLY))
        else: fds.append(os.open('%s/new/n%d' % (mnt, i // 2), os.O_RDWR | os.O_CREAT, 0o644))
    except OSError as e: errs[en(e)] = errs.get(en(e), 0) + 1
bad = 0
for i, fd in enumerate(fds):
    try:
        os.pwrite(fd, b'x', 0) if (os.fstat(fd).st_mode & 0o200) and i % 2 else None
        if len(os.pread(fd, 16, 0)) == 0 and i % 2 == 0: bad += 1
    except OSError as e: errs['io:' + en(e)] = errs.get('io:' + en(e), 0) + 1
opened = len(fds)
for fd in fds[-8:]: os.close(fd)
fds = fds[:-8]
held = len(os.listdir('/proc/%s/fd' % pid))
for fd in fds: os.close(fd)
out({'opened': opened, 'errors': errs, 'emptyReads': bad, 'daemonFdsWhileHeld': held})`

t.test('thousands of open files: clean EMFILE/ENFILE, no fd leak in the daemon', async (t) => {
  const d = layout(t)
  fs.mkdirSync(`${d.lowers[0]}/lower`)
  for (let i = 0; i < 3000; i++) fs.writeFileSync(`${d.lowers[0]}/lower/f${i}`, `file ${i}\n`)
  const pid = mountStratafs(t, d)
  fs.mkdirSync(`${d.mnt}/new`)
  await sleep(200)
  const base = fdCount(pid)
  t.comment(`daemon fds at baseline: ${base}; limits: ${fs.readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'))}`)

  // 1. 5000 files held open at once by one process (its own limit raised to 20000)
  const r1 = py(OPENER, [d.mnt, '5000', String(pid)], 120_000)
  t.equal(r1.status, 0, r1.stderr)
  const o1 = JSON.parse(r1.stdout) as { opened: number; errors: Record<string, number>; emptyReads: number; daemonFdsWhileHeld: number }
  t.comment(`5000 opens: ${JSON.stringify(o1)}`)
  t.equal(o1.opened, 5000, 'all 5000 opens succeed')
  t.same(o1.errors, {}, 'no errors')
  t.equal(o1.emptyReads, 0, 'every file reads through its handle')
  t.ok(await waitFor(() => fdCount(pid) <= base, 10_000), `daemon fds back to baseline ${base} after close (now ${fdCount(pid)})`)

  // 2. the client's own limit: ulimit -n 1000, 3000 opens -> EMFILE only
  const r2 = spawnSync('bash', ['-c', 'ulimit -n 1000 && exec python3 -c "$0" "$@"', OPENER, d.mnt, '3000', String(pid)], { encoding: 'utf8', timeout: 60_000 })
  const o2 = JSON.parse(r2.stdout) as { opened: number; errors: Record<string, number> }
  t.comment(`client ulimit 1000: ${JSON.stringify(o2)}`)
  t.same(Object.keys(o2.errors), ['EMFILE'], 'the client gets EMFILE and nothing else')
  t.ok(await waitFor(() => fdCount(pid) <= base, 10_000), `daemon fds back to baseline (now ${fdCount(pid)})`)

  // 3. the daemon's limit: lowered to base+500 with prlimit (we started the daemon); 3000 opens
  const lim = base + 500
  t.equal(spawnSync('prlimit', ['--pid', String(pid), `--nofile=${lim}:${lim}`]).status, 0, `daemon RLIMIT_NOFILE lowered to ${lim}`)
  const r3 = py(OPENER, [d.mnt, '3000', String(pid)], 120_000)
  t.equal(r3.status, 0, `opener finished (no hang): ${r3.stderr}`)
  const o3 = JSON.parse(r3.stdout || '{}') as { opened: number; errors: Record<string, number>; emptyReads: number }
  t.comment(`daemon limit ${lim}, 3000 opens: ${JSON.stringify(o3)}`)
  t.ok(o3.opened >= 400, `opens up to the daemon's limit succeed (${o3.opened})`)
  t.same(Object.keys(o3.errors).filter((e) => e !== 'EMFILE' && e !== 'ENFILE'), [], 'the rest fail with EMFILE/ENFILE only (never EIO)')
  t.equal(o3.emptyReads, 0, 'the opened files read correctly')
  t.ok(await waitFor(() => fdCount(pid) <= base, 10_000), `daemon fds back to baseline after the pressure (now ${fdCount(pid)})`)
  spawnSync('prlimit', ['--pid', String(pid), '--nofile=20000:20000'])
  // and the mount still works
  fs.writeFileSync(`${d.mnt}/after`, 'ok')
  t.equal(fs.readFileSync(`${d.mnt}/lower/f7`, 'utf8'), 'file 7\n', 'the mount works after the pressure')
  t.equal(fs.readFileSync(`${d.upper}/after`, 'utf8'), 'ok')
})

t.test('memory stays bounded while walking a large tree and returns near baseline', async (t) => {
  const million = process.env.RELIABILITY_MILLION === '1'
  const DIRS = million ? 1000 : 100
  const PER = 1000
  const d = layout(t)
  tmpfs(t, d.lowers[0]!, million ? '4g' : '1g', 'nr_inodes=2000000') // fast to fill; any filesystem is a valid lower
  const mk = py(`${PY_PRELUDE}
root, dirs, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(dirs):
    p = '%s/d%d' % (root, i); os.mkdir(p)
    for j in range(per): os.close(os.open('%s/f%d' % (p, j), os.O_WRONLY | os.O_CREAT, 0o644))
out('ok')`, [d.lowers[0]!, String(DIRS), String(PER)], 900_000)
  t.equal(mk.status, 0, mk.stderr)
  const pid = mountStratafs(t, d)
  await sleep(500)
  const base = rssKiB(pid)
  const WALKER = `${PY_PRELUDE}
n = 0
for dp, dn, fn in os.walk(sys.argv[1]):
    for f in fn: os.lstat(dp + '/' + f); n += 1
    n += len(dn)
out(n)`
  let peak = base
  const sampler = setInterval(() => { try { peak = Math.max(peak, rssKiB(pid)) } catch { /* gone */ } }, 100)
  const peaks: number[] = []
  const started = Date.now()
  for (let pass = 0; pass < 2; pass++) {
    const r = await pyBackground(WALKER, [d.mnt]).done
    t.equal(r.stdout.trim(), String(DIRS * PER + DIRS), `walk ${pass + 1} saw every entry`)
    peaks.push(peak)
  }
  clearInterval(sampler)
  const secs = (Date.now() - started) / 1000
  await sleep(5000)
  const after = rssKiB(pid)
  const mib = (k: number): string => `${(k / 1024).toFixed(0)} MiB`
  t.comment(`entries: ${DIRS * PER + DIRS}; two walks in ${secs.toFixed(1)} s; RSS baseline ${mib(base)}, peak after walk 1 ${mib(peaks[0]!)}, after walk 2 ${mib(peaks[1]!)}, 5 s after ${mib(after)}`)
  t.ok(peak - base < (million ? 1_000_000 : 500_000), `bounded: peak growth ${mib(peak - base)}`)
  t.ok(peaks[1]! - peaks[0]! < 32 * 1024, `walking the same tree again does not grow it (${mib(peaks[1]! - peaks[0]!)})`)
  t.ok(after - base < 64 * 1024, `returns near baseline: ${mib(after)} 5 s after the walk vs ${mib(base)} before`)
})

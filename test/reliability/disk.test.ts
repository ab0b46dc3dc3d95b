/**
 * fsync/fdatasync reach the upper file (observed with strace on the daemon: it calls fsync or
 * fdatasync on an upper fd), `volatile`/`fsync=0` make them no-ops that still succeed; and a full
 * upper (a small tmpfs, by blocks and by inodes) gives ENOSPC, never EIO or a hang, leaves no
 * partial copy-up, keeps what was written before, and works again once space is freed.
 */
import t, { type Test } from 'tap'
import * as fs from 'node:fs'
import { spawn } from 'node:child_process'
import { lowersUnchanged } from '../stratafs/util'
import { layout, listTree, mountStratafs, pattern, pyJson, sleep, tmpfs, PY_PRELUDE, type Layout } from './util'
import { runOp, runOps } from './ops'

/** Traces fsync/fdatasync of all threads of `pid` while `fn` runs; returns the trace lines. */
async function traceSyncs(t: Test, pid: number, fn: () => void): Promise<string[]> {
  const out = `/tmp/strata-rel-strace-${process.pid}-${pid}-${Date.now()}`
  const st = spawn('strace', ['-f', '-qq', '-p', String(pid), '-e', 'trace=fsync,fdatasync,syncfs,sync_file_range', '-o', out], { stdio: 'ignore' })
  t.teardown(() => { try { fs.rmSync(out) } catch { /* none */ } })
  await sleep(700) // attach to every thread
  fn()
  await sleep(300)
  st.kill('SIGINT') // the strace we started, by its pid
  await new Promise((r) => st.on('close', r))
  return fs.existsSync(out) ? fs.readFileSync(out, 'utf8').split('\n').filter((l) => /f(data)?sync|sync/.test(l)) : []
}

const FSYNC_CHILD = `${PY_PRELUDE}
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b'A' * 8192)
res = {}
try: os.fsync(fd); res['fsync'] = 'ok'
except OSError as e: res['fsync'] = en(e)
os.pwrite(fd, b'B' * 4096, 0)
try: os.fdatasync(fd); res['fdatasync'] = 'ok'
except OSError as e: res['fdatasync'] = en(e)
os.close(fd)
out(res)`

for (const variant of ['default', 'volatile', 'fsync=0'] as const) {
  t.test(`fsync and fdatasync through the mount (${variant})`, async (t) => {
    const d = layout(t)
    fs.writeFileSync(`${d.lowers[0]}/lowerfile`, 'lower\n')
    const pid = mountStratafs(t, d, variant === 'default' ? [] : [variant])
    let res: Record<string, string> = {}
    let res2: Record<string, string> = {}
    const trace = await traceSyncs(t, pid, () => {
      res = pyJson(FSYNC_CHILD, [`${d.mnt}/new`])
      res2 = pyJson(FSYNC_CHILD, [`${d.mnt}/lowerfile`])
    })
    t.same(res, { fsync: 'ok', fdatasync: 'ok' }, 'fsync and fdatasync succeed on a new file')
    t.same(res2, { fsync: 'ok', fdatasync: 'ok' }, 'and on a copied-up file')
    const upper = fs.readFileSync(`${d.upper}/new`)
    t.ok(upper.subarray(0, 4096).equals(Buffer.alloc(4096, 'B')) && upper.subarray(4096).equals(Buffer.alloc(4096, 'A')), 'the data is in the upper file right after')
    t.ok(fs.readFileSync(`${d.upper}/lowerfile`).subarray(0, 4).equals(Buffer.from('BBBB')), 'copied-up file data in the upper')
    const fsyncs = trace.filter((l) => /\b(fsync|fdatasync)\(/.test(l))
    t.comment(`daemon sync calls: ${fsyncs.length}\n${trace.slice(0, 8).join('\n')}`)
    if (variant === 'default') t.ok(fsyncs.length >= 2, `the daemon called fsync/fdatasync on the upper (${fsyncs.length})`)
    else t.equal(fsyncs.length, 0, `${variant}: the daemon made no fsync/fdatasync call`)
  })
}

/** lower: big (24 MiB), small, tree/ of 12 x 1 MiB; upper+work on a 48 MiB tmpfs. */
function fullDiskLayout(t: Test, inodes?: number): Layout {
  const d = layout(t)
  tmpfs(t, `${d.root}/t`, '48m', inodes ? `nr_inodes=${inodes}` : '')
  d.upper = `${d.root}/t/upper`
  d.work = `${d.root}/t/work`
  fs.mkdirSync(d.upper)
  fs.mkdirSync(d.work)
  const L = d.lowers[0]!
  fs.writeFileSync(`${L}/big`, pattern(24 << 20, 1))
  fs.writeFileSync(`${L}/small`, 'small\n')
  fs.mkdirSync(`${L}/tree`)
  for (let i = 0; i < 12; i++) fs.writeFileSync(`${L}/tree/f${i}`, pattern(1 << 20, 10 + i))
  for (let i = 0; i < 50; i++) fs.writeFileSync(`${L}/l${i}`, `l${i}`)
  return d
}

const workEmpty = (d: Layout): string[] => fs.readdirSync(`${d.work}/work`)

t.test('full upper (blocks): ENOSPC, no partial copy-up, old data intact, works after freeing space', async (t) => {
  const d = fullDiskLayout(t)
  lowersUnchanged(t, d.lowers)
  mountStratafs(t, d)
  const M = d.mnt
  t.same(runOps([['write', `${M}/keep`, 4 << 20, 0x6b], ['append', `${M}/small`, 'more\n']]), ['ok', 'ok'], 'writes before the disk is full')
  const fill = runOp(['fill', `${M}/fill`, 1 << 20]) as { err: string; bytes: number }
  t.equal(fill.err, 'ENOSPC', `filling the upper ends with ENOSPC after ${fill.bytes >> 20} MiB`)
  const fill2 = runOp(['fill', `${M}/fill2`, 4096]) as { err: string; bytes: number }
  t.equal(fill2.err, 'ENOSPC', `small writes then fail with ENOSPC too (${fill2.bytes} bytes fitted)`)
  const res = runOps([
    ['append', `${M}/big`, 'x'], // 24 MiB copy-up
    ['rename', `${M}/tree`, `${M}/tree2`], // 12 MiB tree copy-up
    ['append', `${M}/l0`, 'x'],
    ['write', `${M}/newfile`, 1 << 20, 0x6e],
    ['append', `${M}/keep`, 'more'],
  ])
  t.same(res.map((r) => (r === 'ok' || r === 'ENOSPC' ? 'ok|ENOSPC' : r)), res.map(() => 'ok|ENOSPC'), `every operation answers ok or ENOSPC: ${JSON.stringify(res)}`)
  t.equal(res[0], 'ENOSPC', 'a copy-up that does not fit fails with ENOSPC')
  t.equal(res[1], 'ENOSPC', 'a directory rename whose tree copy-up does not fit fails with ENOSPC')
  t.notOk(fs.existsSync(`${d.upper}/big`), 'no partial copy-up of big in the upper')
  t.notOk(fs.existsSync(`${d.upper}/tree2`), 'no partial tree2 in the upper')
  t.same(workEmpty(d), [], 'nothing left in the work dir')
  t.ok(fs.readFileSync(`${M}/big`).equals(pattern(24 << 20, 1)), 'big still reads as the lower file')
  t.same(fs.readdirSync(`${M}/tree`).length, 12, 'tree still whole')
  t.notOk(fs.existsSync(`${M}/tree2`))
  t.ok(fs.readFileSync(`${M}/keep`).subarray(0, 4 << 20).equals(Buffer.alloc(4 << 20, 0x6b)), 'data written before is intact')
  t.equal(fs.readFileSync(`${M}/small`, 'utf8'), 'small\nmore\n')
  // free the space: the same operations succeed
  fs.unlinkSync(`${M}/fill`)
  fs.unlinkSync(`${M}/fill2`)
  try { fs.unlinkSync(`${M}/newfile`) } catch { /* may not exist */ }
  const again = runOps([['append', `${M}/big`, 'x'], ['rename', `${M}/tree`, `${M}/tree2`], ['append', `${M}/l0`, 'x'], ['write', `${M}/newfile`, 1 << 20, 0x6e]])
  t.same(again, ['ok', 'ok', 'ok', 'ok'], 'after freeing space the same operations succeed')
  t.equal(fs.statSync(`${d.upper}/big`).size, (24 << 20) + 1)
  t.same(fs.readdirSync(`${M}/tree2`).length, 12)
  t.ok(fs.readFileSync(`${M}/tree2/f3`).equals(pattern(1 << 20, 13)), 'tree copied up exactly')
  t.same(workEmpty(d), [])
})

t.test('full upper (inodes): ENOSPC for creates, whiteouts and copy-ups; works after freeing', async (t) => {
  const d = fullDiskLayout(t, 120)
  lowersUnchanged(t, d.lowers)
  mountStratafs(t, d)
  const M = d.mnt
  fs.mkdirSync(`${M}/many`)
  const results = runOps(Array.from({ length: 160 }, (_, i) => ['creat', `${M}/many/c${i}`] as ['creat', string]))
  const created = results.flatMap((r, i) => (r === 'ok' ? [`c${i}`] : []))
  const err = String(results.find((r) => r !== 'ok') ?? '')
  t.same(results.slice(created.length).filter((r) => r !== 'ENOSPC'), [], 'every create after the first failure fails with ENOSPC too')
  t.equal(err, 'ENOSPC', `creates fail with ENOSPC once inodes run out (${created.length} created)`)
  const res = runOps([['unlink', `${M}/l1`], ['append', `${M}/l2`, 'x'], ['mkdir', `${M}/newdir`], ['symlink', 'x', `${M}/sym`], ['rename', `${M}/tree`, `${M}/tree2`]])
  t.same(res, ['ENOSPC', 'ENOSPC', 'ENOSPC', 'ENOSPC', 'ENOSPC'], 'whiteout, copy-up, mkdir, symlink, tree rename: ENOSPC')
  t.same(workEmpty(d), [], 'nothing left in the work dir')
  t.equal(fs.readFileSync(`${M}/l1`, 'utf8'), 'l1', 'the lower file is still visible')
  t.same(fs.readdirSync(`${M}/many`).sort(), created.sort(), 'everything created before is there')
  t.notOk(fs.existsSync(`${d.upper}/tree2`))
  for (const n of created.slice(0, 40)) fs.unlinkSync(`${M}/many/${n}`)
  t.same(runOps([['unlink', `${M}/l1`], ['append', `${M}/l2`, 'x'], ['mkdir', `${M}/newdir`], ['symlink', 'x', `${M}/sym`]]), ['ok', 'ok', 'ok', 'ok'], 'after freeing inodes the same operations succeed')
  t.ok(listTree(d.upper).includes('l2'))
})

/**
 * Crash safety (issue 6): SIGKILL the daemon in the middle of a large copy-up, a rename of a lower
 * directory (tree copy-up), a burst of creates/unlinks and a series of fsync'd writes; then run
 * stratafs again on the dead mountpoint (no manual steps) and check the merged view is a
 * consistent state, the work dir's leftovers are gone, and the lowers are byte-for-byte unchanged.
 *
 * Only the daemon dies, not the machine: every write the daemon completed reached the upper
 * filesystem's page cache, so every operation that returned to its caller must be visible after
 * the remount; only the one in flight may go either way.
 */
import t, { type Test } from 'tap'
import * as fs from 'node:fs'
import * as crypto from 'node:crypto'
import { isMounted } from '../helpers/mounts'
import { diffSnapshots, snapshot } from '../helpers/tree'
import { lowersUnchanged } from '../stratafs/util'
import { PY_PRELUDE, killDaemon, layout, listTree, mountStratafs, pattern, pyBackground, sleep, waitFor, type Layout } from './util'

const sha = (p: string): string => {
  const h = crypto.createHash('sha256')
  const fd = fs.openSync(p, 'r')
  const buf = Buffer.alloc(1 << 22)
  try { for (;;) { const n = fs.readSync(fd, buf, 0, buf.length, null); if (n === 0) break; h.update(buf.subarray(0, n)) } } finally { fs.closeSync(fd) }
  return h.digest('hex')
}

const workEntries = (d: Layout): string[] => { try { return fs.readdirSync(`${d.work}/work`) } catch { return [] } }

/** The mount is dead (ENOTCONN/ECONNABORTED/ECANCELED); stratafs on it again must just work; work/ is then empty. */
async function remount(tt: Test, d: Layout): Promise<void> {
  let code = ''
  try { fs.statfsSync(d.mnt) } catch (e) { code = (e as NodeJS.ErrnoException).code ?? '' } // statfs is never answered from cache
  tt.match(code, /^(ENOTCONN|ECONNABORTED|ECANCELED)$/, `dead mount answers ${code}`) // ECANCELED: over io_uring
  tt.comment(`work dir leftovers before remount: ${workEntries(d).length}`)
  mountStratafs(tt, d)
  tt.ok(isMounted(d.mnt), 'stratafs mounted again on the dead mountpoint')
  tt.same(workEntries(d), [], 'work dir leftovers removed at mount')
}


/** Waits until cond() or ms pass, polling every 2 ms (async, so children make progress). */
async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) { if (cond()) return true; await sleep(2) }
  return cond()
}

t.test('SIGKILL during a copy-up of a large file', async (t) => {
  const d = layout(t)
  const SIZE = 1 << 30
  const block = pattern(1 << 20, 7)
  const fd = fs.openSync(`${d.lowers[0]}/big`, 'w')
  for (let i = 0; i < SIZE >> 20; i++) { block.writeUInt32LE(i, 0); fs.writeSync(fd, block) }
  fs.closeSync(fd)
  fs.mkdirSync(`${d.lowers[0]}/dir`)
  fs.writeFileSync(`${d.lowers[0]}/dir/small`, 'small\n')
  const lowerSha = sha(`${d.lowers[0]}/big`)
  lowersUnchanged(t, d.lowers)
  mountStratafs(t, d)
  const child = pyBackground(`${PY_PRELUDE}
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND); os.write(fd, b'tail'); os.close(fd); out('done')
except OSError as e: out(en(e))`, [`${d.mnt}/big`])
  // catch the copy-up half-way: a temp file in work/ that has some but not all of the data
  let seen = -1
  const caught = await until(() => {
    for (const n of workEntries(d)) {
      try { const s = fs.lstatSync(`${d.work}/work/${n}`).size; if (s > 0 && s < SIZE) { seen = s; return true } } catch { /* raced */ }
    }
    return false
  }, 30_000)
  await killDaemon(d.mnt)
  const r = await child.done
  t.ok(caught, `killed during the copy-up (temp file had ${seen} of ${SIZE} bytes)`)
  t.comment(`writer saw: ${r.stdout.trim()} ${r.stderr.trim()}`)
  await remount(t, d)
  const upper = fs.existsSync(`${d.upper}/big`)
  if (upper) {
    const s = fs.statSync(`${d.upper}/big`).size
    t.ok(s === SIZE || s === SIZE + 4, `an upper copy, if any, is complete (${s})`)
  }
  t.equal(fs.statSync(`${d.mnt}/big`).size, upper ? fs.statSync(`${d.upper}/big`).size : SIZE, 'merged size')
  if (!upper) t.equal(sha(`${d.mnt}/big`), lowerSha, 'merged file is the lower content (no partial copy-up visible)')
  t.equal(fs.readFileSync(`${d.mnt}/dir/small`, 'utf8'), 'small\n')
  t.same(listTree(d.upper).filter((n) => n !== 'big'), [], 'no stray names in the upper')
  // the same copy-up now completes
  const w = pyBackground(`${PY_PRELUDE}
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND); os.write(fd, b'tail'); os.close(fd); out('ok')`, [`${d.mnt}/big`])
  t.equal((await w.done).code, 0, 'copy-up after the remount succeeds')
  t.equal(fs.statSync(`${d.upper}/big`).size, SIZE + 4)
})

t.test('SIGKILL during a rename of a lower directory (tree copy-up)', async (t) => {
  const d = layout(t)
  const L = d.lowers[0]!
  fs.mkdirSync(`${L}/tree`)
  for (let i = 0; i < 40; i++) {
    fs.mkdirSync(`${L}/tree/s${i}`)
    for (let j = 0; j < 60; j++) fs.writeFileSync(`${L}/tree/s${i}/f${j}`, `${i}/${j}\n`)
  }
  fs.writeFileSync(`${L}/tree/bulk`, pattern(64 << 20, 3))
  fs.mkdirSync(`${L}/odir`)
  fs.writeFileSync(`${L}/odir/old`, 'old')
  lowersUnchanged(t, d.lowers)
  // first mount: a whiteout inside the tree and an opaque directory
  mountStratafs(t, d)
  fs.unlinkSync(`${d.mnt}/tree/s0/f0`)
  fs.rmSync(`${d.mnt}/odir`, { recursive: true })
  fs.mkdirSync(`${d.mnt}/odir`)
  fs.writeFileSync(`${d.mnt}/odir/new`, 'new')
  const before = snapshot(`${d.mnt}/tree`)
  t.ok(before.entries.size > 2000)
  const child = pyBackground(`${PY_PRELUDE}
try: os.rename(sys.argv[1], sys.argv[2]); out('done')
except OSError as e: out(en(e))`, [`${d.mnt}/tree`, `${d.mnt}/tree2`])
  const caught = await until(() => workEntries(d).length > 0, 30_000)
  await sleep(30)
  await killDaemon(d.mnt)
  const r = await child.done
  t.ok(caught, 'killed while the tree copy-up was being built in the work dir')
  t.comment(`rename saw: ${r.stdout.trim()} ${r.stderr.trim()}`)
  await remount(t, d)
  const names = fs.readdirSync(d.mnt).sort()
  const state = names.includes('tree2') ? 'after' : 'before'
  t.same(names, state === 'after' ? ['odir', 'tree2'] : ['odir', 'tree'], `top level is entirely ${state} the rename`)
  const now = snapshot(`${d.mnt}/${state === 'after' ? 'tree2' : 'tree'}`)
  t.same(diffSnapshots(before, now, { ignoreLinks: true }), [], `the ${state === 'after' ? 'renamed' : 'original'} tree is complete and unchanged (f0 still deleted)`)
  t.notOk(fs.existsSync(`${d.mnt}/${state === 'after' ? 'tree2' : 'tree'}/s0/f0`), 'whiteout intact')
  t.same(fs.readdirSync(`${d.mnt}/odir`), ['new'], 'opaque directory intact')
  const upperTop = fs.readdirSync(d.upper).sort()
  t.ok(upperTop.every((n) => ['odir', 'tree', 'tree2'].includes(n)), `no stray names in the upper: ${upperTop.join(' ')}`)
})

t.test('SIGKILL during a burst of creates and unlinks', async (t) => {
  const d = layout(t)
  fs.mkdirSync(`${d.lowers[0]}/burst`)
  for (let i = 0; i < 3000; i++) fs.writeFileSync(`${d.lowers[0]}/burst/l${i}`, `lower ${i}\n`)
  lowersUnchanged(t, d.lowers)
  mountStratafs(t, d)
  const log = `${d.root}/burst.log`
  // each line is written to a log outside the mount after its operation returned
  const child = pyBackground(`${PY_PRELUDE}
mnt, logp = sys.argv[1], sys.argv[2]
log = os.open(logp, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
def note(s): os.write(log, (s + '\\n').encode())
try:
    for i in range(1000000):
        note('try c c%d' % i)
        fd = os.open('%s/burst/c%d' % (mnt, i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, b'created %d\\n' % i); os.close(fd)
        note('ok c c%d' % i)
        for victim in (['c%d' % (i - 1)] if i % 2 == 1 else []) + (['l%d' % i] if i < 3000 else []):
            note('try d ' + victim)
            os.unlink('%s/burst/%s' % (mnt, victim))
            note('ok d ' + victim)
except OSError as e: out(en(e))`, [d.mnt, log])
  await until(() => { try { return fs.statSync(log).size > 40_000 } catch { return false } }, 30_000)
  await killDaemon(d.mnt)
  const r = await child.done
  t.comment(`burst child: ${r.stdout.trim()} ${r.stderr.trim().split('\n').pop()}`)
  await remount(t, d)
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n')
  const last = lines[lines.length - 1]!
  t.comment(`${lines.length} log lines; last: ${last}`)
  const expect = new Map<string, string | null>() // name -> content, or null when deleted
  for (let i = 0; i < 3000; i++) expect.set(`l${i}`, `lower ${i}\n`)
  for (const line of lines) {
    const [k, op, name] = line.split(' ') as [string, string, string]
    if (k !== 'ok') continue
    expect.set(name, op === 'c' ? `created ${name.slice(1)}\n` : null)
  }
  const uncertain = new Set<string>(last.startsWith('try ') ? [last.split(' ')[2]!] : [])
  const merged = new Set(fs.readdirSync(`${d.mnt}/burst`))
  const bad: string[] = []
  for (const [name, content] of expect) {
    if (uncertain.has(name)) continue
    if (content === null) { if (merged.has(name)) bad.push(`${name} deleted but visible`) } else if (!merged.has(name)) bad.push(`${name} missing`)
    else { const got = fs.readFileSync(`${d.mnt}/burst/${name}`, 'utf8'); if (got !== content) bad.push(`${name}: ${JSON.stringify(got)}`) }
  }
  for (const n of merged) if (!expect.has(n) && !uncertain.has(n)) bad.push(`stray ${n}`)
  for (const n of uncertain) {
    if (!merged.has(n)) continue
    const got = fs.readFileSync(`${d.mnt}/burst/${n}`, 'utf8')
    if (got !== '' && !/^(created|lower) \d+\n$/.test(got)) bad.push(`in-flight ${n} has ${JSON.stringify(got)}`)
  }
  t.same(bad.slice(0, 20), [], `every completed create/unlink is visible, nothing else (${expect.size} names checked)`)
  const strayUpper = fs.readdirSync(`${d.upper}/burst`).filter((n) => !/^[cl]\d+$/.test(n))
  t.same(strayUpper, [], 'no temp names in the upper')
  // whiteouts for deleted lower files are real 0/0 char devices
  const wh = fs.readdirSync(`${d.upper}/burst`).filter((n) => n.startsWith('l'))
  t.ok(wh.length > 0 && wh.every((n) => { const s = fs.lstatSync(`${d.upper}/burst/${n}`); return s.isCharacterDevice() && s.rdev === 0 }), `${wh.length} whiteouts intact`)
})

t.test("SIGKILL during fsync'd writes to a copied-up file", async (t) => {
  const d = layout(t)
  const REC = 4096
  const NREC = 256
  const rec = (g: number, r: number): Buffer => { const b = pattern(REC, g * 1000 + r); b.write(`g${g} r${r};`, 0); return b }
  fs.writeFileSync(`${d.lowers[0]}/data`, Buffer.concat(Array.from({ length: NREC }, (_, r) => rec(0, r))))
  lowersUnchanged(t, d.lowers)
  mountStratafs(t, d)
  const log = `${d.root}/fsync.log`
  // the records each generation writes, kept outside the mount (generation g uses slot g % 8)
  const recs = Buffer.concat(Array.from({ length: 8 * NREC }, (_, i) => rec(Math.floor(i / NREC) || 8, i % NREC)))
  fs.writeFileSync(`${d.root}/records`, recs)
  const child = pyBackground(`${PY_PRELUDE}
mnt, logp = sys.argv[1], sys.argv[2]
log = os.open(logp, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
fd = os.open(mnt + '/data', os.O_RDWR)
src = os.open(sys.argv[3], os.O_RDONLY)
try:
    g = 1
    while True:
        for r in range(${NREC}):
            os.write(log, b'try %d %d\\n' % (g, r))
            buf = os.pread(src, ${REC}, ((g % 8) * ${NREC} + r) * ${REC})
            os.pwrite(fd, buf, r * ${REC})
            os.fsync(fd) if r % 2 == 0 else os.fdatasync(fd)
            os.write(log, b'ok %d %d\\n' % (g, r))
        g += 1
except OSError as e: out(en(e))`, [d.mnt, log, `${d.root}/records`])
  await until(() => { try { return fs.statSync(log).size > 60_000 } catch { return false } }, 30_000)
  await killDaemon(d.mnt)
  const r = await child.done
  t.comment(`writer: ${r.stdout.trim()} ${r.stderr.trim().split('\n').pop()}`)
  await remount(t, d)
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n')
  const done = new Map<number, number>() // record -> last fsync'd generation
  let inflight: [number, number] | null = null
  for (const l of lines) {
    const [k, g, rr] = l.split(' ').map((x, i) => (i === 0 ? x : Number(x))) as [string, number, number]
    if (k === 'ok') { done.set(rr, g); inflight = null } else inflight = [g, rr]
  }
  t.comment(`${lines.length} log lines, last: ${lines[lines.length - 1]}`)
  t.ok(done.size > 0, 'some fsync\'d writes completed before the kill')
  const slot = (g: number, r: number): Buffer => (g === 0 ? rec(0, r) : recs.subarray(((g % 8) * NREC + r) * REC, ((g % 8) * NREC + r + 1) * REC))
  const got = fs.readFileSync(`${d.mnt}/data`)
  t.equal(got.length, NREC * REC, 'file size unchanged')
  const bad: string[] = []
  for (let r = 0; r < NREC; r++) {
    const piece = got.subarray(r * REC, (r + 1) * REC)
    const want = slot(done.get(r) ?? 0, r)
    if (piece.equals(want)) continue
    if (inflight && inflight[1] === r && piece.equals(slot(inflight[0], r))) continue
    bad.push(`record ${r}: expected generation ${done.get(r) ?? 0}${inflight?.[1] === r ? ` or ${inflight[0]}` : ''}, found ${JSON.stringify(piece.subarray(0, 12).toString('latin1'))}`)
  }
  t.same(bad.slice(0, 10), [], 'every record holds its last fsync\'d content (or the one write in flight), whole')
})

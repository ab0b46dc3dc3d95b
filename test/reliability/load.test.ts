/**
 * Load (issue 6): 34 processes at once on one mount: readers of a shared lower file, writers of
 * their own files, writers of disjoint regions of one shared file, six racing copy-ups of the same
 * lower file, create/rename/unlink churn in one directory and readdir loops over it while it
 * changes. Every worker verifies what it reads; the final state is compared with what the
 * workload must produce. A hang fails the test (children have a deadline).
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as crypto from 'node:crypto'
import { lowersUnchanged, waitFor } from '../stratafs/util'
import { PY_PRELUDE, layout, mountStratafs, pattern, pyBackground } from './util'

const WORKER = `${PY_PRELUDE}
import hashlib, random
role, i, mnt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
errs = []
def err(s):
    if len(errs) < 20: errs.append(s)
def pat(n, seed):
    r = random.Random(seed); return bytes(r.getrandbits(8) for _ in range(n))
try:
    if role == 'reader':
        want = sys.argv[4]
        for k in range(5):
            h = hashlib.sha256()
            with open(mnt + '/shared', 'rb') as f:
                while True:
                    b = f.read(1 << 17)
                    if not b: break
                    h.update(b)
            if h.hexdigest() != want: err('shared sha mismatch on pass %d' % k)
    elif role == 'own':
        p = '%s/own%d' % (mnt, i)
        for gen in range(3):
            chunks = [bytes([(i * 7 + gen * 13 + c) % 251]) * 65536 for c in range(32)]
            order = list(range(32)); random.Random(i * 10 + gen).shuffle(order)
            fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
            for c in order: os.pwrite(fd, chunks[c], c * 65536)
            os.fsync(fd)
            if os.pread(fd, 32 * 65536, 0) != b''.join(chunks): err('own%d gen %d readback mismatch' % (i, gen))
            os.close(fd)
    elif role == 'wshared':
        fd = os.open(mnt + '/wshared', os.O_RDWR)
        for k in range(256): os.pwrite(fd, bytes([i + 1]) * 4096, i * (1 << 20) + k * 4096)
        if os.pread(fd, 1 << 20, i * (1 << 20)) != bytes([i + 1]) * (1 << 20): err('wshared region %d mismatch' % i)
        os.close(fd)
    elif role == 'cow':
        lower = open(sys.argv[4], 'rb').read()
        fd = os.open(mnt + '/cow', os.O_RDWR)
        os.pwrite(fd, bytes([0x40 + i]) * 4096, i * 4096)
        for k in range(50):
            b = os.pread(fd, 8 * 4096, 0)
            for j in range(8):
                blk = b[j * 4096:(j + 1) * 4096]
                if blk != lower[j * 4096:(j + 1) * 4096] and blk != bytes([0x40 + j]) * 4096: err('cow block %d neither lower nor written' % j)
            if b[i * 4096:(i + 1) * 4096] != bytes([0x40 + i]) * 4096: err('cow: my block %d lost' % i)
        os.close(fd)
    elif role == 'churn':
        d = mnt + '/busy'
        for j in range(200):
            fd = os.open('%s/p%d_%d' % (d, i, j), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b'%d %d' % (i, j)); os.close(fd)
            os.rename('%s/p%d_%d' % (d, i, j), '%s/q%d_%d' % (d, i, j))
            if j % 3 == 0: os.unlink('%s/q%d_%d' % (d, i, j))
            if j < 5: os.unlink('%s/s%d' % (d, 50 + i * 5 + j))
    elif role == 'lister':
        d = mnt + '/busy'
        for k in range(150):
            names = os.listdir(d)
            if len(names) != len(set(names)): err('duplicate names in one listing')
            for s in range(50):
                if names.count('s%d' % s) != 1: err('stable s%d listed %d times' % (s, names.count('s%d' % s)))
            for n in names[:: max(1, len(names) // 50)]:
                try: os.lstat(d + '/' + n)
                except OSError as e:
                    if e.errno != errno.ENOENT: err('lstat %s: %s' % (n, en(e)))
except OSError as e: err('%s %d: %s %s' % (role, i, en(e), e.filename))
out({'role': role, 'i': i, 'errors': errs})`

t.test('34 processes at once: no corruption, no hang, no unexpected errno, expected final state', async (t) => {
  const d = layout(t)
  const L = d.lowers[0]!
  const shared = pattern(8 << 20, 5)
  fs.writeFileSync(`${L}/shared`, shared)
  const cow = pattern(1 << 20, 6)
  fs.writeFileSync(`${L}/cow`, cow)
  fs.mkdirSync(`${L}/busy`)
  for (let s = 0; s < 100; s++) fs.writeFileSync(`${L}/busy/s${s}`, `s${s}`)
  lowersUnchanged(t, d.lowers)
  mountStratafs(t, d)
  fs.writeFileSync(`${d.mnt}/wshared`, Buffer.alloc(4 << 20))
  const sha = crypto.createHash('sha256').update(shared).digest('hex')
  const jobs: [string, number, string[]][] = []
  for (let i = 0; i < 8; i++) jobs.push(['reader', i, [sha]])
  for (let i = 0; i < 8; i++) jobs.push(['own', i, []])
  for (let i = 0; i < 4; i++) jobs.push(['wshared', i, []])
  for (let i = 0; i < 6; i++) jobs.push(['cow', i, [`${L}/cow`]])
  for (let i = 0; i < 6; i++) jobs.push(['churn', i, []])
  for (let i = 0; i < 2; i++) jobs.push(['lister', i, []])
  t.ok(jobs.length >= 32, `${jobs.length} processes`)
  const started = Date.now()
  const children = jobs.map(([role, i, extra]) => pyBackground(WORKER, [role, String(i), d.mnt, ...extra]))
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), 180_000) })
  const results = await Promise.race([Promise.all(children.map((c) => c.done)), deadline])
  clearTimeout(timer)
  if (results === 'timeout') {
    for (const c of children) { try { process.kill(c.pid, 'SIGKILL') } catch { /* done */ } }
    t.fail('workers still running after 180 s (hang)')
    return
  }
  t.comment(`34 workers finished in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  const errors: string[] = []
  for (const [k, r] of results.entries()) {
    if (r.code !== 0) { errors.push(`${jobs[k]![0]} ${jobs[k]![1]} exited ${r.code}: ${r.stderr.trim().split('\n').pop()}`); continue }
    const o = JSON.parse(r.stdout.trim().split('\n').pop()!) as { errors: string[] }
    errors.push(...o.errors.map((e) => `${jobs[k]![0]} ${jobs[k]![1]}: ${e}`))
  }
  // A 'cow' reader may see a 4 KiB block that is neither the lower data nor a writer's block while
  // six processes write the file being copied up: Linux does not make a buffered read atomic
  // against a concurrent write of the same page (readers take no page lock). Kernel overlayfs does
  // the same: the same readers and writers (6 cow workers, 6 writers of their own files) saw 2 torn
  // blocks in 200 runs on kernel overlayfs and 2 in 60 on stratafs (2026-11-29;
  // test/reliability/torn-reads.py kernel 200). So torn blocks
  // mid-run are reported, not failed; a lost block, an unexpected errno and the final content are.
  const torn = errors.filter((e) => e.endsWith('neither lower nor written'))
  if (torn.length) t.comment(`torn blocks seen mid-run (as on kernel overlayfs): ${torn.length}`)
  t.same(errors.filter((e) => !torn.includes(e)), [], 'no worker saw a mismatch or an unexpected errno')

  // final state
  for (let i = 0; i < 8; i++) {
    const want = Buffer.concat(Array.from({ length: 32 }, (_, c) => Buffer.alloc(65536, (i * 7 + 2 * 13 + c) % 251)))
    t.ok(fs.readFileSync(`${d.mnt}/own${i}`).equals(want), `own${i} holds its last generation`)
  }
  const ws = fs.readFileSync(`${d.mnt}/wshared`)
  t.ok([0, 1, 2, 3].every((i) => ws.subarray(i << 20, (i + 1) << 20).equals(Buffer.alloc(1 << 20, i + 1))), 'wshared: each region holds its writer\'s bytes')
  const wantCow = Buffer.from(cow)
  for (let i = 0; i < 6; i++) wantCow.fill(0x40 + i, i * 4096, (i + 1) * 4096)
  t.ok(fs.readFileSync(`${d.mnt}/cow`).equals(wantCow), 'cow: copied up once, all six writers\' blocks present, the rest is the lower content')
  t.ok(fs.readFileSync(`${d.upper}/cow`).equals(wantCow), 'and so is the upper file')
  const busy = fs.readdirSync(`${d.mnt}/busy`).sort()
  const want = new Set<string>()
  for (let s = 0; s < 100; s++) if (s < 50 || s >= 80) want.add(`s${s}`)
  for (let i = 0; i < 6; i++) for (let j = 0; j < 200; j++) if (j % 3 !== 0) want.add(`q${i}_${j}`)
  t.same(busy, [...want].sort(), 'busy/: exactly the names the churn leaves')
  const wrong = [...want].filter((n) => n.startsWith('q')).filter((n) => { const [i, j] = n.slice(1).split('_'); return fs.readFileSync(`${d.mnt}/busy/${n}`, 'utf8') !== `${i} ${j}` })
  t.same(wrong, [], 'every renamed file has its content')
  // A file unlinked while open waits in the work dir until its last close's RELEASE, which the
  // kernel sends after close(2) has returned: give the last ones a moment to arrive.
  await waitFor(() => fs.readdirSync(`${d.work}/work`).length === 0)
  t.same(fs.readdirSync(`${d.work}/work`), [], 'nothing left in the work dir once the last releases arrived')
})

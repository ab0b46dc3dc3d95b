/**
 * Reads and writes answered by the binding on libfuse's worker threads (src/fuse/direct-io.ts,
 * strata_fdio.c), through a real mount: they never reach the daemon's JS (its counters say who
 * answered), the bytes are right, a handle follows its file's copy-up, errors keep their errno, and
 * the fds behind handles are closed when the handles are.
 */
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import t from 'tap'
import { mountUnion, strataStats } from '../helpers/mounts'
import { tempDir } from '../helpers/tmp'
import { daemonPids, lowersUnchanged, makeDirs, mountDirs, py } from './util'


interface Stats {
  ops: Record<string, { count: number; errors: Record<string, number> }>
  servedBy: Record<string, Record<string, number>>
}

const stats = (mnt: string): Stats => strataStats<Stats>(mnt)

/** Writes `n` 4 KiB blocks at seeded random offsets of a new file and returns what it should hold (holes read as zeros). */
function randomWrites(file: string, n: number, blocks: number): Buffer {
  const model = Buffer.alloc(blocks * 4096)
  const fd = fs.openSync(file, 'w')
  let seed = 7
  let end = 0
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0
    const at = (seed % blocks) * 4096
    const block = Buffer.alloc(4096, i & 0xff)
    block.writeUInt32LE(i, 0)
    fs.writeSync(fd, block, 0, 4096, at)
    block.copy(model, at)
    end = Math.max(end, at + 4096)
  }
  fs.closeSync(fd)
  return model.subarray(0, end)
}

t.test('reads and writes of open files are answered by the binding, with the right bytes', async (t) => {
  const d = makeDirs(t)
  const lowerData = Buffer.alloc(3 * 1024 * 1024 + 123)
  for (let i = 0; i + 4 <= lowerData.length; i += 4) lowerData.writeUInt32LE(i, i)
  fs.writeFileSync(`${d.lowers[1]}/etc/blob`, lowerData)
  lowersUnchanged(t, d.lowers)
  const m = await mountDirs(t, d)
  const before = stats(m.mnt)

  const model = randomWrites(`${m.mnt}/new`, 500, 256)
  const written = fs.readFileSync(`${m.mnt}/new`)
  t.equal(written.length, model.length, 'size as written')
  t.ok(written.equals(model), 'every block reads back as written')
  t.ok(fs.readFileSync(`${d.upper}/new`).equals(model), 'and the upper file holds the same bytes')
  t.ok(fs.readFileSync(`${m.mnt}/etc/blob`).equals(lowerData), 'a lower file reads byte for byte (short last read at EOF)')

  const after = stats(m.mnt)
  const byBinding = (s: Stats, op: string): number => s.servedBy.binding?.[op] ?? 0
  const total = (s: Stats, op: string): number => s.ops[op]?.count ?? 0
  t.ok(byBinding(after, 'write') - byBinding(before, 'write') >= 500, `the binding answered the writes (${byBinding(after, 'write')})`)
  t.equal(total(after, 'write') - total(before, 'write'), byBinding(after, 'write') - byBinding(before, 'write'), 'no write reached the daemon\'s JS')
  t.ok(byBinding(after, 'read') > byBinding(before, 'read'), 'reads were answered by the binding')
  t.equal(total(after, 'read') - total(before, 'read'), byBinding(after, 'read') - byBinding(before, 'read'), 'no read reached the daemon\'s JS')
})

t.test('a handle opened before a copy-up reads the copied-up file, through the binding', async (t) => {
  const d = makeDirs(t)
  lowersUnchanged(t, d.lowers)
  const m = await mountDirs(t, d)
  const r = py(`import os,sys
p = sys.argv[1]
ro = os.open(p, os.O_RDONLY)
first = os.pread(ro, 100, 0)
rw = os.open(p, os.O_WRONLY)
os.pwrite(rw, b'TOP', 0)
os.close(rw)
print(first.decode().strip(), os.pread(ro, 100, 0).decode().strip())
os.close(ro)`, `${m.mnt}/etc/motd`)
  t.equal(r.status, 0, r.stderr)
  t.equal(r.stdout.trim(), 'top motd TOP motd', 'the old handle sees the write made after the copy-up')
})

t.test('a write that does not fit fails with ENOSPC, counted by errno; what fit stays', async (t) => {
  const root = tempDir(t)
  const upperFs = `${root}/small`
  fs.mkdirSync(upperFs)
  t.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', upperFs]).status, 0, 'a 2 MiB tmpfs for the upper')
  t.teardown(() => { spawnSync('umount', ['-l', upperFs]) })
  fs.mkdirSync(`${root}/lower`)
  fs.mkdirSync(`${upperFs}/u`)
  fs.mkdirSync(`${upperFs}/w`)
  fs.mkdirSync(`${root}/mnt`)
  const m = await mountUnion(t, 'stratafs', { lowers: [`${root}/lower`], upper: `${upperFs}/u`, work: `${upperFs}/w`, mnt: `${root}/mnt` })
  const r = py(`import os,sys,errno
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
block = b'x' * 65536
done = 0
err = 'none'
try:
    while done < 8 * 1024 * 1024:
        done += os.write(fd, block)
except OSError as e:
    err = errno.errorcode[e.errno]
os.close(fd)
print(err, done)`, `${m.mnt}/big`)
  t.equal(r.status, 0, r.stderr)
  const [err, done] = r.stdout.trim().split(' ')
  t.equal(err, 'ENOSPC', 'the write that does not fit fails with ENOSPC')
  t.equal(fs.statSync(`${m.mnt}/big`).size, Number(done), 'the file holds what was written before')
  t.ok((stats(m.mnt).ops.write?.errors.ENOSPC ?? 0) >= 1, 'the ENOSPC is counted')
})

t.test('handles closed: their fds are closed, after many files read and written at once', async (t) => {
  const d = makeDirs(t)
  const m = await mountDirs(t, d)
  const [pid] = daemonPids(m.mnt)
  t.ok(pid, 'found the daemon')
  const fdCount = (): number => fs.readdirSync(`/proc/${pid}/fd`).length
  const baseline = fdCount()
  const r = py(`import os,sys,threading
mnt = sys.argv[1]
def work(k):
    fds = [os.open(f'{mnt}/f{k}-{i}', os.O_RDWR | os.O_CREAT, 0o644) for i in range(50)]
    for j, fd in enumerate(fds):
        os.pwrite(fd, f'{k}-{j}'.encode() * 100, 0)
    for j, fd in enumerate(fds):
        assert os.pread(fd, 100, 0).startswith(f'{k}-{j}'.encode()), (k, j)
        os.close(fd)
ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
[x.start() for x in ts]; [x.join() for x in ts]
print('ok')`, m.mnt)
  t.equal(r.stdout.trim(), 'ok', r.stderr)
  // release reaches the daemon after close(2) returns
  let now = fdCount()
  for (let i = 0; i < 50 && now > baseline; i++) {
    await new Promise((res) => setTimeout(res, 100))
    now = fdCount()
  }
  t.equal(now, baseline, 'the daemon holds no fd for the 400 closed files')
})

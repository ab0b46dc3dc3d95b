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
import { cacheDrops, daemonPids, fdCount as daemonFds, lowersUnchanged, makeDirs, mountDirs, observe, py, settledFdCount, waitFor } from './util'


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

t.test('reads and writes of open files are answered by the binding (passthrough=0), with the right bytes', async (t) => {
  // where the kernel allows passthrough, writes are its own (passthrough.test.ts); without it the
  // binding answers them, as it does with passthrough=0
  const d = makeDirs(t)
  const lowerData = Buffer.alloc(3 * 1024 * 1024 + 123)
  for (let i = 0; i + 4 <= lowerData.length; i += 4) lowerData.writeUInt32LE(i, i)
  fs.writeFileSync(`${d.lowers[1]}/etc/blob`, lowerData)
  lowersUnchanged(t, d.lowers)
  const m = await mountUnion(t, 'stratafs', { ...d, options: ['passthrough=0'] })
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

for (const passthrough of [false, true]) {
  t.test(`a write that does not fit fails with ENOSPC${passthrough ? ' (passthrough)' : ', counted by errno (passthrough=0)'}; what fit stays`, async (t) => {
  const root = tempDir(t)
  const upperFs = `${root}/small`
  fs.mkdirSync(upperFs)
  t.equal(spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', upperFs]).status, 0, 'a 2 MiB tmpfs for the upper')
  t.teardown(() => { spawnSync('umount', ['-l', upperFs]) })
  fs.mkdirSync(`${root}/lower`)
  fs.mkdirSync(`${upperFs}/u`)
  fs.mkdirSync(`${upperFs}/w`)
  fs.mkdirSync(`${root}/mnt`)
  const m = await mountUnion(t, 'stratafs', { lowers: [`${root}/lower`], upper: `${upperFs}/u`, work: `${upperFs}/w`, mnt: `${root}/mnt`, options: passthrough ? [] : ['passthrough=0'] })
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
  if (!passthrough) t.ok((stats(m.mnt).ops.write?.errors.ENOSPC ?? 0) >= 1, 'the ENOSPC is counted')
  })
}

t.test('handles closed: their fds are closed, after many files read and written at once', async (t) => {
  const d = makeDirs(t)
  const m = await mountDirs(t, d)
  const [pid] = daemonPids(m.mnt)
  t.ok(pid, 'found the daemon')
  const fdCount = (): number => daemonFds(pid!)
  const baseline = await settledFdCount(pid!)
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

t.test('a file a listing showed is opened for reading by the binding; copy-up, rename and unlink keep overlayfs semantics', async (t) => {
  const d = makeDirs(t)
  const low = d.lowers[1]!
  const files: Record<string, string> = { data1: 'a', data2: 'b', data3: 'c', data4: 'd', data5: 'e', data8: 'h', data9: 'i', data10: 'j' }
  for (const [dir, f] of Object.entries(files)) {
    fs.mkdirSync(`${low}/${dir}`)
    fs.writeFileSync(`${low}/${dir}/${f}`, `lower ${f}\n`)
  }
  fs.writeFileSync(`${low}/data8/h2`, 'lower h2\n')
  fs.mkdirSync(`${low}/data6`)
  lowersUnchanged(t, d.lowers)
  const m = await mountDirs(t, d)
  const opens = (): { binding: number, js: number } => {
    const s = stats(m.mnt)
    const binding = s.servedBy.binding?.open ?? 0
    return { binding, js: (s.ops.open?.count ?? 0) - binding }
  }
  const pread = (fd: number): string => {
    const b = Buffer.alloc(100)
    return b.subarray(0, fs.readSync(fd, b, 0, 100, 0)).toString()
  }
  /**
   * Lists `dir` (the kernel learns its entries), then opens `dir/name` for reading: by the binding?
   * The listing is a new process's first, so it is a full one (src/fuse/lean-listings.ts).
   */
  const openListed = (dir: string, name: string): { fd: number, byBinding: boolean } => {
    const ls = spawnSync('ls', ['-f', `${m.mnt}/${dir}`])
    if (ls.status !== 0) throw new Error(`ls -f ${dir}: ${ls.stderr}`)
    const before = opens()
    const fd = fs.openSync(`${m.mnt}/${dir}/${name}`, 'r')
    const after = opens()
    return { fd, byBinding: after.binding === before.binding + 1 && after.js === before.js }
  }

  const a = openListed('data1', 'a')
  t.ok(a.byBinding, 'a listed lower file: opened by the binding, not JS')
  t.equal(pread(a.fd), 'lower a\n', 'reads its bytes')
  const releases = (): number => stats(m.mnt).servedBy.binding?.release ?? 0
  const releasesBefore = releases()
  fs.closeSync(a.fd)
  await waitFor(() => releases() > releasesBefore) // the release reaches the daemon after close(2) returns
  t.equal(releases(), releasesBefore + 1, 'and released by the binding')
  // Opened again: inside the OPEN, libfuse's auto_cache asks for the file's attributes (is the
  // kernel's page cache of it still good?). The binding answers that as well; sent to JS, the
  // question made JS take the handle over, and its release with it.
  const fgetattrs = (): number => stats(m.mnt).ops.fgetattr?.count ?? 0
  const allDone = (): number => stats(m.mnt).ops.release?.count ?? 0
  const [fgBefore, reopenBefore, releasedBefore, doneBefore] = [fgetattrs(), opens(), releases(), allDone()]
  const a2 = fs.openSync(`${m.mnt}/data1/a`, 'r')
  t.same(opens(), { binding: reopenBefore.binding + 1, js: reopenBefore.js }, 'reopened: by the binding')
  t.equal(pread(a2), 'lower a\n', 'reads its bytes')
  fs.closeSync(a2)
  await waitFor(() => allDone() > doneBefore)
  t.equal(fgetattrs(), fgBefore, 'its attributes for the page cache taken without JS')
  t.equal(releases(), releasedBefore + 1, 'and released by the binding again')

  const b = openListed('data2', 'b')
  t.ok(b.byBinding, 'opened by the binding')
  t.equal(pread(b.fd), 'lower b\n')
  fs.writeFileSync(`${m.mnt}/data2/b`, 'NEW b\n') // O_TRUNC: a copy-up without the data
  t.equal(pread(b.fd), 'NEW b\n', 'after a copy-up through another fd, it reads the upper file (overlayfs)')
  t.equal(fs.readFileSync(`${d.upper}/data2/b`, 'utf8'), 'NEW b\n')
  fs.closeSync(b.fd)

  const c = openListed('data3', 'c')
  t.ok(c.byBinding, 'opened by the binding')
  fs.renameSync(`${m.mnt}/data3/c`, `${m.mnt}/data3/c2`)
  fs.writeFileSync(`${m.mnt}/data3/c2`, 'RENAMED', { flag: 'r+' })
  t.equal(pread(c.fd), 'RENAMED\n', 'renamed while open (a copy-up), then written: it reads the new bytes')
  fs.closeSync(c.fd)

  const dd = openListed('data4', 'd')
  t.ok(dd.byBinding, 'opened by the binding')
  fs.unlinkSync(`${m.mnt}/data4/d`)
  t.equal(pread(dd.fd), 'lower d\n', 'unlinked while open: still reads its bytes')
  t.notOk(fs.existsSync(`${m.mnt}/data4/d`), 'and the name is gone')
  const again = fs.openSync(`/proc/self/fd/${dd.fd}`, 'r')
  t.equal(pread(again), 'lower d\n', 'opened again through /proc/self/fd: the same bytes')
  const allReleases = (): number => stats(m.mnt).ops.release?.count ?? 0
  const released = allReleases()
  fs.closeSync(again)
  fs.closeSync(dd.fd)
  // their RELEASEs (and the hidden file's removal) reach the daemon after close(2) has returned;
  // the next step counts opens, so it starts once they are served
  await waitFor(() => allReleases() >= released + 2)

  const st = fs.lstatSync(`${m.mnt}/data5/e`, { bigint: true })
  const e = openListed('data5', 'e')
  t.ok(e.byBinding, 'opened by the binding')
  const fst = fs.fstatSync(e.fd, { bigint: true })
  t.same([fst.ino, fst.size, fst.mode, fst.mtimeNs], [st.ino, st.size, st.mode, st.mtimeNs], 'fstat of it is the lstat of its path')
  t.equal(pread(e.fd), 'lower e\n', 'and it still reads after the daemon took it over for the fstat')
  fs.closeSync(e.fd)

  fs.writeFileSync(`${m.mnt}/data6/u`, 'upper u\n')
  // its writer's release reaches the daemon after close(2) returns; listed before that, it would
  // be listed as a file open for writing (attributes not to keep, not for the binding to open)
  await waitFor(() => strataStats<{ openHandles: number }>(m.mnt).openHandles === 0)
  const u = openListed('data6', 'u')
  t.ok(u.byBinding, 'a listed upper file: opened by the binding')
  t.equal(pread(u.fd), 'upper u\n')
  fs.closeSync(u.fd)

  // changes to other files (a copy-up, a new file, a write) leave a listed file to the binding
  fs.readdirSync(`${m.mnt}/data10`)
  fs.chmodSync(`${m.mnt}/data1/a`, 0o600)
  fs.writeFileSync(`${m.mnt}/data6/new`, 'new')
  fs.unlinkSync(`${m.mnt}/data6/new`)
  fs.unlinkSync(`${m.mnt}/data8/h2`)
  const j = fs.openSync(`${m.mnt}/data10/j`, 'r')
  const k = openListed('data10', 'j')
  t.ok(k.byBinding, 'a chmod, a create, a write and unlinks of other files since the listing: still the binding\'s')
  t.equal(pread(k.fd), 'lower j\n')
  fs.closeSync(k.fd)
  fs.closeSync(j)
  // the file itself copied up and rewritten since it was listed: its note must not send the next
  // open to the lower file
  fs.writeFileSync(`${m.mnt}/data10/j`, 'NEW j\n')
  const jj = fs.openSync(`${m.mnt}/data10/j`, 'r')
  t.equal(pread(jj), 'NEW j\n', 'rewritten since its listing (a copy-up): an open for reading reads the new bytes')
  fs.closeSync(jj)

  fs.readdirSync(`${m.mnt}/data8`)
  fs.renameSync(`${m.mnt}/data9/i`, `${m.mnt}/data9/i2`)
  const before = opens()
  const h = fs.openSync(`${m.mnt}/data8/h`, 'r')
  t.same(opens(), { binding: before.binding, js: before.js + 1 }, 'a rename since the listing: the open goes to JS')
  t.equal(pread(h), 'lower h\n')
  fs.closeSync(h)
  const w = fs.openSync(`${m.mnt}/data1/a`, 'r+')
  t.same(opens(), { binding: before.binding + 1, js: before.js + 1 }, 'an open for writing of a file the upper has (copied up by the chmod above) is the binding\'s')
  fs.closeSync(w)
  const lw = fs.openSync(`${m.mnt}/data8/h`, 'r+')
  t.same(opens(), { binding: before.binding + 1, js: before.js + 2 }, 'one of a lower file (its copy-up) goes to JS')
  fs.closeSync(lw)
})

t.test('the binding\'s own read-only opens: many at once read the right bytes, and their fds are closed', async (t) => {
  const d = makeDirs(t)
  const low = d.lowers[1]!
  for (let k = 0; k < 8; k++) {
    fs.mkdirSync(`${low}/many${k}`)
    for (let i = 0; i < 100; i++) fs.writeFileSync(`${low}/many${k}/f${i}`, `${k}-${i}\n`.repeat(50))
  }
  lowersUnchanged(t, d.lowers)
  const m = await mountDirs(t, d)
  const [pid] = daemonPids(m.mnt)
  const fdCount = (): number => daemonFds(pid!)
  const baseline = await settledFdCount(pid!)
  const before = stats(m.mnt).servedBy.binding?.open ?? 0
  const r = py(`import os,sys,threading
mnt = sys.argv[1]
bad = []
def work(k):
    d = f'{mnt}/many{k}'
    names = os.listdir(d)
    fds = [(n, os.open(f'{d}/{n}', os.O_RDONLY)) for n in names]
    for n, fd in fds:
        if os.pread(fd, 10000, 0) != f'{k}-{n[1:]}\\n'.encode() * 50: bad.append(n)
        os.close(fd)
ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
[x.start() for x in ts]; [x.join() for x in ts]
print('bad', bad)`, m.mnt)
  t.equal(r.stdout.trim(), 'bad []', r.stderr)
  t.ok((stats(m.mnt).servedBy.binding?.open ?? 0) - before >= 700, 'most of the 800 opens were the binding\'s')
  await waitFor(() => fdCount() <= baseline)
  t.equal(fdCount(), baseline, 'the daemon holds no fd for the 800 closed files')
  t.equal(strataStats<{ openHandles: number }>(m.mnt).openHandles, 0, 'and counts no open file')
})

t.test('the binding\'s read-only opens racing copy-ups of the same files: every read is of the right file', async (t) => {
  const d = makeDirs(t)
  const low = d.lowers[1]!
  fs.mkdirSync(`${low}/race`)
  for (let i = 0; i < 150; i++) fs.writeFileSync(`${low}/race/f${i}`, `x${i}-`.repeat(200 + ((i * 37) % 3000)))
  lowersUnchanged(t, d.lowers)
  const m = await mountDirs(t, d)
  // Readers list the directory and open, read, read again; a writer copies files up (the same
  // bytes, upper-cased, through an O_RDWR open) and changes the directory so listings come back
  // with lookups. A handle the binding opened is adopted by the daemon and retargeted at copy-up;
  // each read must be of this file, lower or upper bytes (a block may be mid-write, as on overlayfs).
  const r = py(`import os,sys,threading,random,time
d = sys.argv[1] + '/race'
names = sorted(os.listdir(d))
want = {n: open(f'{d}/{n}', 'rb').read() for n in names}
bad = []
stop = time.time() + 4
def ok(n, b):
    w = want[n]
    return len(b) == len(w) and all(x == y or x == y - 32 for x, y in zip(b, w))
def reader(k):
    r = random.Random(k)
    while time.time() < stop:
        os.listdir(d)
        n = r.choice(names)
        fd = os.open(f'{d}/{n}', os.O_RDONLY)
        b1 = os.pread(fd, 1 << 20, 0)
        time.sleep(r.random() / 1000)
        b2 = os.pread(fd, 1 << 20, 0)
        os.close(fd)
        for b in (b1, b2):
            if not ok(n, b): bad.append((n, len(b)))
def writer():
    r = random.Random(99)
    while time.time() < stop:
        n = r.choice(names)
        fd = os.open(f'{d}/{n}', os.O_RDWR)
        os.pwrite(fd, os.pread(fd, 1 << 20, 0).upper(), 0)
        os.close(fd)
        open(f'{d}/../mark{r.random()}', 'w').close()
ts = [threading.Thread(target=reader, args=(k,)) for k in range(4)] + [threading.Thread(target=writer)]
[x.start() for x in ts]; [x.join() for x in ts]
print('bad', bad[:5])`, m.mnt)
  t.equal(r.stdout.trim(), 'bad []', r.stderr)
  const s = stats(m.mnt)
  t.ok((s.servedBy.binding?.open ?? 0) > 20, `the binding opened files itself (${s.servedBy.binding?.open ?? 0}), and the daemon adopted some (${(s.servedBy.binding?.open ?? 0) - (s.servedBy.binding?.release ?? 0)} not released by the binding)`)
})

/** chmod/chown/utimes of files open for writing, observed through the mount and in the upper, as JSON lines. */
const SETATTR_SCRIPT = `
import json, os, sys, time
mnt, upper = sys.argv[1], sys.argv[2]
os.umask(0)
out = []
def seen(label, st, upper_rel=None, times=False):
    o = {'at': label, 'mode': oct(st.st_mode), 'uid': st.st_uid, 'gid': st.st_gid, 'nlink': st.st_nlink}
    if times: o['times'] = [st.st_atime_ns, st.st_mtime_ns]
    if upper_rel is not None:
        u = os.lstat(upper + '/' + upper_rel)
        o['upper'] = [oct(u.st_mode), u.st_uid, u.st_gid] + ([u.st_atime_ns, u.st_mtime_ns] if times else [])
    out.append(o)
p = lambda n: mnt + '/' + n
# futimens, fchown, fchmod on a new file open for writing (what tar does), then stat by path
fd = os.open(p('new'), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b'x' * 100)
os.utime(fd, ns=(1000000001, 2000000002)); os.fchown(fd, 1000, 1001); os.fchmod(fd, 0o640)
seen('new fstat', os.fstat(fd), None, True); seen('new stat', os.stat(p('new')), 'new', True)
os.close(fd); seen('new closed', os.stat(p('new')), 'new', True)
# setuid bits: a chown after a chmod clears them, as on any file
fd = os.open(p('suid'), os.O_WRONLY | os.O_CREAT, 0o755)
os.fchmod(fd, 0o6755); seen('suid set', os.fstat(fd)); os.fchown(fd, 1000, 1000); seen('suid after chown', os.fstat(fd), 'suid'); os.close(fd)
# a second name of the file sees the change at once
fd = os.open(p('h1'), os.O_WRONLY | os.O_CREAT, 0o644); os.close(fd)
os.stat(p('h1')); os.link(p('h1'), p('h2')); os.stat(p('h2'))
fd = os.open(p('h1'), os.O_WRONLY)
os.fchmod(fd, 0o600); seen('link other name', os.stat(p('h2')), 'h2'); seen('link this name', os.stat(p('h1')))
os.chmod(p('h2'), 0o601); seen('link this name, other name changed', os.stat(p('h1')))
os.close(fd)
# a path chmod while a handle is open for writing
fd = os.open(p('w'), os.O_WRONLY | os.O_CREAT, 0o644)
os.chmod(p('w'), 0o604); os.utime(p('w'), ns=(3000000003, 4000000004)); seen('path change, fstat', os.fstat(fd), 'w', True); os.close(fd)
# a lower file opened for writing (copied up), then changed through the handle
fd = os.open(p('etc/motd'), os.O_RDWR)
os.fchmod(fd, 0o611); seen('lower fchmod', os.stat(p('etc/motd')), 'etc/motd'); os.close(fd)
# unlinked while open: the change reaches the open file, nothing appears in the upper
fd = os.open(p('gone'), os.O_WRONLY | os.O_CREAT, 0o644)
os.unlink(p('gone')); os.fchmod(fd, 0o612); seen('unlinked fchmod', os.fstat(fd)); os.close(fd)
out.append({'at': 'gone in upper', 'exists': os.path.lexists(upper + '/gone')})
# renamed over while open: the handle keeps the old file, the name the new one
fd = os.open(p('r'), os.O_WRONLY | os.O_CREAT, 0o644)
os.close(os.open(p('r2'), os.O_WRONLY | os.O_CREAT, 0o640)); os.stat(p('r2'))
os.rename(p('r2'), p('r')); os.fchmod(fd, 0o613)
seen('renamed-over fstat', os.fstat(fd)); seen('renamed-over name', os.stat(p('r')), 'r'); os.close(fd)
# renamed while open: the handle and the name move together
fd = os.open(p('mv'), os.O_WRONLY | os.O_CREAT, 0o644); os.rename(p('mv'), p('mv2')); os.fchmod(fd, 0o614)
seen('moved fchmod', os.stat(p('mv2')), 'mv2'); os.close(fd)
# utimes to now through the handle
fd = os.open(p('now'), os.O_WRONLY | os.O_CREAT, 0o644); os.utime(p('now'), ns=(5, 6)); os.utime(fd)
st = os.fstat(fd); out.append({'at': 'utime now', 'recent': abs(st.st_mtime - time.time()) < 30 and abs(st.st_atime - time.time()) < 30}); os.close(fd)
# errors: a chown to a uid the filesystem cannot take
fd = os.open(p('e'), os.O_WRONLY | os.O_CREAT, 0o644)
try:
    os.fchown(fd, 4294967294, -1); out.append({'at': 'chown -2', 'ok': True, 'uid': os.fstat(fd).st_uid})
except OSError as e:
    out.append({'at': 'chown -2', 'errno': e.errno})
os.close(fd)
print(json.dumps(out))
`

t.test('chmod, chown and utimes of files open for writing: the binding does them, with kernel overlayfs\'s results', async (t) => {
  const results: Record<string, unknown[]> = {}
  let byBinding = 0
  for (const target of ['kernel', 'stratafs'] as const) {
    const d = makeDirs(t)
    lowersUnchanged(t, d.lowers)
    const m = await mountUnion(t, target, d)
    const before = target === 'stratafs' ? stats(m.mnt) : null
    results[target] = observe(t, target, SETATTR_SCRIPT, m.mnt, d.upper)
    if (before) byBinding = (stats(m.mnt).servedBy.binding?.setattr ?? 0) - (before.servedBy.binding?.setattr ?? 0)
    await m.unmount()
  }
  t.same(results.stratafs, results.kernel, 'every observation as on kernel overlayfs')
  t.equal(results.kernel!.length, 17, 'every step observed')
  // 3 for new, 2 for suid, 1 for h1, 2 for w (by path), 1 for etc/motd (open for writing: copied
  // up), 1 for mv, 2 for now, 1 for e, and h2's chmod by path (no handle of its own, but a file
  // the upper has: binding-upper-files.test.ts); the unlinked and the renamed-over files' changes
  // are JS's (hidden)
  t.equal(byBinding, 14, 'the binding did the changes of files open for writing and of the upper\'s, JS those of hidden files')
})

// Reads a small lower file the listing showed, rewrites it in place without truncating (a
// copy-up, then data changed where the first read's pages were), lists its directory again (so
// the binding opens it once more, now in the upper) and reads it: a reader's own earlier handle
// (kept open across the writes) and a new one must both see the new bytes, as on kernel overlayfs.
const STORE_THEN_CHANGE = `
import json, os, sys
m = sys.argv[1]
os.listdir(m + '/small')
def read(path):
    with open(path, 'rb') as f: return f.read().decode()
seen = [read(m + '/small/conf'), read(m + '/small/other')]
kept = os.open(m + '/small/other', os.O_RDONLY)
seen.append(os.pread(kept, 100, 0).decode())
for name in ('conf', 'other'):
    fd = os.open(m + '/small/' + name, os.O_WRONLY)
    os.pwrite(fd, b'NEW', 0)
    os.close(fd)
os.listdir(m + '/small')
seen += [read(m + '/small/conf'), read(m + '/small/other'), os.pread(kept, 100, 0).decode()]
os.close(kept)
print(json.dumps(seen))
`

t.test('a small lower file goes to the page cache with its open (no READ), and later changes to it are seen', async (t) => {
  const seen: Record<string, unknown> = {}
  for (const target of ['kernel', 'stratafs'] as const) {
    const d = makeDirs(t)
    const low = d.lowers[1]!
    fs.mkdirSync(`${low}/small`)
    fs.writeFileSync(`${low}/small/conf`, 'old conf\n')
    fs.writeFileSync(`${low}/small/other`, 'old other\n')
    fs.writeFileSync(`${low}/small/big`, Buffer.alloc(65 * 1024, 'b'))
    lowersUnchanged(t, d.lowers)
    if (target === 'stratafs') {
      // READs counted on fresh mounts; a count during which another test file dropped the kernel's
      // caches (they run two at a time; the stored pages or the inode may go) is made again
      let counted: { small: number, big: number } | null = null
      for (let attempt = 1; attempt <= 3 && counted === null; attempt++) {
        const drops = cacheDrops()
        const m = await mountUnion(t, target, d)
        const reads = (): number => stats(m.mnt).servedBy.binding?.read ?? 0
        t.equal(spawnSync('ls', ['-f', `${m.mnt}/small`]).status, 0, 'listed')
        const before = reads()
        t.equal(fs.readFileSync(`${m.mnt}/small/conf`, 'utf8'), 'old conf\n')
        const small = reads() - before
        t.equal(fs.readFileSync(`${m.mnt}/small/big`).length, 65 * 1024)
        const big = reads() - before - small
        await m.unmount()
        if (cacheDrops() === drops) counted = { small, big }
        else t.comment(`attempt ${attempt}: the kernel's caches were dropped meanwhile; counting again`)
      }
      if (counted === null) {
        t.fail('every attempt was disturbed by a cache drop elsewhere')
      } else {
        t.equal(counted.small, 0, 'a small lower file: read from the page cache its open filled, no READ')
        t.ok(counted.big > 0, 'one over 64 KiB: read through READ')
      }
      const again = await mountUnion(t, target, d)
      seen[target] = observe(t, target, STORE_THEN_CHANGE, again.mnt)
      await again.unmount()
    } else {
      const m = await mountUnion(t, target, d)
      seen[target] = observe(t, target, STORE_THEN_CHANGE, m.mnt)
      await m.unmount()
    }
  }
  t.same(seen.stratafs, seen.kernel, 'every read sees what kernel overlayfs shows')
  t.same(seen.kernel, ['old conf\n', 'old other\n', 'old other\n', 'NEW conf\n', 'NEW other\n', 'NEW other\n'])
})

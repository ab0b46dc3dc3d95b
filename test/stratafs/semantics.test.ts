/**
 * stratafs semantics that need set-ups the differential suite does not make: copy-up metadata in
 * detail, sparse files over 4 GiB, mmap, racing writers, handles opened before a copy-up, files
 * unlinked while open, inode numbers, setgid directories, non-root callers, name rules, statfs.
 * Each asserts through a real mount and on the upper directory; every lower is checked unchanged.
 */
import t from 'tap'
import * as fs from 'node:fs'
import * as crypto from 'node:crypto'
import { spawn, spawnSync } from 'node:child_process'
import { mountUnion, strataStats } from '../helpers/mounts'
import { tempDir } from '../helpers/tmp'
import { lowersUnchanged, makeDirs, mountDirs, py, runStratafs, unmountLater, waitFor } from './util'

const sha = (p: string): string => crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')
const xattr = (p: string, name: string): string =>
  spawnSync('getfattr', ['--only-values', '-h', '-n', name, p], { encoding: 'utf8' }).stdout

t.test('copy-up keeps mode, owner, ns times, xattrs; parents are copied with their own metadata', async (t) => {
  const d = makeDirs(t)
  const low = d.lowers[1]!
  fs.mkdirSync(`${low}/srv/app`, { recursive: true })
  fs.writeFileSync(`${low}/srv/app/tool`, 'binary\n')
  fs.chownSync(`${low}/srv/app/tool`, 1000, 1001)
  fs.chmodSync(`${low}/srv/app/tool`, 0o4755)
  fs.chmodSync(`${low}/srv/app`, 0o750)
  fs.chownSync(`${low}/srv/app`, 1002, 1003)
  spawnSync('setfattr', ['-n', 'user.origin', '-v', 'lower', `${low}/srv/app/tool`])
  spawnSync('touch', ['-h', '-d', '@1000000000.123456789', `${low}/srv/app/tool`])
  spawnSync('touch', ['-h', '-d', '@1000000001.987654321', `${low}/srv/app`])
  lowersUnchanged(t, d.lowers)
  const m = await mountDirs(t, d)
  // setxattr copies up without touching data or times
  t.equal(spawnSync('setfattr', ['-n', 'user.added', '-v', 'yes', `${m.mnt}/srv/app/tool`]).status, 0)
  const up = fs.statSync(`${d.upper}/srv/app/tool`, { bigint: true })
  t.equal(up.mode & 0o7777n, 0o4755n, 'setuid mode kept')
  t.equal([up.uid, up.gid].join(':'), '1000:1001', 'owner kept')
  t.equal(up.mtimeNs, 1000000000123456789n, 'mtime kept to the nanosecond')
  t.equal(xattr(`${d.upper}/srv/app/tool`, 'user.origin'), 'lower', 'lower xattr copied')
  t.equal(xattr(`${d.upper}/srv/app/tool`, 'user.added'), 'yes', 'new xattr in the upper')
  const dir = fs.statSync(`${d.upper}/srv/app`, { bigint: true })
  t.equal(dir.mode & 0o7777n, 0o750n, 'parent dir mode')
  t.equal([dir.uid, dir.gid].join(':'), '1002:1003', 'parent dir owner')
  t.equal(dir.mtimeNs, 1000000001987654321n, 'parent dir mtime (also after the child landed in it)')
  const merged = fs.statSync(`${m.mnt}/srv/app/tool`, { bigint: true })
  t.equal(merged.mtimeNs, 1000000000123456789n, 'merged view shows the same ns mtime')
  t.same(fs.readdirSync(`${d.work}/work`), [], 'nothing left in the work dir')
})

t.test('sparse file over 4 GiB: copy-up keeps holes and completes', async (t) => {
  const d = makeDirs(t)
  const big = `${d.lowers[1]}/big.img`
  const fd = fs.openSync(big, 'w')
  fs.writeSync(fd, 'head', 0)
  fs.writeSync(fd, 'middle', 4.5 * 2 ** 30)
  fs.ftruncateSync(fd, 5 * 2 ** 30)
  fs.closeSync(fd)
  lowersUnchanged(t, d.lowers)
  const m = await mountDirs(t, d)
  fs.appendFileSync(`${m.mnt}/big.img`, '!')
  const st = fs.statSync(`${d.upper}/big.img`)
  t.equal(st.size, 5 * 2 ** 30 + 1, 'size in the upper')
  t.ok(st.blocks * 512 < 64 * 2 ** 20, `holes kept: ${st.blocks * 512} bytes allocated`)
  const rfd = fs.openSync(`${m.mnt}/big.img`, 'r')
  const buf = Buffer.alloc(6)
  fs.readSync(rfd, buf, 0, 6, 4.5 * 2 ** 30)
  t.equal(buf.toString(), 'middle', 'data past 4 GiB reads back through the mount')
  fs.readSync(rfd, buf, 0, 1, 5 * 2 ** 30)
  t.equal(buf.subarray(0, 1).toString(), '!', 'the appended byte')
  fs.closeSync(rfd)
})

t.test('copy-up of file data is exact; mmap reads and writes reach the upper', async (t) => {
  const d = makeDirs(t)
  fs.writeFileSync(`${d.lowers[1]}/data.bin`, crypto.randomBytes(24 * 2 ** 20))
  fs.writeFileSync(`${d.lowers[1]}/mm.bin`, Buffer.alloc(8192, 'a'))
  lowersUnchanged(t, d.lowers)
  const m = await mountDirs(t, d)
  const want = sha(`${d.lowers[1]}/data.bin`)
  const fd = fs.openSync(`${m.mnt}/data.bin`, 'r+')
  fs.closeSync(fd)
  t.equal(sha(`${d.upper}/data.bin`), want, 'upper copy equals the lower file')
  t.equal(sha(`${m.mnt}/data.bin`), want, 'merged read equals it too')
  const r = py(`
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 8192)
assert m[0:1] == b'a'
m[4096:4101] = b'HELLO'
m.flush(); m.close(); os.close(fd)
`, `${m.mnt}/mm.bin`)
  t.equal(r.status, 0, `mmap write: ${r.stderr}`)
  t.equal(fs.readFileSync(`${d.upper}/mm.bin`).subarray(4096, 4101).toString(), 'HELLO', 'mmap write is in the upper file')
  t.equal(fs.readFileSync(`${m.mnt}/mm.bin`).subarray(4096, 4101).toString(), 'HELLO', 'and visible through the mount')
})

t.test('racing writers copy a file up once; nothing lost', async (t) => {
  const d = makeDirs(t)
  fs.writeFileSync(`${d.lowers[1]}/log`, 'start\n')
  lowersUnchanged(t, d.lowers)
  const m = await mountDirs(t, d)
  const n = 12
  const procs = Array.from({ length: n }, (_, i) => new Promise<number | null>((resolve) => {
    const c = spawn('sh', ['-c', `echo writer-${i} >> ${m.mnt}/log`])
    c.on('exit', resolve)
  }))
  t.same(await Promise.all(procs), Array(n).fill(0), 'every writer succeeded')
  const lines = fs.readFileSync(`${m.mnt}/log`, 'utf8').trim().split('\n')
  t.equal(lines[0], 'start', 'the lower content was copied once, before the appends')
  t.same(lines.slice(1).sort(), Array.from({ length: n }, (_, i) => `writer-${i}`).sort(), 'every append is there once')
  t.same(fs.readdirSync(`${d.work}/work`), [], 'no stray copy in the work dir')
})

t.test('a file opened read-only before a copy-up reads the new data after it', async (t) => {
  const d = makeDirs(t)
  fs.writeFileSync(`${d.lowers[1]}/conf`, 'version one\n')
  lowersUnchanged(t, d.lowers)
  const m = await mountDirs(t, d)
  const reader = spawn('python3', ['-u', '-c', `
import sys, os
f = open(sys.argv[1], 'rb', buffering=0)
print(f.read().decode().strip(), flush=True)
sys.stdin.readline()
f.seek(0)
print(f.read().decode().strip(), flush=True)
`, `${m.mnt}/conf`], { stdio: ['pipe', 'pipe', 'inherit'] })
  let text = ''
  const lines = (): string[] => text.split('\n').slice(0, -1)
  reader.stdout.setEncoding('utf8').on('data', (s: string) => { text += s })
  const exited = new Promise((r) => reader.on('exit', r))
  while (lines().length < 1) await new Promise((r) => setTimeout(r, 20))
  fs.writeFileSync(`${m.mnt}/conf`, 'version two\n')
  reader.stdin.write('\n')
  await exited
  t.same(lines(), ['version one', 'version two'], 'the earlier read-only handle follows the copy-up')
})

t.test('a file unlinked while open keeps working and leaves no trace in the upper', async (t) => {
  const d = makeDirs(t)
  const m = await mountDirs(t, d)
  const fd = fs.openSync(`${m.mnt}/tmpfile`, 'w+')
  fs.writeSync(fd, 'before')
  fs.unlinkSync(`${m.mnt}/tmpfile`)
  fs.writeSync(fd, ' after', 6)
  const buf = Buffer.alloc(12)
  t.equal(fs.readSync(fd, buf, 0, 12, 0), 12)
  t.equal(buf.toString(), 'before after', 'read and write through the open fd')
  t.equal(fs.fstatSync(fd).size, 12, 'fstat works')
  fs.closeSync(fd)
  t.same(fs.readdirSync(d.upper).filter((n) => n !== 'etc'), [], 'no .fuse_hidden or other leftovers in the upper')
  t.same(fs.readdirSync(m.mnt).filter((n) => n.startsWith('.fuse_hidden')), [], 'nothing hidden in the merged view')
})

t.test('files unlinked or renamed over right after their last close leave nothing behind, in the work dir or a volume', async (t) => {
  // close(2) returns before the kernel's RELEASE is served, so these unlinks often find the file
  // still open and libfuse hides it; with RELEASE racing the hide, libfuse 2.9 alone loses some.
  const d = makeDirs(t)
  const vol = tempDir(t, 'strata-vol-')
  const procs = 6
  const rounds = 60
  fs.mkdirSync(`${d.lowers[0]}/low`)
  for (let i = 0; i < procs; i++) for (let k = 0; k < rounds; k++) fs.writeFileSync(`${d.lowers[0]}/low/f${i}_${k}`, `${i} ${k}`)
  lowersUnchanged(t, d.lowers)
  unmountLater(t, d.mnt)
  const r = runStratafs(['-o', `lowerdir=${d.lowers.join(':')},upperdir=${d.upper},workdir=${d.work},volume=${vol}:/data`, d.mnt])
  t.equal(r.status, 0, r.stderr)
  const churn = `
import os, sys
mnt, i, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def put(p, data):
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644); os.write(fd, data); os.close(fd)
for k in range(rounds):
    for top in ('', '/data'):
        a, b = '%s%s/a%d_%d' % (mnt, top, i, k), '%s%s/b%d_%d' % (mnt, top, i, k)
        put(a, b'gone'); os.unlink(a)
        put(a, b'old'); put(b, b'new'); os.rename(b, a)
        if open(a, 'rb').read() != b'new': sys.exit('renamed-over %s reads wrong' % a)
        os.unlink(a)
    low = '%s/low/f%d_%d' % (mnt, i, k)
    if open(low, 'rb').read() != b'%d %d' % (i, k): sys.exit('lower %s reads wrong' % low)
    os.unlink(low)
`
  const runs = await Promise.all(Array.from({ length: procs }, (_, i) => new Promise<string>((resolve) => {
    const c = spawn('python3', ['-c', churn, d.mnt, String(i), String(rounds)], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    c.stderr.setEncoding('utf8').on('data', (s: string) => { err += s })
    c.on('exit', (code) => resolve(code === 0 ? '' : `process ${i} exited ${code}: ${err.trim()}`))
  })))
  t.same(runs.filter((e) => e !== ''), [], 'every process saw the data it wrote and read')
  // the last releases reach the daemon after close(2) has returned
  await waitFor(() => fs.readdirSync(`${d.work}/work`).length === 0 && fs.readdirSync(vol).length === 0)
  t.same(fs.readdirSync(`${d.work}/work`), [], 'nothing left in the work dir')
  t.same(fs.readdirSync(vol), [], 'nothing left in the volume (no .fuse_hidden files)')
  t.same(fs.readdirSync(d.mnt).sort(), ['data', 'etc', 'low'], 'the merged view has only what it had')
  t.same(fs.readdirSync(`${d.mnt}/low`), [], 'every lower file is deleted')
  const stats = strataStats<{ ops: Record<string, { errors: Record<string, number> }> }>(d.mnt)
  t.same(stats.ops.unlink?.errors ?? {}, {}, 'no unlink failed (libfuse\'s late unlinks of removed hidden files included)')
  t.equal(spawnSync('fusermount3', ['-u', d.mnt]).status, 0)
})

t.test('inode numbers: stable across remounts, unique, shared by hard links', async (t) => {
  const d = makeDirs(t)
  const low = d.lowers[1]!
  fs.writeFileSync(`${low}/a`, 'x')
  fs.linkSync(`${low}/a`, `${low}/b`)
  fs.writeFileSync(`${d.lowers[0]}/c`, 'y')
  const m1 = await mountDirs(t, d)
  fs.writeFileSync(`${m1.mnt}/new`, 'z')
  const ino = (p: string): bigint => fs.statSync(`${m1.mnt}/${p}`, { bigint: true }).ino
  const first = { a: ino('a'), b: ino('b'), c: ino('c'), n: ino('new'), motd: ino('etc/motd') }
  t.equal(first.a, first.b, 'hard links share st_ino')
  t.equal(fs.statSync(`${m1.mnt}/a`).nlink, 2, 'st_nlink of a hard-linked lower file')
  t.equal(new Set(Object.values(first).map(String)).size, 4, 'the others are distinct')
  await m1.unmount()
  const m2 = await mountDirs(t, d)
  const again = { a: ino('a'), b: ino('b'), c: ino('c'), n: ino('new'), motd: ino('etc/motd') }
  t.same(again, first, 'the same after a remount')
  fs.linkSync(`${m2.mnt}/new`, `${m2.mnt}/new2`)
  t.equal(fs.statSync(`${m2.mnt}/new`).nlink, 2, 'link() shows in st_nlink of the other name at once')
  t.equal(ino('new2'), ino('new'), 'and the new name has the same st_ino')
  fs.appendFileSync(`${m2.mnt}/new2`, '+more')
  t.equal(fs.readFileSync(`${m2.mnt}/new`, 'utf8'), 'z+more', 'a write through one name is read through the other')
})

t.test('ownership: the caller owns what it creates; setgid directories pass their group on', async (t) => {
  const d = makeDirs(t)
  const low = d.lowers[1]!
  fs.mkdirSync(`${low}/shared`)
  fs.chownSync(`${low}/shared`, 0, 50)
  fs.chmodSync(`${low}/shared`, 0o2777)
  fs.mkdirSync(`${low}/tmp`)
  fs.chmodSync(`${low}/tmp`, 0o1777)
  fs.writeFileSync(`${low}/secret`, 'root only')
  fs.chmodSync(`${low}/secret`, 0o600)
  lowersUnchanged(t, d.lowers)
  const m = await mountDirs(t, d)
  const as1000 = (cmd: string): ReturnType<typeof spawnSync> =>
    spawnSync('setpriv', ['--reuid', '1000', '--regid', '1000', '--clear-groups', 'sh', '-c', cmd], { encoding: 'utf8' })
  t.equal(as1000(`echo mine > ${m.mnt}/tmp/f && mkdir ${m.mnt}/tmp/d && ln -s f ${m.mnt}/tmp/l && mkfifo ${m.mnt}/tmp/p`).status, 0, 'uid 1000 creates in a 1777 dir')
  for (const p of ['tmp/f', 'tmp/d', 'tmp/l', 'tmp/p']) {
    const st = fs.lstatSync(`${d.upper}/${p}`)
    t.equal(`${st.uid}:${st.gid}`, '1000:1000', `${p} is owned by 1000:1000 in the upper`)
  }
  t.equal(as1000(`echo x > ${m.mnt}/shared/g && mkdir ${m.mnt}/shared/sub`).status, 0)
  t.equal(fs.statSync(`${d.upper}/shared/g`).gid, 50, 'file in a setgid dir takes the dir group')
  const sub = fs.statSync(`${d.upper}/shared/sub`)
  t.equal(sub.gid, 50, 'subdir takes the dir group')
  t.ok(sub.mode & 0o2000, 'and is setgid itself')
  t.not(as1000(`cat ${m.mnt}/secret`).status, 0, 'uid 1000 cannot read a 0600 root file')
  t.match(String(as1000(`echo x > ${m.mnt}/etc/motd`).stderr), /Permission denied/, 'nor write a root 0644 file')
  t.match(String(as1000(`touch ${m.mnt}/etc/new`).stderr), /Permission denied/, 'nor create in a root 0755 dir')
  t.match(String(as1000(`chmod 777 ${m.mnt}/etc/motd`).stderr), /Operation not permitted/, 'nor chmod what it does not own')
  t.notOk(fs.existsSync(`${d.upper}/etc/motd`), 'denied operations copied nothing up')
})

t.test('name rules: 255 bytes work, 256 fail; .wh. names cannot be created', async (t) => {
  const d = makeDirs(t)
  const m = await mountDirs(t, d)
  fs.writeFileSync(`${m.mnt}/${'n'.repeat(255)}`, 'ok')
  t.ok(fs.existsSync(`${d.upper}/${'n'.repeat(255)}`), '255-byte name')
  t.throws(() => fs.writeFileSync(`${m.mnt}/${'n'.repeat(256)}`, 'x'), { code: 'ENAMETOOLONG' })
  t.throws(() => fs.writeFileSync(`${m.mnt}/.wh.evil`, 'x'), { code: 'EINVAL' })
  t.throws(() => fs.mkdirSync(`${m.mnt}/.wh..wh..opq`), { code: 'EINVAL' })
  t.throws(() => fs.renameSync(`${m.mnt}/etc/motd`, `${m.mnt}/etc/.wh.motd`), { code: 'EINVAL' })
  t.throws(() => fs.openSync(`${m.mnt}/etc/motd`, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY), { code: 'EEXIST' })
})

t.test('statfs reports the upper filesystem', async (t) => {
  const d = makeDirs(t)
  const m = await mountDirs(t, d)
  const a = fs.statfsSync(m.mnt)
  const b = fs.statfsSync(d.upper)
  t.equal(a.bsize * a.blocks, b.bsize * b.blocks, 'same total size')
  t.ok(Math.abs(a.bavail * a.bsize - b.bavail * b.bsize) < 256 * 2 ** 20, 'about the same free space')
})

t.test('OCI/AUFS-format lowers (podman-build fixture extracted with .wh. files) read correctly', async (t) => {
  const fixture = `${__dirname}/../../../../shared/fixtures/oci/podman-build`
  const d = makeDirs(t)
  const layers = [4, 3, 2, 1].map((n) => {
    const dir = `${d.root}/layer${n}`
    fs.mkdirSync(dir)
    const r = spawnSync('tar', ['-xzf', `${fixture}/layers/${n}.tar.gz`, '-C', dir, '--numeric-owner'], { encoding: 'utf8' })
    t.equal(r.status, 0, `extract layer ${n}: ${r.stderr}`)
    return dir
  })
  t.ok(fs.existsSync(`${layers[1]}/etc/.wh.sample.conf`), 'the .wh. files are on disk')
  lowersUnchanged(t, layers)
  const ro = await mountDirs(t, { ...d, lowers: layers }, true)
  const listing = spawnSync('sh', ['-c', `cd ${ro.mnt} && find . -mindepth 1 -printf '%y %m %U:%G %s %p %l\\n' | LC_ALL=C sort -k5`], { encoding: 'utf8' }).stdout
  const mine = listing.trim().split('\n').map((l) => {
    const [type, mode, owner, size, p, target] = l.split(' ')
    return `${type} ${mode} ${owner} ${type === 'f' ? size : '-'} ${p}${type === 'l' ? ` -> ${target}` : ''}`
  })
  t.same(mine, fs.readFileSync(`${fixture}/expected-merged.txt`, 'utf8').trim().split('\n'), 'merged tree = expected-merged.txt')
  const sums = spawnSync('sh', ['-c', `cd ${ro.mnt} && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum`], { encoding: 'utf8' }).stdout
  t.equal(sums, fs.readFileSync(`${fixture}/expected-merged.sha256`, 'utf8'), 'file contents = expected-merged.sha256')
  await ro.unmount()
  const rw = await mountDirs(t, { ...d, lowers: layers })
  fs.rmSync(`${rw.mnt}/opt/app`, { recursive: true })
  fs.appendFileSync(`${rw.mnt}/var/lib/data/f1.txt`, 'more\n')
  t.notOk(fs.existsSync(`${rw.mnt}/opt/app`), 'rm -rf over AUFS-format lowers')
  t.equal(fs.lstatSync(`${d.upper}/opt/app`).isCharacterDevice(), true, 'leaves a kernel-format whiteout')
})

t.test('whiteouts share one inode (as kernel overlayfs makes them), and kernel overlayfs reads them', async (t) => {
  const d = makeDirs(t)
  const low = d.lowers[1]!
  fs.mkdirSync(`${low}/gone`)
  for (let i = 0; i < 5; i++) fs.writeFileSync(`${low}/gone/f${i}`, `${i}`)
  lowersUnchanged(t, d.lowers)
  // a file where the shared whiteout goes is not one: it is dropped at mount, never linked to
  fs.writeFileSync(`${d.work}/whiteout`, 'not a whiteout')
  const m = await mountDirs(t, d)
  for (let i = 0; i < 4; i++) fs.unlinkSync(`${m.mnt}/gone/f${i}`)
  fs.unlinkSync(`${m.mnt}/etc/only-bottom`)
  t.same(fs.readdirSync(`${m.mnt}/gone`), ['f4'], 'deleted names are gone from the merged view')
  const whiteouts = [0, 1, 2, 3].map((i) => fs.lstatSync(`${d.upper}/gone/f${i}`)).concat(fs.lstatSync(`${d.upper}/etc/only-bottom`))
  t.ok(whiteouts.every((s) => s.isCharacterDevice() && s.rdev === 0), 'each is a 0/0 character device in the upper')
  t.equal(new Set(whiteouts.map((s) => s.ino)).size, 1, 'all five are one inode')
  t.equal(whiteouts[0]!.nlink, 6, 'linked from the upper five times and once from the work dir')
  t.same(fs.readdirSync(`${d.work}/work`), [], 'the scratch dir stays empty')
  await m.unmount()

  const k = { lowers: d.lowers, upper: d.upper, work: `${d.root}/kwork`, mnt: `${d.root}/kmnt` }
  fs.mkdirSync(k.work)
  fs.mkdirSync(k.mnt)
  const km = await mountUnion(t, 'kernel', k)
  t.same(fs.readdirSync(`${km.mnt}/gone`), ['f4'], 'kernel overlayfs sees the same deletions')
  t.notOk(fs.existsSync(`${km.mnt}/etc/only-bottom`), 'in every directory')
  await km.unmount()
})

t.test('work-dir leftovers go at mount, however deep, and no symlink in them is followed', async (t) => {
  const d = makeDirs(t)
  const outside = `${d.root}/outside`
  fs.mkdirSync(`${outside}/keep`, { recursive: true })
  fs.writeFileSync(`${outside}/keep/precious`, 'precious\n')
  // what a killed daemon could leave: a copy-up tree 100 levels deep (the native removal stops at
  // 64 and the rest goes by path), symlinks to outside at the top and the bottom, a whiteout, a fifo
  fs.mkdirSync(`${d.work}/work`)
  let deep = `${d.work}/work/#dead-1`
  for (let i = 0; i < 100; i++) deep += `/d${i}`
  fs.mkdirSync(deep, { recursive: true })
  fs.symlinkSync(outside, `${deep}/to-outside`)
  fs.symlinkSync(`${outside}/keep`, `${d.work}/work/#dead-1/d0/to-keep`)
  fs.writeFileSync(`${deep}/file`, 'partial')
  t.equal(spawnSync('mknod', [`${d.work}/work/#dead-1/wh`, 'c', '0', '0']).status, 0)
  t.equal(spawnSync('mkfifo', [`${d.work}/work/#dead-2`]).status, 0)
  fs.symlinkSync(`${outside}/keep`, `${d.work}/work/#dead-3`)
  const m = await mountDirs(t, d)
  t.same(fs.readdirSync(`${d.work}/work`), [], 'every leftover removed')
  t.equal(fs.readFileSync(`${outside}/keep/precious`, 'utf8'), 'precious\n', 'what the symlinks pointed at is untouched')
  t.same(fs.readdirSync(outside), ['keep'])
  t.equal(fs.readFileSync(`${m.mnt}/etc/motd`, 'utf8'), 'top motd\n', 'the mount serves')
})

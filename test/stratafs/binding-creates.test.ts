/**
 * Files the binding creates itself (src/fuse/binding-creates.ts, strata_ccreate_try): the CREATE
 * of a new regular file in a directory the upper already has, while JS serves nothing. Through
 * real mounts, side by side with kernel overlayfs: owners (the caller's; a setgid directory's
 * group), modes, contents, attributes changed through the new descriptor, names made over
 * whiteouts, renamed or unlinked while open, the merged tree and the upper in overlayfs's format
 * are what kernel overlayfs gives, and the counters say the binding made the files.
 */
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import t, { type Test } from 'tap'
import { mountUnion, strataStats, type UnionDirs } from '../helpers/mounts'
import { tempDir } from '../helpers/tmp'
import { diffSnapshots, snapshot } from '../helpers/tree'
import { fileContents, lowersUnchanged, mountSwitchedOff, py, raceRoles, waitFor } from './util'

interface Stats {
  ops: Record<string, { count: number }>
  servedBy: Record<string, Record<string, number>>
  openHandles: number
}
const createsByBinding = (mnt: string): number => strataStats<Stats>(mnt).servedBy.binding?.create ?? 0

/** A lower shared by both mounts, and an upper, work dir and mountpoint for each. */
function layers(t: Test): { strata: UnionDirs, kernel: UnionDirs, lowers: string[] } {
  const root = tempDir(t)
  const lower = `${root}/lower`
  for (const dir of ['tree/a', 'tree/b', 'sg', 'pub']) fs.mkdirSync(`${lower}/${dir}`, { recursive: true })
  for (let i = 0; i < 10; i++) fs.writeFileSync(`${lower}/tree/a/f${i}`, `a${i}\n`)
  fs.chownSync(`${lower}/sg`, 0, 100)
  fs.chmodSync(`${lower}/sg`, 0o2775) // setgid: files made in it take its group
  fs.chmodSync(`${lower}/pub`, 0o1777)
  const dirs = (name: string): UnionDirs => {
    const d = { lowers: [lower], upper: `${root}/${name}-upper`, work: `${root}/${name}-work`, mnt: `${root}/${name}-mnt` }
    for (const p of [d.upper, d.work, d.mnt]) fs.mkdirSync(p)
    return d
  }
  return { strata: dirs('strata'), kernel: dirs('kernel'), lowers: [lower] }
}

/** Runs a Node program as uid:gid 1000 (no supplementary groups) with the mountpoint as process.argv[1]. */
function asUser(mnt: string, program: string): string {
  const r = spawnSync('setpriv', ['--reuid', '1000', '--regid', '1000', '--clear-groups', process.execPath, '-e', program, mnt], { encoding: 'utf8' })
  return r.status === 0 ? '' : `exited ${r.status}: ${r.stderr}${r.error ?? ''}`
}

/** What a file looks like through a mount: mode, owner, size and contents. */
const fileView = (p: string): [number, number, number, number, string] => {
  const st = fs.statSync(p)
  return [st.mode, st.uid, st.gid, st.size, fs.readFileSync(p, 'utf8')]
}

t.test('creates in upper directories: made by the binding, and every view is kernel overlayfs\'s', async (t) => {
  const { strata, kernel, lowers } = layers(t)
  lowersUnchanged(t, lowers)
  const s = await mountUnion(t, 'stratafs', strata)
  await mountUnion(t, 'kernel', kernel)
  const mnts = [s.mnt, kernel.mnt] as const
  const same = (label: string, fn: (mnt: string) => unknown): void => {
    const [a, b] = mnts.map((m) => {
      try {
        return fn(m)
      } catch (err) {
        return (err as NodeJS.ErrnoException).code ?? String(err)
      }
    })
    t.same(a, b, label)
  }

  // a new directory (JS makes it and the first file in it; the binding the others)
  for (const m of mnts) {
    fs.mkdirSync(`${m}/new`)
    for (let i = 0; i < 20; i++) fs.writeFileSync(`${m}/new/f${i}`, `new ${i}\n`, { mode: i % 2 ? 0o600 : 0o644 })
  }
  t.ok(createsByBinding(s.mnt) >= 15, `the binding made most of the 20 files (${createsByBinding(s.mnt)})`)
  same('new/: the same names', (m) => fs.readdirSync(`${m}/new`).sort())
  same('new/: modes, owners, sizes and contents', (m) => fs.readdirSync(`${m}/new`).sort().map((n) => fileView(`${m}/new/${n}`)))

  // a lower directory copied up by a change in it, then files made there
  for (const m of mnts) fs.appendFileSync(`${m}/tree/a/f0`, 'more\n')
  let before = createsByBinding(s.mnt)
  for (const m of mnts) for (let i = 0; i < 10; i++) fs.writeFileSync(`${m}/tree/a/n${i}`, `n${i}`)
  t.ok(createsByBinding(s.mnt) - before >= 8, 'in a copied-up lower directory, too')
  same('tree/a: lower files, the copied-up one and the new ones', (m) => fs.readdirSync(`${m}/tree/a`).sort().map((n) => fileView(`${m}/tree/a/${n}`)))

  // a name deleted in the lower directory and made again: a whiteout is in the way (JS replaces it)
  for (const m of mnts) fs.unlinkSync(`${m}/tree/a/f3`)
  for (const m of mnts) fs.writeFileSync(`${m}/tree/a/f3`, 'made again\n')
  same('a name made again over a whiteout holds the new file', (m) => fileView(`${m}/tree/a/f3`))
  t.ok(fs.lstatSync(`${strata.upper!}/tree/a/f3`).isFile(), 'and the upper holds a regular file there, not the whiteout')

  // a setgid directory: the group is the directory's, whoever creates
  for (const m of mnts) {
    fs.writeFileSync(`${m}/sg/first`, '1') // copies sg up (JS)
    for (let i = 0; i < 5; i++) fs.writeFileSync(`${m}/sg/g${i}`, `${i}`)
  }
  same('setgid directory: files take its group (100)', (m) => fs.readdirSync(`${m}/sg`).sort().map((n) => fileView(`${m}/sg/${n}`)))

  // another user creates files (with its umask and explicit modes) in a sticky world-writable one
  for (const m of mnts) fs.writeFileSync(`${m}/pub/root-made`, 'r')
  before = createsByBinding(s.mnt)
  const userProgram = `
const fs = require('node:fs')
process.umask(0o027)
for (let i = 0; i < 6; i++) {
  const fd = fs.openSync(process.argv[1] + '/pub/u' + i, 'wx', i % 2 ? 0o666 : 0o640)
  fs.writeSync(fd, 'user ' + i)
  fs.closeSync(fd)
}
`
  for (const m of mnts) t.equal(asUser(m, userProgram), '', `uid 1000 creates in ${m}/pub`)
  t.ok(createsByBinding(s.mnt) - before >= 5, `the binding made the user's files (${createsByBinding(s.mnt) - before})`)
  same('pub/: the user\'s files are 1000:1000 with its umask applied', (m) => fs.readdirSync(`${m}/pub`).sort().map((n) => fileView(`${m}/pub/${n}`)))

  // attributes changed through the new descriptor before it is closed, and a listing meanwhile
  const fdProgram = `
import os, sys
p = f'{sys.argv[1]}/new/through-fd'
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b'x' * 1000)
os.fchmod(fd, 0o751)
os.fchown(fd, 1234, 4321)
os.utime(fd, (1000000000, 1000000000))
listed = sorted(os.listdir(f'{sys.argv[1]}/new'))
sizes = [os.stat(f'{sys.argv[1]}/new/{n}').st_size for n in listed]
set_mtime = int(os.stat(p).st_mtime)
os.write(fd, b'y' * 24)
st = os.stat(p)
print(st.st_size, oct(st.st_mode), st.st_uid, st.st_gid, set_mtime, st.st_mtime > set_mtime, len(listed), sum(sizes))
os.close(fd)
`
  same('a file written and changed through its descriptor while its directory is listed', (m) => spawnSync('python3', ['-c', fdProgram, m], { encoding: 'utf8' }).stdout)
  same('and after it is closed', (m) => fileView(`${m}/new/through-fd`))

  // inode numbers: what the create answered is what a listing gives (d_ino) and a stat later
  const inoProgram = `
import os, sys
base = f'{sys.argv[1]}/new'
fresh = {}
for i in range(5):
    fd = os.open(f'{base}/ino{i}', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    fresh[f'ino{i}'] = os.fstat(fd).st_ino
    os.close(fd)
listed = {e.name: e.inode() for e in os.scandir(base) if e.name.startswith('ino')}
print(listed == fresh and all(os.stat(f'{base}/{n}').st_ino == v for n, v in fresh.items()))
`
  same('a new file\'s inode number: the same from its create, its directory\'s listing and a stat', (m) => spawnSync('python3', ['-c', inoProgram, m], { encoding: 'utf8' }).stdout)

  // a directory with a default ACL: its new files come with an access ACL, which getxattr must find
  // (umask 0 here; create-modes.test.ts has the umask's part)
  const aclProgram = `
import os, struct, sys
os.umask(0)
d = f'{sys.argv[1]}/acl'
os.mkdir(d)
entries = [(0x01, 7, 0xffffffff), (0x02, 6, 1000), (0x04, 5, 0xffffffff), (0x10, 7, 0xffffffff), (0x20, 5, 0xffffffff)]
os.setxattr(d, 'system.posix_acl_default', struct.pack('<I', 2) + b''.join(struct.pack('<HHI', *e) for e in entries))
out = []
for i in range(4):
    with open(f'{d}/a{i}', 'w') as f: f.write('acl')
    out.append((os.getxattr(f'{d}/a{i}', 'system.posix_acl_access').hex(), oct(os.stat(f'{d}/a{i}').st_mode)))
print(out)
`
  before = createsByBinding(s.mnt)
  same('files made under a default ACL carry the ACL it gives them', (m) => spawnSync('python3', ['-c', aclProgram, m], { encoding: 'utf8' }).stdout)
  // (Python's open() asks isatty() of each file: an IOCTL, which changes nothing here)
  t.ok(createsByBinding(s.mnt) - before >= 2, `the binding made those after the first (${createsByBinding(s.mnt) - before} of 4)`)

  // renamed and unlinked while still open: the handle follows, nothing is left behind
  const openProgram = `
import os, sys
base = f'{sys.argv[1]}/new'
a = os.open(f'{base}/moving', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(a, b'first ')
os.rename(f'{base}/moving', f'{base}/moved')
os.write(a, b'second')
os.close(a)
b = os.open(f'{base}/doomed', os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
os.write(b, b'still here')
os.unlink(f'{base}/doomed')
os.lseek(b, 0, 0)
print(os.read(b, 100).decode(), os.path.exists(f'{base}/doomed'))
os.close(b)
`
  same('renamed and unlinked while open', (m) => spawnSync('python3', ['-c', openProgram, m], { encoding: 'utf8' }).stdout)
  same('the renamed file holds both writes', (m) => fileView(`${m}/new/moved`))
  await waitFor(() => fs.readdirSync(`${strata.upper!}/new`).every((n) => !n.startsWith('.fuse_hidden')))
  await waitFor(() => strataStats<Stats>(s.mnt).openHandles === 0)
  t.equal(strataStats<Stats>(s.mnt).openHandles, 0, 'no handle is left open in the daemon')

  const merged = diffSnapshots(snapshot(kernel.mnt), snapshot(s.mnt), { ignore: ['mtime'] }, ['kernel', 'stratafs'])
  t.same(merged, [], 'the merged trees are the same')
  const upper = diffSnapshots(snapshot(kernel.upper!, 'upper'), snapshot(strata.upper!, 'upper'), { ignore: ['mtime'], ignoreLinks: true }, ['kernel', 'stratafs'])
  t.same(upper, [], 'the uppers are the same, in overlayfs\'s format')
  t.equal(fs.readdirSync(`${strata.work!}/work`).length, 0, 'the work dir is empty')
})

t.test('creates the binding leaves to JS: set-id modes, read-only opens, lower-only directories, data volumes, and with it off', async (t) => {
  const { strata, kernel, lowers } = layers(t)
  lowersUnchanged(t, lowers)
  const volume = tempDir(t)
  const s = await mountUnion(t, 'stratafs', { ...strata, options: [`volume=${volume}:/vol`] })
  await mountUnion(t, 'kernel', kernel)
  const modesProgram = `
import os, sys
base = sys.argv[1]
os.umask(0)
os.mkdir(f'{base}/m')
open(f'{base}/m/plain', 'w').close()
for name, flags, mode in [('suid', os.O_WRONLY, 0o4755), ('sgid', os.O_WRONLY, 0o2750), ('rdonly', os.O_RDONLY, 0o644)]:
    os.close(os.open(f'{base}/m/{name}', flags | os.O_CREAT | os.O_EXCL, mode))
os.close(os.open(f'{base}/tree/b/first-in-lower-dir', os.O_WRONLY | os.O_CREAT, 0o644))
`
  for (const m of [s.mnt, kernel.mnt]) {
    const r = spawnSync('python3', ['-c', modesProgram, m], { encoding: 'utf8' })
    t.equal(r.status, 0, `creates in ${m}: ${r.stderr}`)
  }
  const view = (m: string): unknown => ['plain', 'suid', 'sgid', 'rdonly'].map((n) => fileView(`${m}/m/${n}`))
  t.same(view(s.mnt), view(kernel.mnt), 'set-id bits and a read-only create: the modes kernel overlayfs gives')
  t.ok(fs.existsSync(`${strata.upper!}/tree/b/first-in-lower-dir`), 'a file made in a lower-only directory copied the directory up')

  // a data volume's files are the volume's
  spawnSync('ls', ['-l', `${s.mnt}/vol`])
  const before = createsByBinding(s.mnt)
  for (let i = 0; i < 5; i++) fs.writeFileSync(`${s.mnt}/vol/v${i}`, `v${i}`)
  t.equal(createsByBinding(s.mnt), before, 'creates in a data volume are JS\'s')
  t.same(fs.readdirSync(volume).sort(), ['v0', 'v1', 'v2', 'v3', 'v4'], 'and make the volume\'s files')
  t.equal(fs.existsSync(`${strata.upper!}/vol/v0`), false, 'nothing in the upper')

  // with STRATA_NO_CCREATE=1 every create is JS's
  const m2 = await mountSwitchedOff(t, layers(t).strata, 'STRATA_NO_CCREATE')
  fs.mkdirSync(`${m2.mnt}/new`)
  for (let i = 0; i < 10; i++) fs.writeFileSync(`${m2.mnt}/new/f${i}`, `${i}`)
  t.equal(createsByBinding(m2.mnt), 0, 'STRATA_NO_CCREATE=1: the binding created nothing')
  t.same(fs.readdirSync(`${m2.mnt}/new`).length, 10, 'and the files are there')
})

t.test('cp -a within the mount: the sources\' listxattrs and the copies\' ACLs keep the binding\'s creates going', async (t) => {
  // Per file, cp -a lists the source's xattrs (twice) and sets system.posix_acl_access on the copy.
  // Before: every listxattr went to JS, and each setxattr emptied the binding's tables, so the next
  // create found its directory's attributes unknown and went to JS too (0 of 1,000 by the binding).
  const { strata, kernel, lowers } = layers(t)
  const lower = lowers[0]!
  fs.mkdirSync(`${lower}/src`)
  for (let i = 0; i < 200; i++) fs.writeFileSync(`${lower}/src/f${i}`, `f${i}\n`)
  t.equal(spawnSync('setfattr', ['-n', 'user.kept', '-v', 'yes', `${lower}/src/f7`]).status, 0, 'one source has an xattr')
  lowersUnchanged(t, lowers)
  const s = await mountUnion(t, 'stratafs', strata)
  await mountUnion(t, 'kernel', kernel)
  const served = (op: string): number => strataStats<Stats>(s.mnt).servedBy.binding?.[op] ?? 0
  const jsListxattrs = (): number => (strataStats<Stats>(s.mnt).ops.listxattr?.count ?? 0) - served('listxattr')

  // listxattr of sources a listing showed: the list's size (size 0) and the list, as the kernel's
  const listProgram = `
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
d = sys.argv[1] + '/src'
out = []
for n in sorted(os.listdir(d)):
    p = os.path.join(d, n).encode()
    out.append([n, libc.llistxattr(p, None, 0), os.listxattr(p, follow_symlinks=False)])
print(json.dumps(out))
`
  const lists = [s.mnt, kernel.mnt].map((m) => spawnSync('python3', ['-c', listProgram, m], { encoding: 'utf8' }).stdout)
  t.same(JSON.parse(lists[0]!), JSON.parse(lists[1]!), 'every source lists the xattrs it lists on kernel overlayfs (f7 its one)')
  t.ok(served('listxattr') >= 300, `the binding answered the listxattrs of xattr-free files (${served('listxattr')} of 400)`)
  t.ok(jsListxattrs() <= 40, `few reached JS (${jsListxattrs()}): f7's and those of entries the tables missed`)

  // an xattr set on one of them is listed from then on, and gone again once removed
  for (const m of [s.mnt, kernel.mnt]) t.equal(spawnSync('setfattr', ['-n', 'user.new', '-v', '1', `${m}/src/f3`]).status, 0, `setfattr in ${m}`)
  const names = (m: string, n: string): string => spawnSync('python3', ['-c', 'import os,sys; print(sorted(os.listxattr(sys.argv[1])))', `${m}/src/${n}`], { encoding: 'utf8' }).stdout
  t.equal(names(s.mnt, 'f3'), names(kernel.mnt, 'f3'), 'a name set through the mount is listed')
  for (const m of [s.mnt, kernel.mnt]) t.equal(spawnSync('setfattr', ['-x', 'user.new', `${m}/src/f3`]).status, 0, `setfattr -x in ${m}`)
  t.equal(names(s.mnt, 'f3'), names(kernel.mnt, 'f3'), 'and not once removed')

  // an access ACL set after a listing changes the mode: a stat after it shows the new one
  for (const m of [s.mnt, kernel.mnt]) {
    spawnSync('ls', ['-l', `${m}/src`])
    // user::rw- user:1000:rwx group::r-- mask::rwx other::r-- (what `setfacl -m u:1000:rwx` sets)
    const acl = 'struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in [(1, 6, 2**32 - 1), (2, 7, 1000), (4, 4, 2**32 - 1), (0x10, 7, 2**32 - 1), (0x20, 4, 2**32 - 1)])'
    t.equal(py(`import os, struct, sys; os.setxattr(sys.argv[1], "system.posix_acl_access", ${acl})`, `${m}/src/f5`).status, 0, 'an access ACL set')
  }
  t.equal(fs.statSync(`${s.mnt}/src/f5`).mode, fs.statSync(`${kernel.mnt}/src/f5`).mode, 'the mode an ACL gave is what a stat shows')
  // an xattr set on a listed lower file copies it up: a stat after it is the upper file's, not what
  // the listing showed (the binding drops the entry when JS answers the setxattr)
  for (const m of [s.mnt, kernel.mnt]) {
    spawnSync('ls', ['-l', `${m}/src`])
    t.equal(spawnSync('setfattr', ['-n', 'user.c', '-v', '1', `${m}/src/f9`]).status, 0, `an xattr set on a lower file in ${m}`)
  }
  const after = fs.statSync(`${s.mnt}/src/f9`, { bigint: true })
  const up = fs.statSync(`${strata.upper!}/src/f9`, { bigint: true })
  t.same([after.ino & ((1n << 48n) - 1n), after.ctimeNs], [up.ino, up.ctimeNs], 'a stat after it shows the copied-up file')

  // cp -a: the copies are made by the binding, and are what kernel overlayfs makes
  const before = createsByBinding(s.mnt)
  for (const m of [s.mnt, kernel.mnt]) {
    const r = spawnSync('cp', ['-a', `${m}/src`, `${m}/copy`], { encoding: 'utf8' })
    t.equal(r.status, 0, `cp -a in ${m}: ${r.stderr}`)
  }
  t.ok(createsByBinding(s.mnt) - before >= 150, `the binding made most of the 200 copies (${createsByBinding(s.mnt) - before})`)
  const merged = diffSnapshots(snapshot(kernel.mnt), snapshot(s.mnt), { ignore: ['mtime'] }, ['kernel', 'stratafs'])
  t.same(merged, [], 'the merged trees are the same, xattrs and ACLs included')
  const upper = diffSnapshots(snapshot(kernel.upper!, 'upper'), snapshot(strata.upper!, 'upper'), { ignore: ['mtime'], ignoreLinks: true }, ['kernel', 'stratafs'])
  t.same(upper, [], 'the uppers are the same')
})

t.test('creates racing renames, unlinks and listings in the same directories end as each asked', async (t) => {
  const root = tempDir(t)
  const lower = `${root}/lower`
  fs.mkdirSync(lower)
  lowersUnchanged(t, [lower])
  const d: UnionDirs = { lowers: [lower], upper: `${root}/upper`, work: `${root}/work`, mnt: `${root}/mnt` }
  for (const p of [d.upper!, d.work!, d.mnt]) fs.mkdirSync(p)
  const m = await mountUnion(t, 'stratafs', d)
  const files = 200
  for (let dir = 0; dir < 3; dir++) fs.mkdirSync(`${m.mnt}/d${dir}`)
  // per directory: one process creates and writes files, one renames every third of them once it
  // exists, one unlinks some others, one lists again and again; all at once
  const worker = `
import os, sys, time
mnt, role, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def wait(p):
    while not os.path.exists(p): time.sleep(0.0005)
for d in range(3):
    base = f'{mnt}/d{d}'
    for i in range(n):
        if role == 'create':
            with open(f'{base}/f{i}', 'w') as f: f.write(f'{d}:{i}')
        elif role == 'rename' and i % 3 == 1:
            wait(f'{base}/f{i}'); os.rename(f'{base}/f{i}', f'{base}/r{i}')
        elif role == 'unlink' and i % 5 == 2 and i % 3 != 1:
            wait(f'{base}/f{i}'); os.unlink(f'{base}/f{i}')
        elif role == 'list' and i % 10 == 0: os.listdir(base)
`
  t.same(await raceRoles(worker, ['create', 'rename', 'unlink', 'list'], m.mnt, String(files)), [], 'every process did what it asked')
  for (let dir = 0; dir < 3; dir++) {
    const base = `${m.mnt}/d${dir}`
    const want = new Map<string, string>()
    for (let i = 0; i < files; i++) {
      if (i % 3 === 1) want.set(`r${i}`, `${dir}:${i}`)
      else if (i % 5 !== 2) want.set(`f${i}`, `${dir}:${i}`)
    }
    t.same(fileContents(base), [...want].sort(), `d${dir}: every file holds what was written, under the name it was given`)
    t.same(fs.readdirSync(`${d.upper!}/d${dir}`).sort(), [...want.keys()].sort(), `d${dir}: the upper holds just those`)
  }
  t.ok(createsByBinding(m.mnt) > 0, `some creates were the binding's (${createsByBinding(m.mnt)} of ${3 * files})`)
})

t.test('a file the binding created counts as open for writing: a listing made meanwhile is not kept with its old size', async (t) => {
  // The binding serves the new file's writes and its release without JS. JS adopts the handle as a
  // writer when it learns of the create; otherwise a listing made between two writes would be kept
  // with the first size and, once the kernel forgot the inode, handed out again after the close.
  const { strata, kernel, lowers } = layers(t)
  lowersUnchanged(t, lowers)
  const s = await mountUnion(t, 'stratafs', strata)
  await mountUnion(t, 'kernel', kernel)
  const program = `
import os, subprocess, sys
d = f'{sys.argv[1]}/w'
os.mkdir(d)
open(f'{d}/first', 'w').close()
fd = os.open(f'{d}/grows', os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b'a' * 1000)
subprocess.run(['ls', '-l', d], stdout=subprocess.DEVNULL, check=True)
os.write(fd, b'b' * 24)
os.close(fd)
with open('/proc/sys/vm/drop_caches', 'w') as f: f.write('2')
listed = [l.split()[4] for l in subprocess.run(['ls', '-ln', d], capture_output=True, text=True, check=True).stdout.splitlines() if l.endswith(' grows')]
with open(f'{d}/grows', 'rb') as f: data = f.read()
print(listed, os.stat(f'{d}/grows').st_size, len(data), data.endswith(b'b' * 24))
`
  const before = createsByBinding(s.mnt)
  const run = (m: string): string => {
    const r = spawnSync('python3', ['-c', program, m], { encoding: 'utf8' })
    return r.status === 0 ? r.stdout : `exited ${r.status}: ${r.stderr}`
  }
  const want = run(kernel.mnt)
  t.equal(want, "['1024'] 1024 1024 True\n", 'kernel overlayfs: the listing, stat and read after the close see both writes')
  t.equal(run(s.mnt), want, 'stratafs: the same')
  t.equal(createsByBinding(s.mnt) - before, 1, 'the binding made the file (the first in the new directory is JS\'s)')
})

/**
 * A lower written by other tools (coreutils, attr, python) with unusual but legal content (issue
 * 6): xattrs in the user, trusted and security namespaces (binary values, on files, dirs and
 * symlinks), hard links across directories, sparse files, an empty file and a 2^33-byte file.
 * The merged view is compared with kernel overlayfs over the same lower, before and after
 * copy-ups; the big sparse files are checked by size, blocks and reads at chosen offsets.
 */
import t from 'tap'
import * as fs from 'node:fs'
import { mountUnion } from '../helpers/mounts'
import { diffSnapshots, snapshot } from '../helpers/tree'
import { lowersUnchanged } from '../stratafs/util'
import { PY_PRELUDE, layout, mountStratafs, py } from './util'

const BUILD = `${PY_PRELUDE}
L = sys.argv[1]
s = L + '/small'
for p in ('a', 'b', 'c', 'x'): os.makedirs(s + '/' + p)
open(s + '/a/h1', 'w').write('linked')
os.link(s + '/a/h1', s + '/b/h2'); os.link(s + '/a/h1', s + '/c/h3')
open(s + '/empty', 'w').close()
open(s + '/x/attrs', 'w').write('attrs')
for p in (s + '/x/attrs', s + '/x'):
    os.setxattr(p, 'user.plain', b'value')
    os.setxattr(p, 'user.binary', bytes(range(256)))
    os.setxattr(p, 'trusted.t', b'\\x00\\x01zero')
    os.setxattr(p, 'security.strata_test', b'sec')
os.symlink('attrs', s + '/x/link')
os.setxattr(s + '/x/link', 'trusted.onlink', b'1', follow_symlinks=False)
fd = os.open(s + '/sparse', os.O_WRONLY | os.O_CREAT, 0o644)
os.pwrite(fd, b'head', 0); os.pwrite(fd, b'middle', 1 << 20); os.pwrite(fd, b'tail', (4 << 20) - 4); os.close(fd)
b = L + '/big'; os.mkdir(b)
fd = os.open(b + '/huge', os.O_WRONLY | os.O_CREAT, 0o644)
os.pwrite(fd, b'start', 0); os.pwrite(fd, b'mid', 1 << 32); os.pwrite(fd, b'end', (1 << 33) - 3); os.close(fd)
out('ok')`

t.test('unusual lower: xattrs in every namespace, cross-directory hard links, sparse, 0 and 2^33 bytes', async (t) => {
  const d = layout(t)
  const b = py(BUILD, [d.lowers[0]!])
  t.equal(b.status, 0, b.stderr)
  lowersUnchanged(t, d.lowers)
  mountStratafs(t, d)
  const k = { lowers: d.lowers, upper: `${d.root}/ku`, work: `${d.root}/kw`, mnt: `${d.root}/kmnt` }
  for (const p of [k.upper, k.work, k.mnt]) fs.mkdirSync(p)
  await mountUnion(t, 'kernel', k)
  const compare = (what: string): void => {
    const diff = diffSnapshots(snapshot(`${k.mnt}/small`), snapshot(`${d.mnt}/small`), {}, ['kernel', 'stratafs'])
    t.same(diff, [], `${what}: merged view of small/ equals kernel overlayfs (content, modes, xattrs, link groups)`)
  }
  compare('before any change')
  const lower = snapshot(`${d.lowers[0]}/small`, 'merged')
  t.same(diffSnapshots(lower, snapshot(`${d.mnt}/small`), { ignore: ['mtime'] }, ['lower', 'stratafs']).filter((l) => !l.includes('~ ./  ')), [], 'and equals the lower itself')
  t.equal(fs.statSync(`${d.mnt}/small/a/h1`).nlink, 3, 'hard links across directories: nlink 3')
  t.equal(fs.statSync(`${d.mnt}/small/a/h1`).ino, fs.statSync(`${d.mnt}/small/c/h3`).ino, 'one inode')

  for (const m of [k.mnt, d.mnt]) {
    fs.appendFileSync(`${m}/small/a/h1`, '+')
    fs.appendFileSync(`${m}/small/sparse`, '+')
    fs.chmodSync(`${m}/small/x/attrs`, 0o600)
    fs.appendFileSync(`${m}/small/empty`, '')
  }
  const diff = diffSnapshots(snapshot(`${k.mnt}/small`), snapshot(`${d.mnt}/small`), { ignoreLinks: false }, ['kernel', 'stratafs'])
  t.same(diff, [], 'after copy-ups (hard link broken as on the kernel, sparse file appended, xattrs kept): equal to kernel overlayfs')
  t.ok(fs.statSync(`${d.upper}/small/sparse`).blocks * 512 < 1 << 20, 'the copied-up sparse file kept its holes')
  // a directory rename (stratafs copies the tree up; the kernel answers EXDEV without redirect_dir)
  fs.renameSync(`${d.mnt}/small/x`, `${d.mnt}/small/x2`)
  t.same(diffSnapshots(snapshot(`${k.mnt}/small/x`), snapshot(`${d.mnt}/small/x2`), { ignore: ['mtime'] }, ['kernel x', 'stratafs x2']), [], 'renamed tree keeps xattrs of every namespace, on the dir, file and symlink')

  // the 2^33-byte file: size, reads at the written offsets and in holes, copy-up keeps holes
  const huge = `${d.mnt}/big/huge`
  t.equal(fs.statSync(huge).size, 2 ** 33, '2^33-byte file has its size')
  const fd = fs.openSync(huge, 'r')
  const at = (off: number, n: number): string => { const buf = Buffer.alloc(n); const r = fs.readSync(fd, buf, 0, n, off); return buf.subarray(0, r).toString('latin1') }
  t.equal(at(0, 5), 'start')
  t.equal(at(2 ** 32, 3), 'mid', 'read past 4 GiB')
  t.equal(at(2 ** 33 - 3, 10), 'end', 'read at the end (short read at EOF)')
  t.equal(at(2 ** 31, 4), '\0\0\0\0', 'holes read as zeros')
  fs.closeSync(fd)
  fs.chmodSync(huge, 0o640)
  const up = fs.statSync(`${d.upper}/big/huge`)
  t.equal(up.size, 2 ** 33, 'copied up with its size')
  t.ok(up.blocks * 512 < 64 << 20, `and its holes (${up.blocks * 512} bytes allocated)`)
  const fd2 = fs.openSync(huge, 'r')
  const buf = Buffer.alloc(3)
  fs.readSync(fd2, buf, 0, 3, 2 ** 33 - 3)
  fs.closeSync(fd2)
  t.equal(buf.toString(), 'end', 'the tail reads the same after the copy-up')
  t.equal(fs.statSync(`${d.mnt}/small/empty`).size, 0, 'the empty file stays empty')
})

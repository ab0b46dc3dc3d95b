/**
 * Setxattrs the binding does itself (strata_fdio_setxattr): a SETXATTR of a file some handle has
 * open for writing is an fsetxattr on that handle's fd, without the JS thread (`cp -a` sets an
 * access ACL on every copy while it is open). Through real mounts: names, values, flags and their
 * errors, the mode an access ACL gives, and the upper, side by side with kernel overlayfs (for a
 * data volume, with a plain host directory); the names JS must escape or track still reach JS,
 * and the counters say which were the binding's.
 */
import * as fs from 'node:fs'
import t from 'tap'
import { mountUnion, strataStats, type UnionDirs } from '../helpers/mounts'
import { tempDir } from '../helpers/tmp'
import { diffSnapshots, snapshot } from '../helpers/tree'
import { lowersUnchanged, py } from './util'

interface Stats {
  ops: Record<string, { count: number }>
  servedBy: Record<string, Record<string, number>>
}

/**
 * In directory argv[1]: files opened for writing (a new one, a lower one, which the open copies
 * up) and one opened for reading only; xattrs set while each is open, by path and through the
 * descriptor. Prints what every step gave (values, errnos, modes) as JSON.
 */
const program = `
import errno, json, os, struct, sys
d = sys.argv[1]
# user::rw- user:1000:rwx group::r-- mask::rwx other::r-- (what setfacl -m u:1000:rwx sets)
acl = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in [(1, 6, 2**32 - 1), (2, 7, 1000), (4, 4, 2**32 - 1), (0x10, 7, 2**32 - 1), (0x20, 4, 2**32 - 1)])
out = []
def step(label, fn):
    try:
        r = fn()
        out.append([label, r if r is None or isinstance(r, (int, str, list)) else r.hex()])
    except OSError as e:
        out.append([label, errno.errorcode[e.errno]])
for name, flags in [("new", os.O_WRONLY | os.O_CREAT | os.O_EXCL), ("low", os.O_WRONLY), ("ro", os.O_RDONLY)]:
    p = os.path.join(d, name)
    fd = os.open(p, flags, 0o644)
    step(name + " set by path", lambda: os.setxattr(p, "user.a", b"1"))
    step(name + " set on fd", lambda: os.setxattr(fd, "user.b", b"two"))
    step(name + " replace", lambda: os.setxattr(p, "user.a", b"one", os.XATTR_REPLACE))
    step(name + " create existing", lambda: os.setxattr(p, "user.a", b"x", os.XATTR_CREATE))
    step(name + " replace missing", lambda: os.setxattr(p, "user.none", b"x", os.XATTR_REPLACE))
    step(name + " empty value", lambda: os.setxattr(p, "user.empty", b""))
    step(name + " overlay's name", lambda: os.setxattr(p, "trusted.overlay.mine", b"m"))
    step(name + " access ACL", lambda: os.setxattr(p, "system.posix_acl_access", acl))
    step(name + " mode", lambda: oct(os.fstat(fd).st_mode))
    step(name + " list", lambda: sorted(os.listxattr(p)))
    step(name + " values", lambda: [os.getxattr(p, n).hex() for n in ["user.a", "user.b", "user.empty", "trusted.overlay.mine"]])
    os.close(fd)
    step(name + " mode after close", lambda: oct(os.stat(p).st_mode))
print(json.dumps(out))
`

function layer(root: string): string {
  const lower = `${root}/lower`
  fs.mkdirSync(`${lower}/d`, { recursive: true })
  fs.writeFileSync(`${lower}/d/low`, 'lower\n')
  fs.writeFileSync(`${lower}/d/ro`, 'read only\n')
  return lower
}

const dirsFor = (root: string, name: string, lower: string, options?: string[]): UnionDirs => {
  const d: UnionDirs = { lowers: [lower], upper: `${root}/${name}-upper`, work: `${root}/${name}-work`, mnt: `${root}/${name}-mnt`, options }
  for (const p of [d.upper!, d.work!, d.mnt]) fs.mkdirSync(p)
  return d
}

const run = (dir: string): unknown => {
  const r = py(program, dir)
  if (r.status !== 0) throw new Error(`python in ${dir} exited ${r.status}: ${r.stderr}`)
  return JSON.parse(r.stdout)
}

t.test('setxattrs of files open for writing: done by the binding, as kernel overlayfs does them', async (t) => {
  const root = tempDir(t)
  const lower = layer(root)
  lowersUnchanged(t, [lower])
  const strata = dirsFor(root, 'strata', lower)
  const kernel = dirsFor(root, 'kernel', lower)
  const s = await mountUnion(t, 'stratafs', strata)
  await mountUnion(t, 'kernel', kernel)
  const stats = (): Stats => strataStats<Stats>(s.mnt)
  const before = stats()

  const got = run(`${s.mnt}/d`)
  t.same(got, run(`${kernel.mnt}/d`), 'every value, errno and mode is kernel overlayfs\'s')

  const after = stats()
  const byBinding = (after.servedBy.binding?.setxattr ?? 0) - (before.servedBy.binding?.setxattr ?? 0)
  const all = (after.ops.setxattr?.count ?? 0) - (before.ops.setxattr?.count ?? 0)
  // per file 8 setxattrs; the binding does those of the two files open for writing but the
  // overlay name's (JS escapes it), and none of the read-only one's (a copy-up: JS's)
  t.equal(all, 24, 'the daemon saw all 24 setxattrs')
  t.equal(byBinding, 14, 'the binding did the 7 of each writing handle it may')

  const merged = diffSnapshots(snapshot(kernel.mnt), snapshot(s.mnt), { ignore: ['mtime'] }, ['kernel', 'stratafs'])
  t.same(merged, [], 'the merged trees are the same, xattrs and ACLs included')
  const upper = diffSnapshots(snapshot(kernel.upper!, 'upper'), snapshot(strata.upper!, 'upper'), { ignore: ['mtime'], ignoreLinks: true }, ['kernel', 'stratafs'])
  t.same(upper, [], 'the uppers are the same (the overlay name escaped in both)')
})

t.test('a data volume\'s files open for writing: setxattrs by the binding, as on a plain directory', async (t) => {
  const root = tempDir(t)
  const lower = layer(root)
  const volume = `${root}/volume`
  const plain = `${root}/plain`
  for (const base of [volume, plain]) {
    fs.mkdirSync(`${base}/d`, { recursive: true })
    fs.writeFileSync(`${base}/d/low`, 'lower\n')
    fs.writeFileSync(`${base}/d/ro`, 'read only\n')
  }
  const s = await mountUnion(t, 'stratafs', dirsFor(root, 'strata', lower, [`volume=${volume}:/vol`]))
  const before = strataStats<Stats>(s.mnt).servedBy.binding?.setxattr ?? 0
  t.same(run(`${s.mnt}/vol/d`), run(`${plain}/d`), 'every value, errno and mode is the plain directory\'s')
  const byBinding = (strataStats<Stats>(s.mnt).servedBy.binding?.setxattr ?? 0) - before
  t.equal(byBinding, 14, 'the binding did the 7 of each writing handle it may')
  const files = diffSnapshots(snapshot(plain, 'upper'), snapshot(volume, 'upper'), { ignore: ['mtime'], ignoreLinks: true }, ['plain', 'volume'])
  t.same(files, [], 'the volume holds what the plain directory holds')
})

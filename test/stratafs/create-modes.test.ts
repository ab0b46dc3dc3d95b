/**
 * The mode and ACLs of a new file, directory or fifo: POSIX applies the creator's umask unless the
 * directory has a default ACL, which then decides alone (and is inherited). The kernel leaves that
 * to a FUSE daemon that asks (FUSE_DONT_MASK); stratafs does, in every create path: JS's and the
 * binding's creates, over whiteouts (built in the work dir, where no default ACL is), in data
 * volumes. Side by side with kernel overlayfs (for volumes, with a plain host directory), as root
 * and as another user, with several umasks.
 */
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import t, { type Test } from 'tap'
import { mountUnion, strataStats, type UnionDirs } from '../helpers/mounts'
import { tempDir } from '../helpers/tmp'
import { diffSnapshots, snapshot } from '../helpers/tree'
import { lowersUnchanged } from './util'

/** A POSIX ACL xattr value: version 2, then (tag, perm, id) entries. */
const aclValue = (entries: Array<[number, number, number]>): Buffer =>
  Buffer.concat([Buffer.from([2, 0, 0, 0]), ...entries.map(([tag, perm, id]) => {
    const b = Buffer.alloc(8)
    b.writeUInt16LE(tag, 0)
    b.writeUInt16LE(perm, 2)
    b.writeUInt32LE(id, 4)
    return b
  })])
const ANY = 0xffffffff
// user::rwx user:1001:rw- group::r-x mask::rwx other::--- (the mask lets a umask-less group write show)
const WIDE_DEFAULT = aclValue([[0x01, 7, ANY], [0x02, 6, 1001], [0x04, 5, ANY], [0x10, 7, ANY], [0x20, 0, ANY]])
// user::rwx group::r-x other::--- (minimal: no mask entry, the group entry is the group bits)
const NARROW_DEFAULT = aclValue([[0x01, 7, ANY], [0x04, 5, ANY], [0x20, 0, ANY]])

/** The runs: who creates, with which umask, under which name prefix. */
const RUNS: Array<{ tag: string, user: boolean, umask: string }> = [
  { tag: 'r22-', user: false, umask: '022' },
  { tag: 'r77-', user: false, umask: '077' },
  { tag: 'r00-', user: false, umask: '000' },
  { tag: 'u27-', user: true, umask: '027' },
]
const DIRS = ['plain', 'wide', 'narrow']

/**
 * Makes, in argv[1] with umask argv[2] and name prefix argv[3]: files (the first of a directory
 * is JS's, the others may be the binding's), a regular file by mknod, directories (one sticky),
 * a fifo, each with a file inside the directories; then the same over whiteouts of lower entries.
 * Prints every new entry's mode and ACLs.
 */
const MAKE = `
import json, os, shutil, stat, sys
d, tag = sys.argv[1], sys.argv[3]
os.umask(int(sys.argv[2], 8))
def make_file(p, mode): os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
for i in range(4): make_file(f'{d}/{tag}f{i}', 0o666 if i % 2 == 0 else 0o777)
make_file(f'{d}/{tag}f-0640', 0o640)
os.mknod(f'{d}/{tag}node', 0o666 | stat.S_IFREG)
os.mkdir(f'{d}/{tag}dir', 0o777)
os.mkdir(f'{d}/{tag}sticky', 0o1777)
os.mkfifo(f'{d}/{tag}fifo', 0o666)
make_file(f'{d}/{tag}dir/inner', 0o666)
os.mkdir(f'{d}/{tag}dir/innerdir', 0o777)
os.unlink(f'{d}/{tag}gone'); make_file(f'{d}/{tag}gone', 0o666)
os.unlink(f'{d}/{tag}gonefifo'); os.mkfifo(f'{d}/{tag}gonefifo', 0o777)
shutil.rmtree(f'{d}/{tag}gonedir'); os.mkdir(f'{d}/{tag}gonedir', 0o777)
make_file(f'{d}/{tag}gonedir/inner', 0o666)
def acl(p, name):
    try: return os.getxattr(p, name, follow_symlinks=False).hex()
    except OSError as e: return e.strerror
out = []
for root, dirs, files in os.walk(d):
    for n in sorted(dirs + files):
        p = os.path.join(root, n)
        if not os.path.relpath(p, d).startswith(tag): continue
        st = os.lstat(p)
        out.append([os.path.relpath(p, d), oct(st.st_mode), st.st_uid, st.st_gid,
                    acl(p, 'system.posix_acl_access'), acl(p, 'system.posix_acl_default')])
print(json.dumps(sorted(out)))
`

/** Runs MAKE in `dir` for one run; returns its output, or what went wrong. */
function make(dir: string, run: { tag: string, user: boolean, umask: string }): unknown {
  // the system's python: another user may not reach root's (a pyenv shim, say)
  const argv = ['/usr/bin/python3', '-c', MAKE, dir, run.umask, run.tag]
  const r = run.user
    ? spawnSync('setpriv', ['--reuid', '1000', '--regid', '1000', '--clear-groups', ...argv], { encoding: 'utf8' })
    : spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' })
  return r.status === 0 ? JSON.parse(r.stdout) : `exited ${r.status}: ${r.stderr}`
}

/** A directory for the runs: 1000:1000, what each run deletes in it, and `acl` as its default ACL. */
function fillDir(dir: string, acl: Buffer | null): void {
  fs.mkdirSync(dir, { recursive: true })
  for (const { tag } of RUNS) {
    fs.writeFileSync(`${dir}/${tag}gone`, 'lower')
    spawnSync('mkfifo', [`${dir}/${tag}gonefifo`])
    fs.mkdirSync(`${dir}/${tag}gonedir`)
    fs.writeFileSync(`${dir}/${tag}gonedir/old`, 'lower')
    for (const p of [`${tag}gone`, `${tag}gonefifo`, `${tag}gonedir`, `${tag}gonedir/old`]) fs.lchownSync(`${dir}/${p}`, 1000, 1000)
  }
  fs.chownSync(dir, 1000, 1000)
  fs.chmodSync(dir, 0o775)
  if (acl) setDefaultAcl(dir, acl)
}

function setDefaultAcl(dir: string, acl: Buffer): void {
  const r = spawnSync('python3', ['-c', 'import os, sys; os.setxattr(sys.argv[1], "system.posix_acl_default", bytes.fromhex(sys.argv[2]))', dir, acl.toString('hex')], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`setting a default ACL on ${dir}: ${r.stderr}`)
}

function unionLayers(t: Test): { strata: UnionDirs, kernel: UnionDirs, lower: string } {
  const root = tempDir(t)
  const lower = `${root}/lower`
  fillDir(`${lower}/plain`, null)
  fillDir(`${lower}/wide`, WIDE_DEFAULT)
  fillDir(`${lower}/narrow`, NARROW_DEFAULT)
  const dirs = (name: string): UnionDirs => {
    const d = { lowers: [lower], upper: `${root}/${name}-upper`, work: `${root}/${name}-work`, mnt: `${root}/${name}-mnt` }
    for (const p of [d.upper, d.work, d.mnt]) fs.mkdirSync(p)
    return d
  }
  return { strata: dirs('strata'), kernel: dirs('kernel'), lower }
}

for (const ccreate of [true, false]) {
  t.test(`new entries get kernel overlayfs's modes and ACLs: umask unless a default ACL (${ccreate ? 'binding creates on' : 'STRATA_NO_CCREATE=1'})`, async (t) => {
    const { strata, kernel, lower } = unionLayers(t)
    lowersUnchanged(t, [lower])
    if (!ccreate) process.env.STRATA_NO_CCREATE = '1'
    try {
      await mountUnion(t, 'stratafs', strata)
    } finally {
      delete process.env.STRATA_NO_CCREATE
    }
    await mountUnion(t, 'kernel', kernel)
    for (const dir of DIRS) {
      for (const run of RUNS) {
        const want = make(`${kernel.mnt}/${dir}`, run)
        t.ok(Array.isArray(want), `kernel overlayfs: ${dir}, ${run.tag}${Array.isArray(want) ? '' : `: ${String(want)}`}`)
        t.same(make(`${strata.mnt}/${dir}`, run), want, `${dir}/, ${run.user ? 'uid 1000' : 'root'}, umask ${run.umask}: modes, owners and ACLs`)
      }
    }
    const creates = strataStats<{ servedBy: Record<string, Record<string, number>> }>(strata.mnt).servedBy.binding?.create ?? 0
    if (ccreate) t.ok(creates >= DIRS.length * RUNS.length * 3, `the binding made most of the files (${creates})`)
    else t.equal(creates, 0, 'JS made every file')
    const upper = diffSnapshots(snapshot(kernel.upper!, 'upper'), snapshot(strata.upper!, 'upper'), { ignore: ['mtime'], ignoreLinks: true }, ['kernel', 'stratafs'])
    t.same(upper, [], 'the uppers are the same, ACLs included')
    t.equal(fs.readdirSync(`${strata.work!}/work`).length, 0, 'the work dir is empty')
  })
}

t.test('a data volume\'s new entries get the modes and ACLs a plain directory gives', async (t) => {
  const root = tempDir(t)
  const lower = `${root}/lower`
  fs.mkdirSync(lower)
  const volume = `${root}/volume`
  const plain = `${root}/plain`
  for (const base of [volume, plain]) {
    fillDir(`${base}/plain`, null)
    fillDir(`${base}/wide`, WIDE_DEFAULT)
    fillDir(`${base}/narrow`, NARROW_DEFAULT)
  }
  const d: UnionDirs = { lowers: [lower], upper: `${root}/upper`, work: `${root}/work`, mnt: `${root}/mnt`, options: [`volume=${volume}:/vol`] }
  for (const p of [d.upper!, d.work!, d.mnt]) fs.mkdirSync(p)
  const s = await mountUnion(t, 'stratafs', d)
  for (const dir of DIRS) {
    for (const run of RUNS) {
      const want = make(`${plain}/${dir}`, run)
      t.ok(Array.isArray(want), `plain directory: ${dir}, ${run.tag}${Array.isArray(want) ? '' : `: ${String(want)}`}`)
      t.same(make(`${s.mnt}/vol/${dir}`, run), want, `volume ${dir}/, ${run.user ? 'uid 1000' : 'root'}, umask ${run.umask}: modes, owners and ACLs`)
    }
  }
})

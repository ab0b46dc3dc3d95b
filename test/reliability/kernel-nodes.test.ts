/**
 * The bound on the inodes the kernel holds through a mount (`-o max_nodes=N`, src/fuse/mount.ts,
 * patches/README.md): libfuse keeps a node per inode the kernel holds, and past the bound the
 * binding asks the kernel to prune the oldest ones (FUSE_NOTIFY_PRUNE). Checked through real
 * mounts: a walk of many times the bound leaves at most about the bound held (and without the
 * bound, the same walk leaves every inode held: the bound is what keeps it down), every stat in
 * the walk is right, and pruning never disturbs what is in use: a file held open, a process's cwd,
 * and a bind mount on a file inside the mount.
 */
import t, { type Test } from 'tap'
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { PY_PRELUDE, layout, mountStratafs, py, pyBackground, waitFor, type Layout } from './util'
import { isMounted, strataStats } from '../helpers/mounts'

const DIRS = 30
const PER = 200

interface KernelNodes { held: number, pruned: number, pruneRefused: boolean, max: number }

const kernelNodes = (mnt: string): KernelNodes => strataStats<{ kernelNodes: KernelNodes }>(mnt).kernelNodes

/** DIRS x PER lower files; d<i>/f<j> holds "<i>/<j>\n" repeated i+1 times (sizes differ). */
function fillLower(d: Layout): void {
  for (let i = 0; i < DIRS; i++) {
    fs.mkdirSync(`${d.lowers[0]}/d${i}`)
    for (let j = 0; j < PER; j++) fs.writeFileSync(`${d.lowers[0]}/d${i}/f${j}`, `${i}/${j}\n`.repeat(i + 1))
  }
}

/** lstat of every file in the merged view; prints how many had the size their name implies. */
const WALKER = `${PY_PRELUDE}
good = bad = 0
for i in range(${DIRS}):
    for j in range(${PER}):
        st = os.lstat('%s/d%d/f%d' % (sys.argv[1], i, j))
        if st.st_size == len(('%d/%d\\n' % (i, j)).encode()) * (i + 1): good += 1
        else: bad += 1
out({'good': good, 'bad': bad})`

/** Walks; `covered` files are hidden by a bind mount and stat as its source. */
function walk(t: Test, mnt: string, covered = 0): void {
  const r = py(WALKER, [mnt], 120_000)
  t.equal(r.status, 0, r.stderr)
  t.same(JSON.parse(r.stdout), { good: DIRS * PER - covered, bad: covered }, `every one of ${DIRS * PER - covered} files stats right`)
}

t.test('past max_nodes the kernel is asked to prune: held inodes stay near the bound', async (t) => {
  const d = layout(t)
  fillLower(d)
  mountStratafs(t, d, ['max_nodes=1000'])
  const before = kernelNodes(d.mnt)
  t.equal(before.max, 1000, 'the bound is the one asked for')
  if (before.pruneRefused) {
    t.fail('this kernel refuses FUSE_NOTIFY_PRUNE (Linux < 6.18): the bound cannot hold here')
    return
  }
  walk(t, d.mnt)
  walk(t, d.mnt)
  const ok = await waitFor(() => kernelNodes(d.mnt).held <= 1250, 10_000)
  const after = kernelNodes(d.mnt)
  t.ok(ok, `held inodes back under the bound + a quarter after two walks of ${DIRS * PER + DIRS} entries: ${JSON.stringify(after)}`)
  t.ok(after.pruned >= DIRS * PER - 1250, `the binding asked for the rest to be pruned (${after.pruned})`)
  t.notOk(after.pruneRefused, 'the kernel took the notifications')
})

t.test('without a bound the same walk leaves every inode held', async (t) => {
  const d = layout(t)
  fillLower(d)
  mountStratafs(t, d, ['max_nodes=0'])
  walk(t, d.mnt)
  const after = kernelNodes(d.mnt)
  t.ok(after.held >= DIRS * PER, `held ${after.held} >= ${DIRS * PER}`)
  t.equal(after.pruned, 0, 'nothing pruned')
})

t.test('pruning leaves an open file, a cwd and a bind mount inside the mount alone', async (t) => {
  const d = layout(t)
  fillLower(d)
  fs.writeFileSync(`${d.root}/bound-src`, 'from the host\n')
  mountStratafs(t, d, ['max_nodes=200'])
  // a bind mount on a file inside the merged view: its dentry must never be pruned (unmounted)
  const bindAt = `${d.mnt}/d0/f1`
  t.equal(spawnSync('mount', ['--bind', `${d.root}/bound-src`, bindAt]).status, 0, 'bind mount on a file in the mount')
  t.teardown(() => { if (isMounted(bindAt)) spawnSync('umount', ['-l', bindAt]) })
  const fd = fs.openSync(`${d.mnt}/d2/f3`, 'r')
  t.teardown(() => { try { fs.closeSync(fd) } catch { /* closed */ } })
  // a process sitting in d4 through the walk, then reading relative to its cwd
  const sitter = pyBackground(`${PY_PRELUDE}
os.chdir(sys.argv[1] + '/d4')
while not os.path.exists(sys.argv[2]): time.sleep(0.05)
out({'cwd': os.getcwd(), 'f5': open('f5').read(), 'names': len(os.listdir('.'))})`, [d.mnt, `${d.root}/go`])
  t.teardown(() => fs.writeFileSync(`${d.root}/go`, ''))
  t.ok(await waitFor(() => {
    try { return fs.readlinkSync(`/proc/${sitter.pid}/cwd`) === `${d.mnt}/d4` } catch { return false }
  }, 10_000), 'a process sits in d4')

  walk(t, d.mnt, 1)
  walk(t, d.mnt, 1)
  const k = kernelNodes(d.mnt)
  t.ok(k.pruned > 2 * DIRS * PER - 2000, `entries were pruned around them (${k.pruned})`)

  t.ok(isMounted(bindAt), 'the bind mount is still there')
  t.equal(fs.readFileSync(bindAt, 'utf8'), 'from the host\n', 'and serves its source')
  const buf = Buffer.alloc(64)
  t.equal(buf.toString('utf8', 0, fs.readSync(fd, buf, 0, 64, 0)), '2/3\n'.repeat(3), 'the open file reads through its fd')
  fs.writeFileSync(`${d.root}/go`, '')
  const r = await sitter.done
  t.same(JSON.parse(r.stdout), { cwd: `${d.mnt}/d4`, f5: '4/5\n'.repeat(5), names: PER }, 'the cwd still resolves names')
  // a pruned name still takes changes
  fs.renameSync(`${d.mnt}/d9/f9`, `${d.mnt}/d9/g9`)
  t.equal(fs.readFileSync(`${d.upper}/d9/g9`, 'utf8'), '9/9\n'.repeat(10), 'rename of a pruned name copies it up')
  t.equal(spawnSync('umount', [bindAt]).status, 0, 'the bind mount unmounts normally')
})

/**
 * mount(8) and fstab (issue 5, "mount(8) and fstab"): `mount -t fuse.stratafs SOURCE MNT -o …`
 * runs mount.fuse, which runs `stratafs SOURCE MNT -o rw,<opts>,dev,suid` found on its PATH; the
 * full form `mount -t fuse 'PATH#SOURCE'` needs no PATH entry; an fstab line is read with
 * `mount -T FILE MNT`. `umount` and `umount -l` must end the daemon; `mount -o remount,ro` either
 * works (writes then fail with EROFS) or fails with a message and leaves the mount as it was.
 *
 * Owns: the symlink /usr/local/sbin/stratafs while the PATH test runs (created only if absent,
 * removed in teardown only if this test created it). Must not: kill anything it did not start.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { isMounted } from '../helpers/mounts'
import { tempDir } from '../helpers/tmp'
import { STRATAFS, assertTools, needTools, run, stratafsDaemonsUnder, unmountAllUnder, waitNoDaemons, why } from './util'

const TOOLS = { mount: 'mount', umount: 'mount', 'mount.fuse': 'fuse3' }
const LINK = '/usr/local/sbin/stratafs'

function layout(t: Test): { dir: string; mnt: string; opts: string; upper: string } {
  const dir = tempDir(t, 'strata-mount-')
  for (const d of ['l/etc', 'u', 'w', 'mnt']) fs.mkdirSync(path.join(dir, d), { recursive: true })
  fs.writeFileSync(path.join(dir, 'l/etc/motd'), 'lower\n')
  fs.writeFileSync(path.join(dir, 'l/gone'), 'x\n')
  t.teardown(() => unmountAllUnder(t, dir))
  return { dir, mnt: path.join(dir, 'mnt'), upper: path.join(dir, 'u'), opts: `lowerdir=${dir}/l,upperdir=${dir}/u,workdir=${dir}/w` }
}

/** The mount works: reads through, copy-up, whiteout, and it is fuse.stratafs. */
function works(t: Test, mnt: string, upper: string): void {
  t.equal(isMounted(mnt)?.fstype, 'fuse.stratafs', `${mnt} is a fuse.stratafs mount`)
  t.equal(fs.readFileSync(path.join(mnt, 'etc/motd'), 'utf8'), 'lower\n')
  fs.appendFileSync(path.join(mnt, 'etc/motd'), 'more\n')
  fs.rmSync(path.join(mnt, 'gone'))
  t.equal(fs.readFileSync(path.join(upper, 'etc/motd'), 'utf8'), 'lower\nmore\n', 'copied up')
  t.ok(fs.lstatSync(path.join(upper, 'gone')).isCharacterDevice(), 'whiteout in the upper')
}

async function endsDaemon(t: Test, dir: string, mnt: string, umountArgs: string[]): Promise<void> {
  const before = stratafsDaemonsUnder(mnt)
  t.equal(before.length, 1, `one stratafs daemon serves ${mnt}: ${before.map(p => p.argv.join(' ')).join(' | ')}`)
  const r = run('umount', [...umountArgs, mnt])
  t.equal(r.code, 0, why(r, `umount ${umountArgs.join(' ')}`))
  t.notOk(isMounted(mnt), 'unmounted')
  const left = await waitNoDaemons(dir, 5000)
  t.same(left.map(p => p.pid), [], `umount ${umountArgs.join(' ')} ended the daemon`)
}

t.test('mount -t fuse.stratafs (stratafs on mount.fuse PATH), umount', { skip: needTools(TOOLS) }, async (t) => {
  if (!assertTools(t, TOOLS)) return
  const { dir, mnt, opts, upper } = layout(t)
  let created = false
  try {
    if (fs.readlinkSync(LINK) !== STRATAFS) { t.fail(`${LINK} exists and is not ours; not touching it`); return }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') { t.fail(`${LINK}: ${(e as Error).message}`); return }
    fs.symlinkSync(STRATAFS, LINK)
    created = true
  }
  t.teardown(() => { if (created) fs.rmSync(LINK, { force: true }) })
  const r = run('mount', ['-t', 'fuse.stratafs', 'strata', mnt, '-o', opts])
  if (!t.equal(r.code, 0, why(r, 'mount -t fuse.stratafs'))) return
  const d = stratafsDaemonsUnder(mnt)[0]
  t.match(d?.argv.slice(-4), ['strata', mnt, '-o', /^rw,lowerdir=.*,dev,suid$/], 'mount.fuse ran `stratafs SOURCE MNT -o rw,…,dev,suid`')
  works(t, mnt, upper)

  // remount,ro: mount.fuse passes `-o remount,ro,…` to stratafs
  const rm = run('mount', ['-o', 'remount,ro', mnt])
  if (rm.code === 0) {
    t.throws(() => fs.writeFileSync(path.join(mnt, 'x'), 'x'), { code: 'EROFS' }, 'remount,ro worked: writes fail with EROFS')
  } else {
    t.match(rm.stderr, /remount/, `remount,ro refused with a message naming it: ${rm.stderr.trim()}`)
    t.equal(isMounted(mnt)?.fstype, 'fuse.stratafs', 'still mounted after the refused remount')
    fs.writeFileSync(path.join(mnt, 'after-remount'), 'x')
    t.equal(fs.readFileSync(path.join(upper, 'after-remount'), 'utf8'), 'x', 'and still writable')
  }
  await endsDaemon(t, dir, mnt, [])
})

t.test("mount -t fuse 'PATH#SOURCE' (no PATH entry needed), umount -l", { skip: needTools(TOOLS) }, async (t) => {
  if (!assertTools(t, TOOLS)) return
  const { dir, mnt, opts, upper } = layout(t)
  const r = run('mount', ['-t', 'fuse', `${STRATAFS}#strata`, mnt, '-o', opts])
  if (!t.equal(r.code, 0, why(r, "mount -t fuse 'PATH#SOURCE'"))) return
  works(t, mnt, upper)
  await endsDaemon(t, dir, mnt, ['-l'])
})

t.test('an fstab line (mount -T FILE MNT), umount', { skip: needTools(TOOLS) }, async (t) => {
  if (!assertTools(t, TOOLS)) return
  const { dir, mnt, opts, upper } = layout(t)
  const fstab = path.join(dir, 'fstab')
  fs.writeFileSync(fstab, `# a container root\n${STRATAFS}#strata ${mnt} fuse ${opts},noatime,x-test=1 0 0\n`)
  const r = run('mount', ['-T', fstab, mnt])
  if (!t.equal(r.code, 0, why(r, `mount -T ${fstab}`))) return
  works(t, mnt, upper)
  await endsDaemon(t, dir, mnt, [])
  // the same line again: the upper keeps the changes, the view is the same
  const again = run('mount', ['-T', fstab, mnt])
  if (!t.equal(again.code, 0, why(again, 'mount -T again'))) return
  t.equal(fs.readFileSync(path.join(mnt, 'etc/motd'), 'utf8'), 'lower\nmore\n', 'remounted view keeps the upper')
  t.notOk(fs.existsSync(path.join(mnt, 'gone')), 'whiteout still hides the lower file')
  await endsDaemon(t, dir, mnt, ['-l'])
})

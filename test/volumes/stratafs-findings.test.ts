/**
 * stratafs volume bugs found while building `strata` volumes, kept as regression tests (fixed in
 * src/cli/stratafs-validate.ts).
 *
 * 1. A mountpoint inside a volume source is accepted (stratafs-validate.ts only refuses the
 *    reverse, "volume source inside mountpoint"). Any lookup that reaches the mountpoint through
 *    the volume (e.g. `ls -la MNT/vol`, which lstat()s MNT/vol/mnt = the host path of the mount
 *    itself) makes the daemon call into its own FUSE mount and hang forever. This test only checks
 *    that the mount is refused; it never performs the hanging lookup.
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import t from 'tap'
import { isMounted, STRATAFS, tmpDir, unmountUnder } from '../store/util'

t.test('stratafs refuses a mountpoint inside a volume source', async (t) => {
  const dir = tmpDir(t, 'strata-vol-finding-')
  for (const d of ['lower', 'upper', 'work', 'mnt']) fs.mkdirSync(path.join(dir, d))
  const mnt = path.join(dir, 'mnt')
  const r = spawnSync(STRATAFS, ['-o', `lowerdir=${dir}/lower,upperdir=${dir}/upper,workdir=${dir}/work,volume=${dir}:/vol`, mnt], { encoding: 'utf8', timeout: 30_000 })
  t.teardown(() => unmountUnder(dir))
  t.not(r.status, 0, 'mount refused')
  t.notOk(isMounted(mnt), 'nothing mounted')
  t.match(r.stderr, /inside volume source|mountpoint .* inside/, 'with a message naming the problem')
})

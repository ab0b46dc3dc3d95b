/**
 * Differential suite, read-only part: the fixture mounted without an upper (lowerdir only) by the
 * kernel and by $DIFF_TARGET. The trees must be equal, every write must fail as on the kernel
 * (EROFS), and the lowers stay untouched.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import t from 'tap'
import { buildLayers } from '../helpers/fixtures'
import { diffTarget, mountUnion, targetUnavailable } from '../helpers/mounts'
import { Arg, Op, OpName, runOp, showOp } from '../helpers/ops'
import { tempDir } from '../helpers/tmp'
import { diffSnapshots, snapshot } from '../helpers/tree'
import { guarded } from '../helpers/watchdog'
import { sameResult, showResult } from './harness'

t.setTimeout(5 * 60_000)
const o = (op: OpName, ...args: Arg[]): Op => ({ op, args })
const OPS: Op[] = [
  o('readdir', '.'), o('readdir', 'opq'), o('readdir', 'wh'), o('read', 'etc/motd'), o('lstat', 'wh/gone-file'),
  o('write', 'etc/motd', 'x'), o('append', 'etc/passwd', 'x'), o('open', 'etc/hosts', ['O_RDONLY', 'O_TRUNC'], 0, null),
  o('write', 'new', 'x'), o('mkdir', 'newdir'), o('unlink', 'etc/hosts'), o('rmdir', 'top-only'), o('rename', 'etc/motd', 'etc/m2'),
  o('chmod', 'etc/motd', 0o600), o('chown', 'etc/motd', 1, 1), o('utimes', 'etc/motd', 'now', 'now'), o('truncate', 'etc/motd', 0),
  o('symlink', 'x', 'sl'), o('link', 'etc/motd', 'hl'), o('mknod', 'fifo', 'fifo', 0o644), o('setxattr', 'data/xattr', 'user.x', 'v', 0),
  o('removexattr', 'data/xattr', 'user.comment'), o('getxattr', 'data/xattr', 'user.comment'), o('access', 'etc/motd', 'w'),
]

const target = diffTarget()
const why = targetUnavailable(target) ?? targetUnavailable('kernel')
if (why) {
  t.fail(`cannot run the read-only differential test against ${target}: ${why}`)
} else {
  t.test(`read-only mount (no upperdir) [kernel vs ${target}]`, async t => {
    const sides = []
    for (const tg of ['kernel', target] as const) {
      const dir = tempDir(t, `strata-diff-ro-${tg}-`)
      const { lowers } = buildLayers(path.join(dir, 'layers'), 5)
      const mnt = path.join(dir, 'mnt'); fs.mkdirSync(mnt)
      const before = lowers.map(l => snapshot(l, 'raw'))
      const m = await mountUnion(t, tg, { lowers, mnt })
      sides.push({ tg, lowers, mnt, before, m })
    }
    const [k, s] = [sides[0]!, sides[1]!]
    const ds: string[] = []
    for (const op of OPS) {
      const rk = runOp(k.mnt, op)
      const rs = guarded(s.m.abortPath, 20_000, showOp(op), () => runOp(s.mnt, op))
      if (!sameResult(rk, rs, target)) ds.push(`${showOp(op)}: kernel ${showResult(rk)}; ${target} ${showResult(rs)}`)
    }
    t.same(ds, [], 'every op result equals the kernel\'s on a read-only mount')
    t.equal(runOp(k.mnt, o('write', 'new', 'x')).err, 'EROFS', 'kernel: a write on a read-only union is EROFS (checks the harness)')
    const sk = snapshot(k.mnt); const ss = guarded(s.m.abortPath, 30_000, 'walk', () => snapshot(s.mnt))
    t.same(diffSnapshots(sk, ss, {}, ['kernel', target]), [], 'read-only merged trees equal')
    for (const side of sides) {
      await side.m.unmount()
      const lines = side.lowers.flatMap((l, i) => diffSnapshots(side.before[i]!, snapshot(l, 'raw'), {}, ['before', 'after']))
      t.same(lines, [], `${side.tg}: lowers unchanged`)
    }
  })
}

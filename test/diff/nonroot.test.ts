/**
 * Differential suite, non-root part: a process of uid/gid 1000 (setpriv --reuid 1000 --regid
 * 1000 --clear-groups) creates, writes, renames and deletes through each mount. Its files must be
 * owned by 1000:1000 (or by the setgid directory's group) and every permission check must come
 * out as on kernel overlayfs. A few expectations are also asserted outright, so the suite
 * cannot pass by two targets agreeing on something wrong.
 */
import t from 'tap'
import { diffTarget, targetUnavailable } from '../helpers/mounts'
import { Arg, Op, OpName, Result } from '../helpers/ops'
import { runOpsAs } from '../helpers/op-runner'
import { applyBoth, finalChecks, formatDivergences, sameResult, setupPair, showResult } from './harness'

t.setTimeout(10 * 60_000)
const o = (op: OpName, ...args: Arg[]): Op => ({ op, args })

/** Done as root first: a setgid dir owned by group 2000, writable by all. */
const PREP: Op[] = [o('mkdir', 'srv', 0o777), o('chown', 'srv', 0, 2000), o('chmod', 'srv', 0o2777)]

/** [op, what the kernel must answer: 'ok' or an errno; undefined = only compared] */
const USER_OPS: [Op, string?][] = [
  [o('write', 'home/user/new.txt', 'by user\n'), 'ok'], [o('lstat', 'home/user/new.txt')],
  [o('mkdir', 'home/user/newdir', 0o755), 'ok'], [o('lstat', 'home/user/newdir')],
  [o('symlink', 'new.txt', 'home/user/sl'), 'ok'], [o('lstat', 'home/user/sl')],
  [o('mknod', 'home/user/fifo', 'fifo', 0o600), 'ok'], [o('lstat', 'home/user/fifo')],
  [o('write', 'etc/newfile', 'no'), 'EACCES'], [o('append', 'etc/motd', 'no'), 'EACCES'],
  [o('read', 'etc/secret'), 'EACCES'], [o('read', 'etc/motd'), 'ok'],
  [o('append', 'data/rw-all', 'anyone\n'), 'ok'], [o('lstat', 'data/rw-all')],
  [o('append', 'data/owned', 'mine\n'), 'ok'], [o('append', 'etc/passwd', 'no\n'), 'EACCES'], [o('chmod', 'data/owned', 0o600), 'ok'], [o('append', 'data/owned', 'mine\n'), 'ok'],
  [o('lstat', 'data/owned')], [o('chmod', 'etc/motd', 0o777), 'EPERM'], [o('chown', 'home/user/new.txt', 0, 0), 'EPERM'],
  [o('chown', 'home/user/new.txt', -1, 2000), 'EPERM'],
  [o('unlink', 'tmp/rootfile'), 'EPERM'], [o('unlink', 'tmp/userfile'), 'ok'], [o('write', 'tmp/mine', 'x'), 'ok'], [o('lstat', 'tmp/mine')],
  [o('append', 'tmp/rootfile', 'sticky but 0666\n')], [o('mkdir', 'tmp/userdir'), 'ok'],
  [o('readdir', 'home/user/private'), 'ok'], [o('read', 'home/user/private/key'), 'ok'],
  [o('rename', 'home/user/.profile', 'home/user/.profile2'), 'ok'], [o('rename', 'etc/motd', 'home/user/motd'), 'EACCES'],
  [o('rmdir', 'home'), 'EACCES'], [o('unlink', 'etc/hosts'), 'EACCES'], [o('rmrf', 'usr/share/doc/pkg1'), 'EACCES'],
  [o('setxattr', 'home/user/new.txt', 'user.a', 'v', 0), 'ok'], [o('setxattr', 'etc/motd', 'user.a', 'v', 0)],
  [o('setxattr', 'home/user/new.txt', 'trusted.x', 'v', 0), 'EPERM'],
  [o('utimes', 'data/owned', 'now', 'now'), 'ok'], [o('utimes', 'etc/motd', 'now', 'now'), 'EACCES'],
  [o('utimes', 'etc/motd', [978307200, 0], [978307200, 0]), 'EPERM'], [o('utimes', 'data/rw-all', 'now', 'now'), 'ok'],
  [o('truncate', 'data/ro', 0), 'EACCES'], [o('access', 'etc/secret', 'r'), 'EACCES'], [o('access', 'bin/tool', 'x'), 'ok'],
  [o('access', 'data/rw-all', 'w'), 'ok'], [o('link', 'etc/motd', 'home/user/hl')], [o('link', 'home/user/new.txt', 'home/user/hl2'), 'ok'],
  [o('write', 'srv/f', 'setgid dir\n'), 'ok'], [o('lstat', 'srv/f')], [o('mkdir', 'srv/d'), 'ok'], [o('lstat', 'srv/d')],
  [o('open', 'bin/suid', ['O_WRONLY'], 0, null), 'EACCES'], [o('lstat', 'bin/suid')],
  [o('chmod', 'home/user/new.txt', 0o4755), 'ok'], [o('lstat', 'home/user/new.txt')],
]

const target = diffTarget()
const why = targetUnavailable(target) ?? targetUnavailable('kernel')
if (why) {
  t.fail(`cannot run the non-root differential test against ${target}: ${why}`)
} else {
  t.test(`uid 1000 through the mount [kernel vs ${target}]`, async t => {
    const pair = await setupPair(t, 1, target)
    const prep = applyBoth(pair, PREP)
    t.same(prep.divergences, [], 'root preparation (setgid dir) gives the same results')
    const ops = USER_OPS.map(([op]) => op)
    const kernel = runOpsAs(1000, 1000, pair.ref.mnt, ops)
    const sut = runOpsAs(1000, 1000, pair.sut.mnt, ops)
    // the kernel must behave as the test expects; otherwise the expectation (or the fixture) is wrong
    const wrongRef = USER_OPS.flatMap(([op, want], i) => {
      const r = kernel[i]!
      const got = r.err ?? 'ok'
      return want !== undefined && got !== want ? [`#${i} ${op.op}(${op.args.join(', ')}): want ${want}, kernel gave ${showResult(r)}`] : []
    })
    t.same(wrongRef, [], 'kernel overlayfs answers as the test expects (checks the harness)')
    const owned = (r: Result | undefined) => (r?.ok as { uid?: number; gid?: number } | undefined)
    t.same([owned(kernel[1])?.uid, owned(kernel[1])?.gid], [1000, 1000], 'kernel: a file created by uid 1000 is owned by 1000:1000')
    const ds = ops.flatMap((op, index) => sameResult(kernel[index]!, sut[index]!, target) ? [] : [{ index, op, kernel: kernel[index]!, target: sut[index]! }])
    t.same(ds.length ? formatDivergences('uid 1000', ds, target, 60) : '', '', `every result as uid 1000 equals the kernel's (${ops.length} ops)`)
    t.same([owned(sut[1])?.uid, owned(sut[1])?.gid], [1000, 1000], `${target}: a file created by uid 1000 is owned by 1000:1000`)
    await finalChecks(t, pair, 'uid 1000')
  })
}

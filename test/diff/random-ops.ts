/**
 * Seeded-random op sequences for the differential suite. The sequence depends only on the seed
 * (not on results), so both targets get exactly the same ops and a failure replays from its seed:
 *   DIFF_SEEDS=7 DIFF_OPS=300 npx tap dist/test/diff/random.test.js
 */
import { Arg, Op, OpName } from '../helpers/ops'
import { Rng } from '../helpers/rng'

const DIRS = ['', 'etc', 'etc/conf.d', 'rand', 'rand/d', 'rand/d/e', 'data', 'usr/share/doc/pkg1', 'usr/share/doc/pkg2',
  'opq', 'wh', 'names', 'tmp', 'typechg', 'top-only', 'home/user']
const MODES = [0o600, 0o644, 0o755, 0o700, 0o4755, 0o444, 0o1777, 0o2755]
const EPOCH = 978307200

const WEIGHTS: [OpName | 'newdir', number][] = [
  ['write', 12], ['append', 8], ['read', 8], ['truncate', 4], ['chmod', 4], ['chown', 3], ['utimes', 3],
  ['mkdir', 5], ['newdir', 2], ['rmdir', 4], ['unlink', 6], ['rename', 9], ['symlink', 3], ['link', 3], ['mknod', 2],
  ['setxattr', 3], ['removexattr', 2], ['listxattr', 2], ['rmrf', 2], ['readdir', 6], ['lstat', 8], ['readlink', 2],
  ['open', 4], ['pwrite', 2], ['readStale', 1],
]
const TOTAL = WEIGHTS.reduce((s, [, w]) => s + w, 0)

export function randomOps(seed: number, count: number, fixtureNames: string[]): Op[] {
  const rng = new Rng(seed * 7919 + 17)
  const made: string[] = []
  const dirs = [...DIRS]
  const existing = () => rng.pick(rng.chance(0.7) || made.length === 0 ? fixtureNames : made)
  const fresh = () => {
    const d = rng.pick(dirs)
    const n = `${d ? d + '/' : ''}r${made.length}${rng.chance(0.1) ? '\xe9 x' : ''}`
    made.push(n)
    return n
  }
  const any = () => (rng.chance(0.75) ? existing() : fresh())
  const time = (): Arg => rng.chance(0.2) ? rng.pick(['now', 'omit']) : [EPOCH + rng.int(1e6), rng.int(1e9)]
  const ops: Op[] = []
  while (ops.length < count) {
    let r = rng.int(TOTAL)
    let kind: OpName | 'newdir' = 'lstat'
    for (const [k, w] of WEIGHTS) { if (r < w) { kind = k; break } r -= w }
    const o = (op: OpName, ...args: Arg[]) => ops.push({ op, args })
    switch (kind) {
      case 'write': o('write', any(), rng.text(rng.int(300)), rng.pick(MODES)); break
      case 'append': o('append', existing(), rng.text(1 + rng.int(100))); break
      case 'read': o('read', existing()); break
      case 'truncate': o('truncate', existing(), rng.int(4000)); break
      case 'chmod': o('chmod', existing(), rng.pick(MODES)); break
      case 'chown': o('chown', existing(), rng.pick([0, 1000, 2000, -1]), rng.pick([0, 1000, 2000, -1])); break
      case 'utimes': o('utimes', existing(), time(), time()); break
      case 'mkdir': o('mkdir', any(), rng.pick([0o755, 0o700, 0o1777])); break
      case 'newdir': { const n = fresh(); dirs.push(n); o('mkdir', n, 0o755); break }
      case 'rmdir': o('rmdir', rng.chance(0.5) ? rng.pick(dirs) || 'etc' : existing()); break
      case 'unlink': o('unlink', existing()); break
      case 'rename': {
        const from = rng.chance(0.25) ? rng.pick(dirs.filter(Boolean)) : existing()
        o('rename', from, rng.chance(0.6) ? fresh() : existing())
        break
      }
      case 'symlink': o('symlink', rng.pick(['../etc/motd', '/abs/x', 'dangling', existing()]), fresh()); break
      case 'link': o('link', existing(), rng.chance(0.8) ? fresh() : existing()); break
      case 'mknod': o('mknod', fresh(), rng.pick(['fifo', 'chr', 'sock']), 0o644, 1, 3); break
      case 'setxattr': o('setxattr', existing(), `user.k${rng.int(4)}`, rng.text(rng.int(40)), rng.pick([0, 0, 'create', 'replace'])); break
      case 'removexattr': o('removexattr', existing(), rng.pick(['user.k0', 'user.k1', 'user.comment', 'user.top'])); break
      case 'listxattr': o('listxattr', existing()); break
      case 'rmrf': o('rmrf', rng.chance(0.5) ? rng.pick(dirs.filter(Boolean)) : existing()); break
      case 'readdir': o('readdir', rng.pick(dirs) || '.'); break
      case 'lstat': o('lstat', any()); break
      case 'readlink': o('readlink', existing()); break
      case 'open': o('open', any(), rng.pick([['O_WRONLY', 'O_CREAT', 'O_EXCL'], ['O_WRONLY', 'O_TRUNC'], ['O_RDWR', 'O_APPEND'], ['O_WRONLY', 'O_CREAT', 'O_TRUNC']]), 0o640, rng.text(rng.int(50))); break
      case 'pwrite': o('pwrite', existing(), rng.int(10000), rng.text(1 + rng.int(20))); break
      case 'readStale': o('readStale', existing(), 'stale?'); break
    }
  }
  return ops
}

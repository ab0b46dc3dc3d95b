/**
 * Archives written by GNU tar in gnu (long-name records) and posix (PAX) formats: long names, long link
 * targets, hard links, symlinks, a fifo, owners, modes, nanosecond mtimes and user xattrs survive
 * the import, and every archive is re-created byte for byte.
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import t from 'tap'
import { native } from '../../src/native'
import { strata, tmpDir } from './util'

t.test('GNU tar archives', async (t) => {
  const dir = tmpDir(t)
  const src = path.join(dir, 'src')
  const long = 'd'.repeat(90) + '/' + 'e'.repeat(120)
  fs.mkdirSync(path.join(src, long), { recursive: true })
  fs.writeFileSync(path.join(src, long, 'f'.repeat(150)), 'long name\n')
  fs.writeFileSync(path.join(src, 'plain'), 'plain\n')
  fs.linkSync(path.join(src, 'plain'), path.join(src, 'hard'))
  fs.symlinkSync('x'.repeat(150), path.join(src, 'longlink'))
  spawnSync('mkfifo', [path.join(src, 'fifo')])
  fs.chownSync(path.join(src, 'plain'), 1234, 5678)
  fs.chmodSync(path.join(src, 'plain'), 0o4755) // after chown, which clears setuid
  native.utimens(path.join(src, 'plain'), 1700000000, 123456789, 1700000000, 123456789)
  t.equal(native.lsetxattr(path.join(src, 'plain'), 'user.strata', Buffer.from('v\u0000\u00ff'), 0), 0, 'source xattr set')
  for (const format of ['gnu', 'posix']) {
    t.test(format, async (t) => {
      const root = path.join(dir, `store-${format}`)
      const archive = path.join(dir, `${format}.tar`)
      const args = ['--format', format, '--numeric-owner', '-C', src, '-cf', archive, '.']
      if (format === 'posix') args.unshift('--xattrs', '--xattrs-include=user.*')
      const tr = spawnSync('tar', args, { encoding: 'utf8' })
      t.equal(tr.status, 0, tr.stderr)
      const r = strata(root, ['layer', 'import', archive])
      t.equal(r.code, 0, r.stderr)
      const hex = r.stdout.trim().split(':').pop() ?? ''
      const diff = path.join(root, 'layers', hex, 'diff')
      t.equal(fs.readFileSync(path.join(diff, long, 'f'.repeat(150)), 'utf8'), 'long name\n', 'long names')
      const st = fs.lstatSync(path.join(diff, 'plain'), { bigint: true })
      t.equal(Number(st.mode & 0o7777n), 0o4755, 'setuid mode kept after chown')
      t.equal(Number(st.uid), 1234)
      t.equal(Number(st.gid), 5678)
      t.equal(st.nlink, 2n, 'hard link')
      t.equal(st.ino, fs.lstatSync(path.join(diff, 'hard'), { bigint: true }).ino)
      t.ok(fs.lstatSync(path.join(diff, 'fifo')).isFIFO(), 'fifo')
      if (format === 'posix') {
        t.equal(st.mtimeNs, 1700000000123456789n, 'nanosecond mtime from PAX')
        const x = native.lgetxattr(path.join(diff, 'plain'), 'user.strata')
        t.ok(Buffer.isBuffer(x) && x.equals(Buffer.from('v\u0000\u00ff')), 'xattr from SCHILY.xattr')
      } else {
        t.equal(st.mtimeNs, 1700000000000000000n, 'whole-second mtime')
      }
      t.equal(fs.readlinkSync(path.join(diff, 'longlink')), 'x'.repeat(150), 'long symlink target')
      const out = path.join(dir, `${format}.out.tar`)
      t.equal(strata(root, ['layer', 'export', hex, '-o', out]).code, 0)
      t.ok(fs.readFileSync(out).equals(fs.readFileSync(archive)), 're-created byte for byte')
    })
  }
})

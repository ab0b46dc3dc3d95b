/**
 * Lower layers for union tests, built deterministically from a seed.
 *
 * Owns: writing three layer directories (kernel overlayfs format) with a wide variety of entries.
 * Must not: depend on anything but the seed: the same seed gives byte-identical layers (same
 * names, contents, modes, owners, xattrs and mtimes), so one fixture can be built once per target
 * and the targets compared. Callers check that with a `raw` snapshot.
 *
 * Layout (bottom L0, middle L1, top L2; `lowers` is returned top first):
 *   L0  etc/{passwd,motd,hosts,secret(0600),conf.d/{a,b}.conf}  bin/{tool(0755),suid(04755),
 *       link-rel -> tool, link-abs -> /bin/tool, dangling -> nowhere/at/all}  usr/share/doc/pkg{1,2}/..
 *       home/user (1000:1000) with .profile and private/ (0700)  tmp (01777) with userfile (1000)
 *       and rootfile  data/{hard1=hard2 (hard links), fifo, xattr (user.*), sparse, empty, rw-all
 *       (0666), ro (0444), owned (1000:1000)}  names/{with space, new\nline, caf\xe9 (invalid
 *       UTF-8), utf8-\xc3\xa9, -dash}  dev/{null c 1:3, blk b 7:200}  wh/{gone-file, gone-dir/,
 *       keep}  opq/{old1, old2, sub/x}  replaced/{inner}  typechg (file)  rand/ (seeded files)
 *   L1  whiteouts (char 0/0): wh/gone-file, wh/gone-dir; opaque (trusted.overlay.opaque=y): opq/
 *       with new1; etc/motd (newer content); usr/share/doc/pkg2/extra; data/from-mid;
 *       typechg/ (a dir replacing the L0 file) with inside
 *   L2  replaced (a file replacing L0's dir); etc/conf.d/c.conf; bin/tool (v2, 0755); top-only/f;
 *       data/xattr-top with user.* xattrs
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { native } from '../../src/native/index'
import { Rng } from './rng'

/** 2001-01-01T00:00:00Z; every fixture mtime/atime is FIXTURE_EPOCH + a small offset. */
export const FIXTURE_EPOCH = 978307200

const S_IFCHR = 0o020000
const S_IFBLK = 0o060000
const S_IFIFO = 0o010000

function check(r: number, what: string): void {
  if (r < 0) throw new Error(`fixture: ${what} failed: errno ${-r}`)
}

/** Writes layers one entry at a time; records times to apply after all children exist. */
class LayerWriter {
  private times: string[] = []
  constructor(readonly root: string, private rng: Rng) { fs.mkdirSync(root, { recursive: true }); fs.chmodSync(root, 0o755) }
  private abs(rel: string): string { return `${this.root}/${rel}` }
  dir(rel: string, mode = 0o755, uid = 0, gid = 0): this {
    const r = native.mkdir(this.abs(rel), mode)
    if (r !== -17) check(r, `mkdir ${rel}`)
    check(native.chmod(this.abs(rel), mode), `chmod ${rel}`)
    check(native.lchown(this.abs(rel), uid, gid), `chown ${rel}`)
    this.times.push(rel)
    return this
  }
  file(rel: string, content: string | Buffer, mode = 0o644, uid = 0, gid = 0): this {
    fs.writeFileSync(Buffer.from(this.abs(rel), 'latin1'), content)
    check(native.lchown(this.abs(rel), uid, gid), `chown ${rel}`)
    check(native.chmod(this.abs(rel), mode), `chmod ${rel}`)
    this.times.push(rel)
    return this
  }
  randFile(rel: string, maxSize: number, mode = 0o644): this {
    return this.file(rel, this.rng.chance(0.5) ? this.rng.text(this.rng.int(maxSize)) : this.rng.bytes(this.rng.int(maxSize)), mode)
  }
  symlink(rel: string, target: string): this {
    check(native.symlink(target, this.abs(rel)), `symlink ${rel}`)
    this.times.push(rel)
    return this
  }
  hardlink(rel: string, existing: string): this {
    check(native.link(this.abs(existing), this.abs(rel)), `link ${rel}`)
    return this
  }
  node(rel: string, type: number, mode: number, maj = 0, min = 0): this {
    check(native.mknod(this.abs(rel), type | mode, maj, min), `mknod ${rel}`)
    this.times.push(rel)
    return this
  }
  whiteout(rel: string): this { return this.node(rel, S_IFCHR, 0, 0, 0) }
  xattr(rel: string, name: string, value: string | Buffer): this {
    check(native.lsetxattr(this.abs(rel), name, Buffer.from(value), 0), `setxattr ${rel} ${name}`)
    return this
  }
  sparse(rel: string, size: number, dataAt: number, data: string): this {
    const fd = fs.openSync(Buffer.from(this.abs(rel), 'latin1'), 'w', 0o644)
    fs.ftruncateSync(fd, size)
    fs.writeSync(fd, data, dataAt)
    fs.closeSync(fd)
    this.times.push(rel)
    return this
  }
  /** Sets deterministic times on everything written, deepest first (so dir mtimes stick). */
  finish(): void {
    const all = [...new Set(this.times), '.'].sort((a, b) => b.split('/').length - a.split('/').length || (a < b ? 1 : -1))
    all.forEach((rel, i) => {
      const t = FIXTURE_EPOCH + 1000 + i
      const abs = rel === '.' ? this.root : this.abs(rel)
      // lutimes semantics: the native call uses AT_SYMLINK_NOFOLLOW
      check(native.utimens(abs, t, 0, t, 500), `utimens ${rel}`)
    })
  }
}

export interface Layers {
  /** top first, as lowerdir= wants them */
  lowers: string[]
  /** paths that the random op generator can start from (latin1 rel paths without './') */
  names: string[]
}

/** Builds L0..L2 under `dir` (which must exist) from `seed`. */
export function buildLayers(dir: string, seed = 1): Layers {
  const rng = new Rng(seed)
  const l0 = new LayerWriter(path.join(dir, 'l0'), rng)
  l0.dir('etc').file('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n')
    .file('etc/motd', 'welcome, L0\n').file('etc/hosts', '127.0.0.1 localhost\n').file('etc/secret', 'hunter2\n', 0o600)
    .dir('etc/conf.d').file('etc/conf.d/a.conf', 'a=1\n').file('etc/conf.d/b.conf', 'b=2\n')
  l0.dir('bin').file('bin/tool', '#!/bin/sh\necho v1\n', 0o755).file('bin/suid', 'suid\n', 0o4755)
    .symlink('bin/link-rel', 'tool').symlink('bin/link-abs', '/bin/tool').symlink('bin/dangling', 'nowhere/at/all')
  l0.dir('usr').dir('usr/share').dir('usr/share/doc')
  for (const p of ['pkg1', 'pkg2']) {
    l0.dir(`usr/share/doc/${p}`).randFile(`usr/share/doc/${p}/README`, 3000).dir(`usr/share/doc/${p}/nested`)
      .dir(`usr/share/doc/${p}/nested/deep`).randFile(`usr/share/doc/${p}/nested/deep/file`, 2000)
      .symlink(`usr/share/doc/${p}/nested/up`, '../README')
  }
  l0.dir('home').dir('home/user', 0o755, 1000, 1000).file('home/user/.profile', 'PS1=$\n', 0o644, 1000, 1000)
    .dir('home/user/private', 0o700, 1000, 1000).file('home/user/private/key', 'k\n', 0o600, 1000, 1000)
  l0.dir('tmp', 0o1777).file('tmp/userfile', 'mine\n', 0o644, 1000, 1000).file('tmp/rootfile', 'root\n', 0o666)
  l0.dir('data').file('data/hard1', 'linked content\n').hardlink('data/hard2', 'data/hard1')
    .node('data/fifo', S_IFIFO, 0o644).file('data/xattr', 'has xattrs\n')
    .xattr('data/xattr', 'user.comment', 'hello').xattr('data/xattr', 'user.bin', Buffer.from([0, 1, 2, 255]))
    .sparse('data/sparse', 4 << 20, 1 << 20, 'data in the middle').file('data/empty', '')
    .file('data/rw-all', 'anyone may write\n', 0o666).file('data/ro', 'read only\n', 0o444)
    .file('data/owned', 'user data\n', 0o640, 1000, 1000)
  l0.dir('names').file('names/with space', 'space\n').file('names/new\nline', 'newline\n')
    .file('names/caf\xe9', 'invalid utf-8 name\n').file('names/utf8-\xc3\xa9', 'valid utf-8 name\n').file('names/-dash', 'dash\n')
  l0.dir('dev').node('dev/null', S_IFCHR, 0o666, 1, 3).node('dev/blk', S_IFBLK, 0o660, 7, 200)
  l0.dir('wh').file('wh/gone-file', 'should be hidden\n').dir('wh/gone-dir').file('wh/gone-dir/x', 'hidden\n').file('wh/keep', 'kept\n')
  l0.dir('opq').file('opq/old1', 'old1\n').file('opq/old2', 'old2\n').dir('opq/sub').file('opq/sub/x', 'x\n')
  l0.dir('replaced').file('replaced/inner', 'dir in L0\n')
  l0.file('typechg', 'file in L0\n')
  l0.dir('rand')
  const randNames: string[] = []
  for (let i = 0; i < 12; i++) {
    const n = `rand/f${i}`
    l0.randFile(n, 5000, rng.pick([0o644, 0o600, 0o755, 0o664]))
    randNames.push(n)
  }
  l0.dir('rand/d').randFile('rand/d/a', 100).randFile('rand/d/b', 100).dir('rand/d/e').randFile('rand/d/e/c', 100)
  l0.finish()

  const l1 = new LayerWriter(path.join(dir, 'l1'), rng)
  l1.dir('wh').whiteout('wh/gone-file').whiteout('wh/gone-dir')
  l1.dir('opq').xattr('opq', 'trusted.overlay.opaque', 'y').file('opq/new1', 'new1 in L1\n')
  l1.dir('etc').file('etc/motd', 'welcome, L1 (newer)\n')
  l1.dir('usr').dir('usr/share').dir('usr/share/doc').dir('usr/share/doc/pkg2').file('usr/share/doc/pkg2/extra', 'extra from L1\n')
  l1.dir('data').file('data/from-mid', 'mid layer\n')
  l1.dir('typechg').file('typechg/inside', 'dir in L1 replaces a file\n')
  l1.finish()

  const l2 = new LayerWriter(path.join(dir, 'l2'), rng)
  l2.file('replaced', 'file in L2 replaces a dir\n')
  l2.dir('etc').dir('etc/conf.d').file('etc/conf.d/c.conf', 'c=3\n')
  l2.dir('bin').file('bin/tool', '#!/bin/sh\necho v2\n', 0o755)
  l2.dir('top-only').file('top-only/f', 'top\n')
  l2.dir('data').file('data/xattr-top', 'top xattrs\n').xattr('data/xattr-top', 'user.top', 'yes')
  l2.finish()

  const names = [
    'etc', 'etc/passwd', 'etc/motd', 'etc/hosts', 'etc/secret', 'etc/conf.d', 'etc/conf.d/a.conf', 'etc/conf.d/c.conf',
    'bin/tool', 'bin/suid', 'bin/link-rel', 'bin/link-abs', 'bin/dangling', 'usr/share/doc/pkg1', 'usr/share/doc/pkg2',
    'usr/share/doc/pkg2/extra', 'usr/share/doc/pkg1/nested', 'home/user', 'home/user/.profile', 'tmp', 'tmp/userfile',
    'data', 'data/hard1', 'data/hard2', 'data/fifo', 'data/xattr', 'data/sparse', 'data/empty', 'data/rw-all',
    'data/ro', 'data/from-mid', 'data/xattr-top', 'names/with space', 'names/new\nline', 'names/caf\xe9',
    'wh', 'wh/keep', 'wh/gone-file', 'opq', 'opq/new1', 'opq/old1', 'replaced', 'typechg', 'typechg/inside', 'top-only',
    'top-only/f', 'rand', 'rand/d', 'rand/d/e', ...randNames,
  ]
  return { lowers: [l2.root, l1.root, l0.root], names }
}

/**
 * Scripted union scenarios, written once as data and run on every target (STYLE.md lesson 10).
 * Paths are relative to the mount root, latin1 (one code unit per byte). The expected result of
 * each op is whatever kernel overlayfs answers (issue 2: "where a test and the kernel disagree,
 * the kernel wins"); the fixture is described in test/helpers/fixtures.ts.
 */
import { Op, OpName, Arg } from '../helpers/ops'

export interface Scenario { name: string; ops: Op[] }

const o = (op: OpName, ...args: Arg[]): Op => ({ op, args })
const T1 = [978307200 + 86400, 123456789]
const T2 = [978307200 + 2 * 86400, 0]

export const SCENARIOS: Scenario[] = [
  { name: 'read-only tour', ops: [
    ...['.', 'etc', 'etc/conf.d', 'wh', 'opq', 'names', 'typechg', 'data', 'bin', 'usr/share/doc/pkg2', 'tmp', 'dev'].map(d => o('readdir', d)),
    ...['etc/motd', 'etc/conf.d/c.conf', 'bin/tool', 'bin/suid', 'data/hard1', 'data/hard2', 'data/fifo', 'data/sparse',
      'dev/null', 'dev/blk', 'replaced', 'typechg', 'typechg/inside', 'opq/new1', 'bin/link-rel', 'names/caf\xe9', 'names/new\nline'].map(f => o('lstat', f)),
    o('lstat', 'wh/gone-file'), o('lstat', 'wh/gone-dir'), o('lstat', 'wh/gone-dir/x'), o('lstat', 'opq/old1'), o('lstat', 'opq/sub'),
    o('lstat', 'replaced/inner'), o('lstat', 'wh/.wh.gone-file'),
    o('readlink', 'bin/link-rel'), o('readlink', 'bin/link-abs'), o('readlink', 'bin/dangling'), o('readlink', 'bin/tool'),
    o('stat', 'bin/link-rel'), o('stat', 'bin/dangling'), o('stat', 'usr/share/doc/pkg1/nested/up'),
    o('read', 'etc/motd'), o('read', 'bin/tool'), o('read', 'data/sparse'), o('read', 'usr/share/doc/pkg2/extra'), o('read', 'etc'),
    o('getxattr', 'data/xattr', 'user.comment'), o('getxattr', 'data/xattr', 'user.bin'), o('getxattr', 'data/xattr', 'user.none'),
    o('listxattr', 'data/xattr'), o('listxattr', 'data/xattr-top'), o('listxattr', 'opq'), o('listxattr', 'bin/link-rel'),
    o('getxattr', 'opq', 'trusted.overlay.opaque'), o('access', 'bin/tool', 'x'), o('access', 'etc/motd', 'x'), o('access', 'nope', 'f'),
  ] },
  { name: 'write, append, truncate of lower files (copy-up of contents)', ops: [
    o('write', 'etc/motd', 'rewritten\n'), o('read', 'etc/motd'), o('lstat', 'etc/motd'),
    o('append', 'etc/passwd', 'new:x:2000:2000::/:/bin/sh\n'), o('read', 'etc/passwd'),
    o('truncate', 'rand/f1', 10), o('read', 'rand/f1'), o('truncate', 'rand/f2', 0), o('truncate', 'rand/f3', 100000),
    o('ftruncate', 'rand/f4', 3), o('pwrite', 'rand/f5', 2, 'XYZ'), o('pwrite', 'data/empty', 100000, 'far'),
    o('lstat', 'data/empty'), o('truncate', 'data/sparse', 8 << 20), o('pwrite', 'data/sparse', 6 << 20, 'tail'), o('lstat', 'data/sparse'),
    o('append', 'usr/share/doc/pkg1/nested/deep/file', 'deep append\n'), o('lstat', 'usr/share/doc/pkg1/nested'),
    o('lstat', 'usr/share/doc/pkg1'), o('append', 'etc', 'x'), o('truncate', 'etc', 0), o('truncate', 'missing', 0),
  ] },
  { name: 'metadata copy-up: chmod, chown, utimes, xattrs', ops: [
    o('chmod', 'bin/suid', 0o700), o('lstat', 'bin/suid'), o('chmod', 'etc/secret', 0o644), o('chmod', 'etc', 0o700), o('lstat', 'etc'),
    o('chown', 'data/owned', 0, 0), o('chown', 'rand/f1', 1000, 1000), o('chown', 'bin/link-rel', 1000, 1000), o('lstat', 'bin/link-rel'),
    o('chown', 'home/user', 0, 0), o('chown', 'rand/f2', -1, 1000), o('lstat', 'rand/f2'),
    o('chmod', 'bin/suid', 0o4755), o('chown', 'bin/suid', 1000, -1), o('lstat', 'bin/suid'),
    o('utimes', 'rand/f3', T1, T2), o('lstat', 'rand/f3'), o('utimes', 'rand/f4', 'omit', T1), o('lstat', 'rand/f4'),
    o('utimes', 'rand/f5', T2, 'omit'), o('lstat', 'rand/f5'), o('utimes', 'rand/f6', 'now', 'now'), o('utimes', 'rand/f7', 'omit', 'omit'),
    o('lstat', 'rand/f7'), o('utimes', 'bin/link-abs', T1, T1), o('lstat', 'bin/link-abs'), o('utimes', 'usr/share/doc', T2, T2),
    o('lstat', 'usr/share/doc'),
    o('setxattr', 'data/xattr', 'user.new', 'v1', 0), o('setxattr', 'data/xattr', 'user.comment', 'x', 'create'),
    o('setxattr', 'data/xattr', 'user.absent', 'x', 'replace'), o('setxattr', 'data/xattr', 'user.comment', 'replaced', 'replace'),
    o('removexattr', 'data/xattr', 'user.bin'), o('removexattr', 'data/xattr', 'user.bin'), o('listxattr', 'data/xattr'),
    o('setxattr', 'rand/f8', 'user.fresh', 'y', 'create'), o('setxattr', 'bin/link-rel', 'user.onlink', 'x', 0),
    o('setxattr', 'etc/conf.d', 'user.dir', 'd', 0), o('listxattr', 'etc/conf.d'), o('removexattr', 'data/xattr-top', 'user.top'),
    o('setxattr', 'rand/f9', 'trusted.test', 'root only', 0), o('getxattr', 'rand/f9', 'trusted.test'),
    o('setxattr', 'rand/f9', 'trusted.overlay.opaque', 'y', 0), o('listxattr', 'rand/f9'),
    // removing a name a lower entry lacks: ENODATA and no copy-up (the upper compare checks that)
    o('removexattr', 'bin/tool', 'user.none'), o('removexattr', 'usr/share/doc/pkg2', 'user.none'),
  ] },
  { name: 'unlink, rmdir, rm -rf of lower trees (whiteouts)', ops: [
    o('unlink', 'etc/hosts'), o('unlink', 'etc/hosts'), o('lstat', 'etc/hosts'), o('readdir', 'etc'),
    o('rmdir', 'etc/conf.d'), o('unlink', 'etc/conf.d'), o('rmdir', 'etc/motd'),
    o('unlink', 'wh/keep'), o('readdir', 'wh'), o('rmdir', 'wh'), o('lstat', 'wh'),
    o('rmrf', 'usr/share/doc/pkg2'), o('readdir', 'usr/share/doc'), o('lstat', 'usr/share/doc/pkg2'), o('lstat', 'usr/share/doc/pkg2/extra'),
    o('unlink', 'data/hard1'), o('lstat', 'data/hard2'), o('unlink', 'data/fifo'), o('unlink', 'dev/null'),
    o('unlink', 'bin/link-abs'), o('readlink', 'bin/link-abs'), o('unlink', 'names/new\nline'), o('readdir', 'names'),
    o('rmrf', 'typechg'), o('lstat', 'typechg'), o('rmdir', '.'), o('unlink', 'top-only'),
  ] },
  { name: 'rm -rf + mkdir makes an opaque dir; old children stay gone', ops: [
    o('rmrf', 'etc/conf.d'), o('mkdir', 'etc/conf.d', 0o755), o('readdir', 'etc/conf.d'), o('lstat', 'etc/conf.d/a.conf'),
    o('write', 'etc/conf.d/new.conf', 'new\n'), o('readdir', 'etc/conf.d'), o('lstat', 'etc/conf.d/a.conf'),
    o('lstat', 'etc/conf.d/c.conf'), o('read', 'etc/conf.d/b.conf'),
    o('rmrf', 'usr/share/doc'), o('mkdir', 'usr/share/doc', 0o700), o('mkdir', 'usr/share/doc/pkg1', 0o755),
    o('readdir', 'usr/share/doc/pkg1'), o('lstat', 'usr/share/doc/pkg1/README'), o('lstat', 'usr/share/doc/pkg2'),
    o('rmrf', 'opq'), o('mkdir', 'opq'), o('readdir', 'opq'), o('lstat', 'opq/new1'), o('lstat', 'opq/old1'),
  ] },
  { name: 'create over a whiteout; mkdir over a file whiteout; lower whiteouts', ops: [
    o('unlink', 'etc/motd'), o('write', 'etc/motd', 'back\n'), o('read', 'etc/motd'), o('lstat', 'etc/motd'),
    o('unlink', 'etc/secret'), o('mkdir', 'etc/secret', 0o711), o('readdir', 'etc/secret'), o('lstat', 'etc/secret'),
    o('write', 'wh/gone-file', 'recreated over L1 whiteout\n'), o('read', 'wh/gone-file'),
    o('mkdir', 'wh/gone-dir'), o('readdir', 'wh/gone-dir'), o('lstat', 'wh/gone-dir/x'),
    o('unlink', 'bin/link-rel'), o('symlink', 'elsewhere', 'bin/link-rel'), o('readlink', 'bin/link-rel'),
    o('unlink', 'data/from-mid'), o('mknod', 'data/from-mid', 'fifo', 0o600), o('lstat', 'data/from-mid'),
    o('rmrf', 'replaced'), o('mkdir', 'replaced'), o('readdir', 'replaced'), o('lstat', 'replaced/inner'),
  ] },
  { name: 'rename of files', ops: [
    o('rename', 'etc/passwd', 'etc/passwd2'), o('lstat', 'etc/passwd'), o('read', 'etc/passwd2'),
    o('rename', 'rand/f1', 'rand/f2'), o('read', 'rand/f2'), o('lstat', 'rand/f1'),
    o('write', 'new-file', 'fresh\n'), o('rename', 'new-file', 'etc/moved'), o('read', 'etc/moved'),
    o('rename', 'bin/tool', 'usr/tool'), o('lstat', 'bin/link-rel'), o('stat', 'bin/link-rel'),
    o('rename', 'data/hard1', 'data/hard-moved'), o('lstat', 'data/hard-moved'), o('lstat', 'data/hard2'),
    o('rename', 'etc/motd', 'etc'), o('rename', 'etc/motd', 'etc/conf.d'), o('rename', 'etc/conf.d', 'etc/motd'),
    o('rename', 'missing', 'x'), o('rename', 'etc/hosts', 'nodir/hosts'), o('renameNoReplace', 'etc/hosts', 'etc/motd'),
    o('renameNoReplace', 'etc/hosts', 'etc/hosts2'), o('rename', 'bin/link-abs', 'bin/link-abs2'), o('readlink', 'bin/link-abs2'),
    o('rename', 'names/caf\xe9', 'names/caf\xe9-\xff'), o('rename', 'data/fifo', 'data/fifo2'), o('rename', 'rand/f3', 'rand/f3'),
    o('readdir', 'rand'), o('readdir', 'names'), o('readdir', 'etc'),
  ] },
  { name: 'rename of directories (lower, merged, upper-only, opaque)', ops: [
    o('rename', 'usr/share/doc/pkg1', 'usr/pkg1-moved'), o('readdir', 'usr/pkg1-moved'), o('read', 'usr/pkg1-moved/nested/deep/file'),
    o('lstat', 'usr/share/doc/pkg1'), o('lstat', 'usr/pkg1-moved/nested'),
    o('mkdir', 'fresh'), o('write', 'fresh/a', 'a\n'), o('rename', 'fresh', 'fresh2'), o('readdir', 'fresh2'),
    o('rename', 'etc', 'etc2'), o('readdir', 'etc2'), o('readdir', 'etc2/conf.d'), o('lstat', 'etc'),
    o('rename', 'opq', 'opq2'), o('readdir', 'opq2'), o('lstat', 'opq2/old1'),
    o('rename', 'rand/d', 'rand/d/e/inside'), o('rename', 'rand/d', 'rand/f1'), o('rename', 'rand/d', 'top-only'),
    o('mkdir', 'emptydir'), o('rename', 'rand/d', 'emptydir'), o('readdir', 'emptydir'),
    o('rename', 'data', 'home/user/data'), o('readdir', 'home/user/data'), o('lstat', 'home/user/data/hard1'),
    // a moved tree keeps its directory's times, though the copy-up fills it and drops its whiteouts
    o('unlink', 'usr/share/doc/pkg2/extra'), o('utimes', 'usr/share/doc/pkg2', T1, T2),
    o('rename', 'usr/share/doc/pkg2', 'pkg2-moved'), o('lstat', 'pkg2-moved'),
  ] },
  { name: 'symlinks and hard links', ops: [
    o('symlink', '../etc/motd', 'bin/rel-new'), o('symlink', '/abs/target', 'bin/abs-new'), o('symlink', 'dangling\xff', 'bin/odd'),
    o('readlink', 'bin/rel-new'), o('read', 'bin/rel-new'), o('readlink', 'bin/odd'), o('symlink', 'x', 'bin/tool'),
    o('link', 'data/hard1', 'data/hard3'), o('lstat', 'data/hard1'), o('lstat', 'data/hard2'), o('lstat', 'data/hard3'),
    o('link', 'rand/f5', 'rand/f5-link'), o('lstat', 'rand/f5'), o('append', 'rand/f5-link', 'via link\n'), o('read', 'rand/f5'),
    o('link', 'etc', 'etc-link'), o('link', 'rand/f6', 'rand/f7'), o('link', 'missing', 'x'),
    o('write', 'newfile', 'n\n'), o('link', 'newfile', 'newfile2'), o('lstat', 'newfile2'),
    o('link', 'bin/link-rel', 'bin/link-rel-hard'), o('readlink', 'bin/link-rel-hard'),
    o('append', 'data/hard2', 'hard2 written\n'), o('read', 'data/hard1'), o('lstat', 'data/hard2'),
  ] },
  { name: 'special files: mknod, mkfifo, sockets, devices', ops: [
    o('mknod', 'dev/zero', 'chr', 0o666, 1, 5), o('mknod', 'dev/loop9', 'blk', 0o660, 7, 9), o('mknod', 'fifo-new', 'fifo', 0o640),
    o('mknod', 'sock-new', 'sock', 0o755), o('mknod', 'reg-new', 'reg', 0o600), o('lstat', 'dev/zero'), o('lstat', 'dev/loop9'),
    o('lstat', 'fifo-new'), o('lstat', 'sock-new'), o('lstat', 'reg-new'), o('mknod', 'data/fifo', 'fifo', 0o644),
    o('chmod', 'data/fifo', 0o600), o('lstat', 'data/fifo'), o('chown', 'dev/null', 1000, 1000), o('lstat', 'dev/null'),
    o('utimes', 'dev/blk', T1, T1), o('lstat', 'dev/blk'), o('setxattr', 'dev/null', 'user.x', 'v', 0),
    // devices copied up and made in the upper list as devices (DT_CHR, DT_BLK), beside the lower ones
    o('readdir', 'dev'), o('readdir', '.'),
  ] },
  { name: 'open flags: O_EXCL, O_TRUNC, O_APPEND, O_CREAT on dirs', ops: [
    o('open', 'etc/motd', ['O_WRONLY', 'O_CREAT', 'O_EXCL'], 0o644, 'x'), o('open', 'wh/gone-file', ['O_WRONLY', 'O_CREAT', 'O_EXCL'], 0o600, 'new'),
    o('open', 'excl-new', ['O_WRONLY', 'O_CREAT', 'O_EXCL'], 0o640, 'excl'), o('lstat', 'excl-new'),
    o('open', 'etc/passwd', ['O_WRONLY', 'O_TRUNC'], 0, null), o('lstat', 'etc/passwd'),
    o('open', 'etc/hosts', ['O_RDONLY', 'O_TRUNC'], 0, null), o('lstat', 'etc/hosts'),
    o('open', 'etc/motd', ['O_WRONLY', 'O_APPEND'], 0, '+more\n'), o('read', 'etc/motd'),
    o('open', 'etc/conf.d/a.conf', ['O_RDWR'], 0, 'OVER'), o('read', 'etc/conf.d/a.conf'),
    o('open', 'etc', ['O_WRONLY'], 0, null), o('open', 'etc', ['O_RDONLY', 'O_CREAT'], 0o644, null),
    o('open', 'nodir/file', ['O_WRONLY', 'O_CREAT'], 0o644, null), o('open', 'etc/motd/x', ['O_RDONLY'], 0, null),
    o('open', 'etc/motd', ['O_RDONLY', 'O_DIRECTORY'], 0, null), o('open', 'bin/link-rel', ['O_RDONLY', 'O_NOFOLLOW'], 0, null),
    o('open', 'bin/dangling', ['O_WRONLY', 'O_CREAT'], 0o644, 'via dangling'), o('readdir', 'bin'),
    o('open', 'data/ro', ['O_WRONLY'], 0, 'root ignores mode'), o('read', 'data/ro'),
    o('readStale', 'rand/f6', 'appended after a read-only open\n'), o('readStale', 'etc/conf.d/b.conf', 'x\n'),
  ] },
  { name: 'odd names (spaces, newlines, invalid UTF-8)', ops: [
    o('write', 'names/new\xff\xfe', 'bytes\n'), o('mkdir', 'names/dir \x01\x7f'), o('write', 'names/dir \x01\x7f/f\nf', 'x'),
    o('append', 'names/with space', 'more\n'), o('append', 'names/caf\xe9', 'more\n'), o('unlink', 'names/utf8-\xc3\xa9'),
    o('readdir', 'names'), o('readdir', 'names/dir \x01\x7f'), o('rename', 'names/-dash', 'names/\xc0\xc1'),
    o('setxattr', 'names/with space', 'user.\xff', 'odd name', 0), o('listxattr', 'names/with space'),
    o('write', 'names/' + 'n'.repeat(255), 'long'), o('write', 'names/' + 'n'.repeat(256), 'too long'),
  ] },
  { name: 'type changes between layers', ops: [
    o('lstat', 'typechg'), o('readdir', 'typechg'), o('lstat', 'replaced'), o('read', 'replaced'),
    o('write', 'typechg/new', 'n'), o('readdir', 'typechg'), o('unlink', 'replaced'), o('mkdir', 'replaced'),
    o('readdir', 'replaced'), o('write', 'replaced/x', 'x'), o('readdir', 'replaced'),
    o('rmrf', 'typechg'), o('write', 'typechg', 'a file again\n'), o('lstat', 'typechg'),
    o('rmdir', 'top-only'), o('rmrf', 'top-only'), o('write', 'top-only', 'file now'),
  ] },
]

/**
 * Hostile lowers (issue 6): symlinks pointing out of the layer (`etc -> /`, `x -> ../../..`,
 * absolute and relative links to a canary outside), a symlink where a lower below has a directory
 * and a directory where a lower below has a symlink, device nodes (1:5 is /dev/zero: copying its
 * "data" would never end), setuid/setgid files, names with newlines and invalid UTF-8, 255-byte
 * names, a tree deeper than PATH_MAX. Every operation through the mount must stay inside the
 * upper and the layers: a canary outside, `/` and `/etc` are checked unchanged, copied-up links
 * and devices stay links and devices, nothing is followed on the host side.
 * Modifying operations (lchown, utimes, setxattr) are only aimed at links to the canary, never at
 * `etc -> /`, so a stratafs bug cannot damage the machine.
 */
import t from 'tap'
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { lowersUnchanged } from '../stratafs/util'
import { readXattrs } from '../helpers/tree'
import { PY_PRELUDE, layout, mountStratafs, py } from './util'

const statKey = (p: string): string => {
  const s = fs.lstatSync(p)
  return JSON.stringify([s.mode, s.uid, s.gid, s.size, s.mtimeMs, s.ctimeMs, readXattrs(p)])
}

const SETUP = `${PY_PRELUDE}
root, deep, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
l1, l2 = root + '/l1', root + '/l2'
def populate(base):
    os.symlink('/', base + '/etc')
    os.symlink('../../..', base + '/x')
    os.symlink(root + '/outside/canary', base + '/abs')
    os.symlink('../outside/canary', base + '/rel')
    os.mknod(base + '/zero', 0o20666, os.makedev(1, 5))
    os.mknod(base + '/blk', 0o60600, os.makedev(259, 4095))
    os.mkfifo(base + '/fifo')
    for n, m in (('suid', 0o4755), ('sgid', 0o2755)):
        open(base + '/' + n, 'w').write(n); os.chmod(base + '/' + n, m)
    open((base + '/new\\nline').encode(), 'w').write('nl')
    open(base.encode() + b'/bad\\xff\\xfe', 'w').write('bad')
    open(base + '/' + 'n' * 255, 'w').write('long')
populate(l1)
os.mkdir(l1 + '/tree'); populate(l1 + '/tree')
os.symlink(root + '/outside', l1 + '/sub')          # symlink over a directory below
os.mkdir(l2 + '/sub'); open(l2 + '/sub/hidden', 'w').write('hidden')
os.mkdir(l1 + '/d'); open(l1 + '/d/own', 'w').write('own')  # directory over a symlink below
os.symlink(root + '/outside', l2 + '/d')
os.mkdir(l1 + '/dirlinkparent'); os.symlink(root + '/outside', l1 + '/dirlinkparent/in')
# deeper than PATH_MAX: deep levels of 100-byte names
fd = os.open(l1, os.O_RDONLY)
for k in range(deep):
    os.mkdir(name, dir_fd=fd); nfd = os.open(name, os.O_RDONLY, dir_fd=fd); os.close(fd); fd = nfd
os.close(os.open('leaf', os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
os.write(os.open('leaf', os.O_WRONLY, dir_fd=fd), b'deep leaf')
out('ok')`

const OPS = `${PY_PRELUDE}
m, outside, deep, name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
res = {}
def do(k, f):
    try: v = f(); res[k] = 'ok' if v is None else v
    except OSError as e: res[k] = en(e)
def app(p, s=b'+'):
    fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW); os.write(fd, s); os.close(fd)
for base in (m, m + '/tree'):
    b = base[len(m):] or '/'
    do(b + ' readlink etc', lambda: os.readlink(base + '/etc'))
    do(b + ' readlink x', lambda: os.readlink(base + '/x'))
    do(b + ' lchown abs', lambda: os.lchown(base + '/abs', 1234, 1234))
    do(b + ' lutimes rel', lambda: os.utime(base + '/rel', (1, 1), follow_symlinks=False))
    do(b + ' lsetxattr abs', lambda: os.setxattr(base + '/abs', 'trusted.evil', b'1', follow_symlinks=False))
    do(b + ' link abs', lambda: os.link(base + '/abs', base + '/abs-link', follow_symlinks=False))
    do(b + ' rename etc', lambda: os.rename(base + '/etc', base + '/etc2'))
    do(b + ' rename x', lambda: os.rename(base + '/x', base + '/x2'))
    do(b + ' unlink etc2', lambda: os.unlink(base + '/etc2'))
    do(b + ' chmod zero', lambda: os.chmod(base + '/zero', 0o600))
    do(b + ' chown blk', lambda: os.chown(base + '/blk', 5, 5))
    do(b + ' chmod fifo', lambda: os.chmod(base + '/fifo', 0o600))
    do(b + ' chmod suid', lambda: os.chmod(base + '/suid', 0o4750))
    do(b + ' append sgid', lambda: app(base + '/sgid'))
    do(b + ' append newline', lambda: app((base + '/new\\nline').encode()))
    do(b + ' rename bad', lambda: os.rename(base.encode() + b'/bad\\xff\\xfe', base.encode() + b'/bad2\\xff'))
    do(b + ' append bad2', lambda: app(base.encode() + b'/bad2\\xff'))
    do(b + ' append long', lambda: app(base + '/' + 'n' * 255))
    do(b + ' rename long', lambda: os.rename(base + '/' + 'n' * 255, base + '/' + 'm' * 255))
do('rename tree', lambda: os.rename(m + '/tree', m + '/tree2'))
do('readlink sub', lambda: os.readlink(m + '/sub'))
do('listdir d', lambda: sorted(os.listdir(m + '/d')))
do('lstat d/secret', lambda: os.lstat(m + '/d/secret') and 'visible')
do('append d/own', lambda: app(m + '/d/own'))
do('rename d', lambda: os.rename(m + '/d', m + '/d2'))
do('listdir d2', lambda: sorted(os.listdir(m + '/d2')))
do('lchown dirlinkparent/in', lambda: os.lchown(m + '/dirlinkparent/in', 4321, 4321))
do('rename dirlinkparent', lambda: os.rename(m + '/dirlinkparent', m + '/dlp2'))
# deeper than PATH_MAX: walk there one component at a time
def deepops():
    os.chdir(m)
    for k in range(deep): os.chdir(name)
    r = open('leaf').read()
    app('leaf', b' appended')
    os.rename('leaf', 'leaf2')
    os.close(os.open('created', os.O_WRONLY | os.O_CREAT, 0o644))
    return r
do('deep', deepops)
os.chdir('/')
# name rules
n255, n256 = 'a' * 255, 'a' * 256
do('create 255', lambda: os.close(os.open(m + '/' + n255, os.O_WRONLY | os.O_CREAT, 0o644)))
for k, f in (('create', lambda p: os.close(os.open(p, os.O_WRONLY | os.O_CREAT, 0o644))), ('mkdir', os.mkdir),
             ('symlink', lambda p: os.symlink('t', p)), ('mkfifo', os.mkfifo), ('link', lambda p: os.link(m + '/' + n255, p)),
             ('rename', lambda p: os.rename(m + '/' + n255, p))):
    do(k + ' 256', lambda: f(m + '/' + n256))
    do(k + ' .wh.', lambda: f(m + '/.wh.' + k))
out(res)`

t.test('hostile lowers: nothing outside the upper and the layers is read, written or followed', async (t) => {
  const d = layout(t, 2)
  const DEEP = 45
  const NAME = 'd'.repeat(100)
  fs.mkdirSync(`${d.root}/outside`)
  fs.writeFileSync(`${d.root}/outside/canary`, 'canary\n')
  fs.writeFileSync(`${d.root}/outside/secret`, 'secret\n')
  const setup = py(SETUP, [d.root, String(DEEP), NAME])
  t.equal(setup.status, 0, setup.stderr)
  const outsideBefore = [fs.readdirSync(`${d.root}/outside`).sort().join(' '), statKey(`${d.root}/outside`), statKey(`${d.root}/outside/canary`)]
  const hostBefore = [fs.readdirSync('/').sort().join(' '), fs.readdirSync('/etc').sort().join(' '), statKey('/'), statKey('/etc')]
  lowersUnchanged(t, d.lowers)
  mountStratafs(t, d)
  const r = py(OPS, [d.mnt, `${d.root}/outside`, String(DEEP), NAME], 120_000)
  t.equal(r.status, 0, `operations finished (no hang): ${r.stderr} ${r.signal ?? ''}`)
  const res = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as Record<string, unknown>
  t.comment(JSON.stringify(res))
  const expectOk = Object.keys(res).filter((k) => !/ 256$| \.wh\.$|^lstat d\/secret$/.test(k) && k !== 'deep')
  t.same(expectOk.filter((k) => res[k] !== 'ok' && typeof res[k] !== 'string' && !Array.isArray(res[k])), [], 'no unexpected result types')
  t.same(expectOk.filter((k) => /^[A-Z]+$/.test(String(res[k]))), [], 'every operation on hostile entries succeeds (no errno)')
  t.equal(res['/ readlink etc'], '/', 'etc is still the symlink to /')
  t.equal(res['/ readlink x'], '../../..')
  t.equal(res['readlink sub'], `${d.root}/outside`, 'a symlink over a lower directory stays a symlink')
  t.same(res['listdir d'], ['own'], 'a directory over a lower symlink merges nothing from the link target')
  t.same(res['listdir d2'], ['own'], 'nor after a rename (tree copy-up)')
  t.equal(res['lstat d/secret'], 'ENOENT')
  t.not(res.deep, 'EIO', 'a tree deeper than PATH_MAX: no EIO')
  t.equal(res.deep, 'deep leaf', 'a tree deeper than PATH_MAX (45 levels of 100-byte names): read, copy-up, rename and create work, as on kernel overlayfs')
  const deepUpper = py(`${PY_PRELUDE}
upper, deep, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fd = os.open(upper, os.O_RDONLY)
for k in range(deep): nfd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd); os.close(fd); fd = nfd
names = sorted(os.listdir(fd))
leaf = os.open('leaf2', os.O_RDONLY, dir_fd=fd)
out([names, os.read(leaf, 100).decode()])`, [d.upper, String(DEEP), NAME])
  t.same(JSON.parse(deepUpper.stdout.trim().split('\n').pop() ?? 'null'), [['created', 'leaf', 'leaf2'], 'deep leaf appended'],
    `the deep changes are in the upper: leaf2 copied up and appended, leaf whited out, created made (${deepUpper.stderr.trim()})`)
  for (const k of ['create', 'mkdir', 'symlink', 'mkfifo', 'link', 'rename']) {
    t.equal(res[`${k} 256`], 'ENAMETOOLONG', `${k} of a 256-byte name: ENAMETOOLONG`)
    t.equal(res[`${k} .wh.`], 'EINVAL', `${k} of a .wh. name: EINVAL`)
  }
  t.equal(res['create 255'], 'ok', '255-byte name')

  // nothing outside changed
  t.same([fs.readdirSync(`${d.root}/outside`).sort().join(' '), statKey(`${d.root}/outside`), statKey(`${d.root}/outside/canary`)], outsideBefore, 'canary dir and file unchanged (owner, times, xattrs, names)')
  t.equal(fs.readFileSync(`${d.root}/outside/canary`, 'utf8'), 'canary\n')
  t.same([fs.readdirSync('/').sort().join(' '), fs.readdirSync('/etc').sort().join(' '), statKey('/'), statKey('/etc')], hostBefore, '/ and /etc unchanged (names, owner, mode, times)')

  // what landed in the upper is what the lower had: links as links, devices as devices
  const U = d.upper
  for (const base of ['', '/tree2']) {
    t.equal(fs.readlinkSync(`${U}${base}/abs`), `${d.root}/outside/canary`, `${base || '/'}abs copied up as a link`)
    t.equal(fs.lstatSync(`${U}${base}/abs`).uid, 1234, 'lchown applied to the link in the upper')
    t.ok(fs.lstatSync(`${U}${base}/abs-link`).isSymbolicLink(), 'hard link of a symlink is a symlink')
    t.equal(fs.readlinkSync(`${U}${base}/x2`), '../../..')
    const z = fs.lstatSync(`${U}${base}/zero`)
    t.ok(z.isCharacterDevice() && z.rdev === 0x105, `${base || '/'}zero copied up as device 1:5 (not its data)`)
    t.ok(fs.lstatSync(`${U}${base}/blk`).isBlockDevice(), 'block device copied up as a device')
    t.ok(fs.lstatSync(`${U}${base}/fifo`).isFIFO(), 'fifo copied up as a fifo')
    t.equal(fs.lstatSync(`${U}${base}/suid`).mode & 0o7777, 0o4750, 'root chmod keeps setuid')
    t.equal(fs.readFileSync(Buffer.from(`${U}${base}/bad2\xff`, 'latin1'), 'utf8'), 'bad+', 'invalid UTF-8 name copied up, renamed, written')
    t.equal(fs.readFileSync(`${U}${base}/new\nline`, 'utf8'), 'nl+')
    t.equal(fs.readFileSync(`${U}${base}/${'m'.repeat(255)}`, 'utf8'), 'long+')
  }
  t.equal(fs.readlinkSync(`${U}/dlp2/in`), `${d.root}/outside`)
  t.equal(fs.lstatSync(`${U}/dlp2/in`).uid, 4321)
  const big = spawnSync('find', [U, '-xdev', '-type', 'f', '-size', '+1M'], { encoding: 'utf8' }).stdout.trim()
  t.equal(big, '', 'no large regular file in the upper (no device or link target was copied as data)')
  t.same(fs.readdirSync(`${d.work}/work`), [], 'nothing left in the work dir')
})

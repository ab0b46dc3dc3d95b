/**
 * The upper's own files changed by the binding without the JS thread (strata_csetattr_try,
 * strata_cwopen_try): chmod, chown and utimens by path, and opens for writing. Through real mounts,
 * side by side with kernel overlayfs: modes (set-id bits too), owners (a chown drops set-id bits and
 * file capabilities), times (one-sided, explicit and "now"), what another user may and may not do,
 * appends and rewrites through the opened files, and the upper in overlayfs's format; what stays
 * JS's (lower files, which need their copy-up; directories; data volumes; the switches); and that
 * a listing the daemon kept from before such a change is not handed out again.
 */
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import t, { type Test } from 'tap'
import { mountUnion, strataStats, type UnionDirs } from '../helpers/mounts'
import { tempDir } from '../helpers/tmp'
import { diffSnapshots, snapshot } from '../helpers/tree'
import { lowersUnchanged, mountSwitchedOff } from './util'

interface Stats {
  servedBy: Record<string, Record<string, number>>
}
const byBinding = (mnt: string, op: string): number => strataStats<Stats>(mnt).servedBy.binding?.[op] ?? 0

/** A lower shared by the mounts (a file and a directory), and an upper, work dir and mountpoint for each. */
function layers(t: Test): { strata: UnionDirs, kernel: UnionDirs, lowers: string[] } {
  const root = tempDir(t)
  const lower = `${root}/lower`
  fs.mkdirSync(`${lower}/low`, { recursive: true })
  fs.writeFileSync(`${lower}/low/f`, 'lower file\n')
  const dirs = (name: string): UnionDirs => {
    const d = { lowers: [lower], upper: `${root}/${name}-upper`, work: `${root}/${name}-work`, mnt: `${root}/${name}-mnt` }
    for (const p of [d.upper, d.work, d.mnt]) fs.mkdirSync(p)
    return d
  }
  return { strata: dirs('strata'), kernel: dirs('kernel'), lowers: [lower] }
}

const run = (program: string, ...args: string[]): string => {
  const r = spawnSync('python3', ['-c', program, ...args], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout : `exited ${r.status}: ${r.stderr}`
}

/** Makes files in argv[1]/up (through the mount: the upper's), then changes them; prints every result. */
const program = `
import errno, json, os, subprocess, sys
m = sys.argv[1]
d = f'{m}/up'
os.mkdir(d)
os.chmod(d, 0o777)
for n in ['a', 'b', 'c', 'suid', 'caps', 'user-owned', 'times', 'app', 'rw', 'trunc']:
    with open(f'{d}/{n}', 'w') as f: f.write(n + '\\n')
inos = {n: os.stat(f'{d}/{n}').st_ino for n in os.listdir(d)}
out = []
def step(label, fn):
    try:
        r = fn()
        out.append([label, r])
    except OSError as e:
        out.append([label, errno.errorcode[e.errno]])
def view(n):
    st = os.lstat(f'{d}/{n}')
    return [oct(st.st_mode), st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_atime_ns]
def as_user(code):
    r = subprocess.run(['setpriv', '--reuid', '1000', '--regid', '1000', '--clear-groups', sys.executable, '-c', code, d], capture_output=True, text=True)
    return r.stdout.strip() + r.stderr.strip()
step('chmod a 600', lambda: os.chmod(f'{d}/a', 0o600))
step('chmod b 4755', lambda: os.chmod(f'{d}/b', 0o4755))
step('chmod c 2710', lambda: os.chmod(f'{d}/c', 0o2710))
step('chown c 1000:1000', lambda: os.chown(f'{d}/c', 1000, 1000))
step('chown a -1:100', lambda: os.chown(f'{d}/a', -1, 100))
step('chmod suid 6755', lambda: os.chmod(f'{d}/suid', 0o6755))
step('chown suid 2:2 drops set-id', lambda: os.chown(f'{d}/suid', 2, 2))
# file capabilities (cap_net_raw+ep, v2), which a chown drops
step('set caps', lambda: os.setxattr(f'{d}/caps', 'security.capability', bytes.fromhex('0100000201200000000000000000000000000000')))
step('chown caps 3:3 drops caps', lambda: os.chown(f'{d}/caps', 3, 3))
step('caps gone', lambda: os.listxattr(f'{d}/caps'))
step('chown user-owned 1000:1000', lambda: os.chown(f'{d}/user-owned', 1000, 1000))
step('utime both', lambda: os.utime(f'{d}/times', ns=(1000000000123456789, 1100000000987654321)))
step('touch -a only', lambda: subprocess.run(['touch', '-a', '-d', '@1200000000', f'{d}/times'], check=True) and None)
step('touch -m only', lambda: subprocess.run(['touch', '-m', '-d', '@1300000000.5', f'{d}/times'], check=True) and None)
step('times', lambda: view('times')[4:])
# another user: its own file, and ones it may only write or not touch at all
step('user chmod own', lambda: as_user("import os,sys; os.chmod(sys.argv[1] + '/user-owned', 0o640); print('ok')"))
step('user chmod root-owned', lambda: as_user("import os,sys\\ntry: os.chmod(sys.argv[1] + '/a', 0o666)\\nexcept OSError as e: print(e.errno)"))
step('user utime explicit on root-owned', lambda: as_user("import os,sys\\ntry: os.utime(sys.argv[1] + '/b', (1, 1))\\nexcept OSError as e: print(e.errno)"))
os.chmod(f'{d}/rw', 0o666)
step('user utime now on writable', lambda: as_user("import os,sys; os.utime(sys.argv[1] + '/rw'); print('ok')"))
# opens for writing of the upper's files: append, read-write, and a rewrite (O_TRUNC)
def append():
    fd = os.open(f'{d}/app', os.O_WRONLY | os.O_APPEND)
    os.write(fd, b'more\\n')
    os.close(fd)
    return open(f'{d}/app').read()
step('append', append)
def rw():
    fd = os.open(f'{d}/rw', os.O_RDWR)
    first = os.read(fd, 2)
    os.write(fd, b'XY')
    os.fsync(fd)
    os.lseek(fd, 0, 0)
    r = [first.decode(), os.read(fd, 100).decode(), os.fstat(fd).st_size]
    os.close(fd)
    return r
step('read-write', rw)
def rewrite():
    with open(f'{d}/trunc', 'w') as f: f.write('new')
    return [open(f'{d}/trunc').read(), os.stat(f'{d}/trunc').st_size]
step('rewrite', rewrite)
step('touch existing', lambda: subprocess.run(['touch', '-d', '@1400000000', f'{d}/a'], check=True) and view('a')[4])
# lower files and directories stay JS's: chmod copies the lower file up
step('chmod lower file', lambda: os.chmod(f'{m}/low/f', 0o640))
step('chmod dir', lambda: os.chmod(d, 0o750))
for n in sorted(os.listdir(d)): out.append([n, view(n)[:4], os.stat(f'{d}/{n}').st_ino == inos[n]])
out.append(['low/f', oct(os.stat(f'{m}/low/f').st_mode), open(f'{m}/low/f').read()])
print(json.dumps(out))
`

t.test('chmod, chown, utimens and opens for writing of the upper\'s files: the binding does them, with kernel overlayfs\'s results', async (t) => {
  const { strata, kernel, lowers } = layers(t)
  lowersUnchanged(t, lowers)
  const s = await mountUnion(t, 'stratafs', strata)
  await mountUnion(t, 'kernel', kernel)
  const before = { setattr: byBinding(s.mnt, 'setattr'), open: byBinding(s.mnt, 'open') }
  const want = run(program, kernel.mnt)
  t.match(want, /^\[\[/, 'the program ran on kernel overlayfs')
  t.same(JSON.parse(run(program, s.mnt)), JSON.parse(want), 'every step gave what kernel overlayfs gave')
  // by path, 11 by root and 2 by the other user (the lower file's and the directory's chmods are
  // JS's), and the three touches' futimens through the handles they opened: 16, less any that
  // met JS busy building something ahead (then JS does it)
  const setattrs = byBinding(s.mnt, 'setattr') - before.setattr
  t.ok(setattrs >= 12 && setattrs <= 16, `the binding did the changes (${setattrs} of 16)`)
  // append, read-write, rewrite, and the three touches (each opens the file for writing first)
  const opens = byBinding(s.mnt, 'open') - before.open
  t.ok(opens >= 4 && opens <= 6, `and the opens for writing (${opens} of 6)`)
  const upper = diffSnapshots(snapshot(kernel.upper!, 'upper'), snapshot(strata.upper!, 'upper'), { ignore: ['mtime'], ignoreLinks: true }, ['kernel', 'stratafs'])
  t.same(upper, [], 'the uppers are the same, xattrs included')
})

t.test('a listing kept from before the binding changed a file is not handed out again', async (t) => {
  // The binding changes the upper's files while JS serves nothing; JS learns of it before it
  // serves anything else and drops the listings it keeps. Without that, a listing made before
  // would be handed out again (here once the kernel forgot the entries) with the old mode and size.
  const { strata, kernel } = layers(t)
  const s = await mountUnion(t, 'stratafs', strata)
  await mountUnion(t, 'kernel', kernel)
  const program = `
import os, subprocess, sys
d = f'{sys.argv[1]}/kept'
os.mkdir(d)
for n in ['x', 'y']:
    with open(f'{d}/{n}', 'w') as f: f.write('1234')
listing = lambda: [l.split()[0] + ' ' + l.split()[4] + ' ' + l.split()[-1] for l in subprocess.run(['ls', '-ln', d], capture_output=True, text=True, check=True).stdout.splitlines()[1:]]
def forget():
    with open('/proc/sys/vm/drop_caches', 'w') as f: f.write('2')
first = listing()
os.chmod(f'{d}/x', 0o600)
forget()
second = listing()
fd = os.open(f'{d}/y', os.O_WRONLY | os.O_APPEND)
os.write(fd, b'5678')
os.close(fd)
forget()
print(first, second, listing())
`
  const before = { setattr: byBinding(s.mnt, 'setattr'), open: byBinding(s.mnt, 'open') }
  const want = run(program, kernel.mnt)
  t.equal(want, "['-rw-r--r-- 4 x', '-rw-r--r-- 4 y'] ['-rw------- 4 x', '-rw-r--r-- 4 y'] ['-rw------- 4 x', '-rw-r--r-- 8 y']\n",
    'kernel overlayfs: the listings show the chmod, then the append')
  t.equal(run(program, s.mnt), want, 'stratafs: the same')
  t.equal(byBinding(s.mnt, 'setattr') - before.setattr, 1, 'the binding did the chmod')
  t.equal(byBinding(s.mnt, 'open') - before.open, 1, 'and the open for writing')
})

t.test('what stays JS\'s: data volumes, and with the switches off', async (t) => {
  const { strata } = layers(t)
  const volume = tempDir(t)
  fs.writeFileSync(`${volume}/v`, 'v')
  const s = await mountUnion(t, 'stratafs', { ...strata, options: [`volume=${volume}:/vol`] })
  const before = { setattr: byBinding(s.mnt, 'setattr'), open: byBinding(s.mnt, 'open') }
  fs.chmodSync(`${s.mnt}/vol/v`, 0o600)
  fs.appendFileSync(`${s.mnt}/vol/v`, 'w')
  t.equal(fs.statSync(`${volume}/v`).mode & 0o777, 0o600, 'a volume file\'s chmod reached the volume')
  t.equal(fs.readFileSync(`${volume}/v`, 'utf8'), 'vw', 'and its append')
  t.same([byBinding(s.mnt, 'setattr') - before.setattr, byBinding(s.mnt, 'open') - before.open], [0, 0], 'both were JS\'s')

  for (const name of ['STRATA_NO_CSETATTR', 'STRATA_NO_CWOPEN']) {
    const m = await mountSwitchedOff(t, layers(t).strata, name)
    fs.mkdirSync(`${m.mnt}/d`)
    fs.writeFileSync(`${m.mnt}/d/f`, 'f')
    const was = { setattr: byBinding(m.mnt, 'setattr'), open: byBinding(m.mnt, 'open') }
    fs.chmodSync(`${m.mnt}/d/f`, 0o600)
    fs.appendFileSync(`${m.mnt}/d/f`, 'g')
    const now = { setattr: byBinding(m.mnt, 'setattr') - was.setattr, open: byBinding(m.mnt, 'open') - was.open }
    t.same(now, name === 'STRATA_NO_CSETATTR' ? { setattr: 0, open: 1 } : { setattr: 1, open: 0 }, `${name}=1: only the other is the binding's`)
    t.equal(fs.readFileSync(`${m.mnt}/d/f`, 'utf8'), 'fg', 'and the file is right')
  }
})

/**
 * Unprivileged callers (issue 6), run with `setpriv --reuid 1000 --regid 1000 --clear-groups`:
 * the same operations on kernel overlayfs and on stratafs over the same lower, with the same
 * answers required: no reading a 0600 root file, no writing into a root 0755 dir, no chmod/chown of
 * what the caller does not own, and setuid/setgid bits cleared by an unprivileged write or
 * truncate that copies a file up, exactly where the kernel clears them.
 */
import t from 'tap'
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { mountUnion } from '../helpers/mounts'
import { lowersUnchanged } from '../stratafs/util'
import { PY_PRELUDE, layout, mountStratafs } from './util'

const OPS = `${PY_PRELUDE}
m = sys.argv[1]
res = {}
def do(k, f):
    try: v = f(); res[k] = 'ok' if v is None else v
    except OSError as e: res[k] = en(e)
def app(p):
    fd = os.open(p, os.O_WRONLY | os.O_APPEND); os.write(fd, b'+'); os.close(fd)
do('read secret', lambda: open(m + '/secret').read())
do('read motd', lambda: open(m + '/motd').read())
do('create in rootdir', lambda: os.close(os.open(m + '/rootdir/x', os.O_WRONLY | os.O_CREAT, 0o644)))
do('mkdir in rootdir', lambda: os.mkdir(m + '/rootdir/y'))
do('unlink in rootdir', lambda: os.unlink(m + '/rootdir/f'))
do('rename out of rootdir', lambda: os.rename(m + '/rootdir/f', m + '/owndir/f'))
do('write motd', lambda: app(m + '/motd'))
do('chmod motd', lambda: os.chmod(m + '/motd', 0o666))
do('chown motd', lambda: os.chown(m + '/motd', 1000, 1000))
do('utime motd', lambda: os.utime(m + '/motd', (1, 1)))
do('setxattr motd', lambda: os.setxattr(m + '/motd', 'user.x', b'1'))
do('chown own to root', lambda: os.chown(m + '/own', 0, -1))
do('chgrp own to 0', lambda: os.chown(m + '/own', -1, 0))
do('append suidw', lambda: app(m + '/suidw'))
do('append sgidw', lambda: app(m + '/sgidw'))
do('truncate suidw2', lambda: os.truncate(m + '/suidw2', 1))
do('append own', lambda: app(m + '/own'))
do('chmod own2 6755', lambda: os.chmod(m + '/own2', 0o6755))
do('chmod owngrp0 2755', lambda: os.chmod(m + '/owngrp0', 0o2755))
do('create in owndir', lambda: os.close(os.open(m + '/owndir/new', os.O_WRONLY | os.O_CREAT, 0o4755)))
do('chmod new 6755', lambda: os.chmod(m + '/owndir/new', 0o6755))
out(res)`

const FILES = ['secret', 'motd', 'suidw', 'sgidw', 'suidw2', 'own', 'own2', 'owngrp0', 'owndir/new', 'rootdir/f']

t.test('unprivileged callers: the same answers and modes as kernel overlayfs', async (t) => {
  const d = layout(t)
  const L = d.lowers[0]!
  const mk = (p: string, mode: number, uid = 0, gid = 0, body = p): void => { fs.writeFileSync(`${L}/${p}`, body); fs.chownSync(`${L}/${p}`, uid, gid); fs.chmodSync(`${L}/${p}`, mode) }
  fs.mkdirSync(`${L}/rootdir`, { mode: 0o755 })
  fs.mkdirSync(`${L}/owndir`); fs.chownSync(`${L}/owndir`, 1000, 1000)
  mk('secret', 0o600)
  mk('motd', 0o644)
  mk('rootdir/f', 0o644)
  mk('suidw', 0o4777)
  mk('sgidw', 0o2777)
  mk('suidw2', 0o6777)
  mk('own', 0o4755, 1000, 1000)
  mk('own2', 0o755, 1000, 1000)
  mk('owngrp0', 0o755, 1000, 0)
  lowersUnchanged(t, d.lowers)
  for (const p of [d.root, d.upper, d.mnt]) fs.chmodSync(p, 0o755)
  mountStratafs(t, d)
  const k = { lowers: d.lowers, upper: `${d.root}/ku`, work: `${d.root}/kw`, mnt: `${d.root}/kmnt` }
  for (const p of [k.upper, k.work, k.mnt]) fs.mkdirSync(p)
  await mountUnion(t, 'kernel', k)

  const run = (m: string): Record<string, unknown> => {
    const r = spawnSync('setpriv', ['--reuid', '1000', '--regid', '1000', '--clear-groups', '/usr/bin/python3', '-c', OPS, m], { encoding: 'utf8', timeout: 60_000 })
    if (r.status !== 0) throw new Error(`${m}: ${r.stderr}`)
    return JSON.parse(r.stdout.trim()) as Record<string, unknown>
  }
  const modes = (m: string): Record<string, string> => Object.fromEntries(FILES.map((f) => {
    try { const s = fs.lstatSync(`${m}/${f}`); return [f, `${(s.mode & 0o7777).toString(8)} ${s.uid}:${s.gid} ${s.size}`] } catch (e) { return [f, (e as NodeJS.ErrnoException).code ?? '?'] }
  }))
  const kres = run(k.mnt)
  const sres = run(d.mnt)
  t.comment(`kernel: ${JSON.stringify(kres)}`)
  t.same(sres, kres, 'every operation answers as on kernel overlayfs')
  t.same(modes(d.mnt), modes(k.mnt), 'modes, owners and sizes afterwards match kernel overlayfs (setuid/setgid cleared where it clears them)')
  t.equal(kres['read secret'], 'EACCES')
  t.equal(sres['read secret'], 'EACCES', 'cannot read a 0600 root file')
  t.equal(sres['create in rootdir'], 'EACCES', 'cannot create in a root 0755 dir')
  t.equal(sres['chmod motd'], 'EPERM', 'cannot chmod what it does not own')
  t.equal(sres['chown own to root'], 'EPERM', 'cannot give a file away')
  t.equal(fs.statSync(`${d.mnt}/suidw`).mode & 0o6000, 0, 'an unprivileged write to a setuid root file cleared setuid on copy-up')
  for (const f of ['secret', 'motd', 'rootdir/f']) t.notOk(fs.existsSync(`${d.upper}/${f}`), `denied operations copied nothing up (${f})`)
})

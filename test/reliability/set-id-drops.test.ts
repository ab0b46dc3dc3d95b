/**
 * Set-id bits and file capabilities dropped by writes, truncates, opens with O_TRUNC and chowns,
 * now that stratafs asks the kernel for FUSE_HANDLE_KILLPRIV_V2 and drops them itself (the
 * binding's strata_killpriv.h): the same modes and xattrs afterwards as kernel overlayfs, for files
 * already in the upper, written by a caller without CAP_FSETID through passthrough and through the
 * daemon, through a handle opened before the bits were set, and by root (who keeps them). And the
 * reason for it: the kernel no longer asks for security.capability before every write.
 */
import t from 'tap'
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { mountUnion, strataStats } from '../helpers/mounts'
import { PY_PRELUDE, layout, mountStratafs } from './util'

/** mode, size and whether security.capability is set, of every file in directory `d` */
const STATE = `
def states(d):
    def state(name):
        st = os.lstat(d + '/' + name)
        try: cap = len(os.getxattr(d + '/' + name, 'security.capability')) > 0
        except OSError: cap = False
        return '%o %d%s' % (st.st_mode & 0o7777, st.st_size, ' cap' if cap else '')
    return {n: state(n) for n in sorted(os.listdir(d))}
`

const SCRIPT = `${PY_PRELUDE}
import struct, threading
m = sys.argv[1]
CAP = struct.pack('<IIIII', 0x02000001, 1 << 13, 0, 0, 0)  # VFS_CAP_REVISION_2, cap_net_raw
def mk(name, mode, gid=0, cap=False, uid=0):
    p = m + '/' + name
    with open(p, 'wb') as f: f.write(b'0123456789')
    os.chown(p, uid, gid)
    if cap: os.setxattr(p, 'security.capability', CAP)
    os.chmod(p, mode)
def as_user(fn, *pipes):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([]); os.setgid(1000); os.setuid(1000)  # no capabilities left
            res = fn(*pipes)
        except OSError as e:
            res = en(e)
        os.write(w, json.dumps(res).encode()); os._exit(0)
    os.close(w)
    data = b''
    while True:
        chunk = os.read(r, 65536)
        if not chunk: break
        data += chunk
    os.waitpid(pid, 0)
    return json.loads(data)
def app(p):
    fd = os.open(p, os.O_WRONLY | os.O_APPEND); os.write(fd, b'+'); os.close(fd)

for name, mode, gid in [('append', 0o4777, 0), ('sgidx', 0o2777, 0), ('sgidnx', 0o2767, 0), ('sgidnx_own', 0o2767, 1000),
                        ('otrunc', 0o6777, 0), ('trunc', 0o4777, 0), ('ftrunc', 0o4777, 0), ('shared', 0o4777, 0),
                        ('early', 0o777, 0), ('rootw', 0o4755, 0), ('chown', 0o4755, 0), ('chownsg', 0o2745, 0),
                        ('chownsgx', 0o2755, 0), ('truncsg', 0o2666, 0)]:
    mk(name, mode, gid)
mk('ownchown', 0o6755, 1000, uid=1000)
for name, mode in [('capw', 0o755), ('capt', 0o755), ('capsuid', 0o4755)]:
    mk(name, mode, 0, True)

def user_ops():
    res = {}
    for name in ['append', 'sgidx', 'sgidnx', 'sgidnx_own']: app(m + '/' + name); res[name] = 'ok'
    os.close(os.open(m + '/otrunc', os.O_WRONLY | os.O_TRUNC)); res['otrunc'] = 'ok'
    os.truncate(m + '/trunc', 1); res['trunc'] = 'ok'
    os.truncate(m + '/truncsg', 1); res['truncsg'] = 'ok'
    fd = os.open(m + '/ftrunc', os.O_WRONLY); os.ftruncate(fd, 2); os.close(fd); res['ftrunc'] = 'ok'
    # a reader holds the file open: the writer's handle cannot pass through, its writes reach the daemon
    rfd = os.open(m + '/shared', os.O_RDONLY); app(m + '/shared'); os.close(rfd); res['shared'] = 'ok'
    os.chown(m + '/ownchown', -1, -1); res['ownchown'] = 'ok'
    return res
res = as_user(user_ops)

# a handle opened before the file became setuid, written after
go_r, go_w = os.pipe(); ready_r, ready_w = os.pipe()
def early(ready_w, go_r):
    fd = os.open(m + '/early', os.O_WRONLY)
    os.write(ready_w, b'r'); os.read(go_r, 1)
    os.write(fd, b'late'); os.close(fd)
    return 'ok'
th = threading.Thread(target=lambda: res.__setitem__('early', as_user(early, ready_w, go_r)))
th.start()
os.read(ready_r, 1)
os.chmod(m + '/early', 0o4777)
os.write(go_w, b'g')
th.join()

app(m + '/rootw'); app(m + '/capw'); os.truncate(m + '/capt', 3); app(m + '/capsuid')
for name in ['chown', 'chownsg', 'chownsgx']: os.chown(m + '/' + name, -1, -1)

${STATE}
out({'ops': res, 'after': states(m)})
`

t.test('set-id bits and capabilities dropped as kernel overlayfs drops them', async (t) => {
  const d = layout(t)
  for (const p of [d.root, d.upper, d.mnt]) fs.chmodSync(p, 0o755)
  mountStratafs(t, d)
  const k = { lowers: d.lowers, upper: `${d.root}/ku`, work: `${d.root}/kw`, mnt: `${d.root}/kmnt` }
  for (const p of [k.upper, k.work, k.mnt]) fs.mkdirSync(p)
  await mountUnion(t, 'kernel', k)
  for (const p of [d.mnt, k.mnt]) fs.chmodSync(p, 0o755)

  const python = (script: string, dir: string): unknown => {
    const r = spawnSync('/usr/bin/python3', ['-c', script, dir], { encoding: 'utf8', timeout: 60_000 })
    if (r.status !== 0) throw new Error(`${dir}: ${r.stderr}`)
    return JSON.parse(r.stdout.trim())
  }
  const run = (m: string): { ops: Record<string, unknown>, after: Record<string, string> } =>
    python(SCRIPT, m) as { ops: Record<string, unknown>, after: Record<string, string> }
  /** the same, read in the upper directory itself: what a remount (or another tool) finds */
  const onDisk = (upper: string): Record<string, string> =>
    python(`${PY_PRELUDE}${STATE}\nout(states(sys.argv[1]))`, upper) as Record<string, string>
  const before = strataStats<{ killPriv: { granted: boolean, cleared: number } }>(d.mnt).killPriv
  t.ok(before.granted, 'the kernel granted FUSE_HANDLE_KILLPRIV_V2')
  const kernel = run(k.mnt)
  const strata = run(d.mnt)
  t.comment(`kernel: ${JSON.stringify(kernel.after)}`)
  t.same(strata.ops, kernel.ops, 'every operation answers as on kernel overlayfs')
  t.same(strata.after, kernel.after, 'modes, sizes and capabilities afterwards match kernel overlayfs')
  t.same(onDisk(d.upper), strata.after, '... in the upper directory too, not only in what the kernel caches')
  const a = strata.after
  t.equal(a.append, '777 11', 'an unprivileged append (passthrough) dropped setuid')
  t.equal(a.sgidnx, '767 11', 'setgid without group execute dropped for a caller outside the group')
  t.equal(a.sgidnx_own, '2767 11', '... and kept for one in it')
  t.equal(a.otrunc, '777 0', 'an unprivileged open with O_TRUNC dropped setuid and setgid')
  t.equal(a.truncsg, '666 1', 'a truncate by a caller outside the group dropped setgid without group execute')
  t.equal(a.shared, '777 11', 'an unprivileged write the daemon served (no passthrough) dropped setuid')
  t.equal(a.early, '777 10', 'a write through a handle opened before chmod u+s dropped it')
  t.equal(a.rootw, '4755 11', 'root keeps setuid on write (CAP_FSETID)')
  t.equal(a.capw, '755 11', 'a write dropped security.capability')
  t.equal(a.capsuid, '4755 11', '... and root keeps setuid meanwhile')
  t.equal(a.chown, '755 10', 'chown(-1, -1) by root dropped setuid')
  t.equal(a.chownsg, '2745 10', '... kept setgid without group execute')
  t.equal(a.chownsgx, '755 10', '... dropped it with group execute')
  t.equal(a.ownchown, '755 10', "chown(-1, -1) by the file's owner dropped both")
  // 9 files lost bits on a write or truncate; the daemon dropped each (the chowns' go to the host's lchown)
  const after = strataStats<{ killPriv: { cleared: number } }>(d.mnt).killPriv
  t.equal(after.cleared - before.cleared, 9, 'the daemon dropped the bits of the 9 written or truncated files that lost them')

  // without passthrough every write is a WRITE request, flagged FUSE_WRITE_KILL_SUIDGID
  const np = layout(t)
  for (const p of [np.root, np.upper, np.mnt]) fs.chmodSync(p, 0o755)
  mountStratafs(t, np, ['passthrough=0'])
  fs.chmodSync(np.mnt, 0o755)
  const npBefore = strataStats<{ killPriv: { cleared: number } }>(np.mnt).killPriv
  const noPass = run(np.mnt)
  t.same(noPass.after, kernel.after, 'without passthrough: the same modes, sizes and capabilities as kernel overlayfs')
  t.same(onDisk(np.upper), noPass.after, '... in the upper directory too')
  const npAfter = strataStats<{ killPriv: { cleared: number }, passthrough: { opens: number } }>(np.mnt)
  t.equal(npAfter.killPriv.cleared - npBefore.cleared, 9, '... the daemon dropping the 9 files\' bits')
  t.equal(npAfter.passthrough.opens, 0, '... with no open passing through')

  // handles the binding does not have (STRATA_NO_FDIO=1: as when it could not register one): JS
  // writes, truncates and drops the bits itself
  const js = layout(t)
  for (const p of [js.root, js.upper, js.mnt]) fs.chmodSync(p, 0o755)
  mountStratafs(t, js, [], { STRATA_NO_FDIO: '1' })
  fs.chmodSync(js.mnt, 0o755)
  const jsBefore = strataStats<{ killPriv: { cleared: number } }>(js.mnt).killPriv
  const byJs = run(js.mnt)
  t.same(byJs.after, kernel.after, 'writes served by JS: the same modes, sizes and capabilities as kernel overlayfs')
  t.same(onDisk(js.upper), byJs.after, '... in the upper directory too')
  type Served = { killPriv: { cleared: number }, ops: Record<string, { count: number }>, servedBy: { binding: Record<string, number> }, passthrough: { opens: number } }
  const jsAfter = strataStats<Served>(js.mnt)
  // JS's write and truncate paths drop bits on their fd; a drop that comes as an empty SETATTR finds
  // no handle in the binding and goes to the host's lchown (uncounted), so fewer than 9 are counted
  const jsCleared = jsAfter.killPriv.cleared - jsBefore.cleared
  t.ok(jsCleared > 0 && jsCleared <= 9, `... JS dropping bits on its own fds (${jsCleared} of the 9 files)`)
  t.ok((jsAfter.ops.write?.count ?? 0) > 0, `... writes reached the daemon (${jsAfter.ops.write?.count ?? 0})`)
  t.equal(jsAfter.servedBy.binding.write, 0, '... none answered by the binding')
  t.equal(jsAfter.passthrough.opens, 0, '... and no open passing through')
})

t.test('a file written many times is checked for security.capability about once', async (t) => {
  const d = layout(t)
  mountStratafs(t, d)
  const lookups = (): number => strataStats<{ killPriv: { capabilityLookups: number } }>(d.mnt).killPriv.capabilityLookups
  const fd = fs.openSync(`${d.mnt}/many`, 'w')
  const before = lookups()
  try {
    for (let i = 0; i < 200; i++) fs.writeSync(fd, Buffer.alloc(4096, i), 0, 4096, ((i * 37) % 200) * 4096)
  } finally {
    fs.closeSync(fd)
  }
  const asked = lookups() - before
  t.ok(asked <= 2, `200 writes asked for security.capability ${asked} times (one per write without FUSE_HANDLE_KILLPRIV_V2)`)
  t.equal(fs.statSync(`${d.mnt}/many`).size, 200 * 4096, 'the writes landed')
})

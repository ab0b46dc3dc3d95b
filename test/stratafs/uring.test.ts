/**
 * FUSE over io_uring (strata_uring.h in the fuse-native patch; Linux 6.14+ with the fuse module
 * parameter enable_uring=Y, which scripts/install-deps.sh sets): requests come through one queue
 * per CPU, served by binding threads pinned to it. Through real mounts: the same script gives
 * kernel overlayfs's observations with io_uring and with `uring=0`; the requests really came over
 * io_uring (and none with uring=0), their answers committed at idle CPU priority where the probe at
 * mount found that faster or `uring_idle=1` says so (and never with `uring_idle=0`), which no
 * thread keeps while it waits for JS or for a request; and the daemon ends with its mount.
 */
import { spawn, spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import t from 'tap'
import { mountUnion, strataBin, strataStats, stratafsBin } from '../helpers/mounts'
import { lowersUnchanged, makeDirs, observe } from './util'

const PARAM = '/sys/module/fuse/parameters/enable_uring'
const PER_QUEUE = 8 // STRATA_URING_PER_QUEUE

interface Handoff { idle: boolean, plainUs: number, idleUs: number }
interface Stats { pid: number, uring?: { requests: number, threads: number, yielded?: number, rescued?: number, handoff?: Handoff } }

/** The kernel's queue count: one per possible CPU (the highest index, plus one). */
function possibleCpus(): number {
  const nums = fs.readFileSync('/sys/devices/system/cpu/possible', 'utf8').match(/\d+/g) ?? ['0']
  return Math.max(...nums.map(Number)) + 1
}

// Names change, data is written and read back, attributes and xattrs move: each a request of
// another kind, answered by libfuse or by the binding itself.
const SCRIPT = `
import json, os, sys
mnt = sys.argv[1]
p = lambda n: mnt + '/' + n
out = []
def seen(label, **kv): out.append(dict(at=label, **kv))
os.mkdir(p('d')); os.mkdir(p('d/e'))
with open(p('d/f'), 'wb') as f: f.write(b'x' * 200000)
seen('written', size=os.stat(p('d/f')).st_size, data=open(p('d/f'), 'rb').read(7).decode())
os.rename(p('d/f'), p('d/e/g')); seen('renamed', names=sorted(os.listdir(p('d'))), moved=sorted(os.listdir(p('d/e'))))
os.symlink('e/g', p('d/link')); seen('symlink', target=os.readlink(p('d/link')), via=len(open(p('d/link'), 'rb').read()))
os.chmod(p('etc/motd'), 0o600); seen('chmod lower', mode=oct(os.stat(p('etc/motd')).st_mode), data=open(p('etc/motd')).read())
os.setxattr(p('d/e/g'), 'user.k', b'v'); seen('xattr', v=os.getxattr(p('d/e/g'), 'user.k').decode(), names=os.listxattr(p('d/e/g')))
absent = 0
for i in range(500):
    try: os.getxattr(p('etc/only-bottom'), 'security.selinux')
    except OSError: absent += 1
seen('absent xattrs', absent=absent)
with open(p('etc/only-bottom'), 'a') as f: f.write('more\\n')
seen('append lower', data=open(p('etc/only-bottom')).read())
os.unlink(p('d/link')); os.unlink(p('etc/motd')); seen('unlinked', etc=sorted(os.listdir(p('etc'))), d=sorted(os.listdir(p('d'))))
try: os.rmdir(p('d/e')); seen('rmdir', ok=True)
except OSError as e: seen('rmdir', errno=e.errno)
walk = sorted((r[len(mnt):], sorted(ds), sorted(fs)) for r, ds, fs in os.walk(mnt))
seen('walk', walk=walk)
print(json.dumps(out))
`

function uringAvailable(): string | null {
  let v: string
  try { v = fs.readFileSync(PARAM, 'utf8').trim() } catch { return `${PARAM} is missing: this kernel has no FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING)` }
  return v === 'Y' ? null : `${PARAM} is ${v}`
}

const unavailable = uringAvailable()
// a kernel without it: skipped, and said so; a kernel with it switched off: a failure (below)
const skip = unavailable?.includes('missing') ? `FUSE over io_uring: ${unavailable}` : false

t.test('the same observations as kernel overlayfs, over io_uring (either hand-off) and with uring=0', { skip }, async (t) => {
  // scripts/install-deps.sh sets the parameter; anywhere else it is the machine's choice
  if (unavailable) t.fail(`${unavailable}: scripts/install-deps.sh sets it to Y (echo Y > ${PARAM})`)
  const results: Record<string, unknown> = {}
  const stats: Record<string, Stats> = {}
  const handoff: Record<string, Handoff | undefined> = {}
  const said: Record<string, string | undefined> = {} // what \`strata stats\` prints of it
  const runs = [['kernel', 'kernel', []], ['uring', 'stratafs', []], ['idle', 'stratafs', ['uring_idle=1']], ['plain', 'stratafs', ['uring_idle=0']],
    ['dev', 'stratafs', ['uring=0']]] as const
  for (const [label, target, options] of runs) {
    const d = makeDirs(t)
    lowersUnchanged(t, d.lowers)
    const m = await mountUnion(t, target, { ...d, options: [...options] })
    const before = target === 'stratafs' ? strataStats<Stats>(m.mnt) : null
    results[label] = observe(t, label, SCRIPT, m.mnt)
    if (before) {
      const after = strataStats<Stats>(m.mnt)
      const delta = (k: 'requests' | 'yielded'): number => (after.uring?.[k] ?? 0) - (before.uring?.[k] ?? 0)
      stats[label] = { pid: after.pid, uring: { requests: delta('requests'), threads: after.uring?.threads ?? 0, yielded: delta('yielded') } }
      handoff[label] = after.uring?.handoff
      said[label] = /^answers committed at idle priority: .*$/m.exec(spawnSync(strataBin(), ['stats', m.mnt], { encoding: 'utf8' }).stdout)?.[0]
    }
    await m.unmount()
    t.notOk(m.daemonLingered(), `${label}: the daemon ended with its mount`)
  }
  t.equal((results.kernel as unknown[]).length, 10, 'every step observed')
  for (const label of ['uring', 'idle', 'plain', 'dev']) t.same(results[label], results.kernel, `${label}: every observation as on kernel overlayfs`)
  for (const label of ['uring', 'idle', 'plain']) {
    const u = stats[label]?.uring
    t.equal(u?.threads, possibleCpus() * PER_QUEUE, `${label}: ${PER_QUEUE} threads per CPU queue (${JSON.stringify(u)})`)
    // 500 getxattrs alone, each a request (the kernel keeps no xattrs of a FUSE file)
    t.ok((u?.requests ?? 0) >= 500, `${label}: the script's requests came over io_uring (${u?.requests})`)
  }
  // the probe at mount measured both hand-offs and chose (strata_handoff.h); told, it does not run
  const auto = handoff.uring
  t.ok(auto !== undefined && auto.plainUs > 0 && auto.idleUs > 0, `the probe measured both ways (${JSON.stringify(auto)})`)
  t.equal(auto?.idle, auto !== undefined && auto.idleUs * 10 < auto.plainUs * 9, 'and committed at idle priority only if that was a tenth faster or more')
  t.same([handoff.idle, handoff.plain], [{ idle: true, plainUs: 0, idleUs: 0 }, { idle: false, plainUs: 0, idleUs: 0 }], 'uring_idle=1 and =0: as told, no probe')
  t.match(said.uring, new RegExp(`^answers committed at idle priority: ${auto?.idle ? 'yes' : 'no'} \\(probe at mount: [0-9.]+ µs a round trip plain, [0-9.]+ µs at idle priority\\)$`), 'strata stats says what the probe chose')
  t.same([said.idle, said.plain, said.dev], ['answers committed at idle priority: yes (as uring_idle= says)', 'answers committed at idle priority: no (as uring_idle= says)', undefined],
    'and what uring_idle= told it (nothing without io_uring)')
  // committed at idle priority (so that the caller wakes on its own CPU) exactly where chosen
  const yielded = (label: string): number => stats[label]?.uring?.yielded ?? -1
  if (auto?.idle) t.ok(yielded('uring') >= 500, `auto, idle chosen: the answers were committed at SCHED_IDLE (${yielded('uring')})`)
  else t.equal(yielded('uring'), 0, 'auto, plain chosen: no answer committed at SCHED_IDLE')
  t.ok(yielded('idle') >= 500, `uring_idle=1: the answers were committed at SCHED_IDLE (${yielded('idle')})`)
  t.equal(yielded('plain'), 0, 'uring_idle=0: none was')
  t.same(stats.dev?.uring, { requests: 0, threads: 0, yielded: 0 }, 'uring=0: nothing over io_uring')
})

t.test('entry threads are at idle CPU priority only around a commit: never waiting for JS or for a request', { skip }, async (t) => {
  // Entry threads commit an answer at SCHED_IDLE (so the caller wakes on their CPU) and are
  // SCHED_OTHER again before they wait or serve (told to, whatever the probe would find). Copy-ups
  // of 64 MiB files keep one waiting for JS.
  const d = makeDirs(t)
  const [, bottom] = d.lowers as [string, string]
  const block = Buffer.alloc(1 << 20, 7)
  for (let i = 0; i < 3; i++) {
    const fd = fs.openSync(`${bottom}/big${i}`, 'w')
    for (let j = 0; j < 64; j++) fs.writeSync(fd, block)
    fs.closeSync(fd)
  }
  const m = await mountUnion(t, 'stratafs', { ...d, options: ['uring_idle=1'] })
  const { pid } = strataStats<Stats>(m.mnt)
  // state and policy from one read of stat: a thread in its commit runs (R) at SCHED_IDLE; one that
  // sleeps there (S, D: waiting for JS or for a request) must not be at SCHED_IDLE
  const tasks = (): Array<{ state: string, policy: number }> => fs.readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // from field 3 (state)
      return [{ state: fields[0]!, policy: Number(fields[38]) }]
    } catch { return [] } // a thread that ended meanwhile
  })
  const worker = spawn('python3', ['-c', `
import os, sys
m = sys.argv[1]
for i in range(3):
  os.chmod(m + '/big%d' % i, 0o600)                   # a copy-up, served by JS
  for j in range(300):                                # requests answered in C between
    try: os.getxattr(m + '/etc', 'security.selinux')
    except OSError: pass
`, m.mnt], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  worker.stderr.on('data', (b: Buffer) => { stderr += b.toString() })
  let done = false
  const exited = new Promise<number | null>((resolve) => worker.on('exit', (code) => { done = true; resolve(code) }))
  let samples = 0
  let idleSleeping = 0
  while (!done) {
    for (const task of tasks()) {
      samples++
      if (task.policy === 5 && (task.state === 'S' || task.state === 'D')) idleSleeping++
    }
    await new Promise((r) => setTimeout(r, 2))
  }
  t.equal(await exited, 0, `the copy-ups and stats ran: ${stderr}`)
  t.ok(samples > 0, `threads sampled (${samples})`)
  t.equal(idleSleeping, 0, 'no thread waits (for JS or for a request) at SCHED_IDLE')
  const yielded = strataStats<Stats>(m.mnt).uring?.yielded ?? 0
  t.ok(yielded >= 900, `the getxattrs' answers were committed at SCHED_IDLE (${yielded})`)
  await m.unmount()
})

t.test('a daemon that cannot leave SCHED_IDLE again takes its requests from /dev/fuse', { skip }, async (t) => {
  // Without the idle hand-off io_uring is no faster than /dev/fuse (strata_uring.h). Root without
  // CAP_SYS_NICE and with RLIMIT_NICE 0 stands for a daemon in a user namespace.
  const wrapper = `${makeDirs(t).root}/stratafs-no-nice`
  fs.writeFileSync(wrapper, `#!/bin/sh\nexec setpriv --bounding-set -sys_nice -- prlimit --nice=0 -- ${stratafsBin()} "$@"\n`, { mode: 0o755 })
  const d = makeDirs(t)
  lowersUnchanged(t, d.lowers)
  const saved = process.env.STRATAFS_BIN
  process.env.STRATAFS_BIN = wrapper
  let m
  try {
    m = await mountUnion(t, 'stratafs', d)
  } finally {
    if (saved === undefined) delete process.env.STRATAFS_BIN
    else process.env.STRATAFS_BIN = saved
  }
  const status = fs.readFileSync(`/proc/${strataStats<Stats>(m.mnt).pid}/status`, 'utf8')
  const capEff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`)
  t.equal(capEff & (1n << 23n), 0n, 'the daemon runs without CAP_SYS_NICE')
  fs.writeFileSync(`${m.mnt}/etc/new`, 'new\n')
  t.equal(fs.readFileSync(`${m.mnt}/etc/new`, 'utf8'), 'new\n', 'the mount serves')
  t.same(strataStats<Stats>(m.mnt).uring, { requests: 0, threads: 0, yielded: 0, rescued: 0, handoff: { idle: false, plainUs: 0, idleUs: 0 } },
    'nothing over io_uring (and no hand-off measured)')
  await m.unmount()
})

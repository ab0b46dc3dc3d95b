/**
 * Read-ahead of a walk (src/layers/read-ahead.ts): the subdirectories of what a walking process
 * just listed are read on a worker thread, for the host's caches, and their listings built while
 * the JS thread is idle (src/fuse/list-ahead.ts). What a walk sees must not change (compared with
 * kernel overlayfs), also when the tree changes after listings were built ahead; a single listing
 * must read nothing ahead; a walk must, and be served listings built ahead; and the worker
 * thread's reading (native.warmDirs) must follow no symlink.
 */
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import t from 'tap'
import { dirListOf, native, STAT_NAMES_STATTED, STAT_NAMES_XATTRS_KNOWN, STAT_NAMES_XATTR_FREE, type DirList, type RawDirList } from '../../src/native'
import { mountUnion, strataBin, strataStats } from '../helpers/mounts'
import { tempDir } from '../helpers/tmp'
import { lowersUnchanged, makeDirs, observe, waitFor } from './util'

interface Counts { dirs: number, allEntries: number, statted: number, pending: number, used: number }
interface Stats { readAhead?: Counts, listAhead?: { built: number, served: number, binding: { kept: number, served: number, stale: number } } }

const warm = (paths: string[], statAll: boolean): Promise<number> =>
  new Promise((resolve) => native.warmDirs(paths, statAll, (statted) => resolve(statted)))

t.test('warmDirs stats subdirectories (or every entry), follows no symlink, skips what is missing', async (t) => {
  const root = tempDir(t)
  const d = `${root}/d`
  fs.mkdirSync(`${d}/sub1`, { recursive: true })
  fs.mkdirSync(`${d}/sub2`)
  for (const f of ['f1', 'f2', 'f3']) fs.writeFileSync(`${d}/${f}`, f)
  fs.mkdirSync(`${root}/elsewhere`)
  for (let i = 0; i < 5; i++) fs.mkdirSync(`${root}/elsewhere/x${i}`)
  fs.symlinkSync(`${root}/elsewhere`, `${d}/link`)
  t.equal(await warm([d], false), 2, 'subdirectories only: the two real ones (the symlink to a directory is not one)')
  t.equal(await warm([d], true), 6, 'with statAll: every entry, the symlink itself included')
  t.equal(await warm([`${d}/link`, `${root}/missing`], true), 0, 'a symlink to a directory is not read through, a missing path is skipped')
  t.equal(await warm([d, `${root}/elsewhere`], false), 7, 'several directories in one job')
})

t.test('warmDirs gives back what each directory held: as readdir lists it, or null', async (t) => {
  const root = tempDir(t)
  const d = `${root}/d`
  fs.mkdirSync(`${d}/sub`, { recursive: true })
  for (const f of ['f1', 'f2', '\xe9t\xe9']) fs.writeFileSync(`${d}/${f}`, f)
  fs.symlinkSync('/etc', `${d}/link`)
  fs.mkdirSync(`${root}/empty`)
  fs.mkdirSync(`${root}/huge`)
  for (let i = 0; i < 4100; i++) fs.writeFileSync(`${root}/huge/h${i}`, '')
  fs.symlinkSync(d, `${root}/dlink`)
  const paths = [d, `${root}/missing`, `${root}/empty`, `${root}/huge`, `${root}/dlink`]
  const lists = await new Promise<Array<RawDirList | null> | null>((resolve) => native.warmDirs(paths, false, (_s, _us, l) => resolve(l)))
  t.equal(lists?.length, paths.length, 'one per path asked for')
  const want = native.readdir(d) as DirList
  const got = dirListOf(lists![0]!)
  const byName = (l: DirList): Array<[string, number, number]> => l.names.map((n, i): [string, number, number] => [n, l.types[i]!, l.inos[i]!]).sort()
  t.same(byName(got), byName(want), 'the directory: its names (raw bytes kept), d_types and d_inos, as readdir gives them')
  t.equal(got.names.length, 5)
  t.equal(lists![1], null, 'a missing directory: null')
  t.same(dirListOf(lists![2]!).names, [], 'an empty directory: no names, but read')
  t.equal(lists![3], null, 'a directory over 4,096 entries: null, left to its own listing')
  t.equal(lists![4], null, 'a symlink to a directory: not read through')

  // what was statted comes back with the entry: its lstat and whether it has xattrs
  const statted = (l: RawDirList): Record<string, [number[], number]> => {
    const names = dirListOf(l).names
    const out: Record<string, [number[], number]> = {}
    for (let j = 0; j < (l.statIdx?.length ?? 0); j++) out[names[l.statIdx![j]!]!] = [[...l.stats!.subarray(j * 16, j * 16 + 16)], l.statBits![j]!]
    return out
  }
  const lstat = (p: string): number[] => {
    const st = new Float64Array(16)
    if (native.lstat(p, st) !== 0) throw new Error(`lstat ${p}`)
    return [...st]
  }
  const noAtime = (st: number[]): number[] => st.filter((_, i) => i !== 10 && i !== 11) // reading a directory moves its atime
  const sub = statted(lists![0]!)
  t.same(Object.keys(sub), ['sub'], 'lean: only the subdirectory comes with its lstat')
  t.same(noAtime(sub.sub![0]), noAtime(lstat(`${d}/sub`)), 'which is lstat\'s')
  t.equal(sub.sub![1], STAT_NAMES_STATTED | STAT_NAMES_XATTRS_KNOWN | STAT_NAMES_XATTR_FREE, 'statted, and known to have no xattrs')
  fs.writeFileSync(`${d}/tagged`, 'x')
  const tag = spawnSync('setfattr', ['-n', 'user.k', '-v', 'v', `${d}/tagged`], { encoding: 'utf8' })
  if (tag.status !== 0) throw new Error(`setfattr: ${tag.stderr ?? tag.error}`)
  const all = await new Promise<Array<RawDirList | null> | null>((resolve) => native.warmDirs([d], true, (_s, _us, l) => resolve(l)))
  const every = statted(all![0]!)
  t.same(Object.keys(every).sort(), dirListOf(all![0]!).names.sort(), 'statAll: every entry comes with its lstat')
  t.equal(Object.keys(every).length, 6)
  t.same(every.link![0], lstat(`${d}/link`), 'a symlink\'s own, not its target\'s')
  t.equal(every.tagged![1], STAT_NAMES_STATTED | STAT_NAMES_XATTRS_KNOWN, 'a file with an xattr is known to have some')
  t.equal(every.f1![1], STAT_NAMES_STATTED | STAT_NAMES_XATTRS_KNOWN | STAT_NAMES_XATTR_FREE, 'one without, to have none')
})

t.test('a walk reads ahead, a single listing does not, and what both see is what kernel overlayfs shows', async (t) => {
  const seen: Record<string, unknown> = {}
  for (const target of ['kernel', 'stratafs'] as const) {
    const d = makeDirs(t)
    const [top, bottom] = d.lowers as [string, string]
    // two like trees: find walks one, ls -lR the other (what find read is not read again)
    for (const tree of ['tree', 'tree2']) {
      for (const a of ['a', 'b', 'c']) {
        for (const x of ['x', 'y']) {
          fs.mkdirSync(`${bottom}/${tree}/${a}/${x}`, { recursive: true })
          // sizes differ from file to file: an entry given another's attributes shows in ls -l
          for (let i = 0; i < 5; i++) fs.writeFileSync(`${bottom}/${tree}/${a}/${x}/f${i}`, `${a}${x}${i}`.repeat(i + 1))
        }
      }
      fs.mkdirSync(`${top}/${tree}/b/z`, { recursive: true }) // a directory merged from both layers
      fs.writeFileSync(`${top}/${tree}/b/z/top`, 'top')
      fs.mkdirSync(`${top}/${tree}/c`)
      // a whiteout of a directory
      if (native.mknod(`${top}/${tree}/c/y`, fs.constants.S_IFCHR, 0, 0) !== 0) throw new Error('mknod of a whiteout failed')
    }
    lowersUnchanged(t, d.lowers)
    const m = await mountUnion(t, target, d)
    const counts = (): Counts & { served: number } => {
      if (target !== 'stratafs') return { dirs: 0, allEntries: 0, statted: 0, pending: 0, used: 0, served: 0 }
      const s = strataStats<Stats>(m.mnt)
      return { ...s.readAhead!, served: s.listAhead!.served }
    }
    // once what a command set going is read (the worker thread may still be at it when it exits)
    const count = async (): Promise<Counts & { served: number }> => {
      if (target === 'stratafs') t.ok(await waitFor(() => counts().pending === 0), 'the read-ahead settles')
      return counts()
    }
    const run = (cmd: string, ...args: string[]): string => {
      const r = spawnSync(cmd, args, { cwd: m.mnt, encoding: 'utf8' })
      if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`)
      return r.stdout
    }
    const c0 = await count()
    const single = run('ls', '-l', 'tree')
    const c1 = await count()
    const find = run('find', 'tree')
    const c2 = await count()
    const lsR = run('ls', '-lR', '--time-style=+', 'tree2')
    const c3 = await count()
    seen[target] = { single: single.replace(/^total.*\n/m, ''), find: find.split('\n').sort(), lsR: lsR.split('\n').filter((l) => !l.startsWith('total')) }
    await m.unmount()
    if (target !== 'stratafs') continue
    t.equal(c1.dirs - c0.dirs, 0, 'ls -l of one directory reads nothing ahead')
    t.ok(c2.dirs - c1.dirs >= 4, `find read subdirectories ahead (${c2.dirs - c1.dirs})`)
    t.ok(c2.served - c1.served >= 1, `and was served listings built ahead (${c2.served - c1.served})`)
    // how many find itself lists before the worker thread has read them depends on the machine's
    // load: `used` is checked where the walker waits for the read-ahead (the test below)
    t.comment(`listings built from the directories the worker thread read: ${c2.used - c1.used}`)
    t.equal(c2.allEntries - c1.allEntries, 0, 'and statted only their subdirectories: its listings are lean')
    // its listings are full once it has looked up entries of a lean one (its second)
    t.ok(c3.allEntries - c2.allEntries >= 2, `ls -lR had every entry of directories statted ahead (${c3.allEntries - c2.allEntries} directories, ${c3.statted - c2.statted} entries)`)
    t.ok(c3.served - c2.served >= 1, `and was served listings built ahead (${c3.served - c2.served})`)
  }
  t.same(seen.stratafs, seen.kernel, 'ls -l, find and ls -lR print what they print on kernel overlayfs')
})

// One process starts a walk (its second listing), so the rest of the tree is read and listed
// ahead (on stratafs it waits, asking \`strata stats\`, until the three are built); then it lists
// one directory unchanged, and two after changes made through the mount.
const WALK_THEN_CHANGE = `
import json, os, subprocess, sys, time
m, strata = sys.argv[1], sys.argv[2]
os.listdir(m + '/t')
os.listdir(m + '/t/a')
deadline = time.time() + 20
while strata:
    s = json.loads(subprocess.run([strata, 'stats', m, '--json'], capture_output=True, text=True, check=True).stdout)
    if s['listAhead']['built'] >= 3 and s['readAhead']['pending'] == 0: break
    if time.time() > deadline: sys.exit('t/b, t/c and t/d were not listed ahead within 20 s: %s' % s['listAhead'])
    time.sleep(0.05)
seen = [sorted(os.listdir(m + '/t/d'))]
open(m + '/t/b/new', 'w').close()
os.rename(m + '/t/c/f0', m + '/t/c/g0')
seen += [sorted(os.listdir(m + '/t/b')), sorted(os.listdir(m + '/t/c'))]
print(json.dumps(seen))
`

t.test('a listing built ahead is not served after a change: the walker sees the change', async (t) => {
  const seen: Record<string, unknown> = {}
  for (const target of ['kernel', 'stratafs'] as const) {
    const d = makeDirs(t)
    const bottom = d.lowers[1]!
    for (const a of ['a', 'b', 'c', 'd']) {
      fs.mkdirSync(`${bottom}/t/${a}`, { recursive: true })
      for (let i = 0; i < 3; i++) fs.writeFileSync(`${bottom}/t/${a}/f${i}`, `${i}`)
    }
    lowersUnchanged(t, d.lowers)
    const m = await mountUnion(t, target, d)
    const counts = (): { served: number, used: number, byBinding: number, stale: number } => {
      if (target !== 'stratafs') return { served: 0, used: 0, byBinding: 0, stale: 0 }
      const s = strataStats<Stats>(m.mnt)
      return { served: s.listAhead!.served, used: s.readAhead!.used, byBinding: s.listAhead!.binding.served, stale: s.listAhead!.binding.stale }
    }
    const before = counts()
    seen[target] = observe(t, target, WALK_THEN_CHANGE, m.mnt, target === 'stratafs' ? strataBin() : '')
    if (target === 'stratafs') {
      const after = counts()
      t.ok(after.served - before.served >= 1, `the unchanged directory's listing was one built ahead (${after.served - before.served})`)
      // t/b, t/c and t/d: read by the worker thread, then built from what it read, not read again
      t.ok(after.used - before.used >= 3, `listings built from the directories the worker thread read (${after.used - before.used})`)
      // the binding answers a walker's listing built ahead itself (binding-listings.ts), but not once
      // anything changed: t/d is, t/b and t/c are found stale and built again by JS
      t.equal(after.byBinding - before.byBinding, 1, 'the binding served the unchanged listing to the walker')
      t.ok(after.stale - before.stale >= 2, `and found the other two stale after the changes (${after.stale - before.stale})`)
    }
    await m.unmount()
  }
  t.same(seen.stratafs, seen.kernel, 'each listing as kernel overlayfs gives it: the new name and the renamed one are there')
})

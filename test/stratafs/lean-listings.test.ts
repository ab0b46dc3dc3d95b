/**
 * Lean listings (src/fuse/lean-listings.ts): a listing leaves its files' attributes out until its
 * caller shows it looks entries up. What a program sees must not change: names, d_types, and a
 * d_ino equal to the st_ino a stat of the entry gives, for lower files of each layer, upper files,
 * hard links, merged directories and copied-up files, before and after changes, with the same
 * answers as kernel overlayfs. And on stratafs the listings must really be lean for a walker, an
 * entry lookup must upgrade its directory, and the looker's next listing must be full.
 */
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import t, { type Test } from 'tap'
import { native } from '../../src/native'
import { mountUnion, strataStats } from '../helpers/mounts'
import { lowersUnchanged, makeDirs, py, undisturbed } from './util'

interface Stats {
  ops: Record<string, { count: number }>
  leanListings?: { made: number, upgraded: number }
}

/** Layers for both tests: files in each lower, in the upper, hard links, a merged directory. */
function populate(d: { lowers: string[], upper: string }): void {
  const [top, bottom] = d.lowers as [string, string]
  for (const dir of ['a', 'b', 'c']) {
    fs.mkdirSync(`${bottom}/${dir}/sub`, { recursive: true })
    for (let i = 0; i < 30; i++) fs.writeFileSync(`${bottom}/${dir}/f${String(i).padStart(2, '0')}`, 'x'.repeat(i))
    fs.symlinkSync('f00', `${bottom}/${dir}/link`)
  }
  fs.mkdirSync(`${top}/a`)
  fs.writeFileSync(`${top}/a/top-file`, 'top')
  fs.writeFileSync(`${top}/a/f05`, 'shadows the bottom f05')
  fs.mkdirSync(`${d.upper}/a`)
  fs.writeFileSync(`${d.upper}/a/upper-file`, 'upper')
  fs.linkSync(`${d.upper}/a/upper-file`, `${d.upper}/a/upper-link`)
}

// Walks the mount as `find` does (listings only) and prints, per entry, its d_type and d_ino;
// a second run with 'stat' prints each entry's st_ino and attributes instead.
const WALK = `
import json, os, sys
mnt, mode = sys.argv[1], sys.argv[2]
out = {}
def walk(d):
    for e in sorted(os.scandir(d), key=lambda e: e.name):
        rel = os.path.relpath(e.path, mnt)
        if mode == 'list':
            out[rel] = ['d' if e.is_dir(follow_symlinks=False) else 'l' if e.is_symlink() else 'f', e.inode()]
        else:
            st = os.lstat(e.path)
            out[rel] = [st.st_ino, oct(st.st_mode), st.st_size, st.st_nlink]
        if e.is_dir(follow_symlinks=False): walk(e.path)
walk(mnt)
print(json.dumps(out))
`

// Copies up, writes, unlinks, renames, links and creates in the merged view.
const CHANGE = `
import os, sys
m = sys.argv[1]
os.chmod(m + '/a/f01', 0o600)
with open(m + '/b/f02', 'a') as f: f.write('appended')
os.unlink(m + '/b/f03')
os.rename(m + '/c/f04', m + '/c/renamed')
os.link(m + '/c/f06', m + '/c/f06-link')
with open(m + '/c/new', 'w') as f: f.write('new')
os.mkdir(m + '/c/newdir')
`

type Walk = Record<string, unknown[]>
const run = (script: string, mnt: string, mode = ''): Walk => {
  const r = py(script, mnt, mode)
  if (r.status !== 0) throw new Error(`python: ${r.stderr}`)
  return r.stdout.trim() ? JSON.parse(r.stdout) as Walk : {}
}

/** Per entry: its d_type, and whether its d_ino is its st_ino; attributes but st_ino as they are. */
function joined(listed: Walk, statted: Walk): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {}
  for (const [rel, [type, dino]] of Object.entries(listed)) {
    const st = statted[rel]
    out[rel] = st ? [type, dino === st[0] ? 'd_ino is st_ino' : `d_ino ${dino} st_ino ${st[0]}`, ...st.slice(1)] : [type, 'not statted']
  }
  return out
}

t.test('lean listings: names, types and d_ino as kernel overlayfs, before and after changes', async (t) => {
  const seen: Record<string, unknown> = {}
  for (const target of ['kernel', 'stratafs'] as const) {
    const d = makeDirs(t)
    populate(d)
    lowersUnchanged(t, d.lowers)
    const m = await mountUnion(t, target, d)
    const before = target === 'stratafs' ? strataStats<Stats>(m.mnt) : null
    // each run is its own process: the lister has never looked anything up
    const first = joined(run(WALK, m.mnt, 'list'), run(WALK, m.mnt, 'stat'))
    const lean = before ? strataStats<Stats>(m.mnt).leanListings!.made - before.leanListings!.made : 0
    run(CHANGE, m.mnt)
    const after = joined(run(WALK, m.mnt, 'list'), run(WALK, m.mnt, 'stat'))
    seen[target] = { first, after }
    await m.unmount()
    if (target === 'stratafs') t.ok(lean >= 6, `the walk's listings after its first were lean (${lean} lean listings for its 7 directories, the first listed full)`)
  }
  // Kernel overlayfs gives the d_ino of a merged directory's upper directory in a listing made
  // before the directory was looked up (its st_ino is the lower one's), so d_ino is compared with
  // st_ino on stratafs only, and the rest with kernel overlayfs.
  const inoColumnOut = (w: Record<string, unknown[]>): Record<string, unknown[]> =>
    Object.fromEntries(Object.entries(w).map(([rel, v]) => [rel, [v[0], ...v.slice(2)]]))
  const k = seen.kernel as { first: Record<string, unknown[]>, after: Record<string, unknown[]> }
  const s = seen.stratafs as typeof k
  t.ok(Object.keys(k.first).length > 100 && Object.values(k.after).every((v) => v[1] === 'd_ino is st_ino'), 'kernel overlayfs: the script sees every entry, each d_ino its st_ino after the changes')
  t.same([inoColumnOut(s.first), inoColumnOut(s.after)], [inoColumnOut(k.first), inoColumnOut(k.after)], 'stratafs lists and stats every entry as kernel overlayfs does')
  const wrong = [...Object.entries(s.first), ...Object.entries(s.after)].filter(([, v]) => v[1] !== 'd_ino is st_ino')
  t.same(wrong, [], 'on stratafs every d_ino is its entry\'s st_ino, before and after the changes')
})

t.test('lean listings: a walker gets lean ones, a lookup upgrades, the looker then gets full ones', async (t) => {
  // Counts of lookups reaching the daemon; a measurement during which another test file dropped
  // the kernel's dentries (they run two at a time) is discarded and made again on a fresh mount.
  const seen = await undisturbed(t, () => measurePolicy(t))
  if (seen === null) return
  const { s0, s1, s2, s3, s4, s5, sizes, last, ls } = seen
  t.same([s1.made - s0.made, s1.getattr - s0.getattr], [0, 0], `a process's first listing is full: none of its ${sizes.a} lookups reached JS`)
  t.equal(s2.made - s1.made, 1, 'its listing of another directory is lean')
  t.equal(s3.upgraded - s2.upgraded, 1, 'the first lookup after it upgraded the directory')
  t.ok(s3.getattr - s2.getattr <= 2, `of ${sizes.b} lookups, ${s3.getattr - s2.getattr} reached JS (the rest answered from the upgrade)`)
  t.equal(s4.made, s3.made, 'the looker\'s next listing is full')
  t.equal(s5.getattr, s4.getattr, `its ${sizes.c} lookups all answered from the listing`)
  t.equal(ls.status, 0, `ls -f: ${ls.stderr}`)
  t.equal(last.made - s5.made, 2, 'another process (ls -f of three directories) lists all but its first lean')
})

interface Counts { made: number, upgraded: number, getattr: number }
interface Measured {
  s0: Counts, s1: Counts, s2: Counts, s3: Counts, s4: Counts, s5: Counts, last: Counts
  sizes: { a: number, b: number, c: number }
  ls: { status: number | null, stderr: string }
}

/** Lists and looks up through a fresh mount from this test's own process; the counters at each step. */
async function measurePolicy(t: Test): Promise<Measured> {
  const d = makeDirs(t)
  populate(d)
  // for the other process: directories this one's walk does not read (and list) ahead
  for (const x of ['x', 'y', 'z']) {
    fs.mkdirSync(`${d.lowers[1]}/${x}`)
    fs.writeFileSync(`${d.lowers[1]}/${x}/file`, x)
  }
  const m = await mountUnion(t, 'stratafs', d)
  const stats = (): Counts => {
    const s = strataStats<Stats>(m.mnt)
    return { ...s.leanListings!, getattr: s.ops.getattr?.count ?? 0 }
  }
  const names = (dir: string): string[] => {
    const r = native.readdir(`${m.mnt}/${dir}`)
    if (typeof r === 'number') throw new Error(`readdir ${dir}: ${r}`)
    return r.names.filter((n) => n.startsWith('f'))
  }
  const statAll = (dir: string, names: string[]): void => { for (const n of names) fs.lstatSync(`${m.mnt}/${dir}/${n}`) }
  // This test's own process lists and looks up (one thread: one FUSE pid). The directories
  // themselves are looked up first, so that the counts below are their entries' alone.
  for (const dir of ['a', 'b', 'c']) fs.statSync(`${m.mnt}/${dir}`)
  const s0 = stats()
  const inA = names('a')
  statAll('a', inA)
  const s1 = stats()
  const inB = names('b')
  const s2 = stats()
  statAll('b', inB)
  const s3 = stats()
  const inC = names('c')
  const s4 = stats()
  statAll('c', inC)
  const s5 = stats()
  const ls = spawnSync('ls', ['-f', `${m.mnt}/x`, `${m.mnt}/y`, `${m.mnt}/z`], { encoding: 'utf8' })
  const last = stats()
  await m.unmount()
  return { s0, s1, s2, s3, s4, s5, last, sizes: { a: inA.length, b: inB.length, c: inC.length }, ls: { status: ls.status, stderr: ls.stderr } }
}

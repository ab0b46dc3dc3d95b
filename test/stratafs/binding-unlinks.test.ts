/**
 * Unlinks the binding does itself (src/fuse/binding-unlinks.ts, strata_cunlink_try): the UNLINK of
 * a lower name in a directory the upper already has, while JS serves nothing. Through real mounts,
 * side by side with kernel overlayfs: what every view shows after them (the merged tree, the upper
 * in overlayfs's format, the directory's attributes the next request is answered with, names made
 * again) is what kernel overlayfs shows, and the counters say the binding did them.
 */
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import t, { type Test } from 'tap'
import { mountUnion, strataStats, type UnionDirs } from '../helpers/mounts'
import { tempDir } from '../helpers/tmp'
import { diffSnapshots, snapshot } from '../helpers/tree'
import { fileContents, lowersUnchanged, mountSwitchedOff, raceRoles, waitFor } from './util'

interface Stats {
  ops: Record<string, { count: number }>
  servedBy: Record<string, Record<string, number>>
}
const unlinksByBinding = (mnt: string): number => strataStats<Stats>(mnt).servedBy.binding?.unlink ?? 0

/** Two lowers shared by both mounts, and an upper, work dir and mountpoint for each. */
function layers(t: Test): { strata: UnionDirs, kernel: UnionDirs, lowers: string[], outside: string } {
  const root = tempDir(t)
  const lowers = [`${root}/l1`, `${root}/l2`]
  const [top, bottom] = lowers as [string, string]
  for (const dir of ['tree/a', 'tree/b/sub', 'keep']) fs.mkdirSync(`${bottom}/${dir}`, { recursive: true })
  for (let i = 0; i < 30; i++) fs.writeFileSync(`${bottom}/tree/a/f${i}`, `a${i}\n`)
  for (let i = 0; i < 30; i++) fs.writeFileSync(`${bottom}/tree/b/f${i}`, `b${i}\n`)
  for (let i = 0; i < 10; i++) fs.writeFileSync(`${bottom}/tree/b/sub/g${i}`, `g${i}\n`)
  for (let i = 0; i < 10; i++) fs.writeFileSync(`${bottom}/keep/k${i}`, `k${i}\n`)
  fs.writeFileSync(`${root}/outside`, 'outside\n')
  fs.symlinkSync(`${root}/outside`, `${bottom}/tree/a/link-out`) // to a file outside every layer
  fs.mkdirSync(`${top}/tree/a`, { recursive: true })
  fs.writeFileSync(`${top}/tree/a/f5`, 'top f5\n') // shadows the bottom one
  fs.mkdirSync(`${top}/tree/c`)
  for (let i = 0; i < 10; i++) fs.writeFileSync(`${top}/tree/c/h${i}`, `h${i}\n`)
  const dirs = (name: string): UnionDirs => {
    const d = { lowers, upper: `${root}/${name}-upper`, work: `${root}/${name}-work`, mnt: `${root}/${name}-mnt` }
    for (const p of [d.upper, d.work, d.mnt]) fs.mkdirSync(p)
    return d
  }
  return { strata: dirs('strata'), kernel: dirs('kernel'), lowers, outside: `${root}/outside` }
}

/** Runs `fn` on both mountpoints and returns what each gave (or its error code). */
function both<T>(mnts: [string, string], fn: (mnt: string) => T): Array<T | string> {
  return mnts.map((mnt) => {
    try {
      return fn(mnt)
    } catch (err) {
      return (err as NodeJS.ErrnoException).code ?? String(err)
    }
  })
}

t.test('unlinks of lower names: done by the binding, and every view is kernel overlayfs\'s', async (t) => {
  const { strata, kernel, lowers, outside } = layers(t)
  lowersUnchanged(t, lowers)
  const s = await mountUnion(t, 'stratafs', strata)
  await mountUnion(t, 'kernel', kernel)
  const mnts: [string, string] = [s.mnt, kernel.mnt]
  const same = (label: string, fn: (mnt: string) => unknown): void => {
    const [a, b] = both(mnts, fn)
    t.same(a, b, label)
  }
  // names looked up one by one (JS keeps what it resolved) before anything lists their directory
  for (let i = 1; i < 4; i++) both(mnts, (m) => fs.statSync(`${m}/keep/k${i}`).size)
  both(mnts, (m) => spawnSync('ls', ['-lR', `${m}/tree`, `${m}/keep`])) // listings first, as rm -rf makes them

  // the first unlink in tree/a copies the directory up (JS); the next ones the binding may do
  const before = unlinksByBinding(s.mnt)
  for (let i = 0; i < 10; i++) both(mnts, (m) => fs.unlinkSync(`${m}/tree/a/f${i}`))
  both(mnts, (m) => fs.unlinkSync(`${m}/tree/a/link-out`))
  t.ok(unlinksByBinding(s.mnt) - before >= 8, `the binding did most of the 11 unlinks (${unlinksByBinding(s.mnt) - before})`)
  t.equal(fs.readFileSync(outside, 'utf8'), 'outside\n', 'a symlink out of the layers, unlinked: its target is untouched')
  same('tree/a lists the same names', (m) => fs.readdirSync(`${m}/tree/a`).sort())
  same('an unlinked name is gone', (m) => fs.statSync(`${m}/tree/a/f3`))
  same('the shadowing top file went too (its bottom one stays hidden)', (m) => fs.existsSync(`${m}/tree/a/f5`))
  same('the others are still there', (m) => fs.readFileSync(`${m}/tree/a/f10`, 'utf8'))

  // the directory's attributes answered after the unlinks are its upper directory's now
  const dirSt = fs.statSync(`${s.mnt}/tree/a`)
  const upSt = fs.statSync(`${strata.upper!}/tree/a`)
  t.same([dirSt.mtimeMs, dirSt.ctimeMs, dirSt.size, dirSt.mode], [upSt.mtimeMs, upSt.ctimeMs, upSt.size, upSt.mode],
    'tree/a: times, size and mode as the upper directory has them after the last unlink')
  same('tree/a: the link count of a merged directory (1)', (m) => fs.statSync(`${m}/tree/a`).nlink)
  // names made again where the binding unlinked, and renamed over
  both(mnts, (m) => fs.writeFileSync(`${m}/tree/a/f1`, 'again\n'))
  both(mnts, (m) => fs.renameSync(`${m}/tree/a/f12`, `${m}/tree/a/f2`))
  both(mnts, (m) => fs.mkdirSync(`${m}/tree/a/f3`))
  same('made again: a file, a rename over, a directory', (m) => [fs.readFileSync(`${m}/tree/a/f1`, 'utf8'), fs.readFileSync(`${m}/tree/a/f2`, 'utf8'), fs.statSync(`${m}/tree/a/f3`).isDirectory(), fs.existsSync(`${m}/tree/a/f12`)])
  same('a directory made again over a whiteout starts empty', (m) => fs.readdirSync(`${m}/tree/a/f3`))

  // rm -rf of whole lower trees (deeper, two layers), and a few names elsewhere
  for (const m of mnts) {
    const r = spawnSync('rm', ['-rf', `${m}/tree/b`, `${m}/tree/c`])
    t.equal(r.status, 0, `rm -rf in ${m}: ${r.stderr}`)
  }
  const keepBefore = unlinksByBinding(s.mnt)
  for (const i of [0, 1, 2, 3, 9]) both(mnts, (m) => fs.unlinkSync(`${m}/keep/k${i}`))
  t.ok(unlinksByBinding(s.mnt) - keepBefore >= 3, 'the binding unlinked names JS had looked up')
  same('names JS had looked up are gone after the binding unlinked them', (m) => [1, 2, 3].map((i) => fs.existsSync(`${m}/keep/k${i}`)))
  same('and made again, they are new files', (m) => {
    fs.writeFileSync(`${m}/keep/k2`, 'new k2')
    return [fs.readFileSync(`${m}/keep/k2`, 'utf8'), fs.statSync(`${m}/keep/k2`).size]
  })
  t.equal(fs.statSync(`${s.mnt}/tree/b`, { throwIfNoEntry: false }), undefined, 'tree/b is gone')
  same('tree lists the same names', (m) => fs.readdirSync(`${m}/tree`).sort())
  same('keep lists the same names', (m) => fs.readdirSync(`${m}/keep`).sort())

  const merged = diffSnapshots(snapshot(kernel.mnt), snapshot(s.mnt), { ignore: ['mtime'] }, ['kernel', 'stratafs'])
  t.same(merged, [], 'the merged trees are the same')
  const upper = diffSnapshots(snapshot(kernel.upper!, 'upper'), snapshot(strata.upper!, 'upper'), { ignore: ['mtime'], ignoreLinks: true }, ['kernel', 'stratafs'])
  t.same(upper, [], 'the uppers are the same, in overlayfs\'s format (whiteouts, opaque directories)')
  const counted = strataStats<Stats>(s.mnt)
  t.ok(unlinksByBinding(s.mnt) > 40, `rm -rf: the binding did most unlinks (${unlinksByBinding(s.mnt)} of ${counted.ops.unlink?.count})`)
  t.equal(fs.readdirSync(`${strata.work!}/work`).length, 0, 'the work dir is empty')
})

t.test('unlinks the binding leaves to JS: names in the upper, open files, data volumes, and with it off', async (t) => {
  const { strata, lowers } = layers(t)
  lowersUnchanged(t, lowers)
  const volume = tempDir(t)
  for (let i = 0; i < 5; i++) fs.writeFileSync(`${volume}/v${i}`, `v${i}\n`)
  const s = await mountUnion(t, 'stratafs', { ...strata, options: [`volume=${volume}:/keep/vol`] })
  spawnSync('ls', ['-lR', s.mnt])
  fs.unlinkSync(`${s.mnt}/tree/a/f0`) // tree/a in the upper now
  // a file in the upper: removed, no whiteout needed (only in the lower ones)
  fs.writeFileSync(`${s.mnt}/tree/a/new`, 'n')
  fs.unlinkSync(`${s.mnt}/tree/a/new`)
  t.equal(fs.existsSync(`${strata.upper}/tree/a/new`), false, 'an upper-only file is removed, not whited out')
  // a lower file copied up: a whiteout replaces the copy
  fs.appendFileSync(`${s.mnt}/tree/a/f1`, 'more')
  fs.unlinkSync(`${s.mnt}/tree/a/f1`)
  t.equal(fs.lstatSync(`${strata.upper}/tree/a/f1`).isCharacterDevice(), true, 'a copied-up lower file leaves a whiteout')
  // a file still open: libfuse hides it, and it stays readable through its descriptor
  const fd = fs.openSync(`${s.mnt}/tree/a/f2`, 'r')
  fs.unlinkSync(`${s.mnt}/tree/a/f2`)
  t.equal(fs.existsSync(`${s.mnt}/tree/a/f2`), false, 'an open file unlinked is gone from its directory')
  t.equal(fs.readFileSync(fd, 'utf8'), 'a2\n', 'and reads through its descriptor')
  fs.closeSync(fd)
  await waitFor(() => fs.readdirSync(`${strata.upper!}/tree/a`).every((n) => !n.startsWith('.fuse_hidden')))
  t.same(fs.readdirSync(`${strata.upper!}/tree/a`).filter((n) => n.startsWith('.fuse_hidden')), [], 'once it is closed, the upper holds no hidden name')
  t.equal(fs.lstatSync(`${strata.upper!}/tree/a/f2`).isCharacterDevice(), true, 'and a whiteout where it was')
  // a data volume's files are the volume's: removed there, nothing in the upper
  spawnSync('ls', ['-l', `${s.mnt}/keep/vol`])
  fs.unlinkSync(`${s.mnt}/keep/vol/v1`)
  fs.unlinkSync(`${s.mnt}/keep/vol/v2`)
  t.same(fs.readdirSync(volume).sort(), ['v0', 'v3', 'v4'], 'unlinks in a volume remove the volume\'s files')
  t.equal(fs.existsSync(`${strata.upper}/keep/vol/v1`), false, 'and leave nothing in the upper')
  t.same(fs.readdirSync(`${s.mnt}/tree/a`).filter((n) => /^f[0-2]$|^new$/.test(n)), [], 'tree/a lists none of them')

  // with STRATA_NO_CUNLINK=1 every unlink is JS's
  const m2 = await mountSwitchedOff(t, layers(t).strata, 'STRATA_NO_CUNLINK')
  spawnSync('ls', ['-lR', m2.mnt])
  const r = spawnSync('rm', ['-rf', `${m2.mnt}/tree`])
  t.equal(r.status, 0, r.stderr.toString())
  t.equal(unlinksByBinding(m2.mnt), 0, 'STRATA_NO_CUNLINK=1: the binding unlinked nothing')
  t.equal(fs.existsSync(`${m2.mnt}/tree`), false, 'and rm -rf worked')
})

t.test('unlinks racing copy-ups, creates and listings in the same directories end as each asked', async (t) => {
  const root = tempDir(t)
  const lower = `${root}/lower`
  const files = 200
  for (let d = 0; d < 4; d++) {
    fs.mkdirSync(`${lower}/d${d}`, { recursive: true })
    for (let i = 0; i < files; i++) fs.writeFileSync(`${lower}/d${d}/f${i}`, `${d}:${i}\n`)
  }
  lowersUnchanged(t, [lower])
  const d: UnionDirs = { lowers: [lower], upper: `${root}/upper`, work: `${root}/work`, mnt: `${root}/mnt` }
  for (const p of [d.upper!, d.work!, d.mnt]) fs.mkdirSync(p)
  const m = await mountUnion(t, 'stratafs', d)
  spawnSync('ls', ['-lR', m.mnt])
  // per directory: one process unlinks the even files, one appends to the odd ones (a copy-up
  // each), one creates new names, one lists again and again; all at once
  const worker = `
import os, sys
mnt, role, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for d in range(4):
    base = f'{mnt}/d{d}'
    for i in range(n):
        if role == 'unlink' and i % 2 == 0: os.unlink(f'{base}/f{i}')
        elif role == 'append' and i % 2 == 1:
            with open(f'{base}/f{i}', 'a') as f: f.write('+')
        elif role == 'create' and i % 4 == 0:
            with open(f'{base}/new{i}', 'w') as f: f.write('new')
        elif role == 'list' and i % 8 == 0: os.listdir(base)
`
  t.same(await raceRoles(worker, ['unlink', 'append', 'create', 'list'], m.mnt, String(files)), [], 'every process did what it asked')
  for (let dir = 0; dir < 4; dir++) {
    const base = `${m.mnt}/d${dir}`
    const want = new Map<string, string>()
    for (let i = 0; i < files; i++) {
      if (i % 2 === 1) want.set(`f${i}`, `${dir}:${i}\n+`)
      if (i % 4 === 0) want.set(`new${i}`, 'new')
    }
    t.same(fileContents(base), [...want].sort(), `d${dir}: the unlinked files are gone, the appended and new ones hold what was written`)
    const upper = fs.readdirSync(`${d.upper!}/d${dir}`).filter((n) => fs.lstatSync(`${d.upper!}/d${dir}/${n}`).isCharacterDevice())
    t.equal(upper.length, files / 2, `d${dir}: one whiteout in the upper per unlinked file`)
  }
  t.ok(unlinksByBinding(m.mnt) > 0, `some unlinks were the binding's (${unlinksByBinding(m.mnt)} of ${4 * files / 2})`)
})

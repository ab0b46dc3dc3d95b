/**
 * A listing's attributes taken at once (native statNames, UnionFs.statListed, LowerTree.statAll):
 * one native call per layer stats every entry of a directory being listed with attributes and
 * asks whether it has xattrs, splitting a big directory over two threads. Through real mounts,
 * side by side with kernel overlayfs: after `ls -l`, every entry's attributes and xattrs are
 * overlayfs's, entries with xattrs still show them, and the xattr-free ones are answered without
 * the daemon. The native call itself is checked directly for what a mount cannot show (slots,
 * failures left to the caller, nothing followed).
 */
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import t, { type Test } from 'tap'
import { mountUnion, strataStats, type UnionDirs } from '../helpers/mounts'
import { tempDir } from '../helpers/tmp'
import { native, STAT_NAMES_STATTED, STAT_NAMES_XATTRS_KNOWN, STAT_NAMES_XATTR_FREE } from '../../src/native'
import { jsOpCount, lowersUnchanged, observe, py } from './util'

const setx = (p: string, name: string, value: string): void => {
  const r = py('import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode(), follow_symlinks=False)', p, name, value)
  if (r.status !== 0) throw new Error(`setxattr ${p}: ${r.stderr}`)
}

/**
 * Two lowers and an upper with a 1,100-entry directory `big` spread over all three (xattrs on a few
 * entries of each, a whiteout, hard links, a symlink, a merged subdirectory); the kernel's upper is
 * a copy of strata's.
 */
function layers(t: Test): { strata: UnionDirs, kernel: UnionDirs, lowers: string[] } {
  const root = tempDir(t)
  const lowers = [`${root}/l1`, `${root}/l2`]
  const [top, bottom] = lowers as [string, string]
  fs.mkdirSync(`${bottom}/big/sub`, { recursive: true })
  fs.mkdirSync(`${top}/big/sub`, { recursive: true })
  for (let i = 0; i < 600; i++) fs.writeFileSync(`${bottom}/big/b${i}`, 'b'.repeat(i % 7))
  for (let i = 0; i < 200; i++) fs.writeFileSync(`${top}/big/t${i}`, 't'.repeat(i % 5))
  fs.writeFileSync(`${top}/big/b5`, 'top b5') // shadows the bottom one
  fs.writeFileSync(`${bottom}/big/sub/s`, 's')
  fs.writeFileSync(`${top}/big/sub/s2`, 's2')
  fs.symlinkSync('/etc/passwd', `${bottom}/big/link-out`)
  for (const name of ['b7', 'b300', 'b555']) setx(`${bottom}/big/${name}`, 'user.from', `bottom ${name}`)
  setx(`${top}/big/t150`, 'user.from', 'top t150')
  const upper = `${root}/strata-upper`
  fs.mkdirSync(`${upper}/big`, { recursive: true })
  for (let i = 0; i < 300; i++) fs.writeFileSync(`${upper}/big/u${i}`, 'u'.repeat(i % 3))
  for (const name of ['u10', 'u250']) setx(`${upper}/big/${name}`, 'user.from', `upper ${name}`)
  fs.linkSync(`${upper}/big/u20`, `${upper}/big/u20-link`) // two names: not kept by the kernel
  fs.chmodSync(`${upper}/big/u30`, 0o600)
  fs.mkdirSync(`${upper}/big/udir`)
  const wh = spawnSync('mknod', [`${upper}/big/b9`, 'c', '0', '0']) // b9 deleted in the upper
  if (wh.status !== 0) throw new Error(`mknod: ${wh.stderr}`)
  const dirs = (name: string): UnionDirs => {
    const d = { lowers, upper: `${root}/${name}-upper`, work: `${root}/${name}-work`, mnt: `${root}/${name}-mnt` }
    for (const p of [d.work, d.mnt]) fs.mkdirSync(p)
    return d
  }
  const strata = dirs('strata')
  const kernel = dirs('kernel')
  const cp = spawnSync('cp', ['-a', upper, kernel.upper!])
  if (cp.status !== 0) throw new Error(`cp -a: ${cp.stderr}`)
  return { strata, kernel, lowers }
}

/** Every entry of argv[1]/big: the attributes overlayfs shows the same on any mount, and its xattrs. */
const ENTRIES = `
import os, sys, json
d = os.path.join(sys.argv[1], 'big')
out = []
for name in sorted(os.listdir(d)):
    p = os.path.join(d, name)
    st = os.lstat(p)
    x = sorted((k, os.getxattr(p, k, follow_symlinks=False).decode()) for k in os.listxattr(p, follow_symlinks=False))
    out.append([name, st.st_mode, st.st_nlink if not os.path.isdir(p) else 0, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, x])
print(json.dumps(out))
`

const opCount = (mnt: string, op: string): number =>
  strataStats<{ ops: Record<string, { count: number }> }>(mnt).ops[op]?.count ?? 0

t.test('ls -l of a directory over two lowers and the upper: every entry as kernel overlayfs shows it', async (t) => {
  const { strata, kernel, lowers } = layers(t)
  lowersUnchanged(t, lowers)
  const s = await mountUnion(t, 'stratafs', strata)
  const k = await mountUnion(t, 'kernel', kernel)
  const getxattrs = jsOpCount(s.mnt, 'getxattr')
  for (const m of [s.mnt, k.mnt]) {
    const ls = spawnSync('ls', ['-l', `${m}/big`], { encoding: 'utf8', maxBuffer: 1 << 24 })
    t.equal(ls.status, 0, ls.stderr)
  }
  // ls -l asks for ~2 xattrs of each of ~1,100 entries; those of entries without any are
  // answered by the binding when the listing said so
  const reached = jsOpCount(s.mnt, 'getxattr') - getxattrs
  t.ok(reached <= 60, `at most ~2% of ls -l's getxattrs reached the daemon (${reached} did)`)
  const seen = observe(t, 'stratafs', ENTRIES, s.mnt)
  const want = observe(t, 'kernel', ENTRIES, k.mnt)
  t.equal(seen.length, 1 + 600 - 1 + 200 + 1 + 300 + 1 + 1, 'every name once, b9 whited out')
  t.same(seen, want, 'attributes and xattrs after the listing are kernel overlayfs\'s')
  const byName = new Map((seen as unknown[][]).map((e) => [e[0] as string, e]))
  t.same(byName.get('b300')![7], [['user.from', 'bottom b300']], 'a bottom entry past the split keeps its xattr')
  t.same(byName.get('u250')![7], [['user.from', 'upper u250']], 'an upper entry past the split keeps its xattr')
  t.equal(byName.get('u20-link')![2], 2, 'hard-linked upper entry: two links')
})

t.test('statNames: slots, bits, and failures left to the caller', (t) => {
  const dir = tempDir(t)
  fs.writeFileSync(`${dir}/plain`, 'x')
  fs.writeFileSync(`${dir}/with`, 'y')
  setx(`${dir}/with`, 'user.k', 'v')
  fs.symlinkSync('/etc', `${dir}/link`)
  fs.mkdirSync(`${dir}/sub`)
  fs.symlinkSync(`${dir}/sub`, `${dir}/sublink`)
  const names = ['plain', 'with', 'link', 'missing', 'sub']
  const slots = Uint32Array.from([4, 0, 2, 1, 3])
  const stats = new Float64Array(5 * 16)
  const state = new Uint8Array(5)
  t.equal(native.statNames(dir, names, slots, stats, state, true), 4, 'four entries statted')
  const mode = (slot: number): number => stats[slot * 16 + 2]! & 0o170000
  const all = STAT_NAMES_STATTED | STAT_NAMES_XATTRS_KNOWN
  t.equal(state[4], all | STAT_NAMES_XATTR_FREE, 'plain (slot 4): statted, no xattrs')
  t.equal(mode(4), 0o100000)
  t.equal(stats[4 * 16 + 1], fs.lstatSync(`${dir}/plain`).ino, 'its own inode number')
  t.equal(state[0], all, 'with (slot 0): statted, has xattrs')
  t.equal(mode(2), 0o120000, 'link (slot 2): the symlink itself, not /etc')
  t.equal(state[1], 0, 'missing (slot 1): no bits, for the caller to report')
  t.equal(mode(3), 0o040000, 'sub (slot 3): a directory')
  // already known: not asked again (stats left as they are)
  stats[4 * 16 + 7] = 12345
  t.equal(native.statNames(dir, ['plain'], Uint32Array.from([4]), stats, state, true), 0, 'nothing statted again')
  t.equal(stats[4 * 16 + 7], 12345)
  // without xattrs: statted only
  const state2 = new Uint8Array(1)
  native.statNames(dir, ['with'], Uint32Array.from([0]), new Float64Array(16), state2, false)
  t.equal(state2[0], STAT_NAMES_STATTED, 'xattrs not asked for')
  // the directory: never followed, errors as -errno
  t.equal(native.statNames(`${dir}/sublink`, ['x'], Uint32Array.from([0]), new Float64Array(16), new Uint8Array(1), true), -20, 'a symlinked directory: ENOTDIR, not followed')
  t.equal(native.statNames(`${dir}/nope`, ['x'], Uint32Array.from([0]), new Float64Array(16), new Uint8Array(1), true), -2, 'no directory: ENOENT')
  t.throws(() => native.statNames(dir, ['plain'], Uint32Array.from([1]), new Float64Array(16), new Uint8Array(1), true), 'a slot past the buffers throws')
  t.end()
})

t.test('statNames on a big directory: both threads\' halves statted, each entry into its slot', (t) => {
  const dir = tempDir(t)
  const n = 1000
  const names: string[] = []
  for (let i = 0; i < n; i++) {
    names.push(`f${i}`)
    fs.writeFileSync(`${dir}/f${i}`, 'z'.repeat(i % 50))
  }
  setx(`${dir}/f900`, 'user.k', 'v')
  const slots = Uint32Array.from(names.keys()).reverse() // entry i into slot n-1-i
  const stats = new Float64Array(n * 16)
  const state = new Uint8Array(n)
  t.equal(native.statNames(dir, names, slots, stats, state, true), n)
  let wrong = 0
  for (let i = 0; i < n; i++) {
    const slot = n - 1 - i
    if (stats[slot * 16 + 7] !== i % 50 || stats[slot * 16 + 1] !== fs.lstatSync(`${dir}/f${i}`).ino) wrong++
    const free = i !== 900
    if (state[slot] !== (STAT_NAMES_STATTED | STAT_NAMES_XATTRS_KNOWN | (free ? STAT_NAMES_XATTR_FREE : 0))) wrong++
  }
  t.equal(wrong, 0, 'every entry\'s size, inode number and xattr bits in its own slot')
  t.end()
})

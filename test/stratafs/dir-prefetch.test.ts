/**
 * Lookups in a directory nobody listed (src/fuse/dir-prefetch.ts): after a few, the daemon hands
 * the binding the attributes of all its entries, and the binding answers the lookups after. The
 * same script on kernel overlayfs and on stratafs must observe the same attributes, also for
 * entries changed between the prefetch and their lookup (chmod, a write through an open handle,
 * unlink, a rename over one, a new file, the directory renamed away and replaced); and on
 * stratafs most lookups must not reach JS.
 */
import * as fs from 'node:fs'
import t from 'tap'
import { DirPrefetch, MAX_ENTRIES, MAX_NAMES } from '../../src/fuse/dir-prefetch'
import { mountUnion, strataStats } from '../helpers/mounts'
import { lowersUnchanged, makeDirs, observe } from './util'

interface Stats {
  ops: Record<string, { count: number, errors?: Record<string, number> }>
  dirPrefetch?: { dirs: number, entries: number, namesOnly?: number }
}

const FILES = 200

// Each observation: mode, size, nlink, mtime (of files not written now), and which earlier name
// had the same st_ino (the numbers differ between kernel overlayfs and stratafs; sameness must not).
const SCRIPT = `
import json, os, sys, time
mnt = sys.argv[1]
FILES = ${FILES}
p = lambda n: mnt + '/d/' + n
out, inos = [], {}
def seen(label, name):
    try: st = os.stat(p(name))
    except OSError as e: out.append([label, name, e.errno]); return
    same = inos.get(st.st_ino); inos.setdefault(st.st_ino, name)
    mtime = None if name in ('f041', 'new') or name.startswith(('../e/', 'nope')) else st.st_mtime_ns  # written by the test: differs from run to run
    out.append([label, name, oct(st.st_mode), st.st_size, st.st_nlink, mtime, same])
for i in range(8): seen('first', 'f%03d' % i)
time.sleep(0.3)  # the prefetch runs after the lookup that asks for it is answered
os.chmod(p('f040'), 0o600)
fd = os.open(p('f041'), os.O_WRONLY | os.O_APPEND); os.write(fd, b'x' * 1000)
os.unlink(p('f042'))
os.rename(p('f043'), p('f044'))
with open(p('new'), 'w') as f: f.write('new')
for i in range(8, FILES): seen('rest', 'f%03d' % i)
seen('rest', 'new')
os.close(fd); seen('closed', 'f041')
# misses: after a few, the binding answers the others from the directory's names; names made or
# removed after that must be seen, also once the kernel has forgotten its dentries (drop_caches)
for i in range(30): seen('miss', 'nope%d' % i)
time.sleep(0.3)
def forget_dentries():
    with open('/proc/sys/vm/drop_caches', 'w') as f: f.write('2')
os.mkdir(p('nope4'))  # alone first: a mkdir leaves the rest of the binding's table as it is
forget_dentries()
for n in ('nope4', 'nope6'): seen('miss after mkdir', n)
with open(p('nope3'), 'w') as f: f.write('made after the misses')
with open(p('made'), 'w') as f: f.write('renamed to a missed name')
os.rename(p('made'), p('nope5'))  # (a lower file renamed would change st_ino on stratafs: a copy-up)
os.unlink(p('f051'))
forget_dentries()
for n in ['nope%d' % i for i in range(8)] + ['made', 'f051', 'f052']: seen('miss after changes', n)
# a directory of the upper, prefetched, then renamed away, another one renamed to its name: its
# prefetched entries must not answer (kernel overlayfs renames a lower directory only with
# redirect_dir, hence directories of the upper's own; not one made by mkdir here, whose names
# the binding knows)
q = lambda n: mnt + '/e/' + n
for i in range(8): seen('upper dir', '../e/g%02d' % i)
time.sleep(0.3)
os.rename(mnt + '/e', mnt + '/e2'); os.rename(mnt + '/f', mnt + '/e')
for i in range(8, 12): seen('replaced', '../e/g%02d' % i)
print(json.dumps(out))
`

t.test('lookups in an unlisted directory: the binding answers them with kernel overlayfs\'s attributes', async (t) => {
  const results: Record<string, unknown> = {}
  let stats: Stats | null = null
  for (const target of ['kernel', 'stratafs'] as const) {
    const d = makeDirs(t)
    const [, bottom] = d.lowers as [string, string]
    fs.mkdirSync(`${bottom}/d`)
    for (let i = 0; i < FILES; i++) {
      const f = `${bottom}/d/f${String(i).padStart(3, '0')}`
      fs.writeFileSync(f, 'y'.repeat(i * 3))
      fs.chmodSync(f, 0o640 + (i % 8))
      fs.utimesSync(f, 1_600_000_000 + i, 1_600_000_000 + i)
    }
    fs.mkdirSync(`${d.upper}/e`)
    for (let i = 0; i < 16; i++) fs.writeFileSync(`${d.upper}/e/g${String(i).padStart(2, '0')}`, 'g'.repeat(i))
    fs.mkdirSync(`${d.upper}/f`)
    fs.writeFileSync(`${d.upper}/f/g09`, 'another g09')
    lowersUnchanged(t, d.lowers)
    const m = await mountUnion(t, target, d)
    const before = target === 'stratafs' ? strataStats<Stats>(m.mnt) : null
    results[target] = observe(t, target, SCRIPT, m.mnt)
    if (before) {
      const after = strataStats<Stats>(m.mnt)
      const enoent = (s: Stats): number => s.ops.getattr?.errors?.ENOENT ?? 0
      stats = { ops: { getattr: { count: (after.ops.getattr?.count ?? 0) - (before.ops.getattr?.count ?? 0), errors: { ENOENT: enoent(after) - enoent(before) } } }, dirPrefetch: after.dirPrefetch }
    }
    await m.unmount()
  }
  t.equal((results.kernel as unknown[]).length, FILES + 14 + 43, 'every lookup observed')
  t.same(results.stratafs, results.kernel, 'every attribute as on kernel overlayfs')
  t.ok((stats?.dirPrefetch?.dirs ?? 0) >= 1, `the directory was prefetched (${JSON.stringify(stats?.dirPrefetch)})`)
  // The lookups before each prefetch, and those of changed entries and of the renamed directory
  // after it, reach JS (~40, with timing); without prefetching, all would
  const lookups = FILES + 14 + 43
  t.ok((stats?.ops.getattr?.count ?? Infinity) <= lookups / 2, `getattrs that reached JS: ${stats?.ops.getattr?.count} of ${lookups} lookups`)
  // 30 misses, then 13 lookups after changes (9 of them misses) and the few misses of the rest of
  // the script: the binding answers the misses from the 5th of the 30 on (the changes make it
  // forget the names, so those after them reach JS)
  const misses = stats?.ops.getattr?.errors?.ENOENT ?? Infinity
  t.ok(misses <= 20 && (stats?.dirPrefetch?.namesOnly ?? 0) >= 1, `misses answered in JS: ${misses} (${stats?.dirPrefetch?.namesOnly} names-only prefetch)`)
})

t.test('when a directory is prefetched: enough lookups for its size, not twice within 10 s', async (t) => {
  const p = new DirPrefetch()
  const at = (dir: string, size: number, n: number, now: number, found = true): boolean[] =>
    Array.from({ length: n }, (_, i) => p.lookedUp(dir, found, () => size, now + i) === (found ? 'attrs' : 'names'))
  t.same(at('small', 90, 4, 0), [false, false, false, true], 'a 90-entry directory: at its 4th lookup')
  t.same(at('small', 90, 50, 10), Array(50).fill(false), 'not again while its prefetch may still answer')
  t.same(at('small', 90, 4, 20_000), [false, false, false, true], 'again after 10 s')
  const big = at('big', 3200, 120, 0)
  t.equal(big.indexOf(true), 99, 'a 3,200-entry directory: at its 100th lookup (1/32 of it)')
  t.notOk(at('huge', MAX_ENTRIES + 1, 2000, 0).includes(true), `never one of more than ${MAX_ENTRIES} entries`)
  t.same([...at('gaps', 90, 3, 0), ...at('gaps', 90, 3, 5000)], Array(6).fill(false), 'lookups 2 s apart start over')
  at('cleared', 90, 3, 0)
  p.clear()
  t.same(at('cleared', 90, 4, 10), [false, false, false, true], 'a change in the mount starts every count over')
  t.same(at('misses', 3200, 4, 0, false), [false, false, false, true], 'misses: the names alone, at the 4th whatever the size')
  t.same(at('misses', 3200, 50, 10, false), Array(50).fill(false), 'not again within 10 s')
  t.notOk(at('huge misses', MAX_NAMES + 1, 100, 0, false).includes(true), `not for more than ${MAX_NAMES} names`)
  at('after attrs', 90, 4, 0)
  t.same(at('after attrs', 90, 8, 10, false), Array(8).fill(false), 'nor within 10 s of a prefetch of the attributes (which gave the names too)')
})

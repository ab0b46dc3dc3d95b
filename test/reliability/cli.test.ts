/**
 * Invalid command lines (issue 6) not already covered by test/stratafs/cli.test.ts: a `-o` with no
 * value, empty upperdir=/workdir=, option names without a value, the same layer spelled twice
 * differently (trailing slash, symlink), upper and work the same or nested, the mountpoint a file
 * or inside the upper, extra operands, unknown flags, an unbalanced quote inside lowerdir=. Each must exit
 * non-zero with a message starting `stratafs: `, mount nothing and leave no daemon.
 */
import t from 'tap'
import * as fs from 'node:fs'
import { isMounted } from '../helpers/mounts'
import { daemonPids, runStratafs, unmountLater } from '../stratafs/util'
import { layout } from './util'

t.test('invalid command lines fail clearly and mount nothing', async (t) => {
  const d = layout(t, 2)
  unmountLater(t, d.mnt)
  const [A, B] = d.lowers as [string, string]
  fs.symlinkSync(A, `${d.root}/alias`)
  fs.writeFileSync(`${d.root}/afile`, '')
  fs.mkdirSync(`${d.upper}/inner`)
  const U = `upperdir=${d.upper},workdir=${d.work}`
  const cases: [string, string[], RegExp?][] = [
    ['-o without a value', ['-o'], /-o|option/i],
    ['-o without a value before the mountpoint', [d.mnt, '-o']],
    ['empty upperdir', ['-o', `lowerdir=${A},upperdir=,workdir=${d.work}`, d.mnt], /upperdir/],
    ['empty workdir', ['-o', `lowerdir=${A},upperdir=${d.upper},workdir=`, d.mnt], /workdir/],
    ['lowerdir without =', ['-o', 'lowerdir', d.mnt], /lowerdir/],
    ['upperdir without =', ['-o', `lowerdir=${A},upperdir,workdir=${d.work}`, d.mnt], /upperdir/],
    ['lowerdir only a colon', ['-o', 'lowerdir=:', d.mnt], /lowerdir|empty/],
    ['same layer with a trailing slash', ['-o', `lowerdir=${A}:${A}/`, d.mnt], /twice/],
    ['same layer through a symlink', ['-o', `lowerdir=${A}:${d.root}/alias`, d.mnt], /twice/],
    ['upper listed as a lower', ['-o', `lowerdir=${A}:${d.upper},${U}`, d.mnt]],
    ['upper and work the same dir', ['-o', `lowerdir=${A},upperdir=${d.upper},workdir=${d.upper}`, d.mnt], /workdir|upperdir/],
    ['work inside upper', ['-o', `lowerdir=${A},upperdir=${d.upper},workdir=${d.upper}/inner`, d.mnt], /workdir|upperdir/],
    ['mountpoint is a file', ['-o', `lowerdir=${A},${U}`, `${d.root}/afile`], /afile/],
    ['mountpoint inside the upper', ['-o', `lowerdir=${A},${U}`, `${d.upper}/inner`], /inner|upper/],
    ['mountpoint is a lower', ['-o', `lowerdir=${A}:${B}`, B], /l2/],
    ['extra operand', ['-o', `lowerdir=${A}`, d.mnt, `${d.root}/extra`, 'more']],
    ['unknown flag', ['--bogus', '-o', `lowerdir=${A}`, d.mnt], /bogus/],
    ['quote inside lowerdir', ['-o', `lowerdir="${A}`, d.mnt]],
  ]
  for (const [name, args, re] of cases) {
    const r = runStratafs(args)
    const line = r.stderr.split('\n')[0] ?? ''
    t.not(r.status, 0, `${name}: exit ${r.status} (${line})`)
    t.notOk(r.error, `${name}: returned within 30 s`)
    t.match(line, /^stratafs: \S/, `${name}: message starts with the program name`)
    if (re) t.match(line, re, `${name}: message names the problem`)
    t.notOk(isMounted(d.mnt) || isMounted(B) || isMounted(`${d.upper}/inner`) || isMounted(`${d.root}/afile`), `${name}: nothing mounted`)
    for (const m of [d.mnt, B, `${d.upper}/inner`]) t.same(daemonPids(m), [], `${name}: no daemon left for ${m}`)
  }
  t.same(fs.readdirSync(d.work), [], 'the workdir was not touched by refused mounts')
})

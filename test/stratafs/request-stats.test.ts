/**
 * `strata stats` counts every request the kernel sent (`requests`, by FUSE opcode), whoever answered
 * it: JS, the binding on a worker thread, or the channel itself (a known-absent xattr, an empty
 * xattr list, attributes it last sent). Through a real mount: workloads whose request counts the
 * kernel fixes, checked against the counters.
 */
import * as fs from 'node:fs'
import t from 'tap'
import { strataStats } from '../helpers/mounts'
import { jsOpCount, lowersUnchanged, makeDirs, mountDirs, py, undisturbed } from './util'

interface Req { count: number, answered: number, meanUs: number, errors: Record<string, number>, latencyUsLog2: number[] }
interface Stats { requests: Record<string, Req>, servedBy: Record<string, Record<string, number>> }

const requests = (mnt: string): Record<string, Req> => strataStats<Stats>(mnt).requests
const count = (mnt: string, op: string): number => requests(mnt)[op]?.count ?? 0

/** argv[3] getxattrs of the name argv[2] on argv[1], errors ignored. */
const GETX = 'import os, sys\nfor i in range(int(sys.argv[3])):\n  try: os.getxattr(sys.argv[1], sys.argv[2], follow_symlinks=False)\n  except OSError as e: pass'

t.test('requests: each of the kernel\'s, by opcode, whoever answered it', async (t) => {
  const d = makeDirs(t)
  lowersUnchanged(t, d.lowers)
  const m = await mountDirs(t, d)
  const motd = `${m.mnt}/etc/motd`

  // GETXATTR: the first of a name reaches JS, which says the absence holds; the channel answers
  // the next ones. All are the kernel's requests (it never caches a FUSE getxattr). A cached path
  // costs no request at all. A measurement during which another test file dropped the kernel's
  // dentries and inodes (they run two at a time) is discarded and made again: the kernel then
  // looks the file up again, under a nodeid new to the channel.
  const byChannel = (): number => strataStats<Stats>(m.mnt).servedBy.binding?.getxattr ?? 0
  const measure = (): number[] => {
    fs.lstatSync(motd)
    t.equal(py(GETX, motd, 'user.none', '1').status, 0, 'a getxattr of an absent name')
    const r0 = requests(m.mnt)
    const [js0, channel0] = [jsOpCount(m.mnt, 'getxattr'), byChannel()]
    t.equal(py(GETX, motd, 'user.none', '25').status, 0, 'and 25 more')
    const r1 = requests(m.mnt)
    const [js1, channel1] = [jsOpCount(m.mnt, 'getxattr'), byChannel()]
    for (let i = 0; i < 100; i++) fs.lstatSync(motd)
    const r2 = requests(m.mnt)
    const delta = (a: Record<string, Req>, b: Record<string, Req>, op: string): number => (b[op]?.count ?? 0) - (a[op]?.count ?? 0)
    return [delta(r0, r1, 'GETXATTR'), channel1 - channel0, js1 - js0, (r1.GETXATTR?.errors.ENODATA ?? 0) - (r0.GETXATTR?.errors.ENODATA ?? 0),
      delta(r1, r2, 'LOOKUP'), delta(r1, r2, 'GETATTR')]
  }
  const seen = await undisturbed(t, measure)
  if (seen === null) return
  const [getxattrs, channel, js, enodata, lookups, getattrs] = seen as [number, number, number, number, number, number]
  t.equal(getxattrs, 25, '25 getxattrs: 25 GETXATTR requests counted')
  t.equal(channel, 25, 'the channel answered each')
  t.equal(js, 0, 'none reached JS')
  t.equal(enodata, 25, 'each answered ENODATA')
  t.equal(lookups, 0, '100 lstats of a cached path: no LOOKUP')
  t.equal(getattrs, 0, 'and no GETATTR')

  // changes JS makes: one request each
  const mkdirs = count(m.mnt, 'MKDIR')
  fs.mkdirSync(`${m.mnt}/made`)
  t.equal(count(m.mnt, 'MKDIR') - mkdirs, 1, 'a mkdir: one MKDIR')
  const missing = count(m.mnt, 'LOOKUP')
  const found = Array.from({ length: 30 }, (_, i) => `${m.mnt}/made/none${i}`).filter((p) => fs.existsSync(p))
  t.same(found, [], 'none of 30 names exists in the new directory')
  t.ok(count(m.mnt, 'LOOKUP') - missing >= 30, `30 missing names in a new directory: a LOOKUP each (${count(m.mnt, 'LOOKUP') - missing})`)

  // every answered request is in one latency bucket; nothing is answered that did not arrive
  const all = requests(m.mnt)
  for (const [op, r] of Object.entries(all)) {
    t.equal(r.latencyUsLog2.reduce((a, b) => a + b, 0), r.answered, `${op}: the latency buckets hold every answer`)
    t.ok(r.answered <= r.count, `${op}: answered ${r.answered} of ${r.count}`)
  }
  t.equal(all.INIT?.answered, 1, 'INIT: one, answered')
  t.ok((all.LOOKUP?.meanUs ?? 0) > 0, 'a mean time per LOOKUP')
})

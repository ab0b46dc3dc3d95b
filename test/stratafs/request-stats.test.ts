/**
 * `strata stats` counts every request the kernel sent (`requests`, by FUSE opcode), whoever answered
 * it: JS, the binding on a worker thread, or the channel itself (a known-absent xattr, an empty
 * xattr list, attributes it last sent). Through a real mount: workloads whose request counts the
 * kernel fixes, checked against the counters.
 */
import * as fs from 'node:fs'
import t from 'tap'
import { strataStats } from '../helpers/mounts'
import { jsOpCount, lowersUnchanged, makeDirs, mountDirs, py } from './util'

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
  fs.lstatSync(motd)

  // GETXATTR: the first of a name reaches JS, which says the absence holds; the channel answers
  // the next ones. All are the kernel's requests (it never caches a FUSE getxattr).
  t.equal(py(GETX, motd, 'user.none', '1').status, 0, 'a getxattr of an absent name')
  const before = count(m.mnt, 'GETXATTR')
  const jsBefore = jsOpCount(m.mnt, 'getxattr')
  const enodata = requests(m.mnt).GETXATTR?.errors.ENODATA ?? 0
  t.equal(py(GETX, motd, 'user.none', '25').status, 0, 'and 25 more')
  t.equal(count(m.mnt, 'GETXATTR') - before, 25, '25 getxattrs: 25 GETXATTR requests counted')
  t.equal(jsOpCount(m.mnt, 'getxattr'), jsBefore, 'none reached JS: the channel answered them')
  t.equal((requests(m.mnt).GETXATTR?.errors.ENODATA ?? 0) - enodata, 25, 'each answered ENODATA')

  // a cached path costs no request at all
  const lookups = count(m.mnt, 'LOOKUP')
  const getattrs = count(m.mnt, 'GETATTR')
  for (let i = 0; i < 100; i++) fs.lstatSync(motd)
  t.equal(count(m.mnt, 'LOOKUP'), lookups, '100 lstats of a cached path: no LOOKUP')
  t.equal(count(m.mnt, 'GETATTR'), getattrs, 'and no GETATTR')

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

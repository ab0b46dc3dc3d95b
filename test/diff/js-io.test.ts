/**
 * Differential suite, JS's own I/O path: stratafs answers the reads, writes, truncates and
 * attribute changes of an open file in the binding (src/fuse/direct-io.ts) or lets the kernel do
 * them (passthrough); JS serves them only for a handle the binding could not register. Here no
 * handle is registered (STRATA_NO_FDIO=1 in the daemon's environment), so that path answers every
 * read and write of a few seeds of random ops, compared with kernel overlayfs as random.test.ts
 * does. DIFF_JS_SEEDS=11,12 and DIFF_OPS=300 by default.
 */
import t from 'tap'
import { diffTarget, strataStats, targetUnavailable } from '../helpers/mounts'
import { showOp } from '../helpers/ops'
import { applyBoth, finalChecks, formatDivergences, setupPair } from './harness'
import { randomOps } from './random-ops'

t.setTimeout(20 * 60_000)
const target = diffTarget()
const seeds = (process.env.DIFF_JS_SEEDS ?? '11,12').split(',').map(Number)
const count = Number(process.env.DIFF_OPS ?? 300)
const why = target !== 'stratafs' ? `STRATA_NO_FDIO is stratafs's (target ${target})` : targetUnavailable(target) ?? targetUnavailable('kernel')
if (why) {
  t.fail(`cannot run the JS I/O differential suite: ${why}`)
} else {
  process.env.STRATA_NO_FDIO = '1' // the daemons this file starts inherit it
  for (const seed of seeds) {
    t.test(`random ops with JS serving every read and write, seed ${seed} (${count} ops) [kernel vs ${target}]`, async t => {
      const pair = await setupPair(t, seed, target)
      const ops = randomOps(seed, count, pair.names)
      const { divergences } = applyBoth(pair, ops)
      const first = divergences[0]
      t.same(divergences.length ? formatDivergences(`seed ${seed}`, divergences, target) : '', '',
        `seed ${seed}: every op result equals the kernel's` + (first ? ` (first divergence at op #${first.index} ${showOp(first.op)}; replay: DIFF_JS_SEEDS=${seed} DIFF_OPS=${count})` : ''))
      const s = strataStats<{ ops: Record<string, { count: number }>, servedBy: { binding: Record<string, number> } }>(pair.sut.mnt)
      t.ok((s.ops.write?.count ?? 0) > 0 && (s.ops.read?.count ?? 0) > 0, `reads and writes reached the daemon (${s.ops.read?.count ?? 0}, ${s.ops.write?.count ?? 0})`)
      t.equal(s.servedBy.binding.write, 0, 'none of the writes was the binding\'s')
      await finalChecks(t, pair, `seed ${seed}`)
    })
  }
}

/**
 * Differential suite, seeded-random part: for each seed, a fresh pair of mounts (kernel and
 * $DIFF_TARGET) over the fixture built from that seed, the same random op sequence applied to
 * both, every result compared, then the full battery (trees, uppers, lowers, remount,
 * cross-mount). DIFF_SEEDS=1,...,8 and DIFF_OPS=300 by default; every message names the seed.
 */
import t from 'tap'
import { diffTarget, targetUnavailable } from '../helpers/mounts'
import { showOp } from '../helpers/ops'
import { applyBoth, finalChecks, formatDivergences, setupPair } from './harness'
import { randomOps } from './random-ops'

t.setTimeout(20 * 60_000)
const target = diffTarget()
const seeds = (process.env.DIFF_SEEDS ?? '1,2,3,4,5,6,7,8').split(',').map(Number)
const count = Number(process.env.DIFF_OPS ?? 300)
const why = targetUnavailable(target) ?? targetUnavailable('kernel')
if (why) {
  t.fail(`cannot run the differential suite against ${target}: ${why}`)
} else {
  for (const seed of seeds) {
    t.test(`random ops, seed ${seed} (${count} ops) [kernel vs ${target}]`, async t => {
      const pair = await setupPair(t, seed, target)
      const ops = randomOps(seed, count, pair.names)
      const { divergences, kernelExdev } = applyBoth(pair, ops)
      if (kernelExdev.length) t.comment(`seed ${seed}: kernel answered EXDEV (mv-style copy+delete used): ${kernelExdev.join(", ")}`)
      const first = divergences[0]
      t.same(divergences.length ? formatDivergences(`seed ${seed}`, divergences, target) : '', '',
        `seed ${seed}: every op result equals the kernel's` + (first ? ` (first divergence at op #${first.index} ${showOp(first.op)}; replay: DIFF_SEEDS=${seed} DIFF_OPS=${count})` : ''))
      await finalChecks(t, pair, `seed ${seed}`)
    })
  }
}

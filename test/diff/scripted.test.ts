/**
 * Differential suite, scripted part: every scenario in scenarios.ts runs on a fresh pair of
 * mounts (kernel overlayfs and $DIFF_TARGET) over identical fixtures; every op result, the merged
 * trees, the uppers (overlay format), the lowers (unchanged), a remount and a cross-mount of the
 * uppers are compared. Set DIFF_ONLY=<substring> to run only matching scenarios.
 */
import t from 'tap'
import { diffTarget, targetUnavailable } from '../helpers/mounts'
import { applyBoth, finalChecks, formatDivergences, setupPair } from './harness'
import { SCENARIOS } from './scenarios'

t.setTimeout(20 * 60_000)
const target = diffTarget()
const why = targetUnavailable(target) ?? targetUnavailable('kernel')
if (why) {
  t.fail(`cannot run the differential suite against ${target}: ${why}`)
} else {
  const only = process.env.DIFF_ONLY
  for (const sc of SCENARIOS.filter(s => !only || s.name.includes(only))) {
    t.test(`${sc.name} [kernel vs ${target}]`, async t => {
      const pair = await setupPair(t, 1, target)
      const { divergences, kernelExdev } = applyBoth(pair, sc.ops)
      if (kernelExdev.length) t.comment(`kernel answered EXDEV (mv-style copy+delete used): ${kernelExdev.join(', ')}`)
      t.same(divergences.length ? formatDivergences(sc.name, divergences, target) : '', '', `every op result equals the kernel's (${sc.ops.length} ops)`)
      await finalChecks(t, pair, sc.name)
    })
  }
}

/**
 * Data integrity (issue 6): test/reliability/fsx.py (random pwrite/pread/truncate/mmap
 * read+write/reopen against an in-memory model, verified) runs FSX_OPS (default 100,000)
 * operations on a new file and on a file copied up from a lower layer, in parallel; zero
 * mismatches allowed. Once with passthrough (the kernel reads and writes the files) and once
 * without (the daemon does).
 */
import t from 'tap'
import * as fs from 'node:fs'
import { lowersUnchanged } from '../stratafs/util'
import { REPO, layout, mountStratafs, pattern, pyBackground } from './util'

const OPS = Number(process.env.FSX_OPS ?? 100_000)
const FSX = `${REPO}/test/reliability/fsx.py`

// Both data paths: the kernel's own (passthrough, where it allows) and the daemon's (passthrough=0).
for (const extra of [[], ['passthrough=0']]) {
  t.test(`fsx: ${OPS} random operations on a new file and on a copied-up file, no mismatch${extra.length ? ` (${extra.join(',')})` : ''}`, async (t) => {
    const d = layout(t)
    fs.writeFileSync(`${d.lowers[0]}/lowerfile`, pattern(200 * 1024 + 123, 9))
    lowersUnchanged(t, d.lowers)
    mountStratafs(t, d, extra)
    fs.writeFileSync(`${d.mnt}/newfile`, '')
    const run = (file: string, seed: number) => pyBackground(`import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')`, [FSX, file, String(OPS), String(seed)])
    const started = Date.now()
    const jobs = [run(`${d.mnt}/newfile`, 1), run(`${d.mnt}/lowerfile`, 2)]
    let timer: NodeJS.Timeout | undefined
    const results = await Promise.race([Promise.all(jobs.map((j) => j.done)), new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), 300_000) })])
    clearTimeout(timer)
    if (results === 'timeout') {
      for (const j of jobs) { try { process.kill(j.pid, 'SIGKILL') } catch { /* done */ } }
      t.fail('fsx did not finish within 300 s')
      return
    }
    t.comment(`fsx took ${((Date.now() - started) / 1000).toFixed(1)} s`)
    for (const [k, r] of results.entries()) {
      const name = k === 0 ? 'new file' : 'copied-up file'
      const line = r.stdout.trim().split('\n').pop() ?? ''
      t.comment(`${name}: ${line} ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`)
      t.equal(r.code, 0, `${name}: fsx exited 0`)
      const o = JSON.parse(line || '{}') as { ops?: number; mismatches?: number; first?: string }
      t.equal(o.ops, OPS, `${name}: ${OPS} operations`)
      t.equal(o.mismatches, 0, `${name}: zero mismatches${o.first ? ` (${o.first})` : ''}`)
    }
    t.ok(fs.existsSync(`${d.upper}/lowerfile`), 'the lower file was copied up')
  })
}

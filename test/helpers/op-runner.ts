/**
 * Runs ops in a separate process, so a test can run them as another user:
 *   setpriv --reuid 1000 --regid 1000 --clear-groups node dist/test/helpers/op-runner.js < job.json
 * stdin: {"root": "<mount root>", "ops": [Op...]}; stdout: one JSON array of Results.
 * Owns nothing else; does nothing when it is not the main module or stdin is a terminal.
 */
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { Op, Result, runOp } from './ops'

export function runOpsAs(uid: number, gid: number, root: string, ops: Op[]): Result[] {
  const r = spawnSync('setpriv', ['--reuid', String(uid), '--regid', String(gid), '--clear-groups', process.execPath, __filename],
    { input: JSON.stringify({ root, ops }), encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`op-runner as ${uid}:${gid} exited ${r.status}: ${r.stderr}`)
  return JSON.parse(r.stdout) as Result[]
}

if (require.main === module && !process.stdin.isTTY) {
  process.umask(0o022)
  const job = JSON.parse(fs.readFileSync(0, 'utf8')) as { root: string; ops: Op[] }
  process.stdout.write(JSON.stringify(job.ops.map(op => runOp(job.root, op))))
}

/**
 * Imports longer than a moment show a progress bar on stderr when it is a terminal, and nothing
 * when it is not (scripts and logs stay clean). The terminal is a real pty (python3's pty module);
 * the "longer than a moment" threshold is set to 0 so the check does not depend on disk speed.
 */
import t from 'tap'
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { STRATA, strata, tmpDir } from './util'

function bigLayer(dir: string): string {
  // ~192 MiB of incompressible data, so the import takes well over the 0.5 s threshold
  fs.mkdirSync(`${dir}/src`)
  const r = spawnSync('sh', ['-c', `head -c 201326592 /dev/urandom > ${dir}/src/blob && tar -C ${dir}/src -cf ${dir}/layer.tar blob`])
  if (r.status !== 0) throw new Error(`making the layer: ${r.stderr}`)
  return `${dir}/layer.tar`
}

t.test('a TTY shows a progress bar; a pipe does not', async (t) => {
  const dir = tmpDir(t)
  const layer = bigLayer(dir)
  const onTty = spawnSync('python3', ['-c', `
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], [sys.argv[1], '--root', sys.argv[2], 'layer', 'import', sys.argv[3]])
out = b''
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode('utf8', 'replace'))
sys.exit(os.waitstatus_to_exitcode(status))
`, STRATA, `${dir}/store-tty`, layer], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, STRATA_PROGRESS_DELAY_MS: '0' } })
  t.equal(onTty.status, 0, `import on a TTY: ${onTty.stdout.slice(-300)}`)
  t.match(onTty.stdout, /\r\x1b\[Kimporting .*\[#+\.*\]/, 'a progress bar, redrawn in place (cut to the terminal width)')
  t.match(onTty.stdout, /sha256:[0-9a-f]{64}/, 'and the digest')

  const onPipe = strata(`${dir}/store-pipe`, ['layer', 'import', layer], { env: { STRATA_PROGRESS_DELAY_MS: '0' } })
  t.equal(onPipe.code, 0)
  t.notMatch(onPipe.stderr, /\[#|%/, 'no progress bar when stderr is not a TTY')
})

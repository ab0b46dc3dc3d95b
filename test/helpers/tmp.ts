/**
 * Temporary directories for tests, removed in the test's teardown.
 *
 * Owns: creating dirs under /tmp (mode 0755, so a non-root user can reach a mount inside) and
 * removing them. Must not: remove anything while a mount is still live below it. tap runs
 * teardowns last-registered-first, so mounts made after the dir are normally gone already; if one
 * is not (a mount helper failed to unmount), the dir is lazily unmounted first and removed with
 * `rm --one-file-system`, so a removal never reaches through a mount into a lower or upper.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { spawnSync } from 'node:child_process'

/** The subset of a tap Test that the helpers use (keeps helpers usable from any subtest). */
export interface TestLike {
  teardown(fn: () => unknown): void
  comment(...args: unknown[]): void
}

/** Mount points listed in /proc/self/mountinfo, with their fstype (field after " - "). */
export function mountTable(): { mnt: string; fstype: string }[] {
  const out: { mnt: string; fstype: string }[] = []
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'latin1').split('\n')) {
    if (!line) continue
    const [pre, post] = line.split(' - ')
    const mnt = pre?.split(' ')[4]
    const fstype = post?.split(' ')[0]
    if (mnt === undefined || fstype === undefined) continue
    // mountinfo escapes space, tab, newline and backslash as \ooo
    out.push({ mnt: mnt.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))), fstype })
  }
  return out
}

export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : dir + '/'
  return mountTable().map(m => m.mnt).filter(m => m === dir || m.startsWith(prefix))
}

/** Creates a fresh directory /tmp/<prefix>XXXXXX (mode 0755) and removes it in teardown. */
export function tempDir(t: TestLike, prefix = 'strata-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  fs.chmodSync(dir, 0o755)
  t.teardown(() => removeTempDir(t, dir))
  return dir
}

function removeTempDir(t: TestLike, dir: string): void {
  for (const m of mountsUnder(dir).sort().reverse()) {
    t.comment(`cleanup: ${m} still mounted at temp-dir removal; lazy unmount`)
    spawnSync('umount', ['-l', m], { stdio: 'ignore' })
  }
  const r = spawnSync('rm', ['-rf', '--one-file-system', '--', dir], { encoding: 'utf8' })
  if (r.status !== 0) t.comment(`cleanup: rm -rf ${dir}: ${r.stderr.trim()}`)
}

/**
 * Helpers for the reliability suite (issue 6): mounting stratafs with extra options, finding and
 * killing (SIGKILL, for crash tests) the one daemon we started, reading its RSS and fd count,
 * running a Python snippet in a child with a deadline (so a hung FUSE request fails the test
 * instead of blocking the test process), and a tmpfs that is unmounted in teardown.
 *
 * Must not: signal any process but a daemon whose argv names our own temp mountpoint, or unmount
 * anything outside our temp dirs.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process'
import type { Test } from 'tap'
import { isMounted, stratafsBin } from '../helpers/mounts'
import { tempDir } from '../helpers/tmp'
import { alive, daemonPids, fdCount, waitFor } from '../stratafs/util'

export { fdCount }

export { alive, daemonPids, waitFor }

export const REPO = path.resolve(__dirname, '../../..')
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export interface Layout {
  root: string
  lowers: string[]
  upper: string
  work: string
  mnt: string
}

/** Fresh dirs under a temp root: `nLowers` lowers (l1 = top), upper, work, mnt. */
export function layout(t: Test, nLowers = 1, base?: string): Layout {
  const root = base ?? tempDir(t, 'strata-rel-')
  const d: Layout = {
    root,
    lowers: Array.from({ length: nLowers }, (_, i) => `${root}/l${i + 1}`),
    upper: `${root}/upper`,
    work: `${root}/work`,
    mnt: `${root}/mnt`,
  }
  for (const p of [...d.lowers, d.upper, d.work, d.mnt]) fs.mkdirSync(p, { recursive: true })
  return d
}

export function opts(d: Layout, extra: string[] = []): string {
  return [`lowerdir=${d.lowers.join(':')}`, `upperdir=${d.upper}`, `workdir=${d.work}`, ...extra].join(',')
}

/** Unmounts `mnt` (fusermount3 -u, then umount -l) and waits for its daemon to exit; SIGKILLs it after 5 s. */
export async function unmountStratafs(t: Test, mnt: string): Promise<void> {
  const pids = daemonPids(mnt)
  if (isMounted(mnt)) spawnSync('fusermount3', ['-u', mnt])
  if (isMounted(mnt)) spawnSync('umount', ['-l', mnt])
  if (!(await waitFor(() => !pids.some(alive), 5000))) {
    for (const p of pids.filter(alive)) {
      t.comment(`daemon ${p} of ${mnt} still alive 5 s after unmount: SIGKILL`)
      try { process.kill(p, 'SIGKILL') } catch { /* gone */ }
    }
  }
}

/**
 * Runs `stratafs -o OPTS MNT` (returns once live); registers an unmount in teardown (also after a
 * crash: a dead mount is lazily unmounted). Returns the daemon pid.
 */
export function mountStratafs(t: Test, d: Layout, extra: string[] = [], env: Record<string, string> = {}): number {
  const r = spawnSync(stratafsBin(), ['-o', opts(d, extra), d.mnt], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env } })
  if (r.status !== 0) throw new Error(`stratafs -o ${opts(d, extra)} ${d.mnt} exited ${r.status}: ${r.stderr}`)
  t.teardown(() => unmountStratafs(t, d.mnt))
  const pids = daemonPids(d.mnt)
  if (pids.length !== 1) throw new Error(`expected one daemon for ${d.mnt}, found ${pids.join(',')}`)
  return pids[0]!
}

/** SIGKILLs the daemon we started for `mnt` and waits until it is gone. */
export async function killDaemon(mnt: string): Promise<number> {
  const pids = daemonPids(mnt)
  if (pids.length !== 1) throw new Error(`expected one daemon for ${mnt}, found [${pids.join(',')}]`)
  process.kill(pids[0]!, 'SIGKILL')
  await waitFor(() => !alive(pids[0]!), 10_000)
  return pids[0]!
}

export function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) : -1
}

/** A tmpfs of `size` (e.g. '16m') at `dir`, unmounted in teardown (lazily if busy). */
export function tmpfs(t: Test, dir: string, size: string, extra = ''): void {
  fs.mkdirSync(dir, { recursive: true })
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}${extra ? ',' + extra : ''}`, 'tmpfs', dir], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`mount tmpfs ${dir}: ${r.stderr}`)
  t.teardown(() => {
    if (isMounted(dir)) spawnSync('umount', [dir])
    if (isMounted(dir)) spawnSync('umount', ['-l', dir])
  })
}

/** python3 -c CODE ARGS... with a deadline (the child is killed when it passes). */
export function py(code: string, args: string[] = [], timeoutMs = 60_000, extra: { uid?: number; gid?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync('python3', ['-c', code, ...args], { encoding: 'utf8', timeout: timeoutMs, killSignal: 'SIGKILL', ...extra })
}

/** Parses the last stdout line of a Python child as JSON; fails loudly with its stderr. */
export function pyJson<T = any>(code: string, args: string[] = [], timeoutMs = 60_000): T {
  const r = py(code, args, timeoutMs)
  if (r.error || r.status !== 0) throw new Error(`python child failed (status ${r.status}, signal ${r.signal}, ${r.error?.message ?? ''}): ${r.stderr}`)
  const lines = r.stdout.trim().split('\n')
  return JSON.parse(lines[lines.length - 1]!) as T
}

/** Starts python3 -c CODE in the background; resolves with its exit once it ends (or is killed). */
export function pyBackground(code: string, args: string[] = []): { pid: number; done: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> } {
  const child = spawn('python3', ['-c', code, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const done = new Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
  })
  return { pid: child.pid!, done }
}

/** Names (recursively, relative) under `dir`, without following symlinks. */
export function listTree(dir: string): string[] {
  const out: string[] = []
  const walk = (abs: string, rel: string): void => {
    for (const e of fs.readdirSync(abs, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name
      out.push(r)
      if (e.isDirectory()) walk(`${abs}/${e.name}`, r)
    }
  }
  walk(dir, '')
  return out.sort()
}

/** Deterministic content: `n` bytes, the pattern depending on `seed`. */
export function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n)
  let x = ((seed + 1) * 2654435761) >>> 0 || 1
  for (let i = 0; i < n; i++) {
    if ((i & 3) === 0) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0 }
    b[i] = (x >>> ((i & 3) * 8)) & 0xff
  }
  return b
}

/** Common Python prelude: errno name of an OSError, JSON out. */
export const PY_PRELUDE = `
import os, sys, json, errno, time
def en(e): return errno.errorcode.get(e.errno, str(e.errno))
def out(x): print(json.dumps(x)); sys.stdout.flush()
`

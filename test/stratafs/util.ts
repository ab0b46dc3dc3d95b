/**
 * Small helpers for the stratafs tests: a standard layer set-up, running the real binary, and
 * finding the daemon a mount belongs to (by its argv naming our fresh temp mountpoint).
 */
import * as fs from 'node:fs'
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process'
import type { Test } from 'tap'
import { tempDir } from '../helpers/tmp'
import { isMounted, mountUnion, strataStats, stratafsBin, type Mounted, type UnionDirs } from '../helpers/mounts'
import { diffSnapshots, snapshot, type Snapshot } from '../helpers/tree'

export interface Dirs {
  root: string
  lowers: string[]
  upper: string
  work: string
  mnt: string
}

/** Two lowers (top first) with a little content each, an empty upper/work, a mountpoint. */
export function makeDirs(t: Test): Dirs {
  const root = tempDir(t)
  const d: Dirs = { root, lowers: [`${root}/l1`, `${root}/l2`], upper: `${root}/upper`, work: `${root}/work`, mnt: `${root}/mnt` }
  for (const p of [...d.lowers, d.upper, d.work, d.mnt]) fs.mkdirSync(p)
  const [top, bottom] = d.lowers as [string, string]
  fs.mkdirSync(`${bottom}/etc`)
  fs.writeFileSync(`${bottom}/etc/motd`, 'bottom motd\n')
  fs.writeFileSync(`${bottom}/etc/only-bottom`, 'b\n')
  fs.mkdirSync(`${top}/etc`)
  fs.writeFileSync(`${top}/etc/motd`, 'top motd\n')
  return d
}

export function runStratafs(args: string[], opts: { cwd?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(stratafsBin(), args, { encoding: 'utf8', timeout: 30_000, ...opts })
}

/** Unmounts `mnt` in teardown if a test left it mounted (the test itself should have). */
export function unmountLater(t: Test, mnt: string): void {
  t.teardown(() => {
    if (isMounted(mnt)) spawnSync('fusermount3', ['-u', mnt])
    if (isMounted(mnt)) spawnSync('umount', ['-l', mnt])
  })
}

/** Mounts stratafs with `name=1` in the daemon's environment (one of its STRATA_NO_* switches). */
export async function mountSwitchedOff(t: Test, d: UnionDirs, name: string): Promise<Mounted> {
  process.env[name] = '1'
  try {
    return await mountUnion(t, 'stratafs', d)
  } finally {
    delete process.env[name]
  }
}

export function mountDirs(t: Test, d: Dirs, readOnly = false): Promise<Mounted> {
  return mountUnion(t, 'stratafs', readOnly ? { lowers: d.lowers, mnt: d.mnt } : d)
}

/** Pids of stratafs daemons whose argv names `mnt`. */
export function daemonPids(mnt: string): number[] {
  const pids: number[] = []
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    try {
      const argv = fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0')
      if (argv.some((a) => a.endsWith('stratafs')) && argv.includes(mnt)) pids.push(Number(name))
    } catch { /* gone */ }
  }
  return pids
}

export async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 50) {
    if (cond()) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return cond()
}

/** How many fds process `pid` holds now. */
export const fdCount = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length

/**
 * A daemon's fd count to compare with later: one that holds for 200 ms (5 s at most). Right
 * after mounting, the daemon may still close an fd of its start-up (a full suite's load delays
 * it), which a later count would show as one fd fewer, not as a leak.
 */
export async function settledFdCount(pid: number): Promise<number> {
  let count = fdCount(pid)
  for (let i = 0; i < 25; i++) {
    await new Promise((res) => setTimeout(res, 200))
    const again = fdCount(pid)
    if (again === count) break
    count = again
  }
  return count
}

export const alive = (pid: number): boolean => {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** Snapshots the lower layers now and checks in teardown that they are byte-for-byte unchanged. */
export function lowersUnchanged(t: Test, lowers: string[]): void {
  const before = new Map<string, Snapshot>(lowers.map((l) => [l, snapshot(l, 'raw')]))
  t.teardown(() => {
    for (const [l, snap] of before) {
      const diff = diffSnapshots(snap, snapshot(l, 'raw'), {}, ['before', 'after'])
      if (diff.length) t.fail(`lower ${l} changed: ${diff.join('; ')}`)
    }
  })
}

export function py(code: string, ...args: string[]): SpawnSyncReturns<string> {
  return spawnSync('python3', ['-c', code, ...args], { encoding: 'utf8', timeout: 60_000 })
}

/**
 * Runs python `code` once per role, all at once (each gets the mountpoint, its role and `args`),
 * and resolves to what went wrong with each that did not exit 0.
 */
export async function raceRoles(code: string, roles: string[], mnt: string, ...args: string[]): Promise<string[]> {
  return (await Promise.all(roles.map((role) => pyWorker(code, role, mnt, role, ...args)))).filter(Boolean)
}

/** A directory's files and what each holds, sorted by name. */
export const fileContents = (dir: string): Array<[string, string]> =>
  fs.readdirSync(dir).sort().map((n) => [n, fs.readFileSync(`${dir}/${n}`, 'utf8')])

/**
 * Runs python `code` with `args` in the background, one of several processes racing each other
 * (`role` names it); resolves to '' once it exited 0, else to what went wrong.
 */
function pyWorker(code: string, role: string, ...args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const c = spawn('python3', ['-c', code, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    c.stderr.on('data', (b: Buffer) => { err += b.toString() })
    c.on('error', (e) => resolve(`${role}: ${e.message}`))
    c.on('exit', (code) => resolve(code === 0 ? '' : `${role} exited ${code}: ${err}`))
  })
}

/**
 * Runs a differential test's python `script` (the mountpoint, then `args`, as its arguments) and
 * returns the JSON it printed: its observations on target `label`. A script that fails fails `t`.
 */
export function observe(t: Test, label: string, script: string, mnt: string, ...args: string[]): unknown[] {
  const r = py(script, mnt, ...args)
  t.equal(r.status, 0, `${label}: ${r.stderr}`)
  return JSON.parse(r.stdout || '[]') as unknown[]
}

/**
 * How many times anyone dropped the kernel's dentries and inodes (`drop_caches` 2 or 3), from
 * /proc/vmstat. Tests that count the lookups reaching the daemon use it to tell a count another
 * test file disturbed (they run two at a time, and some drop the caches) from a wrong one.
 */
export function dentryDrops(): number {
  const m = /^drop_slab (\d+)$/m.exec(fs.readFileSync('/proc/vmstat', 'utf8'))
  return m ? Number(m[1]) : 0
}

/**
 * Runs `measure` until no test file dropped the kernel's dentries while it ran (at most
 * `attempts` times): a drop makes the kernel look entries up again, so counts of requests grow for
 * reasons of their own. null, and a failed assertion, if every attempt was disturbed.
 */
export async function undisturbed<T>(t: Test, measure: () => T | Promise<T>, attempts = 3): Promise<T | null> {
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const drops = dentryDrops()
    const measured = await measure()
    if (dentryDrops() === drops) return measured
    t.comment(`attempt ${attempt}: the kernel's dentries were dropped meanwhile; measuring again`)
  }
  t.fail('every attempt was disturbed by a dentry drop elsewhere')
  return null
}

/** As dentryDrops, counting drops of the page cache (`drop_caches` 1 or 3) too: for tests that count READs. */
export function cacheDrops(): number {
  const vmstat = fs.readFileSync('/proc/vmstat', 'utf8')
  const m = /^drop_pagecache (\d+)$/m.exec(vmstat)
  return dentryDrops() + (m ? Number(m[1]) : 0)
}

/** Requests of `op` the daemon's JS served (the binding's own answers left out). */
export function jsOpCount(mnt: string, op: string): number {
  const s = strataStats<{ ops: Record<string, { count: number }>, servedBy: Record<string, Record<string, number>> }>(mnt)
  return (s.ops[op]?.count ?? 0) - (s.servedBy.binding?.[op] ?? 0)
}

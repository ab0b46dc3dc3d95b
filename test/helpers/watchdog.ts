/**
 * A watchdog for synchronous calls into a FUSE mount.
 *
 * Why: the suite calls the filesystem synchronously (strata's syscall shim, fs.*Sync), so a FUSE
 * daemon that never answers blocks the test's JS thread in the kernel, and no tap timeout can
 * fire (this happened: fuse-overlayfs 1.10 opens a FIFO without O_NONBLOCK and waits forever).
 * Owns: a worker thread (its own event loop) that, when a guarded section overruns its deadline,
 * writes 1 to /sys/fs/fuse/connections/<N>/abort for THAT mount only; the blocked call then fails
 * with ENOTCONN and the test goes on to report the hang. Must not: touch any other connection.
 */
import * as fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { Worker } from 'node:worker_threads'

const WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const fs = require('node:fs')
const flags = new Int32Array(workerData)
const timers = new Map()
parentPort.on('message', m => {
  if (m.cancel !== undefined) { clearTimeout(timers.get(m.cancel)); timers.delete(m.cancel); return }
  timers.set(m.id, setTimeout(() => {
    Atomics.store(flags, 0, m.id)
    try { fs.writeFileSync(m.abort, '1') } catch (e) { Atomics.store(flags, 1, 1) }
  }, m.ms))
})
`

let worker: Worker | null = null
let flags: Int32Array | null = null
let nextId = 1

function ensureWorker(): { w: Worker; f: Int32Array } {
  if (!worker || !flags) {
    const sab = new SharedArrayBuffer(8)
    flags = new Int32Array(sab)
    worker = new Worker(WORKER, { eval: true, workerData: sab })
    worker.unref()
  }
  return { w: worker, f: flags }
}

/** The fusectl abort file of the FUSE mount at `mnt`, or null (not FUSE / not mounted). */
export function fuseAbortPath(mnt: string): string | null {
  if (!fs.existsSync('/sys/fs/fuse/connections/')) return null
  if (fs.readdirSync('/sys/fs/fuse/connections').length === 0 && !fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(' - fusectl ')) {
    spawnSync('mount', ['-t', 'fusectl', 'none', '/sys/fs/fuse/connections'], { stdio: 'ignore' })
  }
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'latin1').split('\n')) {
    const f = line.split(' ')
    const sep = f.indexOf('-')
    if (f[4] === mnt && sep > 0 && f[sep + 1]?.startsWith('fuse')) {
      const minor = f[2]?.split(':')[1]
      return minor ? `/sys/fs/fuse/connections/${minor}/abort` : null
    }
  }
  return null
}

export class HangError extends Error {}

/**
 * Runs fn; if it is still running after `ms`, aborts the FUSE connection at abortPath (if any) and,
 * once fn returns, throws HangError naming `label`. With abortPath null it just runs fn.
 */
export function guarded<T>(abortPath: string | null, ms: number, label: string, fn: () => T): T {
  if (!abortPath) return fn()
  const { w, f } = ensureWorker()
  const id = nextId++
  w.postMessage({ id, ms, abort: abortPath })
  const started = Date.now()
  let value: T
  try { value = fn() } finally { w.postMessage({ cancel: id }) }
  if (Atomics.load(f, 0) === id) {
    throw new HangError(`HANG: ${label} did not return within ${ms} ms; aborted the FUSE connection (${abortPath}) after ${Date.now() - started} ms`)
  }
  return value
}

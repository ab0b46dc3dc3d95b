/**
 * The store lock: serializes commands that read and then write store metadata (publishing a layer,
 * images.json, containers, rm, gc). Long work (unpacking, hashing) happens in an op dir without the
 * lock; only the short publish step holds it.
 *
 * Node has no flock(2), so the lock is a file created with O_EXCL that holds its owner's token
 * (pid + process start time, see ./ops.ts). A lock whose owner no longer runs is stale. Breaking it
 * is made safe against two breakers racing: the breaker renames the stale file to a private name
 * (atomic; only one breaker wins), re-reads it, and deletes it only if it still holds the dead
 * owner's token; if a live owner's lock was grabbed by mistake it is renamed back.
 */
import * as fs from 'node:fs'
import { native } from '../../native'
import { FsError } from '../../sys/errors'
import { selfToken, tokenAlive } from './ops'
import type { Store } from './store'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

function tryBreakStale(file: string, seen: string): void {
  const mine = `${file}.break-${process.pid}`
  try {
    fs.renameSync(file, mine)
  } catch {
    return // someone else broke or released it
  }
  const now = fs.readFileSync(mine, 'utf8')
  if (now === seen && !tokenAlive(now)) {
    fs.rmSync(mine, { force: true })
  } else {
    // raced with a new owner: put its lock back unless yet another owner holds the name now
    if (native.rename(mine, file, native.RENAME_NOREPLACE) < 0) fs.rmSync(mine, { force: true })
  }
}

export async function acquireLock(store: Store, timeoutMs = Number(process.env.STRATA_LOCK_TIMEOUT_MS ?? 120_000)): Promise<() => void> {
  store.init()
  const file = store.lockFile
  const token = selfToken()
  const deadline = Date.now() + timeoutMs
  let delay = 5
  for (;;) {
    try {
      const fd = fs.openSync(file, 'wx', 0o644)
      fs.writeSync(fd, token)
      fs.closeSync(fd)
      let released = false
      return () => {
        if (released) return
        released = true
        try {
          if (fs.readFileSync(file, 'utf8') === token) fs.unlinkSync(file)
        } catch {
          // already gone
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    let owner = ''
    try {
      owner = fs.readFileSync(file, 'utf8')
    } catch {
      continue
    }
    // an owner writes its token right after creating the file; an empty file is a lock being born
    let bornLongAgo = false
    if (owner === '') {
      try { bornLongAgo = Date.now() - fs.statSync(file).mtimeMs > 5000 } catch { continue }
    }
    if ((owner !== '' && !tokenAlive(owner)) || bornLongAgo) {
      tryBreakStale(file, owner)
      continue
    }
    if (Date.now() > deadline) throw new FsError('EBUSY', `store ${store.root} is locked by process ${owner.split('-')[0] ?? '?'}`)
    await sleep(delay)
    delay = Math.min(delay * 2, 100)
  }
}

export async function withLock<T>(store: Store, fn: () => T | Promise<T>): Promise<T> {
  const release = await acquireLock(store)
  try {
    return await fn()
  } finally {
    release()
  }
}

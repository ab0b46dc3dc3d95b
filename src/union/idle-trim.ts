/**
 * Idle trim: gives the memory of big caches back once the mount goes quiet. The caches are
 * bounded (LRU), but a bound that lets a walk of a million entries run from memory is hundreds of
 * MB that an idle container root does not need. When no request has been answered for `idleMs`
 * and the caches hold more than `floorBytes`, they are dropped (they refill on demand), V8
 * collects, and glibc hands the freed heap back to the kernel (malloc_trim). At most once per
 * quiet spell; never while requests flow or a copy-up is in flight.
 */
import * as v8 from 'node:v8'
import * as vm from 'node:vm'
import { native } from '../native'
import type { UnionFs } from './union-fs'

export interface IdleTrimOptions {
  idleMs: number
  /** approximate cached bytes below which trimming is not worth it */
  floorBytes: number
}

export const IDLE_TRIM_DEFAULTS: IdleTrimOptions = { idleMs: 2000, floorBytes: 4 * 2 ** 20 }

/** A full collection on demand; Node only offers it with --expose-gc, which can be set at run time. */
function fullGc(): () => void {
  v8.setFlagsFromString('--expose-gc')
  return vm.runInNewContext('gc') as () => void
}

/** Starts the check (every second, not keeping the process alive); returns a stop function. */
export function startIdleTrim(union: UnionFs, onTrim: (bytes: number) => void, opts = IDLE_TRIM_DEFAULTS): () => void {
  const gc = fullGc()
  let seen = union.stats.requests
  let quietSince = Date.now()
  let trimmed = false
  const timer = setInterval(() => {
    const now = Date.now()
    if (union.stats.requests !== seen) {
      seen = union.stats.requests
      quietSince = now
      trimmed = false
      return
    }
    if (trimmed || now - quietSince < opts.idleMs) return
    const bytes = union.cachedBytes
    if (bytes < opts.floorBytes || !union.trim()) return
    trimmed = true
    // the second collection frees the ArrayBuffer backing stores the first one found dead
    gc()
    gc()
    native.mallocTrim()
    onTrim(bytes)
  }, 1000)
  timer.unref()
  return () => clearInterval(timer)
}

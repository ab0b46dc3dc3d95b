/**
 * Reads and writes answered by the binding on libfuse's worker threads (patches/README.md,
 * strata_fdio.c). Sent here, a read or write crossed to the JS thread, to libuv's threadpool and
 * back: four thread hand-offs per 4 KiB, most of a random write's time on a small VM. The binding
 * does the pread/pwrite itself on the handle's host fd; JS still decides everything else about a
 * handle (open, copy-up and retarget, release) and keeps the binding in step through the handle
 * table's mirror, which also closes the fds (after the binding's reads and writes on them). Its
 * counters join `strata stats` under `read` and `write`.
 */
import * as os from 'node:os'
import type { FdMirror } from '../union/handles'
import { OpStats } from '../union/stats'
import { binding } from './binding'

type FdioBinding = {
  fuse_native_strata_fdio_set(fh: number, fd: number): number
  fuse_native_strata_fdio_close(fd: number): void
  fuse_native_strata_fdio_counters(op: number): number[]
}
const fdio = binding as unknown as FdioBinding

export const bindingFds: FdMirror = {
  // a handle the binding could not register (out of memory) is served by JS: nothing to report
  set: (id, fd) => { fdio.fuse_native_strata_fdio_set(id, fd) },
  drop: (id) => { fdio.fuse_native_strata_fdio_set(id, -1) },
  close: (fd) => { fdio.fuse_native_strata_fdio_close(fd) },
}

const BUCKETS = 41
const errnoNames = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]))

function opStats(op: 0 | 1): OpStats {
  const raw = fdio.fuse_native_strata_fdio_counters(op)
  const s = new OpStats()
  s.count = raw[0]!
  s.totalUs = raw[2]! / 1000
  s.latencyUs = raw.slice(3, 3 + BUCKETS)
  for (let i = 3 + BUCKETS; i + 1 < raw.length; i += 2) s.errors[errnoNames.get(raw[i]!) ?? `errno ${raw[i]}`] = raw[i + 1]!
  return s
}

/** The binding's read and write counters, in the shape of the daemon's own. */
export function bindingIoStats(): Map<string, OpStats> {
  return new Map([['read', opStats(0)], ['write', opStats(1)]])
}

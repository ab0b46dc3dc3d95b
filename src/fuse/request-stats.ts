/**
 * Every request the kernel sent, by FUSE opcode, timed from its arrival at the daemon to its reply,
 * whoever answered it: the channel (attributes it last sent, ENOENT of a name it knows is absent,
 * known-absent xattrs), the binding on a worker thread, or JS (strata_reqstats.h). The `ops` of
 * `strata stats` are what the handlers did (libfuse splits one SETATTR into chmod, chown and
 * utimens); these are the kernel's requests themselves, so the two differ by design.
 */
import { binding } from './binding'
import { BUCKETS, errnoName } from './direct-io'

type RequestBinding = { fuse_native_strata_request_counters(): number[][] }
const requestCounters = (): number[][] => (binding as unknown as RequestBinding).fuse_native_strata_request_counters()

const OPCODES: Record<number, string> = {
  1: 'LOOKUP', 2: 'FORGET', 3: 'GETATTR', 4: 'SETATTR', 5: 'READLINK', 6: 'SYMLINK', 8: 'MKNOD', 9: 'MKDIR',
  10: 'UNLINK', 11: 'RMDIR', 12: 'RENAME', 13: 'LINK', 14: 'OPEN', 15: 'READ', 16: 'WRITE', 17: 'STATFS',
  18: 'RELEASE', 20: 'FSYNC', 21: 'SETXATTR', 22: 'GETXATTR', 23: 'LISTXATTR', 24: 'REMOVEXATTR', 25: 'FLUSH',
  26: 'INIT', 27: 'OPENDIR', 28: 'READDIR', 29: 'RELEASEDIR', 30: 'FSYNCDIR', 31: 'GETLK', 32: 'SETLK',
  33: 'SETLKW', 34: 'ACCESS', 35: 'CREATE', 36: 'INTERRUPT', 37: 'BMAP', 38: 'DESTROY', 39: 'IOCTL', 40: 'POLL',
  41: 'NOTIFY_REPLY', 42: 'BATCH_FORGET', 43: 'FALLOCATE', 44: 'READDIRPLUS', 45: 'RENAME2', 46: 'LSEEK',
  47: 'COPY_FILE_RANGE', 48: 'SETUPMAPPING', 49: 'REMOVEMAPPING', 50: 'SYNCFS', 51: 'TMPFILE', 52: 'STATX',
}

export interface RequestStats {
  /** requests that arrived */
  count: number
  /** of them, answered (FORGET, BATCH_FORGET and INTERRUPT never are) */
  answered: number
  /** mean µs from arrival to reply, over the answered */
  meanUs: number
  /** replies with an error, by errno name */
  errors: Record<string, number>
  /** answered requests by latency: bucket i holds [2^(i-1), 2^i) µs, bucket 0 < 1 µs */
  latencyUsLog2: number[]
}

/** The kernel's requests so far, by opcode name (`OTHER` for an opcode past the table). */
export function requestStats(): Record<string, RequestStats> {
  const out: Record<string, RequestStats> = {}
  for (const raw of requestCounters()) {
    const [op, count, answered, totalNs] = raw as [number, number, number, number]
    const errors: Record<string, number> = {}
    for (let i = 4 + BUCKETS; i + 1 < raw.length; i += 2) errors[errnoName(raw[i]!)] = raw[i + 1]!
    out[OPCODES[op] ?? (op === 0 ? 'OTHER' : `OPCODE_${op}`)] = {
      count,
      answered,
      meanUs: answered ? +(totalNs / answered / 1000).toFixed(1) : 0,
      errors,
      latencyUsLog2: raw.slice(4, 4 + BUCKETS),
    }
  }
  return out
}

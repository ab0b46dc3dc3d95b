/**
 * Mounting and unmounting through the patched fuse-native binding, and the libfuse options strata
 * always sets. Kernel cache contract: stratafs is the only writer of the upper while mounted and
 * lower layers never change, so every change to names comes through this mount and the kernel
 * drops or moves its own dentries for it: entry and negative lookups can be cached for long. Data
 * volumes are the exception (other containers change them): with volumes, negative lookups are
 * not cached, and a cached positive entry that another container removed heals itself at the next
 * getattr, which always reaches the daemon for volume entries (below).
 *
 * Attributes are cached per entry (the patched binding rewrites attr_valid in each reply, see
 * patches/README.md): for ATTR_CACHE_MS when the entry is `stable` (union-fs.ts TaggedStat: only
 * this name of it changes, and every change to it comes through this mount and its reply), never
 * for hard-linked upper files and volume entries. libfuse 2's high-level API gives every *name*
 * its own kernel inode, so after a write, link or unlink through one name of a hard-linked file the
 * kernel's cached size and st_nlink of its other names would be stale. The global attr_timeout=0
 * covers replies that carry no answer of ours. Without per-entry caching every path walk sends a
 * GETATTR per component (default_permissions checks search permission on each).
 *
 * Directory listings are kept by the kernel (FOPEN_CACHE_DIR on every OPENDIR reply), without
 * volumes: every change to a directory's names comes through this mount, and the kernel drops its
 * kept listing of a directory it changed. libfuse 2's high-level API numbers a listing's entries by
 * their index in one snapshot, so when a kept listing was replaced while a reader was part-way
 * through, the reader resumed at that index in another snapshot and saw names twice or not at all
 * (test/reliability/load.test.ts caught it); the binding numbers entries by a hash of their name
 * instead (its strata_dir.h). A copy-up changes an entry's inode number behind the kernel's back:
 * the directory's next opendir drops the kept listing (UnionFs.onCopyUp).
 *
 * INIT capabilities libfuse 2.9 predates are asked for on its behalf: FUSE_POSIX_ACL (the
 * kernel caches ACLs and enforces them, as overlayfs does, instead of asking for
 * system.posix_acl_access on every `ls -l`), FUSE_DO_READDIRPLUS (listings carry each entry's
 * inode and attributes, so the `stat` or `unlink` of every entry after a listing sends no LOOKUP;
 * the binding serves it, patches/README.md) and, without volumes, FUSE_CACHE_SYMLINKS (a symlink's
 * target never changes in place; a volume's symlink may be replaced from outside). FUSE_DONT_MASK
 * (libfuse 2.9 knows it, but the high-level API has no way to ask): the kernel leaves the caller's
 * umask to the daemon, which must not apply it under a default ACL (src/union/create-mode.ts). Not
 * READDIRPLUS_AUTO: it asks for attributes only in a listing's first part (and after lookups), so
 * `ls -l` of a big directory would still look up all but its first few hundred entries.
 */
import { execFile } from 'node:child_process'
import * as os from 'node:os'
import { binding } from './binding'
import type { HandlerTable } from './handlers'

const FUSE_POSIX_ACL = 1 << 20
const FUSE_CACHE_SYMLINKS = 1 << 23
const FUSE_DO_READDIRPLUS = 1 << 13
const FUSE_DONT_MASK = 1 << 6
/**
 * The daemon drops set-id bits on write and truncate (the binding's strata_killpriv.h), so the
 * kernel stops asking for security.capability before every write. Not with data volumes: their
 * files may get set-id bits from outside the mount, which the kernel would not see while it
 * trusts an inode's earlier check (S_NOSEC).
 */
const FUSE_HANDLE_KILLPRIV_V2 = 1 << 28

/** How long the kernel may cache the attributes of a `stable` entry, in ms (as entry_timeout). */
export const ATTR_CACHE_MS = 60_000

export interface FuseMountOptions {
  /** shown as the mount source in /proc/self/mountinfo */
  fsname: string
  readOnly: boolean
  /** extra libfuse/mount options (dev, suid, ...) */
  extra: string[]
  /** data volumes can change from outside (other containers): no negative lookup caching */
  hasVolumes: boolean
  debug: boolean
  /**
   * Lookups the kernel may hold before the oldest unused are pruned (0: no bound). libfuse 2
   * keeps a node (~170 bytes) per inode the kernel holds, and the kernel evicts them only under
   * memory pressure: a walk of a million entries left ~170 MB in the daemon. Past the bound the
   * binding asks the kernel to prune the oldest ones it handed out; the kernel drops their unused
   * dentries and forgets the inodes (patches/README.md).
   */
  maxNodes: number
  /**
   * µs the JS thread polls for the next request after answering one, before it sleeps (0: never).
   * On a VM an idle vCPU halts, and waking it costs tens of µs (here, with halt polling off, ~30):
   * a request JS answers crosses threads twice, so a serial workload (`rm -rf`, `tar -x`, `grep
   * -r`) paid up to four wake-ups per request. A worker also polls for JS's answer up to half as
   * long, for ops JS usually answers that fast (not a copy-up). Nothing polls with one CPU, or
   * while JS is still working on a request (its answer wakes the loop anyway).
   */
  spinUs: number
  /** ask the kernel for FUSE passthrough (src/fuse/direct-io.ts) */
  passthrough: boolean
  /**
   * take requests over io_uring when the kernel offers it (Linux 6.14+, fuse module parameter
   * enable_uring=Y): the kernel queues each request on the queue of its caller's CPU, served by a
   * binding thread pinned to that CPU, so a request answered in C costs no cross-CPU wake-up
   * (strata_uring.h in the patch). FORGETs and INTERRUPTs still come through /dev/fuse.
   */
  uring: boolean
  /**
   * over io_uring, commit each answer at idle CPU priority (its caller then wakes on the same CPU)
   * or not; null: the binding measures at mount which is faster here (strata_handoff.h)
   */
  uringIdle?: boolean | null
}

type NodeBinding = {
  fuse_native_strata_uring(on: number, idle: number): void
  fuse_native_strata_uring_counters(): [number, number, number, number, number, number, number]
  fuse_native_strata_spin(jsNs: number, workerNs: number): void
  fuse_native_strata_max_nodes(max: number): number
  fuse_native_strata_kernel_nodes(): [number, number, number]
}
const nodeBinding = binding as unknown as NodeBinding

export interface KernelNodes {
  /** lookups the kernel holds through the mount now: an upper bound on libfuse's nodes */
  held: number
  /** nodeids the binding asked the kernel to prune (FUSE_NOTIFY_PRUNE) */
  pruned: number
  /** the kernel refused FUSE_NOTIFY_PRUNE (older than Linux 6.18): nothing bounds `held` */
  pruneRefused: boolean
}

export interface UringStats {
  /** requests the kernel sent over io_uring */
  requests: number
  /** the binding's threads serving its queues (0: /dev/fuse only) */
  threads: number
  /** answers committed at idle priority (the caller then wakes on its own CPU) */
  yielded: number
  /** times a thread left at idle priority was put back to normal */
  rescued: number
  /**
   * Whether answers are committed at idle priority here, as the probe at mount chose
   * (strata_handoff.h): its mean round trip, in µs, each way (0: it did not run).
   */
  handoff: { idle: boolean, plainUs: number, idleUs: number }
}

/** io_uring's counters and the hand-off the binding uses (strata_uring.h). */
export function uringStats(): UringStats {
  const [requests, threads, rescued, yielded, idle, plainNs, idleNs] = nodeBinding.fuse_native_strata_uring_counters()
  return { requests, threads, yielded, rescued, handoff: { idle: idle === 1, plainUs: plainNs / 1000, idleUs: idleNs / 1000 } }
}

export function kernelNodes(): KernelNodes {
  const [held, pruned, refused] = nodeBinding.fuse_native_strata_kernel_nodes()
  return { held, pruned, pruneRefused: refused !== 0 }
}

/** Negative lookups are kept by the kernel, and answered by the binding in directories made here, only without volumes. */
const negativeTimeoutSec = (opts: FuseMountOptions): number => opts.hasVolumes ? 0 : 60

export function libfuseOptions(opts: FuseMountOptions): string[] {
  const o = [
    `fsname=${opts.fsname.replace(/,/g, '_')}`,
    'subtype=stratafs',
    'allow_other',
    'default_permissions',
    'use_ino',
    'big_writes',
    'auto_cache',
    'nonempty',
    'attr_timeout=0',
    'entry_timeout=60',
    `negative_timeout=${negativeTimeoutSec(opts)}`,
    ...opts.extra,
  ]
  if (opts.readOnly) o.push('ro')
  if (opts.debug) o.push('debug')
  return o
}

export interface FuseMount {
  mnt: string
  /** resolves once the kernel has sent INIT: the mount is live */
  live: Promise<void>
  /** set a callback for when the FUSE loop ends (unmounted from outside or by us) */
  onExit(cb: () => void): void
}

export function mountFuse(mnt: string, table: (onInit: () => void) => HandlerTable, opts: FuseMountOptions): FuseMount {
  let exitCb: () => void = () => undefined
  let markLive: () => void = () => undefined
  const live = new Promise<void>((resolve) => { markLive = resolve })
  const { handlers, implemented } = table(() => markLive())
  const keep = new Set<Buffer>()
  const thread = Buffer.alloc(binding.sizeof_fuse_thread_t)
  const malloc = (size: number): Buffer => {
    const b = Buffer.alloc(size)
    keep.add(b)
    return b
  }
  binding.fuse_native_strata_init_flags(FUSE_POSIX_ACL | FUSE_DONT_MASK | FUSE_DO_READDIRPLUS | (opts.hasVolumes ? 0 : FUSE_CACHE_SYMLINKS | FUSE_HANDLE_KILLPRIV_V2))
  binding.fuse_native_strata_new_dir_negatives(negativeTimeoutSec(opts) * 1000)
  binding.fuse_native_strata_keep_listings(opts.hasVolumes ? 0 : 1)
  binding.fuse_native_strata_passthrough(opts.passthrough ? 1 : 0)
  nodeBinding.fuse_native_strata_uring(opts.uring ? 1 : 0, opts.uringIdle === true ? 1 : opts.uringIdle === false ? 0 : -1)
  const spinNs = os.availableParallelism() > 1 ? opts.spinUs * 1000 : 0
  nodeBinding.fuse_native_strata_spin(spinNs, spinNs / 2)
  if (nodeBinding.fuse_native_strata_max_nodes(opts.maxNodes) < 0) throw new Error('out of memory for the max_nodes table')
  binding.fuse_native_mount(mnt, `-o${libfuseOptions(opts).join(',')}`, thread, { thread, keep }, malloc, handlers, implemented, () => exitCb())
  return { mnt, live, onExit: (cb) => { exitCb = cb } }
}

/** Unmounts `mnt`: umount(8) (root), then fusermount3/fusermount; lazily if it stays busy. */
export async function unmount(mnt: string, lazy = false): Promise<void> {
  const tries: Array<[string, string[]]> = lazy
    ? [['umount', ['-l', mnt]], ['fusermount3', ['-u', '-z', mnt]], ['fusermount', ['-u', '-z', mnt]]]
    : [['umount', [mnt]], ['fusermount3', ['-u', mnt]], ['fusermount', ['-u', mnt]]]
  let last: Error | null = null
  for (const [cmd, args] of tries) {
    try {
      await new Promise<void>((resolve, reject) => execFile(cmd, args, (err, _o, stderr) => err ? reject(new Error(stderr.trim() || err.message)) : resolve()))
      return
    } catch (err) {
      last = err as Error
    }
  }
  throw last ?? new Error(`cannot unmount ${mnt}`)
}

/**
 * The compiled fuse-native binding (patched: patches/fuse-native+2.2.6.patch, see patches/README.md).
 * strata talks to it directly instead of through fuse-native's JS class: one handler per op with no
 * per-request closures or timers (its 15 s default op timeout would fail long copy-ups), our own
 * stat layout (64-bit ino, nanosecond times) and the caller's uid/gid read from the request.
 * This directory is the only place that imports fuse-native.
 */
import * as path from 'node:path'

export interface FuseBinding {
  sizeof_fuse_thread_t: number
  offsetof_fuse_thread_locals_t_caller_uid: number
  offsetof_fuse_thread_locals_t_caller_gid: number
  offsetof_fuse_thread_locals_t_caller_pid: number
  offsetof_fuse_thread_locals_t_caller_kill_suidgid: number
  offsetof_fuse_thread_locals_t_caller_umask: number
  offsetof_fuse_thread_locals_t_strata_changed: number
  offsetof_fuse_thread_locals_t_strata_xattr_stable: number
  fuse_native_mount(mnt: string, opts: string, thread: Buffer, ctx: object, malloc: (size: number) => Buffer,
    handlers: Array<((...args: never[]) => void) | undefined>, implemented: Uint32Array, onExit: () => void): void
  fuse_native_unmount(mnt: string, thread: Buffer): void
  /** INIT capabilities (FUSE_* flags) to ask for on libfuse 2.9's behalf when the kernel offers them */
  fuse_native_strata_init_flags(flags: number): void
  /** how long the kernel may keep a negative entry the binding answers in a directory made through the mount; 0: none */
  fuse_native_strata_new_dir_negatives(ms: number): void
  /** whether the kernel may keep directory listings (FOPEN_CACHE_DIR); not with data volumes */
  fuse_native_strata_keep_listings(on: number): void
  fuse_native_strata_passthrough(on: number): void
  /** the kernel's kept listing of this directory ("/a/b") shows an inode number a copy-up changed */
  fuse_native_strata_listing_stale(dir: string): void
  /** puts the attributes of a directory's entries (packed as a listing's) in the listing table; returns how many */
  fuse_native_strata_prefetch(dir: string, names: string[], packed: Uint32Array): number
  [name: string]: unknown
}

const pkgDir = path.dirname(require.resolve('fuse-native/package.json'))
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const binding: FuseBinding = require('node-gyp-build')(pkgDir)

/** The op names the binding dispatches, with their opcode. */
export function opcode(name: string): number {
  const code = binding[`op_${name}`]
  if (typeof code !== 'number') throw new Error(`fuse-native has no op ${name}`)
  return code
}

export function signalFn(name: string): (...args: unknown[]) => void {
  const fn = binding[`fuse_native_signal_${name}`]
  if (typeof fn !== 'function') throw new Error(`fuse-native has no signal for ${name}`)
  return fn as (...args: unknown[]) => void
}

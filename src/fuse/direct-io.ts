/**
 * Reads and writes answered by the binding on libfuse's worker threads (patches/README.md,
 * strata_fdio.c). Sent here, a read or write crossed to the JS thread, to libuv's threadpool and
 * back: four thread hand-offs per 4 KiB, most of a random write's time on a small VM. The binding
 * does the pread/pwrite itself on the handle's host fd, and the chmod/chown/utimes and stat of a
 * file open for writing on that fd too (attrTag); where the kernel allows, such a file's reads and
 * writes are the kernel's own (passthrough). JS still decides everything else about a handle
 * (open, copy-up and retarget, release) and keeps the binding in step through the handle table's
 * mirror, which also closes the fds (after the binding's reads and writes on them). Its counters
 * join `strata stats` under `read`, `write`, `setattr` and `getattr`.
 */
import * as os from 'node:os'
import type { AdoptedHandle, FdMirror, Handle, HandleSource } from '../union/handles'
import { isLibfuseHidden } from '../union/hidden-names'
import { VOLUME_TAG } from '../union/router'
import { UPPER_TAG } from '../union/union-fs'
import { FsError } from '../sys/errors'
import { relFromFuse } from '../sys/rel'
import { OpStats } from '../union/stats'
import { binding } from './binding'
import { layerOfCode } from './stat-pack'

type FdioBinding = {
  fuse_native_strata_fdio_set(fh: number, fd: number, attrTag: number): number
  fuse_native_strata_fdio_close(fd: number): void
  fuse_native_strata_fdio_counters(op: number): number[]
}
const fdio = binding as unknown as FdioBinding

/**
 * The ino tag the binding answers a SETATTR or GETATTR of `h`'s inode with, after doing it on the
 * fd (strata_fdio_attrs), or 0 for JS to: a handle open for writing is of the file itself (opened
 * in the upper after its copy-up, or in a volume), and such a handle may also start passthrough
 * (strata_pass.h). A hidden file (unlinked while open) stays with JS, whose answers for it are
 * never cached.
 */
function attrTag(h: Handle): number {
  if (!h.writable || isLibfuseHidden(h.rel)) return 0
  if (h.volume !== undefined) return VOLUME_TAG + h.volume
  return h.upper ? UPPER_TAG : 0
}

/**
 * `STRATA_NO_FDIO=1` in the daemon's environment registers no handle with the binding: JS serves
 * every read, write, chmod, chown and stat of an open file, as it does for a handle the binding
 * could not register (out of memory), and nothing passes through. For tests of that path and for
 * measurements.
 */
const registerFds = process.env.STRATA_NO_FDIO !== '1'

export const bindingFds: FdMirror = {
  // a handle the binding could not register (out of memory) is served by JS: nothing to report
  set: (h) => { if (registerFds) fdio.fuse_native_strata_fdio_set(h.id, h.fd, attrTag(h)) },
  drop: (id) => { fdio.fuse_native_strata_fdio_set(id, -1, 0) },
  close: (fd) => { fdio.fuse_native_strata_fdio_close(fd) },
}

/** log2 µs latency buckets in the binding's counters (STRATA_FDIO_BUCKETS) */
export const BUCKETS = 41
const errnoNames = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]))
/** The name of a positive errno the binding counted. */
export const errnoName = (n: number): string => errnoNames.get(n) ?? `errno ${n}`

function opStats(op: 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9): OpStats {
  const raw = fdio.fuse_native_strata_fdio_counters(op)
  const s = new OpStats()
  s.count = raw[0]!
  s.totalUs = raw[2]! / 1000
  s.latencyUs = raw.slice(3, 3 + BUCKETS)
  for (let i = 3 + BUCKETS; i + 1 < raw.length; i += 2) s.errors[errnoName(raw[i]!)] = raw[i + 1]!
  return s
}

/**
 * The binding's read, write, setattr, getattr, unlink, readdir and create counters (and its opens
 * and releases), in the shape of the daemon's own. A setattr the binding does is one request (a
 * chmod, chown and utimens at once, as the kernel sends them); JS counts the ops libfuse splits one
 * into. Its getattrs are those of files open for writing (an fstat of the handle's fd); its unlinks
 * those of lower names (src/fuse/binding-unlinks.ts); its readdirs those of listings built ahead
 * (src/fuse/binding-listings.ts); its creates those of src/fuse/binding-creates.ts; its getxattrs
 * and listxattrs those its table of absent xattrs answers; its setxattrs those of files open for
 * writing (an fsetxattr on the handle's fd; not trusted.overlay.* or security.capability).
 */
export function bindingIoStats(): Map<string, OpStats> {
  return new Map([['read', opStats(0)], ['write', opStats(1)], ['setattr', opStats(2)], ['getattr', opStats(3)], ['unlink', opStats(4)], ['readdir', opStats(5)],
    ['create', opStats(6)], ['getxattr', opStats(7)], ['listxattr', opStats(8)], ['setxattr', opStats(9)], ...bindingOpenStats()])
}

type RopenBinding = {
  fuse_native_strata_layers(roots: Array<string | null>): number
  fuse_native_strata_adopt(fh: number): AdoptedTuple | null
  fuse_native_strata_adopt_at(path: string, below: boolean): AdoptedTuple[]
  fuse_native_strata_ropen_counters(): [number, number, number, number]
}
const ropen = binding as unknown as RopenBinding

/** [id, fd, layer code, FUSE path, open for writing] */
type AdoptedTuple = [number, number, number, string, boolean]
const adopted = ([id, fd, code, path, writable]: AdoptedTuple): AdoptedHandle =>
  ({ id, fd, rel: relFromFuse(path), layer: layerOfCode(code), writable })

/**
 * Read-only opens the binding serves itself (strata_ropen.h): a file a listing just showed is
 * opened below its layer's root on the worker thread, never through a symlink, and its reads and
 * release never reach JS. The handle table adopts such a handle when it needs it. Files the
 * binding created (binding-creates.ts) are its handles too, open for writing, adopted at once.
 */
export const bindingHandles: HandleSource = {
  adopt: (id) => {
    const a = ropen.fuse_native_strata_adopt(id)
    return a ? adopted(a) : null
  },
  adoptAt: (rel, below) => ropen.fuse_native_strata_adopt_at(`/${rel}`, below).map(adopted),
}

/** The layer roots the binding opens files in: the upper (null: none), then each lower, top first. */
export function setBindingLayers(upper: string | null, lowers: string[]): void {
  const res = ropen.fuse_native_strata_layers([upper, ...lowers])
  if (res < 0) throw new Error(`fuse binding: layer roots: errno ${-res}`)
}

type PassBinding = { fuse_native_strata_pass_counters(): [number, number, number] }
const pass = binding as unknown as PassBinding

/**
 * Opens the kernel serves by passthrough (strata_pass.h): files open for writing, and every
 * other open of them meanwhile. Their reads and writes never reach the daemon, so they are in no
 * `read` or `write` count. `backingFiles`: inodes passing through now; `refused`: registrations
 * the kernel refused (not permitted here, or an upper that stacks on another filesystem).
 */
export function passthroughStats(): { opens: number, backingFiles: number, refused: number } {
  const [opens, backingFiles, refused] = pass.fuse_native_strata_pass_counters()
  return { opens, backingFiles, refused }
}

type KillPrivBinding = {
  fuse_native_strata_killpriv_counters(): [number, number, number]
  fuse_native_strata_killpriv_fd(fd: number, pid: number): number
}
const killPriv = binding as unknown as KillPrivBinding

/**
 * Set-id bits dropped by the daemon (FUSE_HANDLE_KILLPRIV_V2, the binding's strata_killpriv.h):
 * whether the kernel granted it, the files whose bits were dropped, and the `security.capability`
 * lookups the kernel sent (with it, about one per file written rather than one per write).
 */
export function killPrivStats(): { granted: boolean, cleared: number, capabilityLookups: number } {
  const [granted, cleared, capabilityLookups] = killPriv.fuse_native_strata_killpriv_counters()
  return { granted: granted === 1, cleared, capabilityLookups }
}

/**
 * Drops from the regular file open as fd the set-id bits a write or truncate by thread pid owes
 * when the kernel leaves that to the daemon (Caller.dropSetId): the binding's rule, which reads
 * the caller's groups when setgid without group execute is set. Done on the fd, so it is the file
 * that was changed, whatever its name is now.
 */
export function dropSetIdBits(fd: number, pid: number): void {
  const res = killPriv.fuse_native_strata_killpriv_fd(fd, pid)
  if (res < 0) throw FsError.fromErrno(res, 'fchmod', `fd ${fd}`)
}

/** Files the binding holds open for reading itself (not in the daemon's handle table). */
export function bindingOpenFiles(): number {
  return ropen.fuse_native_strata_ropen_counters()[3]
}

/** The binding's open and release counters (its read-only opens), in the shape of the daemon's own. */
export function bindingOpenStats(): Map<string, OpStats> {
  const [opens, releases] = ropen.fuse_native_strata_ropen_counters()
  const open = new OpStats()
  open.count = opens
  const release = new OpStats()
  release.count = releases
  return new Map([['open', open], ['release', release]])
}

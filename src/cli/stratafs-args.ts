/**
 * stratafs's command line, compatible with fuse-overlayfs (what podman and containers/storage run)
 * and with mount.fuse (what `mount -t fuse.stratafs` and /etc/fstab run):
 *
 *   stratafs [-f] [-d] [--log-level L] -o lowerdir=TOP:...:BOTTOM[,upperdir=U,workdir=W][,...] MNT
 *   stratafs SOURCE MNT -o OPTS
 *
 * Parsing only: no filesystem access here (see stratafs-validate.ts).
 */
export class UsageError extends Error {}

/** Default max_nodes: walks of trees smaller than this stay fully cached in the kernel. */
export const DEFAULT_MAX_NODES = 100_000

/** Default spin_us: how long the daemon polls for the next request after answering one (src/fuse/mount.ts). */
export const DEFAULT_SPIN_US = 100

export interface StratafsArgs {
  source: string | null
  mountpoint: string
  lowers: string[]
  upper: string | null
  work: string | null
  foreground: boolean
  debug: boolean
  logLevel: string | null
  logFile: string | null
  readOnly: boolean
  fsync: boolean
  /** inodes the kernel may hold through the mount before the oldest unused are pruned (0: no bound) */
  maxNodes: number
  /** µs the daemon polls for the next request after answering one before it sleeps (0: never) */
  spinUs: number
  /** files open for writing are read and written by the kernel (FUSE passthrough) where it allows */
  passthrough: boolean
  /** requests come over io_uring (a queue per CPU) where the kernel offers it */
  uring: boolean
  /** answers over io_uring committed at idle CPU priority: null measures at mount which pays */
  uringIdle: boolean | null
  /** mount flag words passed on to libfuse (dev, suid, ...) */
  mountFlags: string[]
  /** data volumes: host dir SOURCE served at DEST inside the merged view (strata's own option) */
  volumes: Array<{ source: string, dest: string, readOnly: boolean }>
  /** accepted for compatibility, not acted on */
  ignored: string[]
  help: boolean
  version: boolean
}

/** Mount flag words libfuse understands and we pass through. */
const PASSED = new Set(['dev', 'nodev', 'suid', 'nosuid', 'exec', 'noexec', 'atime', 'noatime', 'relatime',
  'strictatime', 'nodiratime', 'diratime', 'sync', 'async', 'dirsync'])
/** Words and options that need no action from stratafs (fstab, mount(8) and containers/storage vocabulary). */
const IGNORED = new Set(['defaults', 'auto', 'noauto', 'user', 'nouser', 'users', 'owner', '_netdev', 'nofail',
  'lazytime', 'nolazytime', 'noxattrs', 'private', 'shared', 'slave', 'rprivate', 'rshared', 'rslave',
  'allow_other', 'allow_root', 'default_permissions', 'userxattr', 'nonempty', 'static_nlink', 'noacl', 'fast_ino'])
const IGNORED_KEYS = new Set(['context', 'fscontext', 'defcontext', 'rootcontext', 'xattr_permissions',
  'redirect_dir', 'index', 'metacopy', 'xino', 'nfs_export', 'max_read', 'threaded', 'timeout', 'comment', 'fsname', 'subtype'])

/** Splits an -o string at commas outside double quotes (context="system_u:...,c1,c2"). Empty items are dropped. */
export function splitOptions(s: string): string[] {
  const out: string[] = []
  let cur = ''
  let quoted = false
  for (const ch of s) {
    if (ch === '"') quoted = !quoted
    if (ch === ',' && !quoted) {
      if (cur !== '') out.push(cur)
      cur = ''
    } else {
      cur += ch
    }
  }
  if (quoted) throw new UsageError(`unbalanced quote in options: ${s}`)
  if (cur !== '') out.push(cur)
  return out
}

/** Splits lowerdir at ':' (a '\:' is a literal colon, as in overlayfs). Empty entries are errors. */
export function splitLowerdir(v: string): string[] {
  const parts: string[] = []
  let cur = ''
  for (let i = 0; i < v.length; i++) {
    const ch = v[i]!
    if (ch === '\\' && i + 1 < v.length) {
      cur += v[++i]
    } else if (ch === ':') {
      parts.push(cur)
      cur = ''
    } else {
      cur += ch
    }
  }
  parts.push(cur)
  if (parts.some((p) => p === '')) throw new UsageError(`lowerdir has an empty entry: "${v}"`)
  return parts
}

export function parseArgs(argv: string[]): StratafsArgs {
  const a: StratafsArgs = {
    source: null, mountpoint: '', lowers: [], upper: null, work: null, foreground: false, debug: false,
    logLevel: null, logFile: null, readOnly: false, fsync: true, maxNodes: DEFAULT_MAX_NODES, spinUs: DEFAULT_SPIN_US, passthrough: true, uring: true, uringIdle: null, mountFlags: [], volumes: [], ignored: [], help: false, version: false,
  }
  const positional: string[] = []
  const optionStrings: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    const value = (): string => {
      const v = argv[++i]
      if (v === undefined) throw new UsageError(`${arg} needs a value`)
      return v
    }
    if (arg === '-h' || arg === '--help') a.help = true
    else if (arg === '-V' || arg === '--version') a.version = true
    else if (arg === '-f') a.foreground = true
    else if (arg === '-d' || arg === '--debug') { a.debug = true; a.foreground = true }
    else if (arg === '-s') { /* single-threaded: accepted, libfuse 2 high-level stays multi-threaded */ }
    else if (arg === '-o') optionStrings.push(value())
    else if (arg.startsWith('-o')) optionStrings.push(arg.slice(2))
    else if (arg === '--log-level') a.logLevel = value()
    else if (arg.startsWith('--log-level=')) a.logLevel = arg.slice('--log-level='.length)
    else if (arg === '--log-file') a.logFile = value()
    else if (arg.startsWith('--log-file=')) a.logFile = arg.slice('--log-file='.length)
    else if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown argument: ${arg}`)
    else positional.push(arg)
  }
  if (a.help || a.version) return a
  if (positional.length === 1) a.mountpoint = positional[0]!
  else if (positional.length === 2) { a.source = positional[0]!; a.mountpoint = positional[1]! }
  else if (positional.length === 0) throw new UsageError('no mountpoint given')
  else throw new UsageError(`too many arguments: ${positional.join(' ')}`)

  for (const item of optionStrings.flatMap(splitOptions)) applyOption(a, item)
  if (a.lowers.length === 0) throw new UsageError('no lowerdir given (-o lowerdir=DIR[:DIR...])')
  if (a.upper !== null && a.work === null) throw new UsageError('upperdir needs a workdir')
  if (a.work !== null && a.upper === null) throw new UsageError('workdir needs an upperdir')
  return a
}

function applyOption(a: StratafsArgs, item: string): void {
  const eq = item.indexOf('=')
  const key = eq < 0 ? item : item.slice(0, eq)
  const val = eq < 0 ? null : item.slice(eq + 1)
  const need = (): string => {
    if (val === null || val === '') throw new UsageError(`option ${key} needs a value`)
    return val
  }
  switch (key) {
    case 'lowerdir': a.lowers.push(...splitLowerdir(need())); return
    case 'upperdir': a.upper = need(); return
    case 'workdir': a.work = need(); return
    case 'ro': a.readOnly = true; return
    case 'rw': a.readOnly = false; return
    case 'volatile': a.fsync = false; return
    case 'fsync':
      if (val !== '0' && val !== '1') throw new UsageError(`fsync takes 0 or 1, not "${val ?? ''}"`)
      a.fsync = val === '1'
      return
    case 'debug': a.debug = true; return
    case 'volume': a.volumes.push(parseVolume(need())); return
    case 'max_nodes': {
      const v = need()
      if (!/^\d+$/.test(v) || Number(v) > 2 ** 31 - 1) throw new UsageError(`max_nodes takes a count (0: no bound), not "${v}"`)
      a.maxNodes = Number(v)
      return
    }
    case 'spin_us': {
      const v = need()
      if (!/^\d+$/.test(v) || Number(v) > 10_000) throw new UsageError(`spin_us takes microseconds from 0 to 10000, not "${v}"`)
      a.spinUs = Number(v)
      return
    }
    case 'passthrough':
      if (val !== '0' && val !== '1') throw new UsageError(`passthrough takes 0 or 1, not "${val ?? ''}"`)
      a.passthrough = val === '1'
      return
    case 'uring':
      if (val !== '0' && val !== '1') throw new UsageError(`uring takes 0 or 1, not "${val ?? ''}"`)
      a.uring = val === '1'
      return
    case 'uring_idle':
      if (val !== '0' && val !== '1' && val !== 'auto') throw new UsageError(`uring_idle takes 0, 1 or auto, not "${val ?? ''}"`)
      a.uringIdle = val === 'auto' ? null : val === '1'
      return
  }
  if (key === 'remount') {
    throw new UsageError('remount is not supported: unmount (fusermount3 -u MNT) and mount again, with -o ro for a read-only view; the upper keeps every change')
  }
  if (key === 'uidmapping' || key === 'gidmapping' || key.startsWith('squash_to_')) {
    throw new UsageError(`option ${key} is not supported by stratafs yet (ID mapping); use kernel overlayfs or fuse-overlayfs for user-namespaced containers`)
  }
  if (val === null && PASSED.has(key)) { a.mountFlags.push(key); return }
  if ((val === null && IGNORED.has(key)) || IGNORED_KEYS.has(key) || key.startsWith('x-')) { a.ignored.push(item); return }
  throw new UsageError(`unknown mount option: ${item}`)
}

/** volume=SOURCE:DEST[:ro|:rw], DEST absolute inside the merged view. */
function parseVolume(v: string): { source: string, dest: string, readOnly: boolean } {
  const parts = v.split(':')
  let readOnly = false
  if (parts.length === 3 && (parts[2] === 'ro' || parts[2] === 'rw')) readOnly = parts.pop() === 'ro'
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new UsageError(`volume takes SOURCE:DEST[:ro], not "${v}"`)
  const dest = parts[1]
  if (!dest.startsWith('/') || dest === '/' || dest.split('/').some((c) => c === '..' || c === '.')) {
    throw new UsageError(`volume destination must be an absolute path below / without . or .., not "${dest}"`)
  }
  return { source: parts[0], dest: dest.replace(/\/+$/, '').replace(/\/{2,}/g, '/'), readOnly }
}

export const USAGE = `usage: stratafs [-f] [-d] [--log-level LEVEL] [--log-file FILE] -o lowerdir=TOP:...:BOTTOM[,upperdir=U,workdir=W][,OPTS] MOUNTPOINT
       stratafs SOURCE MOUNTPOINT -o OPTS            (the form mount.fuse and /etc/fstab use)

Mounts the union of the read-only lower directories (top layer first) and the writable upper
directory at MOUNTPOINT, with kernel overlayfs semantics and on-disk format. Without upperdir the
mount is read-only. Returns once the mount is live and serves in the background; unmount with
\`fusermount3 -u MOUNTPOINT\` or \`umount MOUNTPOINT\`.

options:
  lowerdir=A:B:...   read-only layers, top first ('\\:' for a literal colon)
  upperdir=DIR       writable layer (kernel overlayfs format: whiteouts are 0/0 char devices)
  workdir=DIR        scratch directory on the same filesystem as upperdir
  ro                 read-only even with an upperdir
  volume=SRC:DST[:ro]  serve host directory SRC at DST inside the mount: no copy-up, nothing in
                     the upper (a data volume); repeatable
  fsync=0, volatile  do not fsync copy-ups or pass fsync through (faster, not crash-safe)
  max_nodes=N        inodes the kernel may hold through the mount (default 100000, ~170 bytes of
                     daemon memory each); past it, the kernel drops the oldest it is not using
                     (Linux 6.18+), to be looked up again when needed; 0: no bound
  spin_us=N          after answering a request, poll up to N microseconds for the next one before
                     sleeping (default 100; 0: never; off with one CPU): waking a sleeping thread
                     costs tens of microseconds on VMs, twice per request that JS answers
  passthrough=0      files open for writing are read and written by the daemon, not by the
                     kernel itself (default 1: FUSE passthrough where the kernel allows it)
  uring=0            take requests from /dev/fuse only (default 1: FUSE over io_uring, one queue
                     per CPU, when the kernel offers it: Linux 6.14+ with the fuse module
                     parameter enable_uring=Y)
  uring_idle=0|1     over io_uring, commit each answer at idle CPU priority so that its caller
                     wakes on the same CPU (1), or not (0); default auto: measured at mount (it
                     pays where waking an idle vCPU is slow, and costs ~5 us a request elsewhere)
  dev,suid,...       mount flag words are passed on; defaults are dev,suid
  -f                 stay in the foreground;  -d  debug output (implies -f)
  --log-level L      trace|debug|info|warn|error (default warn, or $STRATA_LOG)
  --log-file F       where the background daemon logs (default: nowhere)
`

/**
 * strata's one error currency: an Error that carries an errno name (`code`) and the path it is
 * about. The union core throws these; src/fuse/errno.ts turns them into negative errnos for the
 * kernel and src/cli into exit codes and messages. Node's own fs errors already have this shape
 * (`code`, `path`, `syscall`), so both are handled alike.
 */
import { constants } from 'node:os'
import { fromLatin1 } from '../native'

const errnoNames = new Map<number, string>()
for (const [name, num] of Object.entries(constants.errno)) {
  if (!errnoNames.has(num)) errnoNames.set(num, name)
}

export function errnoName(errno: number): string {
  return errnoNames.get(Math.abs(errno)) ?? `E${Math.abs(errno)}`
}

export function errnoNumber(code: string): number | undefined {
  return (constants.errno as Record<string, number>)[code]
}

export class FsError extends Error {
  readonly code: string
  /** positive errno */
  readonly errno: number
  readonly path?: string
  readonly syscall?: string

  constructor(code: string, message?: string, opts: { path?: string, syscall?: string } = {}) {
    // Expected errnos (ENOENT lookups, ENODATA xattrs) are the daemon's hot path: no stack
    // capture, and the message is only built when someone reads it (see below).
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super()
    Error.stackTraceLimit = limit
    if (message !== undefined) Object.defineProperty(this, 'message', { value: message, writable: true, configurable: true })
    this.name = 'FsError'
    this.code = code
    this.errno = errnoNumber(code) ?? 5
    if (opts.path !== undefined) this.path = opts.path
    if (opts.syscall !== undefined) this.syscall = opts.syscall
  }

  static fromErrno(negErrno: number, syscall: string, path?: string): FsError {
    return new FsError(errnoName(negErrno), undefined, { syscall, ...(path === undefined ? {} : { path }) })
  }
}

Object.defineProperty(FsError.prototype, 'message', {
  configurable: true,
  get(this: FsError): string {
    const where = this.path === undefined ? '' : ` ${fromLatin1(this.path)}`
    return `${this.syscall ?? 'error'}${where}: ${this.code}`
  },
})

/** Throws an FsError for a negative native result; passes anything else through. */
export function check<T>(result: T | number, syscall: string, path?: string): T {
  if (typeof result === 'number' && result < 0) throw FsError.fromErrno(result, syscall, path)
  return result as T
}

export const fsError = (code: string, syscall: string, path?: string): FsError =>
  new FsError(code, undefined, { syscall, ...(path === undefined ? {} : { path }) })

/** The errno name of anything thrown: FsError, Node's SystemError, or EIO for the unexpected. */
export function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('E') ? code : 'EIO'
}

/**
 * Whether `code` is what a FUSE mount whose daemon died answers: ENOTCONN ("Transport endpoint is
 * not connected"); the first access after the death may see ECONNABORTED instead, and over
 * io_uring accesses see ECANCELED until the kernel has torn the dead daemon's rings down.
 */
export function isDeadFuseCode(code: string | undefined): boolean {
  return code === 'ENOTCONN' || code === 'ECONNABORTED' || code === 'ECANCELED'
}

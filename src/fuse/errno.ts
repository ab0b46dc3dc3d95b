/**
 * Errors → negative errnos for the kernel, in one place (STYLE lesson 1). Unexpected errors become
 * EIO and are logged once at error level; expected ones are logged at trace at most.
 */
import { codeOf, errnoNumber } from '../sys/errors'
import type { Logger } from '../sys/log'

const EXPECTED = new Set(['ENOENT', 'EEXIST', 'ENOTEMPTY', 'ENODATA', 'ENOTDIR', 'EISDIR', 'EROFS', 'EACCES',
  'EPERM', 'EINVAL', 'ENAMETOOLONG', 'EXDEV', 'ENOSPC', 'EDQUOT', 'EOPNOTSUPP', 'ERANGE', 'EBUSY', 'EMFILE', 'ENFILE', 'EFBIG', 'ELOOP'])

export function toNegErrno(err: unknown, op: string, log: Logger): number {
  const code = codeOf(err)
  const num = errnoNumber(code)
  if (num === undefined || code === 'EIO') {
    log.error({ op, err }, 'unexpected error, answering EIO')
    return -5
  }
  if (!EXPECTED.has(code)) log.warn({ op, code, msg: (err as Error).message }, 'operation failed')
  else if (log.isLevelEnabled('trace')) log.trace({ op, code }, 'errno')
  return -num
}

/**
 * JSON logs on stderr (pino). Level from --log-level / -d, else STRATA_LOG, else "warn".
 * Per-op traces are emitted only behind `log.isLevelEnabled('trace')`.
 */
import pino from 'pino'

export type Logger = pino.Logger

export function makeLogger(level?: string, dest: number = 2): Logger {
  return pino({ level: level ?? process.env.STRATA_LOG ?? 'warn', base: { pid: process.pid } }, pino.destination({ fd: dest, sync: true }))
}

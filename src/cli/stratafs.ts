/**
 * stratafs main: parse, validate, then either serve in the foreground (-f/-d) or start a background
 * daemon and return once its mount is live. The caller's stdout/stderr are never held by the daemon
 * (podman reads stderr until EOF): the daemon gets a private stderr pipe that the parent reads only
 * until the daemon reports "live" or an error over an IPC channel.
 */
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { toLatin1 } from '../native'
import { makeLogger, type Logger } from '../sys/log'
import { UnionFs } from '../union/union-fs'
import { Router } from '../union/router'
import { bindingOpenFiles, passthroughStats } from '../fuse/direct-io'
import { makeHandlers } from '../fuse/handlers'
import { kernelNodes, mountFuse, unmount, uringStats } from '../fuse/mount'
import { parseArgs, UsageError, USAGE, type StratafsArgs } from './stratafs-args'
import { ConfigError, validate, type ResolvedConfig } from './stratafs-validate'
import { serveStats } from './stats-socket'
import { startIdleTrim } from '../union/idle-trim'

const DAEMON_ENV = 'STRATAFS_DAEMON_CHILD'

type Report = { live: true } | { error: string }

export async function main(argv: string[]): Promise<void> {
  let args: StratafsArgs
  let config: ResolvedConfig
  try {
    args = parseArgs(argv)
    if (args.help) { process.stdout.write(USAGE); return }
    if (args.version) { process.stdout.write(`stratafs ${require('../../../package.json').version}\n`); return }
    config = validate(args, process.cwd())
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(`stratafs: ${err.message}\n`)
      if (err instanceof UsageError) process.stderr.write('try: stratafs --help\n')
      process.exitCode = err instanceof UsageError ? 2 : 1
      return
    }
    throw err
  }

  const isChild = process.env[DAEMON_ENV] === '1'
  if (!args.foreground && !isChild) {
    process.exitCode = await startDaemon(argv)
    return
  }
  const report = (r: Report): void => {
    if (isChild && process.send) process.send(r, () => process.disconnect())
  }
  try {
    await serve(args, config, report)
  } catch (err) {
    const msg = (err as Error).message
    if (isChild) report({ error: msg })
    else process.stderr.write(`stratafs: ${msg}\n`)
    process.exitCode = 1
    if (isChild) setTimeout(() => process.exit(1), 100)
  }
}

/** Runs this same program as a detached daemon; resolves to the exit code for the caller. */
function startDaemon(argv: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...argv], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      env: { ...process.env, [DAEMON_ENV]: '1' },
    })
    let stderr = ''
    let done = false
    const finish = (code: number, message?: string): void => {
      if (done) return
      done = true
      if (message) process.stderr.write(message.endsWith('\n') ? message : `${message}\n`)
      child.stderr?.destroy()
      child.unref()
      child.channel?.unref?.()
      if (child.connected) child.disconnect()
      resolve(code)
    }
    child.stderr!.setEncoding('utf8')
    child.stderr!.on('data', (d: string) => { stderr += d })
    child.on('message', (m: Report) => {
      if ('live' in m) finish(0)
      else finish(1, `stratafs: ${m.error}${stderr.trim() ? `\n${stderr.trim()}` : ''}`)
    })
    child.on('exit', (code, signal) => finish(code || 1, `stratafs: daemon exited (${signal ?? `code ${code}`}) before the mount was live${stderr.trim() ? `:\n${stderr.trim()}` : ''}`))
    child.on('error', (err) => finish(1, `stratafs: cannot start daemon: ${err.message}`))
  })
}

async function serve(args: StratafsArgs, config: ResolvedConfig, report: (r: Report) => void): Promise<void> {
  const background = process.env[DAEMON_ENV] === '1'
  const log: Logger = args.logFile
    ? makeLogger(args.logLevel ?? (args.debug ? 'debug' : undefined), fs.openSync(args.logFile, 'a'))
    : background ? makeLogger('silent') : makeLogger(args.logLevel ?? (args.debug ? 'debug' : undefined))
  // The daemon sets owner and mode of everything it creates itself; the kernel applied the caller's umask.
  process.umask(0)
  for (const opt of args.ignored) log.debug({ opt }, 'mount option accepted and ignored')

  const union = new UnionFs({
    lowers: config.lowers.map(toLatin1),
    ...(config.upper && config.work ? { upper: toLatin1(config.upper), workdir: toLatin1(config.work) } : {}),
    fsync: args.fsync,
  })
  const cleaned = union.prepare()
  if (cleaned) log.info({ cleaned }, 'removed leftovers of an interrupted run from the workdir')
  const router = new Router(union, config.volumes.map((v) => ({ source: toLatin1(v.source), rel: toLatin1(v.rel), readOnly: v.readOnly })))
  try {
    const made = await router.prepare()
    if (made) log.info({ made }, 'created volume mountpoints in the upper')
  } catch (err) {
    throw new Error(`volume mountpoint: ${(err as Error).message}${config.upper === null ? ' (a read-only mount cannot create it)' : ''}`)
  }

  const readOnly = args.readOnly || config.upper === null
  const flags = [...args.mountFlags]
  if (!flags.includes('nodev') && !flags.includes('dev')) flags.push('dev')
  if (!flags.includes('nosuid') && !flags.includes('suid')) flags.push('suid')
  const mount = mountFuse(config.mountpoint, (onInit) => makeHandlers(router, log, onInit), {
    fsname: args.source ?? 'stratafs', readOnly, extra: flags, debug: args.debug, hasVolumes: config.volumes.length > 0,
    maxNodes: args.maxNodes, spinUs: args.spinUs, passthrough: args.passthrough, uring: args.uring, uringIdle: args.uringIdle,
  })
  let exiting = false
  mount.onExit(() => {
    log.info('unmounted; exiting')
    exiting = true
    process.exit(0)
  })
  const stop = (signal: string): void => {
    if (exiting) return
    log.info({ signal }, 'unmounting')
    unmount(config.mountpoint).catch(() => unmount(config.mountpoint, true)).catch((err) => {
      log.error({ err }, 'unmount failed')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => undefined)
  const snapshot = (): object => ({
    mountpoint: config.mountpoint, pid: process.pid, uptimeSec: Math.round(process.uptime()),
    memory: process.memoryUsage(), kernelNodes: { ...kernelNodes(), max: args.maxNodes }, openHandles: router.handles.size + bindingOpenFiles(), passthrough: passthroughStats(), uring: uringStats(), ...router.stats.toJSON(),
  })
  process.on('SIGUSR1', () => log.warn({ stats: snapshot() }, 'stats'))
  process.on('uncaughtException', (err) => log.error({ err }, 'uncaught exception'))

  await mount.live
  serveStats(config.mountpoint, snapshot)
  startIdleTrim(union, (cachedBytes) => log.debug({ cachedBytes, rss: process.memoryUsage().rss }, 'idle: caches dropped, memory handed back'))
  log.info({ mountpoint: config.mountpoint, lowers: config.lowers, upper: config.upper, readOnly }, 'mounted')
  if (background) process.chdir('/')
  report({ live: true })
}

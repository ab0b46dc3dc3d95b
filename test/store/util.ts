/**
 * Helpers for the strata store tests: run the real CLI (bin/strata) as a child process against a
 * private store, list a tree in the fixtures' expected-merged.txt format, and keep track of
 * mounts so every one is unmounted in teardown.
 */
import { spawn, spawnSync } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

export const REPO = path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../..' : '../..')
export const STRATA = path.join(REPO, 'bin', 'strata')
export const KERNEL_OVERLAY = path.join(REPO, 'test', 'store', 'kernel-overlay-mount.sh')
export const STRATAFS = path.join(REPO, 'bin', 'stratafs')
export const FIXTURES = path.resolve(REPO, '..', 'shared', 'fixtures', 'oci')

export interface Run { code: number | null, stdout: string, stderr: string }

interface Teardown { teardown(fn: () => void | Promise<void>): void }

export function strata(root: string, args: string[], opts: { env?: NodeJS.ProcessEnv, input?: Buffer } = {}): Run {
  const r = spawnSync(process.execPath, [STRATA, '--root', root, ...args], {
    env: { ...process.env, ...opts.env },
    input: opts.input,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

export function strataAsync(root: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [STRATA, '--root', root, ...args], { env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

export function tmpDir(t: Teardown, prefix = 'strata-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  t.teardown(() => {
    unmountUnder(dir)
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

function mountpointsUnder(dir: string): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
}

/** Unmounts everything mounted below dir, deepest first (safety net for failed tests). */
export function unmountUnder(dir: string): void {
  for (const m of mountpointsUnder(dir).sort((a, b) => b.length - a.length)) {
    if (spawnSync('fusermount3', ['-u', m]).status !== 0) spawnSync('umount', ['-l', m])
  }
}

export const isMounted = (mnt: string): boolean => mountpointsUnder(mnt).includes(mnt)

const TYPE: Record<number, string> = { 0o040000: 'd', 0o100000: 'f', 0o120000: 'l', 0o020000: 'c', 0o060000: 'b', 0o010000: 'p', 0o140000: 's' }

/** `TYPE MODE UID:GID SIZE ./PATH [-> TARGET]` per entry, sorted by path bytes (LC_ALL=C). */
export function listTree(root: string): string[] {
  const out: [Buffer, string][] = []
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name
      const st = fs.lstatSync(path.join(root, r))
      const type = TYPE[st.mode & 0o170000] ?? '?'
      let line = `${type} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${type === 'f' ? st.size : '-'} ./${r}`
      if (type === 'l') line += ` -> ${fs.readlinkSync(path.join(root, r))}`
      out.push([Buffer.from(`./${r}`), line])
      if (type === 'd') walk(r)
    }
  }
  walk('')
  return out.sort((a, b) => Buffer.compare(a[0], b[0])).map(([, l]) => l)
}

/** `sha256sum` lines of every regular file, like expected-merged.sha256. */
export function sha256Tree(root: string): string[] {
  const out: [Buffer, string][] = []
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(root, rel))) {
      const r = rel ? `${rel}/${name}` : name
      const st = fs.lstatSync(path.join(root, r))
      if (st.isDirectory()) walk(r)
      else if (st.isFile()) out.push([Buffer.from(`./${r}`), `${crypto.createHash('sha256').update(fs.readFileSync(path.join(root, r))).digest('hex')}  ./${r}`])
    }
  }
  walk('')
  return out.sort((a, b) => Buffer.compare(a[0], b[0])).map(([, l]) => l)
}

export const expectedLines = (fixture: string, file: string): string[] =>
  fs.readFileSync(path.join(FIXTURES, fixture, file), 'utf8').split('\n').filter(Boolean)

/** All paths (relative) under dir, for "nothing appeared outside the store" checks. */
export function snapshotPaths(dir: string): string[] {
  const out: string[] = []
  const walk = (rel: string): void => {
    let names: string[]
    try {
      names = fs.readdirSync(path.join(dir, rel))
    } catch {
      return
    }
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n
      out.push(r)
      if (fs.lstatSync(path.join(dir, r)).isDirectory()) walk(r)
    }
  }
  walk('')
  return out.sort()
}

/** Can bin/stratafs mount and serve a one-file layer? (Checked, not assumed.) */
export function stratafsWorks(): { ok: boolean, why: string } {
  if (!fs.existsSync(STRATAFS)) return { ok: false, why: 'bin/stratafs does not exist' }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stratafs-probe-'))
  try {
    for (const d of ['lower', 'upper', 'work', 'mnt']) fs.mkdirSync(path.join(dir, d))
    fs.writeFileSync(path.join(dir, 'lower', 'probe'), 'probe')
    const r = spawnSync(STRATAFS, ['-o', `lowerdir=${dir}/lower,upperdir=${dir}/upper,workdir=${dir}/work`, `${dir}/mnt`], { encoding: 'utf8', timeout: 30_000 })
    if (r.status !== 0) return { ok: false, why: `stratafs exited ${r.status}: ${r.stderr.trim().split('\n').slice(-1)[0] ?? ''}` }
    let content = ''
    try {
      content = fs.readFileSync(path.join(dir, 'mnt', 'probe'), 'utf8')
    } catch (err) {
      content = `(${(err as Error).message})`
    }
    return content === 'probe' ? { ok: true, why: '' } : { ok: false, why: `stratafs mounted but a lower file reads ${JSON.stringify(content)}` }
  } finally {
    unmountUnder(dir)
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/**
 * Runs bin/strata as user nobody. Goes through setpriv + `env -u NODE_OPTIONS` because tap's
 * processinfo rewrites the environment of spawned node processes to record coverage in .tap/,
 * where nobody may not write.
 */
export function strataAsNobody(root: string, args: string[]): Run {
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'env', '-u', 'NODE_OPTIONS', process.execPath, STRATA, '--root', root, ...args], { encoding: 'utf8' })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

/**
 * Everyday programs on data in a lower layer (issue 5): git, sqlite3 and rsync work on a stratafs
 * mount whose data all starts in the lower. Each scenario runs on kernel overlayfs too (the
 * oracle): the same steps must succeed and print the same (git hashes are reproducible: fixed
 * author/committer dates), and the lower must be unchanged afterwards.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { spawn } from 'node:child_process'
import t from 'tap'
import type { Test } from 'tap'
import { mountUnion, Target } from '../helpers/mounts'
import { tempDir } from '../helpers/tmp'
import { diffSnapshots, snapshot } from '../helpers/tree'
import { assertTools, needTools, run, Run, why } from './util'

const TARGETS: Target[] = ['kernel', 'stratafs']

/** A lower, mounted on each target in turn; `fn` gets the mount and returns a transcript. */
async function onBothTargets(t: Test, name: string, makeLower: (lower: string, dir: string) => void,
  fn: (t: Test, mnt: string, dir: string) => Promise<string[]> | string[]): Promise<void> {
  const dir = tempDir(t, `strata-${name}-`)
  const lower = path.join(dir, 'lower')
  fs.mkdirSync(lower)
  makeLower(lower, dir)
  const before = snapshot(lower, 'raw')
  const transcripts: Partial<Record<Target, string[]>> = {}
  for (const target of TARGETS) {
    await t.test(target, async (t) => {
      const d = { lowers: [lower], upper: path.join(dir, `${target}-u`), work: path.join(dir, `${target}-w`), mnt: path.join(dir, `${target}-m`) }
      for (const p of [d.upper, d.work, d.mnt]) fs.mkdirSync(p)
      const m = await mountUnion(t, target, d)
      const scratch = path.join(dir, `${target}-scratch`)
      fs.mkdirSync(scratch)
      transcripts[target] = (await fn(t, d.mnt, scratch)).map(l => l.split(d.mnt).join('MNT').split(scratch).join('SCRATCH'))
      await m.unmount()
      t.notOk(m.daemonLingered(), 'daemon exited on unmount')
    })
  }
  t.same(transcripts.stratafs, transcripts.kernel, `${name}: stratafs printed what the kernel printed`)
  t.same(diffSnapshots(before, snapshot(lower, 'raw'), {}, ['lower before', 'lower after']), [], 'lower unchanged')
}

/** Runs and asserts success; returns stdout (trimmed) for the transcript. */
function ok(t: Test, cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): string {
  const r = run(cmd, args, opts)
  t.equal(r.code, 0, why(r, `${cmd} ${args.join(' ')}`.slice(0, 200)))
  return r.stdout.trim()
}

// ---------------------------------------------------------------------------------------------- git

const GIT_ENV = (home: string): NodeJS.ProcessEnv => ({
  PATH: process.env.PATH, HOME: home, LANG: 'C', GIT_CONFIG_NOSYSTEM: '1',
  GIT_AUTHOR_NAME: 'Strata Test', GIT_AUTHOR_EMAIL: 'test@strata', GIT_AUTHOR_DATE: '2001-01-01T00:00:00Z',
  GIT_COMMITTER_NAME: 'Strata Test', GIT_COMMITTER_EMAIL: 'test@strata', GIT_COMMITTER_DATE: '2001-01-01T00:00:00Z',
})

t.test('git on a repository in the lower', { skip: needTools({ git: 'git' }) }, async (t) => {
  if (!assertTools(t, { git: 'git' })) return
  let env: NodeJS.ProcessEnv = {}
  const git = (t: Test, cwd: string, ...args: string[]) => ok(t, 'git', args, { cwd, env })
  await onBothTargets(t, 'git', (lower, dir) => {
    const home = path.join(dir, 'home'); fs.mkdirSync(home)
    env = GIT_ENV(home)
    fs.writeFileSync(path.join(home, '.gitconfig'), '[init]\n\tdefaultBranch = main\n[gc]\n\tauto = 0\n')
    const repo = path.join(lower, 'repo')
    fs.mkdirSync(path.join(repo, 'src'), { recursive: true })
    const gl = (...args: string[]) => { const r = run('git', args, { cwd: repo, env }); if (r.code !== 0) throw new Error(why(r, `git ${args.join(' ')}`)) }
    gl('init', '-q')
    for (let i = 0; i < 5; i++) {
      for (let f = 0; f < 10; f++) fs.writeFileSync(path.join(repo, 'src', `f${f}.txt`), `commit ${i} file ${f}\n`.repeat(f + 1))
      fs.writeFileSync(path.join(repo, 'README'), `version ${i}\n`)
      gl('add', '-A'); gl('commit', '-q', '-m', `commit ${i}`)
    }
    gl('branch', 'old')
    gl('gc', '-q') // packs, so the lower holds a pack and loose refs in packed-refs
    fs.writeFileSync(path.join(repo, 'src', 'loose.txt'), 'loose object\n')
    gl('add', 'src/loose.txt'); gl('commit', '-q', '-m', 'loose')
  }, (t, mnt, scratch) => {
    const repo = path.join(mnt, 'repo')
    const out: string[] = []
    out.push(git(t, repo, 'status', '--porcelain=v1', '-b'))
    fs.appendFileSync(path.join(repo, 'README'), 'edited on the mount\n')
    fs.rmSync(path.join(repo, 'src/f3.txt'))
    fs.writeFileSync(path.join(repo, 'src/new.txt'), 'new\n')
    out.push(git(t, repo, 'status', '--porcelain=v1'))
    git(t, repo, 'add', '-A')
    git(t, repo, 'commit', '-q', '-m', 'on the mount')
    git(t, repo, 'checkout', '-q', '-b', 'feature', 'old')
    fs.writeFileSync(path.join(repo, 'feature.txt'), 'feature\n')
    fs.chmodSync(path.join(repo, 'src/f1.txt'), 0o755)
    git(t, repo, 'add', '-A'); git(t, repo, 'commit', '-q', '-m', 'feature work')
    git(t, repo, 'checkout', '-q', 'main')
    git(t, repo, 'merge', '-q', '--no-ff', '-m', 'merge feature', 'feature')
    fs.appendFileSync(path.join(repo, 'src/f0.txt'), 'stashed change\n')
    git(t, repo, 'stash', 'push', '-q', '-m', 'wip')
    out.push(git(t, repo, 'status', '--porcelain=v1'), git(t, repo, 'stash', 'list'))
    git(t, repo, 'stash', 'pop', '-q')
    out.push(git(t, repo, 'diff', '--stat'))
    git(t, repo, 'checkout', '--', '.')
    git(t, repo, 'branch', '-D', 'old')
    git(t, repo, 'gc', '-q', '--prune=now')
    out.push(git(t, repo, 'fsck', '--full', '--strict', '--no-progress'))
    out.push(git(t, repo, 'count-objects', '-v').split('\n').filter(l => /^(count|in-pack|packs|garbage)/.test(l)).join(' '))
    out.push(git(t, repo, 'log', '--graph', '--format=%H %s', '--all'))
    // local clone into the mount (hard links to lower pack files) and out of it
    const inside = path.join(mnt, 'clone')
    git(t, mnt, 'clone', '-q', repo, inside)
    out.push(git(t, inside, 'fsck', '--full', '--no-progress'), git(t, inside, 'rev-parse', 'HEAD'))
    const outside = path.join(scratch, 'clone')
    git(t, scratch, 'clone', '-q', '--no-local', repo, outside)
    out.push(git(t, outside, 'fsck', '--full', '--no-progress'), git(t, outside, 'rev-parse', 'HEAD'), git(t, outside, 'status', '--porcelain'))
    return out
  })
})

// ------------------------------------------------------------------------------------------- sqlite

/** An interactive sqlite3 reader: send SQL, wait for a marker line, collect what it printed. */
function sqliteSession(db: string): { send(sql: string): Promise<string>; close(): Promise<number | null> } {
  const child = spawn('sqlite3', ['-batch', db], { stdio: ['pipe', 'pipe', 'pipe'] })
  let buf = ''
  let waiter: (() => void) | null = null
  child.stdout.setEncoding('utf8').on('data', (s: string) => { buf += s; waiter?.() })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { buf += `[stderr] ${s}`; waiter?.() })
  let n = 0
  return {
    send(sql: string) {
      const mark = `--done ${++n}--`
      child.stdin.write(`${sql}\nSELECT '${mark}';\n`)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`sqlite3 reader: no answer to ${sql} (got ${buf})`)), 30_000)
        waiter = () => {
          const i = buf.indexOf(mark)
          if (i < 0) return
          clearTimeout(timer); waiter = null
          const outp = buf.slice(0, i).trim(); buf = buf.slice(i + mark.length + 1)
          resolve(outp)
        }
        waiter()
      })
    },
    close() {
      child.stdin.end('.quit\n')
      return new Promise(resolve => child.on('close', code => resolve(code)))
    },
  }
}

t.test('sqlite3 on databases in the lower', { skip: needTools({ sqlite3: 'sqlite3' }) }, async (t) => {
  if (!assertTools(t, { sqlite3: 'sqlite3' })) return
  const sql = (t: Test, db: string, script: string) => ok(t, 'sqlite3', ['-batch', '-cmd', '.timeout 20000', db], { input: script })
  await onBothTargets(t, 'sqlite', (lower) => {
    for (const [name, mode] of [['journal.db', 'DELETE'], ['wal.db', 'WAL']] as const) {
      const r = run('sqlite3', ['-batch', path.join(lower, name)], { input: `PRAGMA journal_mode=${mode};
        CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
        WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) INSERT INTO t (v) SELECT printf('row %d %s', x, hex(randomblob(50))) FROM c;
        CREATE INDEX tv ON t (v);` })
      if (r.code !== 0) throw new Error(why(r, 'sqlite3 create'))
    }
  }, async (t, mnt) => {
    const out: string[] = []
    const jdb = path.join(mnt, 'journal.db'); const wdb = path.join(mnt, 'wal.db')
    // rollback journal: commit, rollback, concurrent writers, VACUUM, integrity
    out.push(sql(t, jdb, `PRAGMA journal_mode;
      BEGIN; DELETE FROM t WHERE id % 2 = 0; COMMIT;
      BEGIN; DELETE FROM t; ROLLBACK;
      SELECT count(*) FROM t;`))
    const writers = await Promise.all([1, 2, 3].map(w => new Promise<Run>((resolve) => {
      const child = spawn('sqlite3', ['-batch', '-cmd', '.timeout 30000', jdb], { stdio: ['pipe', 'pipe', 'pipe'] })
      let stderr = ''
      child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
      const stmts = Array.from({ length: 100 }, (_, i) => `INSERT INTO t (v) VALUES ('writer ${w} row ${i}');`).join('\n')
      child.stdin.end(stmts + '\n')
      child.on('close', code => resolve({ code, stdout: '', stderr, signal: null }))
    })))
    writers.forEach((r, i) => t.equal(r.code, 0, why(r, `concurrent writer ${i + 1}`)))
    out.push(sql(t, jdb, `SELECT count(*) FROM t; VACUUM; PRAGMA integrity_check; SELECT count(*) FROM t;`))
    t.notOk(fs.existsSync(`${jdb}-journal`), 'no journal left behind')

    // WAL: a reader in a read transaction keeps its snapshot while a writer commits
    out.push(sql(t, wdb, 'PRAGMA journal_mode; SELECT count(*) FROM t;'))
    const reader = sqliteSession(wdb)
    const r1 = await reader.send('BEGIN; SELECT count(*) FROM t;')
    const w = sql(t, wdb, `INSERT INTO t (v) VALUES ('while reading'); UPDATE t SET v = 'changed' WHERE id <= 10; SELECT count(*) FROM t;`)
    const r2 = await reader.send(`SELECT count(*), sum(v = 'changed') FROM t; COMMIT; SELECT count(*), sum(v = 'changed') FROM t;`)
    t.same([r1, w, r2], ['5000', '5001', '5000|0\n5001|10'], 'the WAL reader keeps its snapshot until COMMIT, then sees the writer')
    out.push(r1, w, r2)
    t.equal(await reader.close(), 0, 'reader exited 0')
    out.push(sql(t, wdb, `PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA integrity_check; SELECT count(*) FROM t;`))
    out.push(sql(t, wdb, `PRAGMA journal_mode=DELETE; SELECT count(*) FROM t;`))
    t.notOk(fs.existsSync(`${wdb}-wal`), 'WAL file gone after journal_mode=DELETE')
    return out
  })
})

// -------------------------------------------------------------------------------------------- rsync

function makeTree(root: string, variant: number): void {
  const w = (rel: string, data: string, mode = 0o644) => {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true })
    fs.writeFileSync(path.join(root, rel), data, { mode })
  }
  for (let i = 0; i < 40; i++) {
    if ((i + variant) % 7 === 0) continue // some names only on one side
    w(`d${i % 5}/sub${i % 3}/f${i}`, `file ${i} v${(i % 4 === 0) ? variant : 0}\n`.repeat(i + 1), (i + variant) % 5 ? 0o644 : 0o600)
  }
  w(`only-v${variant}/x`, `v${variant}\n`)
  fs.symlinkSync(`d${variant}/sub0`, path.join(root, 'link'))
  w('hard-a', `hard ${variant}\n`)
  fs.linkSync(path.join(root, 'hard-a'), path.join(root, 'hard-b'))
  run('setfattr', ['-n', 'user.variant', '-v', String(variant), path.join(root, 'd1')])
  const r = run('sh', ['-c', `find "$1" -exec touch -h -d @${978307200 + variant * 1000} {} +`, 'sh', root])
  if (r.code !== 0) throw new Error(why(r))
}

t.test('rsync -a --delete into and out of a lower-backed tree', { skip: needTools({ rsync: 'rsync', setfattr: 'attr' }) }, async (t) => {
  if (!assertTools(t, { rsync: 'rsync', setfattr: 'attr' })) return
  let src = ''
  await onBothTargets(t, 'rsync', (lower, dir) => {
    makeTree(path.join(lower, 'data'), 1)
    src = path.join(dir, 'src'); makeTree(src, 2)
  }, (t, mnt, scratch) => {
    const out: string[] = []
    const data = path.join(mnt, 'data')
    const rs = (label: string, from: string, to: string) => {
      const r = run('rsync', ['-aHX', '--delete', '--itemize-changes', `${from}/`, `${to}/`])
      t.equal(r.code, 0, why(r, `rsync ${label}`))
      return r.stdout.split('\n').filter(Boolean).sort().join('\n')
    }
    const first = rs('in', src, data)
    t.not(first, '', 'the first pass into the mount changed things')
    out.push(first)
    t.equal(rs('in, again', src, data), '', 'second pass in changes nothing')
    t.same(diffSnapshots(snapshot(src), snapshot(data), { ignore: ['mtime'] }), [], 'mount = source')
    const dst = path.join(scratch, 'out')
    fs.mkdirSync(dst)
    makeTree(path.join(dst), 3)
    out.push(rs('out', data, dst))
    t.equal(rs('out, again', data, dst), '', 'second pass out changes nothing')
    t.same(diffSnapshots(snapshot(data), snapshot(dst)), [], 'copy out = mount (with times)')
    return out
  })
})

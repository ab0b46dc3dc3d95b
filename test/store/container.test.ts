/**
 * Containers through a real stratafs mount: create, mount, change things, diff (docker diff
 * lines), commit → save → import into a fresh store → the same tree; a stale mount whose daemon
 * died is detected and cleaned; mount state and exit codes.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import t from 'tap'
import { FIXTURES, isMounted, listTree, sha256Tree, STRATAFS, strata, tmpDir } from './util'

const env = { STRATAFS_BIN: STRATAFS }

/** pids of processes whose command line mentions `needle` (the daemon we started for mnt). */
function pidsMentioning(needle: string): number[] {
  const out: number[] = []
  for (const p of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')
      if (cmd.includes(needle) && Number(p) !== process.pid) out.push(Number(p))
    } catch {
      // gone
    }
  }
  return out
}

t.test('diff and commit → save → import into a fresh store gives the same tree', async (t) => {
  const dir = tmpDir(t)
  const root = path.join(dir, 'store')
  t.equal(strata(root, ['image', 'import', path.join(FIXTURES, 'podman-build', 'oci'), '-t', 'base']).code, 0)
  t.equal(strata(root, ['container', 'create', 'base', '--name', 'web']).stdout.trim(), 'web')
  const dup = strata(root, ['container', 'create', 'base', '--name', 'web'])
  t.equal(dup.code, 4, 'name in use → 4')
  const mnt = path.join(dir, 'mnt')
  const m = strata(root, ['container', 'mount', 'web', mnt], { env })
  t.equal(m.code, 0, m.stderr)
  t.teardown(() => {
    if (isMounted(mnt)) strata(root, ['container', 'umount', 'web'])
  })
  if (m.code !== 0) return
  t.equal(strata(root, ['container', 'mount', 'web', mnt], { env }).code, 4, 'mounting twice → conflict')

  fs.writeFileSync(path.join(mnt, 'etc', 'added.conf'), 'added\n')
  fs.appendFileSync(path.join(mnt, 'etc', 'passwd'), 'app:x:1000:1000::/:/bin/sh\n')
  fs.rmSync(path.join(mnt, 'etc', 'hostname'))
  fs.rmSync(path.join(mnt, 'var', 'lib', 'data'), { recursive: true })
  fs.mkdirSync(path.join(mnt, 'var', 'lib', 'data'))
  fs.writeFileSync(path.join(mnt, 'var', 'lib', 'data', 'fresh'), 'fresh')
  fs.symlinkSync('../etc/added.conf', path.join(mnt, 'opt', 'added-link'))
  fs.linkSync(path.join(mnt, 'etc', 'added.conf'), path.join(mnt, 'etc', 'added-hardlink'))
  fs.chmodSync(path.join(mnt, 'opt', 'app', 'becomes-file'), 0o600)

  const diff = strata(root, ['container', 'diff', 'web'])
  t.equal(diff.code, 0, diff.stderr)
  const lines = diff.stdout.trim().split('\n')
  for (const want of ['C /etc', 'A /etc/added.conf', 'A /etc/added-hardlink', 'C /etc/passwd', 'D /etc/hostname', 'C /var/lib/data', 'A /var/lib/data/fresh', 'D /var/lib/data/f1.txt', 'A /opt/added-link', 'C /opt/app/becomes-file']) {
    t.ok(lines.includes(want), `diff lists "${want}"`)
  }
  const paths = lines.map((l) => l.slice(2))
  t.same(paths, [...paths].sort(), 'sorted by path')
  const jsonDiff = JSON.parse(strata(root, ['container', 'diff', 'web', '--json']).stdout) as { kind: string, path: string }[]
  t.equal(jsonDiff.length, lines.length)

  const want = listTree(mnt)
  const wantSums = sha256Tree(mnt)
  const c = strata(root, ['container', 'commit', 'web', '--tag', 'web-snap'])
  t.equal(c.code, 0, c.stderr)
  t.match(c.stdout, /committed image sha256:[0-9a-f]{64} \(localhost\/web-snap:latest\)/)
  // deterministic: committing the same upper again gives the same layer
  const c2 = strata(root, ['container', 'commit', 'web'])
  t.match(c2.stdout, /layer sha256:[0-9a-f]{64} already present/, 'same upper → same layer digest')
  const hist = strata(root, ['image', 'history', 'web-snap'])
  t.match(hist.stdout.split('\n')[1] ?? '', /strata container commit web/)

  const u = strata(root, ['container', 'umount', 'web'])
  t.equal(u.code, 0, u.stderr)
  t.notOk(isMounted(mnt))

  const archive = path.join(dir, 'snap.oci.tar')
  const s = strata(root, ['image', 'save', 'web-snap', '-o', archive])
  t.equal(s.code, 0, s.stderr)

  const fresh = path.join(dir, 'fresh-store')
  const imp = strata(fresh, ['image', 'import', archive])
  t.equal(imp.code, 0, imp.stderr)
  t.match(imp.stdout, /localhost\/web-snap:latest/, 'the name travels in the archive')
  t.equal(strata(fresh, ['container', 'create', 'web-snap', '--name', 'again']).code, 0)
  const mnt2 = path.join(dir, 'mnt2')
  const m2 = strata(fresh, ['container', 'mount', 'again', mnt2], { env })
  t.equal(m2.code, 0, m2.stderr)
  t.teardown(() => {
    if (isMounted(mnt2)) strata(fresh, ['container', 'umount', 'again'])
  })
  t.same(listTree(mnt2), want, 'committed image shows exactly the tree the container showed')
  t.same(sha256Tree(mnt2), wantSums, 'same file contents')
  t.equal(strata(fresh, ['container', 'umount', 'again']).code, 0)
  t.equal(strata(fresh, ['layer', 'verify']).code, 0)
  const ids = (r: string): string[] => (JSON.parse(strata(r, ['image', 'inspect', 'web-snap']).stdout) as { layers: string[] }).layers
  t.same(ids(fresh), ids(root), 'same layer digests in both stores')
})

t.test('a stale mount (daemon died) is detected and cleaned by umount and by mount', async (t) => {
  const dir = tmpDir(t)
  const root = path.join(dir, 'store')
  t.equal(strata(root, ['image', 'import', path.join(FIXTURES, 'umoci-built', 'oci'), '-t', 'u']).code, 0)
  t.equal(strata(root, ['container', 'create', 'u', '--name', 'c']).code, 0)
  const mnt = path.join(dir, 'mnt')
  const kill = (): void => {
    const pids = pidsMentioning(mnt)
    t.ok(pids.length > 0, `found the stratafs daemon we started (${pids.join(',')})`)
    for (const p of pids) process.kill(p, 'SIGKILL')
    const deadline = Date.now() + 5000
    while (Date.now() < deadline && pidsMentioning(mnt).length) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50)
  }
  const enotconn = (): string => {
    try {
      fs.statfsSync(mnt) // never answered from the kernel's cache
      return 'ok'
    } catch (err) {
      return (err as NodeJS.ErrnoException).code ?? '?'
    }
  }
  t.teardown(() => {
    if (isMounted(mnt)) strata(root, ['container', 'umount', 'c'])
  })
  t.equal(strata(root, ['container', 'mount', 'c', mnt], { env }).code, 0)
  kill()
  // the first call after the daemon dies may see ECONNABORTED, later ones ENOTCONN; over io_uring
  // calls see ECANCELED until the dead daemon's rings are torn down (asynchronously, in the kernel)
  t.match(enotconn(), /^(ENOTCONN|ECONNABORTED|ECANCELED)$/, 'the dead daemon leaves a dead mount')
  const settle = Date.now() + 5000
  while (Date.now() < settle && enotconn() === 'ECANCELED') Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20)
  t.equal(enotconn(), 'ENOTCONN', '"Transport endpoint is not connected"')
  const ls = JSON.parse(strata(root, ['container', 'ls', '--json']).stdout) as { mounted: string }[]
  t.equal(ls[0]?.mounted, 'stale', 'ls reports the mount as stale')
  const again = strata(root, ['container', 'mount', 'c', mnt], { env })
  t.equal(again.code, 0, again.stderr)
  t.match(again.stderr, /cleaned a stale mount/)
  t.ok(fs.existsSync(path.join(mnt, 'etc', 'app.conf')), 'remounted and serving')
  kill()
  const u = strata(root, ['container', 'umount', 'c'])
  t.equal(u.code, 0, u.stderr)
  t.match(u.stderr, /stale mount/)
  t.notOk(isMounted(mnt), 'stale mount detached')
  t.equal(strata(root, ['container', 'umount', 'c']).code, 1, 'umount of an unmounted container is an error')
})

t.test('container rm: refused while mounted, --force unmounts; image rm refused while used', async (t) => {
  const dir = tmpDir(t)
  const root = path.join(dir, 'store')
  t.equal(strata(root, ['image', 'import', path.join(FIXTURES, 'umoci-built', 'oci'), '-t', 'u']).code, 0)
  t.equal(strata(root, ['container', 'create', 'u', '--name', 'c']).code, 0)
  const m = strata(root, ['container', 'mount', 'c'], { env })
  t.equal(m.code, 0, m.stderr)
  const mnt = m.stdout.trim()
  t.ok(mnt.startsWith(root), 'default mountpoint is inside the store')
  t.teardown(() => {
    if (isMounted(mnt)) strata(root, ['container', 'umount', 'c'])
  })
  t.equal(strata(root, ['container', 'rm', 'c']).code, 4)
  t.equal(strata(root, ['image', 'rm', 'u']).code, 4, 'image in use → 4')
  t.equal(strata(root, ['container', 'rm', '--force', 'c']).code, 0)
  t.notOk(isMounted(mnt))
  t.same(fs.readdirSync(path.join(root, 'containers')), [])
  t.equal(strata(root, ['image', 'rm', 'u']).code, 0)
  t.equal(strata(root, ['image', 'inspect', 'u']).code, 3)
})

/**
 * The fixture images (../shared/fixtures/oci, made by podman and umoci) imported in every format
 * strata accepts, mounted as a container: the merged tree must equal expected-merged.txt and
 * expected-merged.sha256. Each case runs once through stratafs (bin/stratafs, the issue's
 * requirement) and once through kernel overlayfs (test/store/kernel-overlay-mount.sh via
 * STRATAFS_BIN) as an oracle for the store side.
 */
import * as path from 'node:path'
import t from 'tap'
import { expectedLines, FIXTURES, isMounted, KERNEL_OVERLAY, listTree, sha256Tree, STRATAFS, strata, stratafsWorks, tmpDir } from './util'

const cases = [
  { fixture: 'umoci-built', source: 'oci' },
  { fixture: 'podman-build', source: 'oci' },
  { fixture: 'podman-build', source: 'image.docker-archive.tar.gz' },
]

const probe = stratafsWorks()

for (const { fixture, source } of cases) {
  for (const fsName of ['kernel-overlay', 'stratafs']) {
    t.test(`${fixture}/${source} via ${fsName}`, async (t) => {
      const dir = tmpDir(t)
      const root = path.join(dir, 'store')
      const env = { STRATAFS_BIN: fsName === 'stratafs' ? STRATAFS : KERNEL_OVERLAY }
      const imp = strata(root, ['image', 'import', path.join(FIXTURES, fixture, source), '--tag', 'fx'])
      t.equal(imp.code, 0, `import: ${imp.stderr}`)
      t.match(imp.stdout, /imported image sha256:[0-9a-f]{64}/)
      t.equal(strata(root, ['container', 'create', 'fx', '--name', 'c1']).code, 0)
      if (fsName === 'stratafs' && !probe.ok) t.comment(`stratafs probe: ${probe.why}`)
      const mnt = path.join(dir, 'mnt')
      const m = strata(root, ['container', 'mount', 'c1', mnt], { env })
      t.equal(m.code, 0, `mount: ${m.stderr}`)
      t.teardown(() => {
        if (isMounted(mnt)) strata(root, ['container', 'umount', 'c1'])
      })
      if (m.code !== 0) return
      t.ok(isMounted(mnt), 'mountpoint is in mountinfo')
      t.strictSame(listTree(mnt), expectedLines(fixture, 'expected-merged.txt'), 'merged tree = expected-merged.txt')
      t.strictSame(sha256Tree(mnt), expectedLines(fixture, 'expected-merged.sha256'), 'file contents = expected-merged.sha256')
      const u = strata(root, ['container', 'umount', 'c1'])
      t.equal(u.code, 0, `umount: ${u.stderr}`)
      t.notOk(isMounted(mnt), 'unmounted')
      t.equal(strata(root, ['layer', 'verify']).code, 0, 'layers still verify after the mount')
    })
  }
}

t.test('docker-archive and OCI layout of the same image share layers and image id', async (t) => {
  const root = path.join(tmpDir(t), 'store')
  const a = strata(root, ['image', 'import', path.join(FIXTURES, 'podman-build', 'oci')])
  t.equal(a.code, 0, a.stderr)
  const b = strata(root, ['image', 'import', path.join(FIXTURES, 'podman-build', 'image.docker-archive.tar.gz')])
  t.equal(b.code, 0, b.stderr)
  t.equal((b.stdout.match(/already present/g) ?? []).length, 5, '4 layers and the image already present')
  t.match(b.stdout, /localhost\/strata-fixture:latest/)
  const ls = JSON.parse(strata(root, ['image', 'ls', '--json']).stdout) as { id: string, layers: string[] }[]
  t.equal(ls.length, 1, 'one image')
  t.equal(ls[0]?.id, 'sha256:70cb594f7f79b2e11bee0fddbc2a46a770bdf387e597d537bd61f9ab2aad1331', 'image id = config digest of the fixture')
  t.equal(JSON.parse(strata(root, ['layer', 'ls', '--json']).stdout).length, 4)
  const hist = strata(root, ['image', 'history', 'strata-fixture'])
  t.equal(hist.code, 0)
  t.match(hist.stdout, /CREATED BY/)
})

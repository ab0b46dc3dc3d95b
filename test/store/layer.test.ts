/**
 * strata layer import/ls/inspect/rm/verify/export against the real fixture layers: diffIDs,
 * byte-exact re-creation (including umoci's truncated streams), whiteout conversion to the kernel
 * format (and the `.wh.` fallback when mknod is refused), idempotent re-import, exit codes.
 */
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import t from 'tap'
import { native } from '../../src/native'
import { FIXTURES, strata, strataAsNobody, tmpDir } from './util'

const layerFile = (fx: string, n: number): string => path.join(FIXTURES, fx, 'layers', `${n}.tar.gz`)
const sha = (b: Buffer): string => `sha256:${crypto.createHash('sha256').update(b).digest('hex')}`
const layerCount: Record<string, number> = { 'umoci-built': 5, 'podman-build': 4 }

t.test('fixture layers: diffID, export byte for byte, verify', async (t) => {
  const root = path.join(tmpDir(t), 'store')
  for (const [fx, n] of Object.entries(layerCount)) {
    for (let i = 1; i <= n; i++) {
      const tar = zlib.gunzipSync(fs.readFileSync(layerFile(fx, i)))
      const r = strata(root, ['layer', 'import', layerFile(fx, i)])
      t.equal(r.code, 0, `${fx} layer ${i}: ${r.stderr}`)
      t.equal(r.stdout.trim(), `imported layer ${sha(tar)}`, `${fx} layer ${i} diffID = sha256 of the uncompressed tar`)
      const exp = strata(root, ['layer', 'export', sha(tar).slice(7, 19)], {})
      t.equal(exp.code, 0)
      const out = path.join(root, '..', `export-${fx}-${i}.tar`)
      t.equal(strata(root, ['layer', 'export', sha(tar), '-o', out]).code, 0)
      t.ok(fs.readFileSync(out).equals(tar), `${fx} layer ${i} re-created byte for byte (${tar.length} bytes)`)
    }
  }
  const ls = JSON.parse(strata(root, ['layer', 'ls', '--json']).stdout) as { digest: string, trailer: boolean }[]
  t.equal(ls.length, 9)
  t.equal(ls.filter((l) => !l.trailer).length, 4, 'four umoci layers have no end-of-archive blocks')
  const v = strata(root, ['layer', 'verify'])
  t.equal(v.code, 0, v.stderr)
  t.equal(v.stdout.trim().split('\n').filter((l) => l.endsWith(' OK')).length, 9)
  t.same(fs.readdirSync(path.join(root, 'tmp')), [], 'no leftovers in tmp/')
})

t.test('whiteouts become kernel overlayfs whiteouts and opaque xattrs', async (t) => {
  const root = path.join(tmpDir(t), 'store')
  const digests = [1, 2, 3, 4].map((i) => strata(root, ['layer', 'import', layerFile('umoci-built', i)]).stdout.trim().split(' ').pop() ?? '')
  const diff = (i: number): string => path.join(root, 'layers', digests[i - 1]!.slice(7), 'diff')
  const wh = fs.lstatSync(path.join(diff(2), 'etc', 'app.conf'))
  t.ok(wh.isCharacterDevice() && wh.rdev === 0, 'etc/.wh.app.conf → char device 0/0 etc/app.conf')
  t.notOk(fs.existsSync(path.join(diff(2), 'etc', '.wh.app.conf')), 'no .wh. file left')
  t.ok(fs.lstatSync(path.join(diff(3), 'srv', 'logs')).isCharacterDevice(), 'srv/.wh.logs → whiteout of a directory')
  const opq = native.lgetxattr(path.join(diff(4), 'etc', 'conf.d'), 'trusted.overlay.opaque')
  t.ok(Buffer.isBuffer(opq) && opq.toString() === 'y', 'etc/conf.d/.wh..wh..opq (listed before its dir) → trusted.overlay.opaque=y')
  t.same(fs.readdirSync(path.join(diff(4), 'etc', 'conf.d')), ['99-only.conf'])
  t.equal(fs.readFileSync(path.join(diff(4), 'etc', 'conf.d', '99-only.conf'), 'utf8').length, 9, 'last member of a truncated stream keeps its data')
})

t.test('as an unprivileged user, a refused kernel form (opaque xattr) falls back to the .wh. form', async (t) => {
  const dir = tmpDir(t)
  fs.chmodSync(dir, 0o777)
  const root = path.join(dir, 'store')
  const r = strata(root, ['layer', 'import', '-'], { input: fs.readFileSync(layerFile('podman-build', 3)) })
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /imported layer/)
  // run as nobody in a second store: mknod(S_IFCHR) and trusted.* xattrs are refused there
  const root2 = path.join(dir, 'store2')
  fs.mkdirSync(root2, { mode: 0o777 })
  fs.chmodSync(root2, 0o777)
  const res = strataAsNobody(root2, ['layer', 'import', layerFile('podman-build', 3)])
  t.equal(res.code, 0, `import as nobody: ${res.stderr}`)
  const digest = res.stdout.trim().split(' ').pop() ?? ''
  t.equal(`imported layer ${digest}`, r.stdout.trim(), 'same diffID')
  const diff = path.join(root2, 'layers', digest.slice(7), 'diff')
  // Linux >= 5.8 lets anyone mknod a 0/0 whiteout, so only the opaque xattr (trusted.*) must fall back
  const kernelWh = fs.existsSync(path.join(diff, 'etc', 'sample.conf')) && fs.lstatSync(path.join(diff, 'etc', 'sample.conf')).isCharacterDevice()
  const aufsWh = fs.existsSync(path.join(diff, 'etc', '.wh.sample.conf')) && fs.lstatSync(path.join(diff, 'etc', '.wh.sample.conf')).isFile()
  t.ok(kernelWh !== aufsWh, `etc/.wh.sample.conf stored in exactly one form (${kernelWh ? 'kernel' : 'aufs'})`)
  t.ok(fs.lstatSync(path.join(diff, 'opt', 'app', 'cache', '.wh..wh..opq')).isFile(), '.wh..wh..opq kept as a file')
  const info = JSON.parse(fs.readFileSync(path.join(root2, 'layers', digest.slice(7), 'layer.json'), 'utf8')) as { stats: { aufsFallbacks: number } }
  t.ok(info.stats.aufsFallbacks > 0, 'fallbacks counted in layer.json')
  const v = strataAsNobody(root2, ['layer', 'verify'])
  t.equal(v.code, 0, `verify as nobody: ${v.stderr}`)
})

t.test('re-import stores nothing new; rm, verify of a damaged layer, exit codes', async (t) => {
  const root = path.join(tmpDir(t), 'store')
  const first = strata(root, ['layer', 'import', layerFile('umoci-built', 5)])
  t.equal(first.code, 0)
  const digest = first.stdout.trim().split(' ').pop() ?? ''
  const before = fs.statSync(path.join(root, 'layers', digest.slice(7), 'layer.json')).mtimeMs
  const again = strata(root, ['layer', 'import', layerFile('umoci-built', 5)])
  t.equal(again.code, 0)
  t.equal(again.stdout.trim(), `layer ${digest} already present`)
  t.equal(fs.readdirSync(path.join(root, 'layers')).length, 1)
  t.equal(fs.statSync(path.join(root, 'layers', digest.slice(7), 'layer.json')).mtimeMs, before, 'existing layer untouched')
  t.same(fs.readdirSync(path.join(root, 'tmp')), [], 'the second unpack was discarded')

  const insp = JSON.parse(strata(root, ['layer', 'inspect', digest.slice(7, 15)]).stdout) as { digest: string }
  t.equal(insp.digest, digest)

  // damage the stored tree: verify names the layer and fails
  fs.appendFileSync(path.join(root, 'layers', digest.slice(7), 'diff', 'etc', 'app.conf'), 'tampered')
  const v = strata(root, ['layer', 'verify'])
  t.equal(v.code, 1, 'verify exits non-zero')
  t.match(v.stdout, `${digest} MISMATCH`)
  t.match(v.stderr, digest)

  t.equal(strata(root, ['layer', 'inspect', 'abcdef']).code, 3, 'not found → 3')
  t.equal(strata(root, ['layer', 'frobnicate']).code, 2, 'usage → 2')
  t.equal(strata(root, ['layer', 'import']).code, 2, 'missing argument → 2')
  t.equal(strata(root, ['layer', 'import', '/nonexistent.tar']).code, 3, 'missing file → 3')
  const help = strata(root, ['layer', 'import', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Usage: strata layer import/)

  const rm = strata(root, ['layer', 'rm', digest])
  t.equal(rm.code, 0, rm.stderr)
  t.same(fs.readdirSync(path.join(root, 'layers')), [])
  t.equal(strata(root, ['layer', 'rm', digest]).code, 3)
})

t.test('layer rm is refused while an image uses the layer', async (t) => {
  const root = path.join(tmpDir(t), 'store')
  t.equal(strata(root, ['image', 'import', path.join(FIXTURES, 'umoci-built', 'oci'), '-t', 'u']).code, 0)
  const ls = JSON.parse(strata(root, ['layer', 'ls', '--json']).stdout) as { digest: string, usedBy: string[] }[]
  t.same(ls[0]?.usedBy, ['image localhost/u:latest'])
  const rm = strata(root, ['layer', 'rm', ls[0]?.digest ?? ''])
  t.equal(rm.code, 4, 'conflict → 4')
  t.match(rm.stderr, /in use by image localhost\/u:latest/)
})

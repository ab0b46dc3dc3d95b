/**
 * Hostile and broken layer tarballs: each is rejected with a clear one-line error (exit 1), no
 * partial layer is left in the store, and nothing appears outside the store.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import * as zlib from 'node:zlib'
import t from 'tap'
import { header, pad, TRAILER } from '../../src/layers/store/tar-writer'
import { snapshotPaths, strata, strataAsNobody, tmpDir } from './util'

interface Member { name: string, type?: string, data?: Buffer | string, linkname?: string, mode?: number, devmajor?: number, devminor?: number, xattrs?: Map<string, Buffer> }

function tar(members: Member[], trailer = true): Buffer {
  const parts: Buffer[] = []
  for (const m of members) {
    const data = Buffer.from(m.data ?? '')
    parts.push(header({ name: m.name, type: m.type ?? '0', mode: m.mode ?? 0o644, size: data.length, ...(m.linkname ? { linkname: m.linkname } : {}), ...(m.devmajor !== undefined ? { devmajor: m.devmajor, devminor: m.devminor ?? 0 } : {}), ...(m.xattrs ? { xattrs: m.xattrs } : {}) }))
    parts.push(data, pad(data.length))
  }
  if (trailer) parts.push(TRAILER)
  return Buffer.concat(parts)
}

const dir = (name: string): Member => ({ name, type: '5', mode: 0o755 })

t.test('hostile tarballs', async (t) => {
  const base = tmpDir(t)
  fs.chmodSync(base, 0o755) // the unprivileged case must reach its store
  const outside = path.join(base, 'outside')
  fs.mkdirSync(outside)
  fs.writeFileSync(path.join(outside, 'sentinel'), 'untouched')
  const good = tar([dir('d/'), { name: 'd/file', data: 'hello' }])
  const cut = good.subarray(0, 512 * 2 + 3) // inside d/file's data
  const badSum = Buffer.from(good)
  badSum[10] = 0x41
  const cases: { name: string, input: Buffer, error: RegExp, env?: NodeJS.ProcessEnv, asNobody?: boolean }[] = [
    { name: '".." component', input: tar([{ name: 'a/../../escape', data: 'x' }]), error: /"a\/..\/..\/escape": ".." component escapes the layer/ },
    { name: 'absolute name', input: tar([{ name: `${outside}/abs`, data: 'x' }]), error: /absolute name/ },
    { name: 'entry through a symlink', input: tar([{ name: 'link', type: '2', linkname: outside }, { name: 'link/pwned', data: 'x' }]), error: /parent "link" is a symlink/ },
    { name: 'entry through a symlink (dir entry)', input: tar([{ name: 'link', type: '2', linkname: outside }, dir('link/sub/')]), error: /is a symlink/ },
    { name: 'hard link outside the layer (..)', input: tar([{ name: 'h', type: '1', linkname: '../../outside/sentinel' }]), error: /escapes the layer/ },
    { name: 'hard link outside the layer (absolute)', input: tar([{ name: 'h', type: '1', linkname: path.join(outside, 'sentinel') }]), error: /absolute name/ },
    { name: 'hard link to a non-member', input: tar([{ name: 'h', type: '1', linkname: 'etc/passwd' }]), error: /not an earlier member of this layer/ },
    { name: 'hard link through a symlink', input: tar([{ name: 'l', type: '2', linkname: outside }, { name: 'h', type: '1', linkname: 'l/sentinel' }]), error: /not an earlier member/ },
    { name: 'duplicate entry', input: tar([{ name: 'a', data: '1' }, { name: 'a', data: '2' }]), error: /"a": duplicate entry/ },
    { name: 'name and its whiteout', input: tar([{ name: 'a', data: '1' }, { name: '.wh.a' }]), error: /conflicts with a whiteout/ },
    { name: 'child of a file', input: tar([{ name: 'f', data: '1' }, { name: 'f/x', data: '2' }]), error: /parent "f" is not a directory/ },
    { name: 'file over an implied dir', input: tar([{ name: 'd/x', data: '1' }, { name: 'd', data: '2' }]), error: /conflicts with a directory/ },
    { name: 'char device 0/0 (forged whiteout)', input: tar([{ name: 'c', type: '3', devmajor: 0, devminor: 0 }]), error: /would act as an overlayfs whiteout/ },
    { name: 'overlay xattr', input: tar([{ name: 'd/', type: '5', mode: 0o755, xattrs: new Map([['trusted.overlay.opaque', Buffer.from('y')]]) }]), error: /reserved for overlayfs/ },
    { name: 'truncated in file data', input: cut, error: /truncated archive: unexpected end of stream in file data/ },
    { name: 'truncated in a header', input: good.subarray(0, 700), error: /truncated archive: unexpected end of stream in header/ },
    { name: 'corrupt header', input: badSum, error: /bad header checksum/ },
    { name: 'corrupt gzip', input: Buffer.concat([zlib.gzipSync(good).subarray(0, 40), Buffer.alloc(40, 7)]), error: /corrupt gzip stream/ },
    { name: 'gzip bomb over the size limit', input: zlib.gzipSync(tar([{ name: 'zeros', data: Buffer.alloc(16 << 20) }])), env: { STRATA_MAX_LAYER_BYTES: String(1 << 20) }, error: /exceeds the limit of 1048576 bytes/ },
    { name: 'device node when not root', input: tar([{ name: 'null', type: '3', devmajor: 1, devminor: 3 }]), asNobody: true, error: /device nodes can only be imported by root/ },
  ]
  for (const c of cases) {
    t.test(c.name, async (t) => {
      const caseDir = path.join(base, c.name.replace(/[^a-z0-9]+/gi, '-'))
      fs.mkdirSync(caseDir, { mode: 0o777 })
      fs.chmodSync(caseDir, 0o777)
      const root = path.join(caseDir, 'store')
      const file = path.join(caseDir, 'layer.tar')
      fs.writeFileSync(file, c.input, { mode: 0o644 })
      const before = snapshotPaths(base).filter((p) => !p.startsWith(path.relative(base, caseDir)))
      let code: number | null
      let stderr: string
      if (c.asNobody) {
        ({ code, stderr } = strataAsNobody(root, ['layer', 'import', file]))
      } else {
        ({ code, stderr } = strata(root, ['layer', 'import', file], { env: c.env ?? {} }))
      }
      t.equal(code, 1, 'exit code 1 (bad input)')
      t.match(stderr, c.error, `error names the problem: ${stderr.trim()}`)
      t.equal(stderr.trim().split('\n').length, 1, 'one-line message')
      t.same(fs.readdirSync(path.join(root, 'layers')), [], 'no layer stored')
      t.same(fs.readdirSync(path.join(root, 'tmp')), [], 'no partial unpack left behind')
      t.same(snapshotPaths(base).filter((p) => !p.startsWith(path.relative(base, caseDir))), before, 'nothing appeared outside the store')
      t.same(fs.readdirSync(outside), ['sentinel'])
      t.equal(fs.readFileSync(path.join(outside, 'sentinel'), 'utf8'), 'untouched')
      t.same(fs.readdirSync(caseDir).sort(), ['layer.tar', 'store'], 'nothing new beside the store')
    })
  }
})

t.test('tolerated quirks: member "/" and "./", unpadded last member, whiteout-only layer', async (t) => {
  const root = path.join(tmpDir(t), 'store')
  const input = tar([{ name: '/', type: '5', mode: 0o755 }, { name: './', type: '5', mode: 0o755 }, { name: 'etc/.wh.gone' }, { name: 'x', data: 'abc' }], false)
  // umoci-style: no padding after the last member's data and no end-of-archive blocks
  const truncated = input.subarray(0, input.length - 509)
  const r = strata(root, ['layer', 'import', '-'], { input: truncated })
  t.equal(r.code, 1, 'the root listed twice is a duplicate')
  const ok = tar([{ name: '/', type: '5', mode: 0o700 }, { name: 'etc/.wh.gone' }, { name: 'x', data: 'abc' }], false)
  const r2 = strata(root, ['layer', 'import', '-'], { input: ok.subarray(0, ok.length - 509) })
  t.equal(r2.code, 0, r2.stderr)
  const hex = r2.stdout.trim().split(':').pop() ?? ''
  const diff = path.join(root, 'layers', hex, 'diff')
  t.equal(fs.statSync(diff).mode & 0o777, 0o700, 'member "/" sets the root\'s mode')
  t.ok(fs.lstatSync(path.join(diff, 'etc', 'gone')).isCharacterDevice())
  t.equal(fs.readFileSync(path.join(diff, 'x'), 'utf8'), 'abc')
  t.equal(strata(root, ['layer', 'verify']).code, 0)
})

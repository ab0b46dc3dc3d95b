/**
 * Several strata commands at once, interrupted commands and gc: concurrent imports of the same
 * layer and image, an import killed half-way (store stays consistent; gc cleans the leftovers), a
 * lock left by a dead process, and gc of unreferenced layers and blobs.
 */
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import t from 'tap'
import { header } from '../../src/layers/store/tar-writer'
import { FIXTURES, STRATA, strata, strataAsync, tmpDir } from './util'

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

t.test('concurrent imports of the same layer and of the same image', async (t) => {
  const root = path.join(tmpDir(t), 'store')
  const layer = path.join(FIXTURES, 'podman-build', 'layers', '1.tar.gz')
  const runs = await Promise.all([1, 2, 3, 4].map(() => strataAsync(root, ['layer', 'import', layer])))
  for (const r of runs) t.equal(r.code, 0, r.stderr)
  const outs = runs.map((r) => r.stdout.trim())
  t.equal(outs.filter((o) => o.startsWith('imported layer')).length, 1, 'exactly one import published the layer')
  t.equal(outs.filter((o) => o.endsWith('already present')).length, 3, 'the others found it present')
  t.equal(fs.readdirSync(path.join(root, 'layers')).length, 1)
  t.same(fs.readdirSync(path.join(root, 'tmp')), [], 'losers discarded their unpacked copies')
  t.equal(strata(root, ['layer', 'verify']).code, 0)

  const images = await Promise.all([
    strataAsync(root, ['image', 'import', path.join(FIXTURES, 'podman-build', 'oci'), '-t', 'a']),
    strataAsync(root, ['image', 'import', path.join(FIXTURES, 'podman-build', 'image.docker-archive.tar.gz'), '-t', 'b']),
    strataAsync(root, ['image', 'import', path.join(FIXTURES, 'umoci-built', 'oci'), '-t', 'c']),
  ])
  for (const r of images) t.equal(r.code, 0, r.stderr)
  const ls = JSON.parse(strata(root, ['image', 'ls', '--json']).stdout) as { names: string[] }[]
  t.equal(ls.length, 2, 'two distinct images')
  t.same(ls.flatMap((i) => i.names).sort(), ['localhost/a:latest', 'localhost/b:latest', 'localhost/c:latest'], 'no name lost to a race')
  t.equal(fs.readdirSync(path.join(root, 'layers')).length, 9)
  t.equal(strata(root, ['layer', 'verify']).code, 0)
  t.same(fs.readdirSync(path.join(root, 'tmp')), [])
  t.notOk(fs.existsSync(path.join(root, 'lock')), 'lock released')
})

t.test('an import killed half-way leaves the store consistent and gc cleans it', async (t) => {
  const dir = tmpDir(t)
  const root = path.join(dir, 'store')
  t.equal(strata(root, ['image', 'import', path.join(FIXTURES, 'umoci-built', 'oci'), '-t', 'keep']).code, 0)
  const before = fs.readdirSync(path.join(root, 'layers')).sort()

  const child = spawn(process.execPath, [STRATA, '--root', root, 'layer', 'import', '-'], { stdio: ['pipe', 'ignore', 'ignore'] })
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()))
  child.stdin.on('error', () => {}) // EPIPE for the bytes still queued when we kill it: expected
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null && child.pid) process.kill(child.pid, 'SIGKILL')
  })
  const size = 64 << 20
  child.stdin.write(header({ name: 'big', type: '0', mode: 0o644, size }))
  const chunk = Buffer.alloc(1 << 20, 0x61)
  for (let i = 0; i < 8; i++) child.stdin.write(chunk)
  // wait until the unpack is visibly under way in the op dir
  const tmp = path.join(root, 'tmp')
  let partial = ''
  for (let i = 0; i < 200 && !partial; i++) {
    await sleep(25)
    for (const op of fs.readdirSync(tmp)) {
      for (const l of fs.readdirSync(path.join(tmp, op)).filter((n) => n.startsWith('layer-'))) {
        const f = path.join(tmp, op, l, 'diff', 'big')
        if (fs.existsSync(f) && fs.statSync(f).size > 0) partial = f
      }
    }
  }
  t.ok(partial, 'import was half-way (partial file in its op dir)')
  process.kill(child.pid!, 'SIGKILL')
  await exited
  t.equal(child.signalCode, 'SIGKILL')

  t.same(fs.readdirSync(path.join(root, 'layers')).sort(), before, 'no partial layer was published')
  const ls = strata(root, ['layer', 'ls', '--json'])
  t.equal(ls.code, 0)
  t.equal((JSON.parse(ls.stdout) as unknown[]).length, before.length)
  t.equal(strata(root, ['layer', 'verify']).code, 0, 'store still verifies')
  t.equal(fs.readdirSync(tmp).length, 1, 'the dead import left its op dir')

  const dry = strata(root, ['gc', '--dry-run'])
  t.match(dry.stdout, /would remove leftover tmp\/op-/)
  t.equal(fs.readdirSync(tmp).length, 1, 'dry run removes nothing')
  const gc = strata(root, ['gc'])
  t.equal(gc.code, 0, gc.stderr)
  t.match(gc.stdout, /removed leftover tmp\/op-/)
  t.match(gc.stdout, /removed 1 leftover\(s\), 0 layer\(s\), 0 blob\(s\)/, 'image layers and blobs kept')
  t.same(fs.readdirSync(tmp), [])
  t.same(fs.readdirSync(path.join(root, 'layers')).sort(), before)
  t.equal(strata(root, ['layer', 'verify']).code, 0)
})

t.test('a lock left by a dead process is broken; a live one makes others wait', async (t) => {
  const root = path.join(tmpDir(t), 'store')
  t.equal(strata(root, ['gc']).code, 0, 'gc on an empty store creates it')
  // pid 2^22-1 with a made-up start time: not a running process
  fs.writeFileSync(path.join(root, 'lock'), '4194303-1')
  const r = strata(root, ['layer', 'import', path.join(FIXTURES, 'umoci-built', 'layers', '2.tar.gz')])
  t.equal(r.code, 0, r.stderr)
  t.notOk(fs.existsSync(path.join(root, 'lock')), 'stale lock broken and ours released')

  // a live owner (this test process) holds the lock: a command times out with a conflict
  const start = fs.readFileSync(`/proc/${process.pid}/stat`, 'latin1')
  const token = `${process.pid}-${start.slice(start.lastIndexOf(')') + 2).split(' ')[19]}`
  fs.writeFileSync(path.join(root, 'lock'), token)
  const blocked = strata(root, ['layer', 'import', path.join(FIXTURES, 'umoci-built', 'layers', '3.tar.gz')], { env: { STRATA_LOCK_TIMEOUT_MS: '500' } })
  t.equal(blocked.code, 4, 'conflict while the store is locked')
  t.match(blocked.stderr, `is locked by process ${process.pid}`)
  t.same(fs.readdirSync(path.join(root, 'tmp')), [], 'the waiting import cleaned up after itself')
  fs.rmSync(path.join(root, 'lock'))
})

t.test('gc removes layers and blobs nothing refers to', async (t) => {
  const root = path.join(tmpDir(t), 'store')
  t.equal(strata(root, ['image', 'import', path.join(FIXTURES, 'umoci-built', 'oci'), '-t', 'u']).code, 0)
  t.equal(strata(root, ['layer', 'import', path.join(FIXTURES, 'podman-build', 'layers', '4.tar.gz')]).code, 0)
  t.equal(strata(root, ['image', 'import', path.join(FIXTURES, 'podman-build', 'oci'), '-t', 'p']).code, 0)
  t.equal(strata(root, ['image', 'rm', 'p']).code, 0)
  const gc = JSON.parse(strata(root, ['gc', '--json']).stdout) as { layers: string[], blobs: string[] }
  t.equal(gc.layers.length, 4, 'the removed image\'s four layers (one also imported alone) are gone')
  t.equal(gc.blobs.length, 2, 'its config and manifest are gone')
  t.equal(fs.readdirSync(path.join(root, 'layers')).length, 5, 'the remaining image keeps its layers')
  t.equal(strata(root, ['container', 'create', 'u']).code, 0)
  t.equal((JSON.parse(strata(root, ['gc', '--json']).stdout) as { layers: string[] }).layers.length, 0, 'nothing else to collect')
})

/**
 * Data volumes through real stratafs mounts made by `strata container mount` (issue 4): sharing
 * between two mounted containers, survival of `container rm`, read-only volumes (EROFS), a volume
 * hiding the image's directory, seeding of an empty named volume from the image, EXDEV/EBUSY at
 * the boundary, bind volumes, diff/commit leaving volumes out, `volume rm` refused while in use,
 * `volume prune`, labels and exit codes. Every mount is unmounted in teardown (strata umount, then
 * the tmpDir safety net).
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import t, { type Test } from 'tap'
import { isMounted, listTree, sha256Tree, STRATAFS, strata, tmpDir } from '../store/util'
import { importImage } from './image'

const env = { STRATAFS_BIN: STRATAFS }
const SEED_MTIME = new Date('2001-02-03T04:05:06Z')

interface Teardown { teardown(fn: () => void | Promise<void>): void }

/** A store with image `base`: /etc/conf, /srv (empty) and a /data dir worth seeding. */
function setup(t: Teardown): { dir: string, root: string } {
  const dir = tmpDir(t, 'strata-vol-')
  const root = path.join(dir, 'store')
  const tree = path.join(dir, 'tree')
  fs.mkdirSync(path.join(tree, 'etc'), { recursive: true })
  fs.writeFileSync(path.join(tree, 'etc', 'conf'), 'conf\n')
  fs.mkdirSync(path.join(tree, 'srv'))
  const data = path.join(tree, 'data')
  fs.mkdirSync(path.join(data, 'sub'), { recursive: true })
  fs.writeFileSync(path.join(data, 'seed.txt'), 'seeded\n')
  fs.chmodSync(path.join(data, 'seed.txt'), 0o640)
  fs.chownSync(path.join(data, 'seed.txt'), 1234, 5678)
  fs.linkSync(path.join(data, 'seed.txt'), path.join(data, 'seed-hardlink'))
  fs.symlinkSync('seed.txt', path.join(data, 'link'))
  fs.writeFileSync(path.join(data, 'sub', 'deep.txt'), 'deep\n')
  const x = spawnSync('setfattr', ['-n', 'trusted.strata-test', '-v', 'kept', path.join(data, 'seed.txt')], { encoding: 'utf8' })
  if (x.status !== 0) throw new Error(`setfattr: ${x.stderr}`)
  fs.utimesSync(path.join(data, 'seed.txt'), SEED_MTIME, SEED_MTIME)
  fs.chmodSync(data, 0o750)
  fs.chownSync(data, 1000, 1000)
  fs.utimesSync(data, SEED_MTIME, SEED_MTIME)
  importImage(root, [tree], 'base', dir)
  return { dir, root }
}

/** `strata container mount NAME MNT`, unmounted in teardown even if the test fails. */
function mount(t: Test, root: string, name: string, mnt: string): boolean {
  const r = strata(root, ['container', 'mount', name, mnt], { env })
  t.teardown(() => {
    if (isMounted(mnt)) strata(root, ['container', 'umount', name])
  })
  t.equal(r.code, 0, `mount ${name}: ${r.stderr}`)
  return r.code === 0 && isMounted(mnt)
}

const create = (root: string, args: string[]): ReturnType<typeof strata> => strata(root, ['container', 'create', 'base', ...args], { env })
const volData = (root: string, name: string): string => path.join(root, 'volumes', name, '_data')
const upperOf = (root: string, name: string): string => (JSON.parse(strata(root, ['container', 'inspect', name]).stdout) as { paths: { upper: string } }).paths.upper
const xattr = (abs: string, name: string): string => spawnSync('getfattr', ['--only-values', '-h', '-n', name, abs], { encoding: 'utf8' }).stdout

t.test('two mounted containers share a named volume; rm of one keeps the data', async (t) => {
  const { dir, root } = setup(t)
  t.equal(create(root, ['--name', 'a', '--volume', 'shared:/data']).code, 0)
  t.equal(create(root, ['--name', 'b', '--volume', 'shared:/data']).code, 0)
  const ma = path.join(dir, 'ma')
  const mb = path.join(dir, 'mb')
  if (!mount(t, root, 'a', ma) || !mount(t, root, 'b', mb)) return
  fs.writeFileSync(path.join(ma, 'data', 'from-a'), 'written by a\n')
  fs.mkdirSync(path.join(ma, 'data', 'dir-a'))
  t.equal(fs.readFileSync(path.join(mb, 'data', 'from-a'), 'utf8'), 'written by a\n', 'b reads what a wrote, while both are mounted')
  t.ok(fs.statSync(path.join(mb, 'data', 'dir-a')).isDirectory())
  fs.appendFileSync(path.join(mb, 'data', 'from-a'), 'and b\n')
  t.equal(fs.readFileSync(path.join(ma, 'data', 'from-a'), 'utf8'), 'written by a\nand b\n', 'and a sees b\'s append')
  t.equal(fs.readFileSync(path.join(volData(root, 'shared'), 'from-a'), 'utf8'), 'written by a\nand b\n', 'writes land in the volume directory')
  t.same(fs.readdirSync(upperOf(root, 'a')), [], 'nothing in a\'s upper (no copy-up)')
  t.same(fs.readdirSync(upperOf(root, 'b')), [], 'nothing in b\'s upper')

  const inspect = JSON.parse(strata(root, ['container', 'inspect', 'a']).stdout) as { volumes: { type: string, source: string, destination: string, readOnly: boolean, hostPath: string }[] }
  t.same(inspect.volumes, [{ type: 'volume', source: 'shared', destination: '/data', readOnly: false, hostPath: volData(root, 'shared') }], 'container inspect shows the volume')
  const vi = JSON.parse(strata(root, ['volume', 'inspect', 'shared']).stdout) as { usedBy: string[] }[]
  t.same(vi[0]?.usedBy, ['a', 'b'])

  const rm = strata(root, ['container', 'rm', '-f', 'a'])
  t.equal(rm.code, 0, rm.stderr)
  t.notOk(isMounted(ma), 'rm -f unmounted a')
  t.equal(fs.readFileSync(path.join(volData(root, 'shared'), 'from-a'), 'utf8'), 'written by a\nand b\n', 'the data survives container rm')
  t.equal(fs.readFileSync(path.join(mb, 'data', 'from-a'), 'utf8'), 'written by a\nand b\n', 'b still reads it')
  t.match(strata(root, ['volume', 'ls']).stdout, /shared\s+b\s/, 'ls shows b as the only user')
})

t.test('an empty named volume is seeded from the image on first use, metadata intact', async (t) => {
  const { dir, root } = setup(t)
  t.equal(create(root, ['--name', 'c1', '-v', 'seeded:/data']).code, 0)
  const d = volData(root, 'seeded')
  t.same(fs.readdirSync(d).sort(), ['link', 'seed-hardlink', 'seed.txt', 'sub'])
  const root0 = fs.lstatSync(d)
  t.equal(root0.mode & 0o7777, 0o750, 'the volume root takes the image dir\'s mode')
  t.equal(`${root0.uid}:${root0.gid}`, '1000:1000', '... and owner')
  t.equal(root0.mtime.getTime(), SEED_MTIME.getTime(), '... and mtime')
  const s = fs.lstatSync(path.join(d, 'seed.txt'))
  t.equal(s.mode & 0o7777, 0o640)
  t.equal(`${s.uid}:${s.gid}`, '1234:5678')
  t.equal(s.mtime.getTime(), SEED_MTIME.getTime())
  t.equal(xattr(path.join(d, 'seed.txt'), 'trusted.strata-test'), 'kept', 'xattrs copied')
  t.equal(fs.readlinkSync(path.join(d, 'link')), 'seed.txt', 'symlinks copied as symlinks')
  t.equal(fs.lstatSync(path.join(d, 'seed-hardlink')).ino, s.ino, 'hard links kept')
  t.equal(fs.readFileSync(path.join(d, 'sub', 'deep.txt'), 'utf8'), 'deep\n')
  t.same(fs.readdirSync(dir).filter((n) => n.startsWith('image-ro')), [], 'no scratch mount left behind')
  t.same(fs.readdirSync(path.join(root, 'tmp')), [], 'op dir (and its read-only mount) gone')

  // first use only: emptied and used again, it stays empty; an explicitly created volume with
  // content is not seeded either
  fs.rmSync(d, { recursive: true })
  fs.mkdirSync(d)
  t.equal(create(root, ['--name', 'c2', '-v', 'seeded:/data']).code, 0)
  t.same(fs.readdirSync(d), [], 'not seeded again after its first use')
  t.equal(strata(root, ['volume', 'create', 'precreated']).code, 0)
  t.equal(create(root, ['--name', 'c3', '-v', 'precreated:/data']).code, 0)
  t.same(fs.readdirSync(volData(root, 'precreated')).sort(), ['link', 'seed-hardlink', 'seed.txt', 'sub'], 'a `volume create`d empty volume is seeded on its first use')
  t.equal(create(root, ['--name', 'c4', '-v', 'nothing-there:/nothing/here']).code, 0)
  t.same(fs.readdirSync(volData(root, 'nothing-there')), [], 'no image content at the path: an empty volume')
})

t.test('a volume over an image directory hides it; EXDEV across the boundary; EBUSY on the mountpoint', async (t) => {
  const { dir, root } = setup(t)
  t.equal(strata(root, ['volume', 'create', 'own']).code, 0)
  fs.writeFileSync(path.join(volData(root, 'own'), 'mine'), 'mine\n')
  t.equal(create(root, ['--name', 'c', '-v', 'own:/data']).code, 0)
  t.same(fs.readdirSync(volData(root, 'own')), ['mine'], 'a volume with content is not seeded')
  const mnt = path.join(dir, 'mnt')
  if (!mount(t, root, 'c', mnt)) return
  t.same(fs.readdirSync(path.join(mnt, 'data')), ['mine'], 'the image\'s /data is hidden')
  t.throws(() => fs.statSync(path.join(mnt, 'data', 'seed.txt')), { code: 'ENOENT' })
  t.equal(fs.statSync(path.join(mnt, 'data')).mode & 0o7777, fs.statSync(volData(root, 'own')).mode & 0o7777, '/data has the volume root\'s metadata')

  t.throws(() => fs.renameSync(path.join(mnt, 'etc', 'conf'), path.join(mnt, 'data', 'conf')), { code: 'EXDEV' }, 'rename into the volume: EXDEV')
  t.throws(() => fs.renameSync(path.join(mnt, 'data', 'mine'), path.join(mnt, 'etc', 'mine')), { code: 'EXDEV' }, 'rename out of the volume: EXDEV')
  t.throws(() => fs.linkSync(path.join(mnt, 'etc', 'conf'), path.join(mnt, 'data', 'conf-link')), { code: 'EXDEV' }, 'link across: EXDEV')
  t.throws(() => fs.rmdirSync(path.join(mnt, 'data')), { code: 'EBUSY' }, 'rmdir of the mountpoint: EBUSY')
  // `mv` falls back to copy + delete on EXDEV, as across real mounts
  const mv = spawnSync('mv', [path.join(mnt, 'etc', 'conf'), path.join(mnt, 'data', 'conf')], { encoding: 'utf8' })
  t.equal(mv.status, 0, mv.stderr)
  t.equal(fs.readFileSync(path.join(volData(root, 'own'), 'conf'), 'utf8'), 'conf\n', 'mv copied the file into the volume')
  fs.renameSync(path.join(mnt, 'data', 'mine'), path.join(mnt, 'data', 'mine2'))
  t.ok(fs.existsSync(path.join(volData(root, 'own'), 'mine2')), 'rename inside the volume works')
})

t.test('a read-only volume refuses writes with EROFS and keeps its data', async (t) => {
  const { dir, root } = setup(t)
  t.equal(create(root, ['--name', 'w', '-v', 'cfg:/data']).code, 0, 'seeded through a writable user')
  t.equal(create(root, ['--name', 'r', '-v', 'cfg:/data:ro']).code, 0)
  const before = { tree: listTree(volData(root, 'cfg')), sums: sha256Tree(volData(root, 'cfg')) }
  const mnt = path.join(dir, 'mnt')
  if (!mount(t, root, 'r', mnt)) return
  const p = (n: string): string => path.join(mnt, 'data', n)
  t.equal(fs.readFileSync(p('seed.txt'), 'utf8'), 'seeded\n', 'reads work')
  t.throws(() => fs.writeFileSync(p('new'), 'x'), { code: 'EROFS' }, 'create')
  t.throws(() => fs.appendFileSync(p('seed.txt'), 'x'), { code: 'EROFS' }, 'append')
  t.throws(() => fs.truncateSync(p('seed.txt'), 0), { code: 'EROFS' }, 'truncate')
  t.throws(() => fs.unlinkSync(p('seed.txt')), { code: 'EROFS' }, 'unlink')
  t.throws(() => fs.mkdirSync(p('d')), { code: 'EROFS' }, 'mkdir')
  t.throws(() => fs.chmodSync(p('seed.txt'), 0o777), { code: 'EROFS' }, 'chmod')
  t.throws(() => fs.renameSync(p('seed.txt'), p('moved')), { code: 'EROFS' }, 'rename inside')
  fs.writeFileSync(path.join(mnt, 'etc', 'outside'), 'ok')
  t.equal(fs.readFileSync(path.join(mnt, 'etc', 'outside'), 'utf8'), 'ok', 'the rest of the root stays writable')
  t.same({ tree: listTree(volData(root, 'cfg')), sums: sha256Tree(volData(root, 'cfg')) }, before, 'volume data unchanged')
})

t.test('a bind volume serves a host directory, read-write or read-only', async (t) => {
  const { dir, root } = setup(t)
  const host = path.join(dir, 'host')
  fs.mkdirSync(host)
  fs.writeFileSync(path.join(host, 'from-host'), 'host\n')
  t.equal(create(root, ['--name', 'c', '-v', `${host}:/srv/app`, '-v', `${host}:/data:ro`]).code, 0)
  t.same(fs.readdirSync(host), ['from-host'], 'a bind volume is never seeded')
  t.equal(strata(root, ['volume', 'ls', '-q']).stdout, '', 'and is not a store volume')
  const mnt = path.join(dir, 'mnt')
  if (!mount(t, root, 'c', mnt)) return
  t.equal(fs.readFileSync(path.join(mnt, 'srv', 'app', 'from-host'), 'utf8'), 'host\n')
  fs.writeFileSync(path.join(mnt, 'srv', 'app', 'from-container'), 'c\n')
  t.equal(fs.readFileSync(path.join(host, 'from-container'), 'utf8'), 'c\n', 'writes land in the host dir')
  t.equal(fs.readFileSync(path.join(mnt, 'data', 'from-container'), 'utf8'), 'c\n', 'the same dir read-only at /data')
  t.throws(() => fs.writeFileSync(path.join(mnt, 'data', 'x'), 'x'), { code: 'EROFS' })
  t.same(fs.readdirSync(path.join(mnt, 'data')).sort(), ['from-container', 'from-host'], 'image /data hidden')
  const r = strata(root, ['container', 'create', 'base', '-v', `${path.join(dir, 'missing')}:/x`])
  t.equal(r.code, 3, 'missing bind source → not found')
  t.match(r.stderr, /bind volume source .*missing: not found/)
  // a mountpoint inside a bind source would make the daemon look itself up: refused
  t.equal(create(root, ['--name', 'loop', '-v', `${dir}:/outer`]).code, 0)
  const l = strata(root, ['container', 'mount', 'loop', path.join(dir, 'loop-mnt')], { env })
  t.equal(l.code, 1, l.stderr)
  t.match(l.stderr, /inside volume source/)
})

t.test('diff and commit leave volume contents and mountpoints out', async (t) => {
  const { dir, root } = setup(t)
  t.equal(create(root, ['--name', 'c', '-v', 'd:/data', '-v', 'n:/new/deep/vol', '-v', 'e:/etc/vol', '-v', 's:/srv/x']).code, 0)
  const mnt = path.join(dir, 'mnt')
  if (!mount(t, root, 'c', mnt)) return
  for (const v of ['data', 'new/deep/vol', 'etc/vol', 'srv/x']) fs.writeFileSync(path.join(mnt, v, 'in-volume'), v)
  fs.writeFileSync(path.join(mnt, 'etc', 'real'), 'a real change\n')
  const diff = strata(root, ['container', 'diff', 'c'])
  t.equal(diff.code, 0, diff.stderr)
  t.same(diff.stdout.trim().split('\n'), ['C /etc', 'A /etc/real'], 'only the container\'s own change')
  const upper = upperOf(root, 'c')
  t.ok(fs.existsSync(path.join(upper, 'new', 'deep', 'vol')), '(stratafs did create the mountpoint dirs in the upper)')
  t.notOk(fs.existsSync(path.join(upper, 'new', 'deep', 'vol', 'in-volume')), 'no volume data in the upper')

  const c = strata(root, ['container', 'commit', 'c', '--tag', 'snap'])
  t.equal(c.code, 0, c.stderr)
  const img = JSON.parse(strata(root, ['image', 'inspect', 'snap']).stdout) as { layers: string[], config: { history: { comment?: string }[] } }
  t.equal(img.config.history.at(-1)?.comment, '2 change(s)', 'the history counts /etc and /etc/real only')
  const tar = path.join(dir, 'committed.tar')
  t.equal(strata(root, ['layer', 'export', img.layers.at(-1) ?? '', '-o', tar]).code, 0)
  t.same(spawnSync('tar', ['-tf', tar], { encoding: 'utf8' }).stdout.trim().split('\n'), ['etc/', 'etc/real'], 'the committed layer holds only the real change')
  t.equal(strata(root, ['container', 'create', 'snap', '--name', 'plain']).code, 0)
  const m2 = path.join(dir, 'plain')
  if (!mount(t, root, 'plain', m2)) return
  t.equal(fs.readFileSync(path.join(m2, 'etc', 'real'), 'utf8'), 'a real change\n', 'the real change was committed')
  t.notOk(fs.existsSync(path.join(m2, 'new')), 'mountpoint dirs stratafs made are not in the image')
  t.notOk(fs.existsSync(path.join(m2, 'etc', 'vol')), '... nor /etc/vol')
  t.same(fs.readdirSync(path.join(m2, 'srv')), [], '... nor /srv/x')
  t.same(fs.readdirSync(path.join(m2, 'data')).sort(), ['link', 'seed-hardlink', 'seed.txt', 'sub'], '/data is the image\'s, not the volume\'s')
  t.equal(strata(root, ['container', 'diff', 'plain']).stdout, '', 'the new image has nothing extra')

  // a chmod of an ancestor of a mountpoint is a real change and stays in the diff
  fs.chmodSync(path.join(mnt, 'srv'), 0o700)
  t.same(strata(root, ['container', 'diff', 'c']).stdout.trim().split('\n'), ['C /etc', 'A /etc/real', 'C /srv'])
})

t.test('volume rm is refused while a container uses it; --force; prune removes only unused volumes', async (t) => {
  const { dir, root } = setup(t)
  t.equal(create(root, ['--name', 'user', '-v', 'busy:/data']).code, 0)
  const rm = strata(root, ['volume', 'rm', 'busy'])
  t.equal(rm.code, 4, 'in use → conflict')
  t.match(rm.stderr, /volume busy is in use by container user \(remove it first, or use --force\)/)
  t.ok(fs.existsSync(volData(root, 'busy')))

  t.equal(strata(root, ['volume', 'create', 'big', '--label', 'tier=cold', '--label', 'team=x']).stdout.trim(), 'big')
  fs.writeFileSync(path.join(volData(root, 'big'), 'blob'), Buffer.alloc(256 * 1024, 7))
  const gen = strata(root, ['volume', 'create', '--label', 'tier=hot'])
  t.equal(gen.code, 0)
  const generated = gen.stdout.trim()
  t.match(generated, /^[0-9a-f]{64}$/, 'a generated name')
  t.equal(strata(root, ['volume', 'create', 'big']).code, 4, 'create of an existing name → conflict')
  t.equal(strata(root, ['volume', 'inspect', 'nope']).code, 3, 'inspect of a missing volume → not found')
  t.equal(strata(root, ['volume', 'create', 'bad:name']).code, 1, 'invalid name refused')
  t.equal(strata(root, ['container', 'create', 'base', '-v', 'no-dest']).code, 2, 'malformed --volume → usage')
  t.equal(strata(root, ['volume', 'ls', '--filter', 'color']).code, 2, 'malformed filter → usage')

  t.same(strata(root, ['volume', 'ls', '-q', '--filter', 'label=tier=cold']).stdout.trim().split('\n'), ['big'])
  t.same(strata(root, ['volume', 'ls', '-q', '--filter', 'label=tier']).stdout.trim().split('\n').sort(), ['big', generated].sort())
  t.same(strata(root, ['volume', 'ls', '-q', '--filter', 'label=tier=cold', '--filter', 'label=team=y']).stdout, '')
  const json = JSON.parse(strata(root, ['volume', 'ls', '--json']).stdout) as { name: string, labels: Record<string, string>, usedBy: string[] }[]
  t.same(json.map((v) => v.name).sort(), ['big', 'busy', generated].sort())
  t.same(json.find((v) => v.name === 'big')?.labels, { tier: 'cold', team: 'x' })
  t.same(json.find((v) => v.name === 'busy')?.usedBy, ['user'])

  const dry = strata(root, ['volume', 'prune', '--dry-run'])
  t.match(dry.stdout, /would remove 2 volume\(s\)/)
  t.ok(fs.existsSync(volData(root, 'big')), 'dry run removes nothing')
  const pr = strata(root, ['volume', 'prune', '--json'])
  t.equal(pr.code, 0, pr.stderr)
  const report = JSON.parse(pr.stdout) as { removed: string[], bytes: number }
  t.same(report.removed.sort(), ['big', generated].sort(), 'only unused volumes pruned')
  t.ok(report.bytes >= 256 * 1024, `space freed reported (${report.bytes} bytes)`)
  t.ok(fs.existsSync(volData(root, 'busy')), 'the used volume stays')
  t.same(strata(root, ['volume', 'ls', '-q']).stdout.trim().split('\n'), ['busy'])
  t.match(strata(root, ['volume', 'prune']).stdout, /removed 0 volume\(s\), freed 0 B/)

  const f = strata(root, ['volume', 'rm', '--force', 'busy'])
  t.equal(f.code, 0, f.stderr)
  t.match(f.stderr, /was in use by user/)
  t.notOk(fs.existsSync(path.join(root, 'volumes', 'busy')))
  const m = strata(root, ['container', 'mount', 'user', path.join(dir, 'mnt')], { env })
  t.equal(m.code, 3, 'mounting a container whose volume was removed → not found')
  t.match(m.stderr, /volume busy \(at \/data\) was removed/)
  t.notOk(isMounted(path.join(dir, 'mnt')))
  t.equal(strata(root, ['container', 'rm', 'user']).code, 0)
  t.equal(strata(root, ['volume', 'rm', 'busy']).code, 3, 'rm of a missing volume → not found')
})

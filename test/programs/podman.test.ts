/**
 * podman with stratafs as overlay.mount_program (issue 5, "podman uses stratafs as its mount
 * program"). Rootful Debian podman 4.3 with a private --root/--runroot/containers.conf in a temp
 * dir, runc + cgroupfs, --network=none, a busybox base image made with `podman import`.
 *
 * Kernel overlayfs is the oracle: a second private root without mount_program runs the same
 * build and the same diff, and the trees must be equal (tree.ts snapshot: type, mode, owner, size,
 * content, link target, xattrs, nlink and hard-link groups, and mtime of entries from the base image,
 * whose times are all 2001).
 *
 * Must not: kill anything. podman stops its own containers; the test only checks that no stratafs
 * daemon naming the temp root is left once they are gone.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { mountTable, tempDir } from '../helpers/tmp'
import { diffSnapshots, snapshot, Snapshot } from '../helpers/tree'
import {
  STRATAFS, assertTools, busyboxRoot, importBase, needTools, privatePodman, run, sleep, stratafsDaemonsUnder,
  waitNoDaemons, why, Podman,
} from './util'

const TOOLS = { podman: 'podman', runc: 'runc', busybox: 'busybox-static', tar: 'tar' }

const CONTAINERFILE = `FROM localhost/base
RUN mkdir -p /data/keep /data/gone/sub /data/redo/a && echo one > /data/keep/f && echo x > /data/gone/sub/x \\
 && echo r > /data/redo/a/r && echo r2 > /data/redo/r2 && ln -s keep/f /data/link && echo hl > /data/hl \\
 && ln /data/hl /data/hl2 && echo same > /data/same
RUN echo two >> /data/keep/f && chmod 0600 /data/keep/f && chmod 0700 /data/keep && mv /data/hl /data/hl-moved \\
 && rm -rf /data/gone && rm -rf /data/redo && mkdir /data/redo && echo fresh > /data/redo/new \\
 && rm /bin/vi && echo appended >> /etc/motd && chown 65534:65534 /etc/issue && chmod 0640 /etc/issue \\
 && mv /etc/group /etc/group.old && mv /data/keep /data/kept && mv /var/lib /var/lib2 && rm -rf /home && mkdir /home
RUN rm -rf /data/kept/f && mkdir /data/kept/f && touch -d @1000000000 /data/redo/new && mkdir -p /usr/share \\
 && mkdir /usr/share/etc-copy && cp -a /etc/motd /etc/issue /etc/group.old /usr/share/etc-copy/ && rm /etc/passwd && rm -rf /data/redo && mkdir /data/redo && : > /data/same
`

/**
 * Image trees compared, except a directory's mtime: podman's naive diff (containers/storage
 * archive/changes_unix.go statDifferent) ignores directory mtimes, so a directory removed and
 * made again empty (`rm -rf /home && mkdir /home`) is not in the layer and keeps its old time;
 * the kernel driver's diff reads the upper and has it. fuse-overlayfs behaves like stratafs here.
 */
function treeDiff(a: Snapshot, b: Snapshot, names: [string, string] = ['kernel', 'stratafs']): string[] {
  return diffSnapshots(a, b, {}, names).filter(l => {
    const m = /^~ (\S+)  mtime: /.exec(l)
    return !(m && a.entries.get(m[1]!)?.type === 'd' && b.entries.get(m[1]!)?.type === 'd')
  })
}

/** fstype of the mount at `/` inside a container, from its own mountinfo. */
const ROOT_FSTYPE = "awk '$5 == \"/\" { for (i = 7; i <= NF; i++) if ($i == \"-\") { print $(i+1); exit } }' /proc/self/mountinfo"

t.test('podman with mount_program = stratafs', { skip: needTools(TOOLS) }, async (t) => {
  if (!assertTools(t, TOOLS)) return
  const dir = tempDir(t, 'strata-podman-')
  const rootfs = busyboxRoot(path.join(dir, 'rootfs'))
  const ps = privatePodman(t, path.join(dir, 'ps'), STRATAFS)
  const pk = privatePodman(t, path.join(dir, 'pk'), null)
  importBase(ps, rootfs)
  importBase(pk, rootfs)
  const both: [string, Podman][] = [['stratafs', ps], ['kernel', pk]]
  const noDaemons = async (t: Test, when: string) => {
    const left = await waitNoDaemons(dir, 5000)
    t.same(left.map(p => `${p.pid} ${p.argv.join(' ')}`), [], `no stratafs daemon left ${when}`)
  }

  await t.test('run --rm: read, write, append, delete lower files; / is fuse.stratafs', async (t) => {
    const script = [
      'set -e',
      `echo "fstype=$(${ROOT_FSTYPE})"`,
      'cat /etc/motd',
      'echo new > /etc/new; cat /etc/new',
      'echo more >> /etc/motd; cat /etc/motd',
      'rm /etc/issue; test ! -e /etc/issue && echo issue-gone',
      'rm /bin/vi; ls /bin/vi 2>/dev/null || echo vi-gone',
      'rm -rf /var/lib; test ! -e /var/lib && echo varlib-gone',
      'dd if=/dev/zero of=/big bs=1M count=8 2>/dev/null; wc -c < /big',
    ].join('\n')
    const r = ps('run', '--rm', '--network=none', 'localhost/base', 'sh', '-c', script)
    t.equal(r.code, 0, why(r, 'podman run'))
    t.same(r.stdout.trim().split('\n'), [
      'fstype=fuse.stratafs', 'welcome to a strata root', 'new', 'welcome to a strata root', 'more',
      'issue-gone', 'vi-gone', 'varlib-gone', '8388608',
    ])
    const again = ps('run', '--rm', '--network=none', 'localhost/base', 'sh', '-c', 'cat /etc/motd /etc/issue; ls /etc/new 2>&1; ls /bin/vi')
    t.equal(again.code, 0, 'a fresh container sees the image again (only /etc/new is missing)')
    t.equal(again.stdout, 'welcome to a strata root\nstrata \\n \\l\nls: /etc/new: No such file or directory\n/bin/vi\n', why(again))
    // the daemon exits once its mount is gone, a few ms after podman's umount: not before podman returns
    await noDaemons(t, 'after run --rm')
  })

  await t.test('podman diff and commit equal kernel overlayfs', async (t) => {
    const script = 'set -e; echo new > /etc/new; echo >> /etc/passwd; rm /bin/vi; mkdir -p /var/x/y; chmod 700 /etc/group; ' +
      'mv /bin/ls /bin/ls2; rm -rf /home; mkdir /home; touch /home/h; ln -s /etc/new /etc/newlink'
    const out: Record<string, { diff: string; tree: ReturnType<typeof snapshot> | null }> = {}
    for (const [name, p] of both) {
      const r = p('run', '--name', 'c1', '--network=none', 'localhost/base', 'sh', '-c', script)
      t.equal(r.code, 0, why(r, `${name}: podman run`))
      const d = p('diff', 'c1')
      t.equal(d.code, 0, why(d, `${name}: podman diff`))
      const c = p('commit', '-q', 'c1', 'localhost/c1img')
      t.equal(c.code, 0, why(c, `${name}: podman commit`))
      const m = p('image', 'mount', 'localhost/c1img')
      t.equal(m.code, 0, why(m, `${name}: image mount`))
      out[name] = { diff: d.stdout.split('\n').filter(Boolean).sort().join('\n'), tree: m.code === 0 ? snapshot(m.stdout.trim()) : null }
      p('image', 'unmount', 'localhost/c1img')
      p('rm', 'c1')
    }
    // With a mount_program podman diffs naively (stat walk, directory mtimes ignored), and the
    // kernel driver reads the upper: a directory removed and made again is `D dir` there but
    // `C dir` (with its children) naively. fuse-overlayfs 1.10 gives the same `C` line.
    const kernelDiff = out.kernel!.diff.split('\n').map(l => {
      const p = l.slice(2)
      return l.startsWith('D ') && out.kernel!.tree?.entries.get(`.${p}`)?.type === 'd' ? `C ${p}` : l
    }).sort().join('\n')
    // On a mismatch, say what kind of lines differ (a rare CI failure once listed every /bin entry
    // as A; the message was cut to the last 1,000 characters of podman's output).
    const only = (a: string, b: string): string[] => { const bs = new Set(b.split('\n')); return a.split('\n').filter(l => !bs.has(l)) }
    const extra = only(out.stratafs!.diff, kernelDiff)
    const missing = only(kernelDiff, out.stratafs!.diff)
    t.equal(out.stratafs!.diff, kernelDiff, 'podman diff: stratafs = kernel (a recreated dir read as C)',
      { extra: `${extra.length}: ${extra.slice(0, 15).join(', ')}`, missing: `${missing.length}: ${missing.slice(0, 15).join(', ')}` })
    t.match(out.stratafs!.diff, /^A \/etc\/new$/m)
    t.match(out.stratafs!.diff, /^D \/bin\/vi$/m)
    t.match(out.stratafs!.diff, /^C \/etc\/passwd$/m)
    if (out.stratafs!.tree && out.kernel!.tree) {
      t.same(treeDiff(out.kernel!.tree, out.stratafs!.tree), [], 'committed image tree: stratafs = kernel')
    }
    const r = ps('run', '--rm', '--network=none', 'localhost/c1img', 'sh', '-c', 'cat /etc/new; ls /bin/ls2; ls /bin/vi 2>&1; ls -A /home; stat -c %a /etc/group')
    t.equal(r.stdout, 'new\n/bin/ls2\nls: /bin/vi: No such file or directory\nh\n700\n', why(r, 'run the committed image'))
    await noDaemons(t, 'after diff/commit')
  })

  await t.test('podman build: image tree equals the kernel overlayfs build', async (t) => {
    const ctx = path.join(dir, 'ctx')
    fs.mkdirSync(ctx)
    fs.writeFileSync(path.join(ctx, 'Containerfile'), CONTAINERFILE)
    const trees: Record<string, ReturnType<typeof snapshot>> = {}
    for (const [name, p] of both) {
      const b = p('build', '--network=none', '--pull=never', '-t', 'localhost/built', '-f', path.join(ctx, 'Containerfile'), ctx)
      if (!t.equal(b.code, 0, why(b, `${name}: podman build`))) continue
      const m = p('image', 'mount', 'localhost/built')
      if (!t.equal(m.code, 0, why(m, `${name}: image mount`))) continue
      const mnt = m.stdout.trim()
      const fstype = mountTable().filter(e => e.mnt === mnt).pop()?.fstype
      t.equal(fstype, name === 'stratafs' ? 'fuse.stratafs' : 'overlay', `${name}: podman image mount is ${fstype}`)
      trees[name] = snapshot(mnt)
      if (name === 'stratafs') {
        const w = run('touch', [path.join(mnt, 'etc/x')])
        t.match(w.stderr, /Read-only file system/, 'image mount is read-only')
      }
      t.equal(p('image', 'unmount', 'localhost/built').code, 0, `${name}: image unmount`)
    }
    if (!trees.stratafs || !trees.kernel) return
    t.same(treeDiff(trees.kernel, trees.stratafs), [], 'built image (podman image mount): stratafs = kernel')
    const k = trees.kernel.entries
    t.ok(k.get('./data/kept/f')?.type === 'd' && !k.has('./data/keep') && !k.has('./data/gone') && !k.has('./bin/vi'), 'kernel build did what the Containerfile says')
    t.same([...k.keys()].filter(p => p.startsWith('./data/redo/')), [], 'rm -rf D && mkdir D leaves D empty')

    // the stratafs-built layers, seen through the kernel: save from the stratafs root, load into
    // the kernel root, mount there
    const archive = path.join(dir, 'built.tar')
    const s = ps('save', '--format', 'docker-archive', '-o', archive, 'localhost/built')
    t.equal(s.code, 0, why(s, 'podman save'))
    const l = pk('load', '-i', archive)
    t.equal(l.code, 0, why(l, 'podman load into the kernel root'))
    const tag = pk('tag', ps('image', 'inspect', '--format', '{{.Id}}', 'localhost/built').stdout.trim(), 'localhost/built-by-stratafs')
    t.equal(tag.code, 0, why(tag, 'tag'))
    const m = pk('image', 'mount', 'localhost/built-by-stratafs')
    if (t.equal(m.code, 0, why(m, 'kernel image mount of the stratafs build'))) {
      t.same(treeDiff(trees.kernel, snapshot(m.stdout.trim()), ['kernel build', 'stratafs build via kernel']), [],
        'stratafs-built layers, mounted by the kernel: = kernel build')
      pk('image', 'unmount', 'localhost/built-by-stratafs')
    }
    await noDaemons(t, 'after build and image mount')
  })

  await t.test('-v dir:/x:O (overlay volume)', async (t) => {
    const vol = path.join(dir, 'vol')
    fs.mkdirSync(path.join(vol, 'sub'), { recursive: true })
    fs.writeFileSync(path.join(vol, 'a'), 'a\n')
    fs.writeFileSync(path.join(vol, 'sub/b'), 'b\n')
    const script = `set -e; echo "fstype=$(awk '$5 == "/x" { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i+1); exit } }' /proc/self/mountinfo)"
cat /x/a; echo more >> /x/a; cat /x/a; rm /x/sub/b; echo c > /x/c; rm -rf /x/sub; mkdir /x/sub; ls -A /x | tr '\\n' ' '; echo`
    const r = ps('run', '--rm', '--network=none', '-v', `${vol}:/x:O`, 'localhost/base', 'sh', '-c', script)
    t.equal(r.code, 0, why(r, 'podman run -v :O'))
    t.same(r.stdout.split('\n').slice(0, 5), ['fstype=fuse.stratafs', 'a', 'a', 'more', 'a c sub '], why(r))
    t.equal(fs.readFileSync(path.join(vol, 'a'), 'utf8'), 'a\n', 'host dir unchanged')
    t.equal(fs.readFileSync(path.join(vol, 'sub/b'), 'utf8'), 'b\n', 'host dir unchanged')
    t.notOk(fs.existsSync(path.join(vol, 'c')), 'nothing written to the host dir')
    await noDaemons(t, 'after an :O volume')
  })

  await t.test('--read-only', async (t) => {
    const r = ps('run', '--rm', '--network=none', '--read-only', 'localhost/base', 'sh', '-c',
      'cat /etc/motd; touch /etc/x 2>&1; rm /bin/vi 2>&1; echo t > /tmp/t && cat /tmp/t; awk \'$5 == "/" { print $6 }\' /proc/self/mountinfo')
    t.equal(r.stdout, 'welcome to a strata root\ntouch: /etc/x: Read-only file system\nrm: can\'t remove \'/bin/vi\': Read-only file system\nt\nro,relatime\n', why(r))
    await noDaemons(t, 'after --read-only')
  })

  await t.test('three containers at once, sharing layers', async (t) => {
    const names = ['c-a', 'c-b', 'c-c']
    for (const n of names) {
      const r = ps('run', '-d', '--name', n, '--network=none', 'localhost/base', 'sh', '-c',
        `echo ${n} > /etc/who; rm /etc/motd; mkdir /var/lib/${n}; sleep 600`)
      t.equal(r.code, 0, why(r, `start ${n}`))
    }
    await sleep(500)
    const mounts = mountTable().filter(m => m.mnt.startsWith(`${ps.root}/overlay/`) && m.fstype === 'fuse.stratafs')
    t.equal(mounts.length, 3, `three fuse.stratafs mounts on the host: ${mounts.map(m => m.mnt).join(' ')}`)
    const lowers = new Set(stratafsDaemonsUnder(dir).map(p => p.argv.find(a => a.includes('lowerdir='))?.replace(/.*lowerdir=([^,]*).*/, '$1')))
    t.equal(lowers.size, 1, `the three daemons share one lowerdir (${[...lowers].join(' | ')})`)
    const views = await Promise.all(names.map(n => ps.async('exec', n, 'sh', '-c', 'cat /etc/who; ls /etc/motd 2>&1; ls /var/lib | tr "\\n" " "; echo; cat /bin/busybox | md5sum')))
    const md5 = run('md5sum', [path.join(rootfs, 'bin/busybox')]).stdout.split(' ')[0]
    names.forEach((n, i) => {
      t.equal(views[i]!.stdout, `${n}\nls: /etc/motd: No such file or directory\n${n} \n${md5}  -\n`, why(views[i]!, `${n} sees only its own changes`))
    })
    const stop = await Promise.all(names.map(n => ps.async('rm', '--force', '--time', '0', n)))
    stop.forEach((r, i) => t.equal(r.code, 0, why(r, `rm -f ${names[i]}`)))
    await noDaemons(t, 'after the three containers stopped')
    t.same(mountTable().filter(m => m.mnt.startsWith(dir) && m.fstype.startsWith('fuse')).map(m => m.mnt), [], 'no FUSE mount left')
  })
})

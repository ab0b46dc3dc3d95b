/**
 * Round trip with Debian's podman (private --root/--runroot, no registry): strata image import →
 * strata image save (oci-archive) → podman load → same image id and layer digests, and
 * `podman image mount` shows the expected tree.
 */
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import t from 'tap'
import { expectedLines, FIXTURES, listTree, sha256Tree, strata, tmpDir } from './util'

const havePodman = spawnSync('podman', ['--version']).status === 0
// CI installs podman (scripts/install-deps.sh); there a missing podman is a failure, not a skip.
if (!havePodman && process.env.CI) t.fail('podman is not installed, but CI must run the podman round trip')

for (const fixture of ['podman-build', 'umoci-built']) {
  t.test(`${fixture}: import → save → podman load → podman image mount`, { skip: havePodman ? false : 'podman is not installed (apt-get install podman)' }, async (t) => {
    const dir = tmpDir(t)
    const root = path.join(dir, 'store')
    fs.writeFileSync(path.join(dir, 'containers.conf'), '[engine]\ncgroup_manager="cgroupfs"\nevents_logger="file"\nruntime="runc"\n')
    fs.writeFileSync(path.join(dir, 'storage.conf'), `[storage]\ndriver="overlay"\ngraphroot="${dir}/proot"\nrunroot="${dir}/prun"\n`)
    const penv = { ...process.env, CONTAINERS_CONF: path.join(dir, 'containers.conf'), CONTAINERS_STORAGE_CONF: path.join(dir, 'storage.conf') }
    const podman = (...args: string[]): { code: number | null, stdout: string, stderr: string } => {
      const r = spawnSync('podman', ['--root', `${dir}/proot`, '--runroot', `${dir}/prun`, ...args], { env: penv, encoding: 'utf8' })
      return { code: r.status, stdout: r.stdout, stderr: r.stderr }
    }
    t.teardown(() => {
      podman('image', 'unmount', '--all', '--force')
      podman('rmi', '--all', '--force')
    })
    const imp = strata(root, ['image', 'import', path.join(FIXTURES, fixture, 'oci'), '-t', `rt-${fixture}`])
    t.equal(imp.code, 0, imp.stderr)
    const img = JSON.parse(strata(root, ['image', 'inspect', `rt-${fixture}`]).stdout) as { id: string, layers: string[] }
    const archive = path.join(dir, 'image.oci.tar')
    const save = strata(root, ['image', 'save', `rt-${fixture}`, '-o', archive])
    t.equal(save.code, 0, save.stderr)

    const load = podman('load', '-i', archive)
    t.equal(load.code, 0, `podman load: ${load.stderr}`)
    t.match(load.stdout, `localhost/rt-${fixture}:latest`)
    const insp = podman('image', 'inspect', img.id.slice(7), '--format', '{{.Id}} {{json .RootFS.Layers}}')
    t.equal(insp.code, 0, insp.stderr)
    const [id, layers] = insp.stdout.trim().split(' ')
    t.equal(`sha256:${id}`, img.id, 'podman sees the same image id (config digest)')
    t.same(JSON.parse(layers ?? '[]'), img.layers, 'layer digests unchanged')

    const m = podman('image', 'mount', img.id.slice(7))
    t.equal(m.code, 0, `podman image mount: ${m.stderr}`)
    const mnt = m.stdout.trim()
    t.strictSame(listTree(mnt), expectedLines(fixture, 'expected-merged.txt'), 'podman image mount = expected-merged.txt')
    t.strictSame(sha256Tree(mnt), expectedLines(fixture, 'expected-merged.sha256'))
    t.equal(podman('image', 'unmount', img.id.slice(7)).code, 0)
  })
}

/**
 * Passthrough (strata_pass.h, Linux 6.9+): a file open for writing is read and written by the
 * kernel on the upper file itself, and every other open of it meanwhile joins. Through a real
 * mount, the same script on kernel overlayfs and on stratafs must observe the same bytes and
 * sizes, including where opens with and without passthrough meet (a reader opened before the
 * writer, a lower file read while it is copied up); and the writes must not reach the daemon.
 */
import t from 'tap'
import { mountUnion, strataStats } from '../helpers/mounts'
import { lowersUnchanged, makeDirs, observe, waitFor } from './util'

interface Stats {
  ops: Record<string, { count: number }>
  passthrough?: { opens: number, backingFiles: number, refused: number }
}

const SCRIPT = `
import hashlib, json, mmap, os, random, sys
mnt = sys.argv[1]
p = lambda n: mnt + '/' + n
out = []
def seen(label, **kv): out.append(dict(at=label, **kv))
sha = lambda b: hashlib.sha256(b).hexdigest()[:16]
def content(name): return sha(open(p(name), 'rb').read())
# sequential writes of a new file
fd = os.open(p('seq'), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
for i in range(64): os.write(fd, bytes([i]) * 131072)
seen('seq open', size=os.fstat(fd).st_size, stat=os.stat(p('seq')).st_size)
os.close(fd); seen('seq closed', size=os.stat(p('seq')).st_size, sha=content('seq'))
# random 4 KiB writes, read back by a reader opened while the writer is open
r = random.Random(5)
fd = os.open(p('rand'), os.O_RDWR | os.O_CREAT, 0o644)
for i in range(2000): os.pwrite(fd, bytes([i & 255]) * 4096, r.randrange(1024) * 4096)
rd = os.open(p('rand'), os.O_RDONLY)
seen('rand while open', size=os.fstat(rd).st_size, sha=sha(os.pread(rd, 8 << 20, 0)), wsha=sha(os.pread(fd, 8 << 20, 0)))
os.close(fd); os.close(rd); seen('rand closed', sha=content('rand'), size=os.stat(p('rand')).st_size)
# a reader opened before the writer (of an upper file)
rd = os.open(p('seq'), os.O_RDONLY)
fd = os.open(p('seq'), os.O_WRONLY | os.O_APPEND)
os.write(fd, b'tail')
seen('reader first', size=os.fstat(rd).st_size, end=os.pread(rd, 8, (8 << 20) - 4).decode())
os.close(fd); os.close(rd)
# two appenders
a, b = os.open(p('log'), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644), os.open(p('log'), os.O_WRONLY | os.O_APPEND)
for i in range(50): os.write(a if i % 2 else b, b'line %d\\n' % i)
os.close(a); os.close(b); seen('appenders', sha=content('log'))
# shared mmap writes, read back with read(2)
fd = os.open(p('map'), os.O_RDWR | os.O_CREAT, 0o644); os.ftruncate(fd, 65536)
m = mmap.mmap(fd, 65536); m[100:105] = b'hello'; m[60000:60003] = b'end'; m.flush(); m.close()
seen('mmap', data=os.pread(fd, 5, 100).decode() + os.pread(fd, 3, 60000).decode(), size=os.fstat(fd).st_size)
os.ftruncate(fd, 1000); seen('ftruncate open', size=os.fstat(fd).st_size, stat=os.stat(p('map')).st_size); os.close(fd)
# a lower file opened for reading, then written (copied up): the reader follows the copy-up
rd = os.open(p('etc/motd'), os.O_RDONLY)
before = os.pread(rd, 100, 0).decode()
fd = os.open(p('etc/motd'), os.O_WRONLY | os.O_TRUNC)
os.write(fd, b'new motd\\n'); os.close(fd)
seen('lower reader', before=before, after=os.pread(rd, 100, 0).decode(), stat=os.stat(p('etc/motd')).st_size)
os.close(rd)
# written again after the copy-up, with a reader of the upper file open
rd = os.open(p('etc/motd'), os.O_RDONLY)
fd = os.open(p('etc/motd'), os.O_WRONLY | os.O_APPEND); os.write(fd, b'more\\n'); os.close(fd)
seen('upper reader', data=os.pread(rd, 100, 0).decode()); os.close(rd)
# unlinked while open for writing
fd = os.open(p('gone'), os.O_RDWR | os.O_CREAT, 0o644); os.write(fd, b'abc'); os.unlink(p('gone'))
os.write(fd, b'def'); seen('unlinked', data=os.pread(fd, 10, 0).decode(), size=os.fstat(fd).st_size, listed='gone' in os.listdir(mnt)); os.close(fd)
# O_TRUNC of an upper file with a reader open
rd = os.open(p('rand'), os.O_RDONLY)
fd = os.open(p('rand'), os.O_WRONLY | os.O_TRUNC); os.write(fd, b'short'); os.close(fd)
seen('truncated', data=os.pread(rd, 100, 0).decode(), size=os.stat(p('rand')).st_size); os.close(rd)
print(json.dumps(out))
`

t.test('files open for writing: the kernel reads and writes them (passthrough), with kernel overlayfs\'s results', async (t) => {
  const results: Record<string, unknown> = {}
  let stats: Stats | null = null
  for (const target of ['kernel', 'stratafs'] as const) {
    const d = makeDirs(t)
    lowersUnchanged(t, d.lowers)
    const m = await mountUnion(t, target, d)
    results[target] = observe(t, target, SCRIPT, m.mnt)
    if (target === 'stratafs') {
      // the last RELEASEs reach the daemon after close(2) has returned
      await waitFor(() => strataStats<Stats>(m.mnt).passthrough?.backingFiles === 0)
      stats = strataStats<Stats>(m.mnt)
    }
    await m.unmount()
  }
  t.same(results.stratafs, results.kernel, 'every observation as on kernel overlayfs')
  t.equal((results.kernel as unknown[]).length, 12, 'every step observed')
  const pass = stats?.passthrough
  t.ok(pass !== undefined, 'strata stats reports passthrough')
  if (!pass || pass.refused > 0 || pass.opens === 0) {
    // this kernel (or its settings) does not allow it: the results above are the fallback's
    t.fail(`passthrough was not used here (${JSON.stringify(pass)}): Linux 6.9+ with CONFIG_FUSE_PASSTHROUGH and CAP_SYS_ADMIN are needed`)
    return
  }
  // seq, rand and its reader, both appenders, map, gone; an open for writing of a file some other
  // open reads without passthrough (reader first, the motd steps, truncated) is not (7 or more:
  // a reader may still join a writer whose RELEASE is on its way)
  t.ok(pass.opens >= 7, `opens served by passthrough (${pass.opens})`)
  t.equal(pass.backingFiles, 0, 'no backing file left registered once every file is closed')
  // 64 + 2000 + 1 + 50 + 1 + 1 + 1 writes went to files open for writing; the kernel did them
  t.ok((stats!.ops.write?.count ?? 0) < 50, `writes that reached the daemon: ${stats!.ops.write?.count ?? 0}`)
})

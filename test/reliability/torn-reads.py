# Torn 4 KiB blocks seen by readers of a file that six processes copy up and write at once
# (test/reliability/load.test.ts 'cow' role, with six writers of their own files for load), on
# kernel overlayfs, stratafs or the plain host filesystem. Not part of `make test`: it shows the
# kernel's behaviour that load.test.ts takes as the reference. Needs root.
#   python3 test/reliability/torn-reads.py kernel|stratafs|ext4 RUNS
import os, sys, random, subprocess, tempfile, multiprocessing as mp, shutil
target, runs = sys.argv[1], int(sys.argv[2])
STRATAFS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../bin/stratafs')
def pat(n, seed):
    r = random.Random(seed); return bytes(r.getrandbits(8) for _ in range(n))
def cow(path, lowerdata, i, q):
    torn = 0
    fd = os.open(path, os.O_RDWR)
    os.pwrite(fd, bytes([0x40 + i]) * 4096, i * 4096)
    for k in range(200):
        b = os.pread(fd, 8 * 4096, 0)
        for j in range(8):
            blk = b[j*4096:(j+1)*4096]
            if blk != lowerdata[j*4096:(j+1)*4096] and blk != bytes([0x40 + j]) * 4096: torn += 1
    os.close(fd); q.put(torn)
def noise(path, i):
    fd = os.open('%s/own%d' % (path, i), os.O_RDWR | os.O_CREAT, 0o644)
    for g in range(20):
        for c in range(32): os.pwrite(fd, bytes([(i + g + c) % 251]) * 65536, c * 65536)
        os.fsync(fd)
    os.close(fd)
total = 0
lowerdata = pat(1 << 20, 6)
for run in range(runs):
    d = tempfile.mkdtemp(prefix='torn-')
    L, U, W, M = [os.path.join(d, x) for x in ('l', 'u', 'w', 'm')]
    for p in (L, U, W, M): os.mkdir(p)
    open(L + '/cow', 'wb').write(lowerdata)
    if target == 'kernel': subprocess.check_call(['mount', '-t', 'overlay', 'overlay', '-o', 'lowerdir=%s,upperdir=%s,workdir=%s' % (L, U, W), M])
    elif target == 'stratafs': subprocess.check_call([STRATAFS, '-o', 'lowerdir=%s,upperdir=%s,workdir=%s' % (L, U, W), M])
    else: M = L
    try:
        q = mp.Queue()
        ps = [mp.Process(target=cow, args=(M + '/cow', lowerdata, i, q)) for i in range(6)] + [mp.Process(target=noise, args=(M, i)) for i in range(6)]
        for p in ps: p.start()
        for p in ps: p.join()
        n = sum(q.get() for _ in range(6)); total += n
    finally:
        if target != 'ext4': subprocess.call(['umount', M])
        shutil.rmtree(d, ignore_errors=True)
print('%s: %d runs, torn blocks seen: %d' % (target, runs, total))

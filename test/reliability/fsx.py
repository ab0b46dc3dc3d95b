#!/usr/bin/env python3
"""fsx-style data-integrity exerciser (issue 6), after the classic fsx from Apple/XFS tests.

Usage: fsx.py FILE OPS SEED [MAXLEN]
Keeps an in-memory model of FILE's bytes and applies random operations to both: pwrite, pread
(verified), truncate (grow and shrink), mmap read (verified), mmap write + msync, close/reopen,
and a full verify every 1000 ops and at the end. The file may start non-empty (a lower file to
be copied up): the model starts from its current content. Prints one JSON line:
{"ops": N, "mismatches": M, "counts": {...}, "first": "..."}; exit 1 on any mismatch.
"""
import json, mmap, os, random, sys

path, nops, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
MAXLEN = int(sys.argv[4]) if len(sys.argv) > 4 else 256 * 1024
rng = random.Random(seed)
with open(path, 'rb') as f:
    model = bytearray(f.read())
fd = os.open(path, os.O_RDWR)
counts, mismatches, first, log = {}, 0, None, []


def fail(op, msg):
    global mismatches, first
    mismatches += 1
    if first is None:
        first = '%s at op %d: %s; last ops: %s' % (op, i, msg, log[-8:])


def where(a, b):
    n = min(len(a), len(b))
    for k in range(n):
        if a[k] != b[k]:
            return 'first differing byte at %d (got %d, want %d)' % (k, a[k], b[k])
    return 'lengths %d vs %d' % (len(a), len(b))


def verify(op):
    size = os.fstat(fd).st_size
    if size != len(model):
        fail(op, 'size %d, model %d' % (size, len(model)))
    got = os.pread(fd, len(model) + 1, 0)
    if got != bytes(model):
        fail(op, 'content: ' + where(got, model))


def data(n):
    return bytes(rng.getrandbits(8) for _ in range(n)) if n <= 64 else rng.randbytes(n)


for i in range(nops):
    r = rng.random()
    size = len(model)
    if r < 0.30:
        op = 'write'
        off = rng.randrange(0, MAXLEN)
        n = rng.randrange(1, 65536) if rng.random() < 0.3 else rng.randrange(1, 4096)
        n = min(n, MAXLEN - off) or 1
        buf = data(n)
        if os.pwrite(fd, buf, off) != n:
            fail(op, 'short write')
        if off > size:
            model.extend(b'\0' * (off - size))
        model[off:off + n] = buf
    elif r < 0.60:
        op = 'read'
        if size == 0:
            continue
        off = rng.randrange(0, size)
        n = rng.randrange(1, 65536)
        got = os.pread(fd, n, off)
        want = bytes(model[off:off + n])
        if got != want:
            fail(op, 'pread(%d, %d): %s' % (off, n, where(got, want)))
    elif r < 0.70:
        op = 'truncate'
        n = rng.randrange(0, MAXLEN)
        os.ftruncate(fd, n)
        if n < size:
            del model[n:]
        else:
            model.extend(b'\0' * (n - size))
    elif r < 0.80:
        op = 'mapread'
        if size == 0:
            continue
        with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ) as m:
            off = rng.randrange(0, size)
            n = min(rng.randrange(1, 65536), size - off)
            got = m[off:off + n]
        want = bytes(model[off:off + n])
        if got != want:
            fail(op, 'mmap read(%d, %d): %s' % (off, n, where(got, want)))
    elif r < 0.90:
        op = 'mapwrite'
        if size == 0:
            continue
        off = rng.randrange(0, size)
        n = min(rng.randrange(1, 16384), size - off)
        buf = data(n)
        with mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            m[off:off + n] = buf
            m.flush()
        model[off:off + n] = buf
    elif r < 0.93:
        op = 'reopen'
        if rng.random() < 0.5:
            os.fsync(fd)
        os.close(fd)
        fd = os.open(path, os.O_RDWR)
    else:
        op = 'stat'
        if os.fstat(fd).st_size != len(model):
            fail(op, 'fstat size %d, model %d' % (os.fstat(fd).st_size, len(model)))
    counts[op] = counts.get(op, 0) + 1
    log.append(op)
    if len(log) > 16:
        del log[:8]
    if i % 1000 == 999:
        verify('verify')
verify('final')
os.close(fd)
# and through a fresh open by path
with open(path, 'rb') as f:
    if f.read() != bytes(model):
        fail('final-reopen', 'content after reopen differs')
print(json.dumps({'ops': nops, 'mismatches': mismatches, 'counts': counts, 'first': first}))
sys.exit(1 if mismatches else 0)

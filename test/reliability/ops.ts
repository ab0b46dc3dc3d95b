/**
 * A tiny operation runner in a Python child: a list of file operations, each answered with 'ok',
 * a value, or the errno name. The child has a deadline, so a hung FUSE request becomes a 'HANG'
 * result instead of blocking the test process.
 */
import { py } from './util'

export type Op =
  | ['fill', string, number] // write chunks of n bytes to path (created) until an error; -> {err, bytes}
  | ['write', string, number, number] // create/truncate path, write n bytes of byte value v
  | ['append', string, string] // open O_WRONLY|O_APPEND (copy-up), write text
  | ['rename', string, string]
  | ['unlink', string]
  | ['mkdir', string]
  | ['rmdir', string]
  | ['symlink', string, string]
  | ['link', string, string]
  | ['mknod', string]
  | ['chmod', string, number]
  | ['truncate', string, number]
  | ['creat', string] // create an empty file

const RUNNER = `
import os, sys, json, errno
def en(e): return errno.errorcode.get(e.errno, str(e.errno))
res = []
for op in json.loads(sys.argv[1]):
    k, a = op[0], op[1:]
    try:
        if k == 'fill':
            fd = os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            n = 0; err = None; buf = b'f' * a[1]
            try:
                while True: n += os.write(fd, buf)
            except OSError as e: err = en(e)
            try: os.close(fd)
            except OSError as e: err = err + '/close:' + en(e)
            res.append({'err': err, 'bytes': n}); continue
        elif k == 'write':
            fd = os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                left = a[1]
                while left > 0: left -= os.write(fd, bytes([a[2]]) * min(left, 1 << 20))
            finally: os.close(fd)
        elif k == 'append':
            fd = os.open(a[0], os.O_WRONLY | os.O_APPEND)
            try: os.write(fd, a[1].encode())
            finally: os.close(fd)
        elif k == 'rename': os.rename(a[0], a[1])
        elif k == 'unlink': os.unlink(a[0])
        elif k == 'mkdir': os.mkdir(a[0])
        elif k == 'rmdir': os.rmdir(a[0])
        elif k == 'symlink': os.symlink(a[0], a[1])
        elif k == 'link': os.link(a[0], a[1])
        elif k == 'mknod': os.mkfifo(a[0])
        elif k == 'chmod': os.chmod(a[0], a[1])
        elif k == 'truncate': os.truncate(a[0], a[1])
        elif k == 'creat': os.close(os.open(a[0], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        res.append('ok')
    except OSError as e: res.append(en(e))
print(json.dumps(res))
`

/** Runs `ops` in order in one child; returns one result per op ('HANG' for all if the child was killed). */
export function runOps(ops: Op[], timeoutMs = 60_000): unknown[] {
  const r = py(RUNNER, [JSON.stringify(ops)], timeoutMs)
  if (r.error || r.signal) return ops.map(() => 'HANG')
  if (r.status !== 0) throw new Error(`op runner failed: ${r.stderr}`)
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as unknown[]
}

export function runOp(op: Op, timeoutMs = 60_000): unknown {
  return runOps([op], timeoutMs)[0]
}

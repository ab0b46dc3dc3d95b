/**
 * bench fixtures: generates every tree `make bench` mounts, under one directory on the host
 * filesystem (nothing downloaded). Idempotent: a fixture whose `.done` marker exists is reused.
 *
 *   node dist/bench/fixtures.js DIR [--million]
 *
 * Layout (each `l`/`a`/`b`/`u` is one layer directory):
 *   tree/l/t/dNN/dMM/fKKK     30 x 10 x 100 = 30,000 empty files (metadata workloads)
 *   wide/{a,b,u}/big/         one 10,000-entry directory spread over two lowers (a, b) and an upper (u)
 *   data/l/f1g, data/l/f256   1 GiB and 256 MiB of incompressible data, fully allocated (no holes)
 *   data/l/chmod/cNNNN        1,000 small files for chmod
 *   small/l/s/dNN/dMM/fKKK    20 x 10 x 100 = 20,000 files of ~1 KiB text (rm -rf, cp -a, grep -r)
 *   small.tar                 the same 20,000 files as a tarball (untar); made by tar in run.sh
 *   depth/NNN/x/              127 thin layers of 20 files each, and depth/b/x/ with 2,000 hit files:
 *                             a stack of N lowers is depth/000..depth/(N-2) over depth/b
 *   million/l/mNNN/fNNN       1,000 x 1,000 = 1M empty files (only with --million)
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { randomBytes } from 'node:crypto'

const pad = (n: number, w: number): string => String(n).padStart(w, '0')

function once(dir: string, build: (dir: string) => void): void {
  const marker = path.join(dir, '.done')
  if (fs.existsSync(marker)) return
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  const t0 = Date.now()
  build(dir)
  fs.writeFileSync(marker, '')
  process.stderr.write(`fixtures: ${path.basename(dir)} in ${((Date.now() - t0) / 1000).toFixed(1)}s\n`)
}

function grid(root: string, a: number, b: number, c: number, content: (i: number) => string | null): void {
  let i = 0
  for (let x = 0; x < a; x++) {
    for (let y = 0; y < b; y++) {
      const dir = path.join(root, `d${pad(x, 2)}`, `d${pad(y, 2)}`)
      fs.mkdirSync(dir, { recursive: true })
      for (let z = 0; z < c; z++) {
        const body = content(i++)
        fs.writeFileSync(path.join(dir, `f${pad(z, 3)}`), body ?? '')
      }
    }
  }
}

function writeData(file: string, bytes: number): void {
  const chunk = randomBytes(1 << 20)
  const fd = fs.openSync(file, 'w')
  try {
    for (let off = 0; off < bytes; off += chunk.length) {
      chunk.writeUInt32LE(off >>> 20, 0) // every MiB differs, so nothing can dedupe it
      fs.writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - off))
    }
  } finally {
    fs.closeSync(fd)
  }
}

export function main(argv: string[]): void {
  const root = argv[0]
  if (!root) throw new Error('usage: fixtures DIR [--million]')
  const million = argv.includes('--million')

  once(path.join(root, 'tree'), (d) => grid(path.join(d, 'l', 't'), 30, 10, 100, () => null))

  once(path.join(root, 'wide'), (d) => {
    const parts: Array<[string, number]> = [['a', 3333], ['b', 3333], ['u', 3334]]
    for (const [layer, count] of parts) {
      const dir = path.join(d, layer, 'big')
      fs.mkdirSync(dir, { recursive: true })
      for (let i = 0; i < count; i++) fs.writeFileSync(path.join(dir, `${layer}${pad(i, 5)}`), '')
    }
  })

  once(path.join(root, 'data'), (d) => {
    fs.mkdirSync(path.join(d, 'l', 'chmod'), { recursive: true })
    writeData(path.join(d, 'l', 'f1g'), 1 << 30)
    writeData(path.join(d, 'l', 'f256'), 256 << 20)
    for (let i = 0; i < 1000; i++) fs.writeFileSync(path.join(d, 'l', 'chmod', `c${pad(i, 4)}`), 'x\n')
  })

  once(path.join(root, 'small'), (d) => {
    const line = 'the quick brown fox jumps over the lazy dog 0123456789\n'
    grid(path.join(d, 'l', 's'), 20, 10, 100, (i) => `file ${i}\n` + line.repeat(18))
  })

  once(path.join(root, 'depth'), (d) => {
    for (let l = 0; l < 127; l++) {
      const dir = path.join(d, pad(l, 3), 'x')
      fs.mkdirSync(dir, { recursive: true })
      for (let j = 0; j < 20; j++) fs.writeFileSync(path.join(dir, `l${pad(l, 3)}_${pad(j, 2)}`), '')
    }
    const bottom = path.join(d, 'b', 'x')
    fs.mkdirSync(bottom, { recursive: true })
    for (let j = 0; j < 2000; j++) fs.writeFileSync(path.join(bottom, `h${pad(j, 4)}`), '')
  })

  if (million) {
    once(path.join(root, 'million'), (d) => {
      for (let x = 0; x < 1000; x++) {
        const dir = path.join(d, 'l', `m${pad(x, 3)}`)
        fs.mkdirSync(dir, { recursive: true })
        for (let y = 0; y < 1000; y++) fs.closeSync(fs.openSync(path.join(dir, `f${pad(y, 3)}`), 'w'))
      }
    })
  }
}

if (require.main === module) main(process.argv.slice(2))

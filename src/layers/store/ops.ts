/**
 * Process identity and per-command scratch space ("ops").
 *
 * A process is named by pid + its start time (field 22 of /proc/<pid>/stat), so a recycled pid is
 * not mistaken for the original owner of a lock or an op dir.
 *
 * An op dir `tmp/op-<pid>-<start>-<rand>` holds a command's temporary files (a layer being unpacked,
 * an extracted archive, a tree being deleted). Its `pins` file lists layer digests the command is
 * going to reference (an image import pins each layer as it lands, before the image record exists),
 * so a concurrent `strata gc` does not remove them. When the process dies, the op dir is garbage.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import type { Store } from './store'

export function procStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1')
    // comm (field 2) may contain spaces and parens: split after the last ')'
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return rest[19] ?? null // field 22 overall = index 19 after pid, comm
  } catch {
    return null
  }
}

export const selfToken = (): string => `${process.pid}-${procStart(process.pid) ?? '0'}`

/** True if the process named by `token` ("pid-start") still runs. */
export function tokenAlive(token: string): boolean {
  const m = /^(\d+)-(\d+)$/.exec(token.trim())
  if (!m?.[1] || !m[2]) return false
  return procStart(Number(m[1])) === m[2]
}

export class Op {
  readonly dir: string
  private readonly pinsFile: string
  constructor(readonly store: Store) {
    store.init()
    this.dir = path.join(store.tmpDir, `op-${selfToken()}-${Math.random().toString(36).slice(2, 10)}`)
    fs.mkdirSync(this.dir, { mode: 0o700 })
    this.pinsFile = path.join(this.dir, 'pins')
  }

  /** A fresh path inside the op dir (not created). */
  path(name: string): string {
    return path.join(this.dir, `${name}-${Math.random().toString(36).slice(2, 8)}`)
  }

  pin(digest: string): void {
    fs.appendFileSync(this.pinsFile, `${digest}\n`)
  }

  /** Removes the op dir; failures only matter to gc, which retries. */
  done(): void {
    try {
      fs.rmSync(this.dir, { recursive: true, force: true })
    } catch {
      // gc cleans it later
    }
  }

  /** Moves `abs` into this op dir (one rename, so the store never sees half a tree) and deletes it. */
  discard(abs: string): void {
    const trash = this.path('trash')
    fs.renameSync(abs, trash)
    fs.rmSync(trash, { recursive: true, force: true })
  }
}

export function opDirs(store: Store): { name: string, alive: boolean, pins: string[] }[] {
  let names: string[]
  try {
    names = fs.readdirSync(store.tmpDir)
  } catch {
    return []
  }
  return names.map((name) => {
    const m = /^op-(\d+-\d+)-/.exec(name)
    const alive = m?.[1] !== undefined && tokenAlive(m[1])
    let pins: string[] = []
    if (alive) {
      try {
        pins = fs.readFileSync(path.join(store.tmpDir, name, 'pins'), 'utf8').split('\n').filter(Boolean)
      } catch {
        pins = []
      }
    }
    return { name, alive, pins }
  })
}

/** Runs fn with an op; the op dir is removed afterwards whatever happens. */
export async function withOp<T>(store: Store, fn: (op: Op) => Promise<T>): Promise<T> {
  const op = new Op(store)
  try {
    return await fn(op)
  } finally {
    op.done()
  }
}

/** Helpers shared by the strata subcommands: the store from --root, tables, JSON output. */
import type { Command } from 'commander'
import { resolveRoot, Store } from '../../layers/store/store'

export function storeOf(cmd: Command): Store {
  const opts = cmd.optsWithGlobals<{ root?: string }>()
  return new Store(resolveRoot(opts.root))
}

export function out(line = ''): void {
  process.stdout.write(`${line}\n`)
}

export function printJson(value: unknown): void {
  out(JSON.stringify(value, null, 2))
}

/** Left-aligned columns, two spaces apart. */
export function table(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const fmt = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()
  out(fmt(head))
  for (const r of rows) out(fmt(r))
}

export const short = (digest: string): string => digest.replace(/^sha256:/, '').slice(0, 12)

export function humanSize(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v.toFixed(1)} ${units[i]}`
}

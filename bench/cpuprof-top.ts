/**
 * Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time by function and by file, so a
 * profile of the stratafs daemon can be read without DevTools.
 *
 *   node dist/bench/cpuprof-top.js FILE.cpuprofile [N]
 */
import * as fs from 'node:fs'

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }
interface Profile { nodes: Node[]; samples: number[]; timeDeltas: number[]; startTime: number; endTime: number }

export function main(argv: string[]): void {
  const [file, nArg] = argv
  if (!file) throw new Error('usage: cpuprof-top FILE.cpuprofile [N]')
  const n = Number(nArg ?? 20)
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile
  const byId = new Map(p.nodes.map((x) => [x.id, x]))
  const self = new Map<number, number>()
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)))
  const total = [...self.values()].reduce((a, b) => a + b, 0)
  const short = (url: string): string => url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|dist)\//, '$1/') || '(native)'
  const fnAgg = new Map<string, number>()
  const fileAgg = new Map<string, number>()
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame
    const fnKey = `${cf.functionName || '(anonymous)'}  ${short(cf.url)}${cf.url ? `:${cf.lineNumber + 1}` : ''}`
    fnAgg.set(fnKey, (fnAgg.get(fnKey) ?? 0) + us)
    const fileKey = short(cf.url)
    fileAgg.set(fileKey, (fileAgg.get(fileKey) ?? 0) + us)
  }
  const pct = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)}%`
  process.stdout.write(`profile: ${(total / 1e6).toFixed(2)} s sampled (wall ${((p.endTime - p.startTime) / 1e6).toFixed(2)} s)\n`)
  process.stdout.write('\nself time by function:\n')
  for (const [k, us] of [...fnAgg].sort((a, b) => b[1] - a[1]).slice(0, n)) process.stdout.write(`${pct(us)}  ${k}\n`)
  process.stdout.write('\nself time by file:\n')
  for (const [k, us] of [...fileAgg].sort((a, b) => b[1] - a[1]).slice(0, 10)) process.stdout.write(`${pct(us)}  ${k}\n`)
}

if (require.main === module) main(process.argv.slice(2))

/**
 * bench report: turns bench/results/raw.tsv (rep, target, workload, seconds, peak RSS kB) into the
 * table of medians and ratios to kernel overlayfs on stdout, and JSON at the given path.
 *
 *   node dist/bench/report.js RAW.tsv OUT.json "machine description"
 *
 * Targets and the peers' reference ratios are issue 7's. A ratio is a target's median seconds over
 * kernel overlayfs's median seconds for the same workload in the same run (lower is better).
 */
import * as fs from 'node:fs'

export const TARGETS = ['kernel', 'fuse-overlayfs', 'unionfs', 'stratafs'] as const

interface Workload { id: string; label: string; target?: number }

/** Workload ids as run.sh names them, in table order; `target` is issue 7's stratafs goal. */
export const WORKLOADS: Workload[] = [
  { id: 'find_warm', label: 'find 30k, warm', target: 2 },
  { id: 'lsR_warm', label: 'ls -lR 30k, warm', target: 3 },
  { id: 'stat_warm', label: 'stat every file 30k, warm' },
  { id: 'find_cold', label: 'find 30k, cold', target: 2 },
  { id: 'lsR_cold', label: 'ls -lR 30k, cold', target: 3 },
  { id: 'stat_cold', label: 'stat every file 30k, cold' },
  { id: 'ls10k', label: 'ls -l of a 10k dir, fresh', target: 3 },
  { id: 'readdir10k', label: 'readdir (ls -f) of a 10k dir, fresh' },
  { id: 'seqread_warm', label: 'seq read 1 GiB, warm', target: 1.0 },
  { id: 'seqread_cold', label: 'seq read 1 GiB, cold', target: 1.2 },
  { id: 'randread', label: 'random 4k read 128 MiB (fio), warm', target: 2 },
  { id: 'seqwrite', label: 'seq write 512 MiB (dd bs=1M)', target: 1.3 },
  { id: 'randwrite', label: 'random 4k write 64 MiB (fio)', target: 3 },
  { id: 'append256', label: 'copy-up: 1-byte append to 256 MiB', target: 0.5 },
  { id: 'chmod1000', label: 'copy-up: chmod 1000 lower files', target: 0.4 },
  { id: 'untar', label: 'untar 20k files', target: 2.5 },
  { id: 'rmrf', label: 'rm -rf 20k lower files', target: 5 },
  { id: 'cpa', label: 'cp -a 20k files within the mount', target: 4 },
  { id: 'grep', label: 'grep -r over 20k files', target: 4 },
  ...[1, 8, 32, 128].flatMap((d) => [
    { id: `stathit_${d}`, label: `stat 2000 hits in the bottom layer, ${d} lowers` },
    { id: `statmiss_${d}`, label: `stat 2000 misses, ${d} lowers` },
    { id: `readdir_${d}`, label: `readdir of a dir in every layer, ${d} lowers` },
  ]),
]

export function median(xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const fmt = (x: number, digits = 3): string => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a')

export function main(argv: string[]): void {
  const [rawPath, outPath, machine = ''] = argv
  if (!rawPath || !outPath) throw new Error('usage: report RAW.tsv OUT.json [machine]')
  const secs = new Map<string, number[]>()
  const rss = new Map<string, number>()
  for (const line of fs.readFileSync(rawPath, 'utf8').split('\n')) {
    const [, target, workload, s, kb] = line.split('\t')
    if (!target || !workload) continue
    const key = `${target}\t${workload}`
    secs.set(key, [...(secs.get(key) ?? []), Number(s)])
    rss.set(target, Math.max(rss.get(target) ?? 0, Number(kb) || 0))
    if (workload === 'million') rss.set('million', Number(kb) || 0)
  }
  const med = (t: string, w: string): number => median(secs.get(`${t}\t${w}`) ?? [])

  const rows = WORKLOADS.filter((w) => TARGETS.some((t) => secs.has(`${t}\t${w.id}`))).map((w) => {
    const k = med('kernel', w.id)
    const medians = Object.fromEntries(TARGETS.map((t) => [t, med(t, w.id)]))
    const ratios = Object.fromEntries(TARGETS.map((t) => [t, medians[t]! / k]))
    const r = ratios.stratafs!
    const met = w.target === undefined || !Number.isFinite(r) ? null : r <= w.target
    return { workload: w.id, label: w.label, seconds: medians, ratio: ratios, target: w.target ?? null, met,
      runs: Object.fromEntries(TARGETS.map((t) => [t, secs.get(`${t}\t${w.id}`) ?? []])) }
  })
  // Cost growth with depth, each target against itself (issue 7: stratafs ≤ 1.5x).
  const depth = TARGETS.map((t) => ({
    target: t,
    statmiss_128_over_1: med(t, 'statmiss_128') / med(t, 'statmiss_1'),
    stathit_128_over_1: med(t, 'stathit_128') / med(t, 'stathit_1'),
    readdir_128_over_1: med(t, 'readdir_128') / med(t, 'readdir_1'),
  }))

  const out: string[] = []
  out.push(`machine: ${machine}`)
  out.push('')
  out.push('| workload | kernel s | fuse-overlayfs s (×kernel) | unionfs-fuse s (×kernel) | stratafs s (×kernel) | stratafs target | met |')
  out.push('| --- | ---: | ---: | ---: | ---: | ---: | :---: |')
  for (const r of rows) {
    const cell = (t: string): string => `${fmt(r.seconds[t]!)} (${fmt(r.ratio[t]!, 1)})`
    out.push(`| ${r.label} | ${fmt(r.seconds.kernel!)} | ${cell('fuse-overlayfs')} | ${cell('unionfs')} | ${cell('stratafs')} | ` +
      `${r.target === null ? '' : `≤ ${r.target}`} | ${r.met === null ? '' : r.met ? 'yes' : '**no**'} |`)
  }
  const d = (t: string): string => fmt(depth.find((x) => x.target === t)!.statmiss_128_over_1, 1)
  const sm = depth.find((x) => x.target === 'stratafs')!.statmiss_128_over_1
  out.push(`| stat miss, 128 lowers vs 1 (each against itself) | ${d('kernel')}x | ${d('fuse-overlayfs')}x | ${d('unionfs')}x | ${d('stratafs')}x | ≤ 1.5x | ` +
    `${Number.isFinite(sm) ? (sm <= 1.5 ? 'yes' : '**no**') : ''} |`)
  const mb = (kb: number | undefined): string => (kb ? `${(kb / 1024).toFixed(0)} MB` : 'n/a')
  out.push(`| daemon peak RSS, max over all workloads | - | ${mb(rss.get('fuse-overlayfs'))} | ${mb(rss.get('unionfs'))} | ${mb(rss.get('stratafs'))} | | |`)
  if (rss.has('million')) out.push(`| stratafs peak RSS, find -printf %s of a 1M-entry tree | | | | ${mb(rss.get('million'))} | < 300 MB | ${rss.get('million')! < 300 * 1024 ? 'yes' : '**no**'} |`)
  process.stdout.write(out.join('\n') + '\n')

  const json = { machine, generated: new Date().toISOString(), workloads: rows, depth,
    peak_rss_kb: Object.fromEntries(rss), million_walk_seconds: med('stratafs', 'million') }
  fs.writeFileSync(outPath, JSON.stringify(json, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2) + '\n')
}

if (require.main === module) main(process.argv.slice(2))

/** `strata stats MNT`: the counters of the stratafs daemon serving MNT, read without stopping it. */
import * as path from 'node:path'
import { Command } from 'commander'
import { FsError } from '../../sys/errors'
import { readStats } from '../stats-socket'
import { out, printJson } from './common'

interface OpStat { count: number, meanUs: number, errors: Record<string, number> }
interface Stats {
  pid: number, uptimeSec: number, openHandles: number, memory: { rss: number }, kernelNodes?: { held: number, max: number, pruned: number, pruneRefused: boolean },
  ops: Record<string, OpStat>, servedBy?: Record<string, Record<string, number>>, copyUps: { count: number, bytes: number }, nodeCache: { hits: number, misses: number },
  passthrough?: { opens: number, backingFiles: number, refused: number }
  uring?: { requests: number, threads: number, yielded: number, rescued: number, handoff?: { idle: boolean, plainUs: number, idleUs: number } }
  listingCache?: { hits: number }, dirPrefetch?: { dirs: number, entries: number, namesOnly?: number }, leanListings?: { made: number, upgraded: number }
  readAhead?: { dirs: number, allEntries: number, statted: number, ms: number, dropped: number, pending: number }
  listAhead?: { built: number, served: number, dropped: number }
  requests?: Record<string, OpStat & { answered: number }>
}

export function statsCommand(): Command {
  return new Command('stats')
    .description('show the counters of the stratafs daemon serving MOUNTPOINT (ops, the kernel\'s requests, latencies, errors, copy-ups, caches, memory)')
    .argument('<mountpoint>')
    .option('--json', 'the full JSON document, with latency histograms')
    .action(async (mnt: string, opts: { json?: boolean }) => {
      let s: Stats
      try {
        s = await readStats(path.resolve(mnt)) as Stats
      } catch (err) {
        throw new FsError('ENOENT', `${(err as Error).message}`)
      }
      if (opts.json) return printJson(s)
      out(`pid ${s.pid}, up ${s.uptimeSec} s, rss ${(s.memory.rss / 2 ** 20).toFixed(0)} MiB, ${s.openHandles} open files`)
      if (s.kernelNodes) {
        const k = s.kernelNodes
        const bound = !k.max ? 'no bound' : k.pruneRefused ? `bound ${k.max} not enforced: this kernel cannot prune (Linux < 6.18)` : `bound ${k.max}, ${k.pruned} pruned`
        out(`inodes held by the kernel ${k.held} (${bound})`)
      }
      if (s.passthrough) {
        const p = s.passthrough
        out(`passthrough opens ${p.opens} (their reads and writes are the kernel's, counted nowhere here), ${p.backingFiles} files now, ${p.refused} refused`)
      }
      if (s.uring) {
        const u = s.uring
        out(u.threads > 0 ? `io_uring: ${u.requests} requests over ${u.threads} threads (one queue per CPU; the rest came through /dev/fuse), ${u.rescued} idle threads rescued` : 'io_uring: off (requests come through /dev/fuse)')
        const h = u.handoff
        if (u.threads > 0 && h) {
          const why = h.plainUs > 0 ? `probe at mount: ${h.plainUs.toFixed(1)} µs a round trip plain, ${h.idleUs.toFixed(1)} µs at idle priority` : 'as uring_idle= says'
          out(`answers committed at idle priority: ${h.idle ? 'yes' : 'no'} (${why})`)
        }
      }
      out(`copy-ups ${s.copyUps.count} (${(s.copyUps.bytes / 2 ** 20).toFixed(1)} MiB), node cache ${s.nodeCache.hits} hits / ${s.nodeCache.misses} misses`)
      if (s.dirPrefetch) out(`listings served again ${s.listingCache?.hits ?? 0}; directories looked into without a listing, handed to the binding ${s.dirPrefetch.dirs} (${s.dirPrefetch.entries} entries), their names alone ${s.dirPrefetch.namesOnly ?? 0} (for lookups of names they lack)`)
      if (s.leanListings) out(`listings without their files' attributes ${s.leanListings.made}, of which ${s.leanListings.upgraded} were looked into after (attributes then handed to the binding)`)
      if (s.readAhead) out(`directories read ahead of a walk ${s.readAhead.dirs} (${s.readAhead.allEntries} with every entry; ${s.readAhead.statted} entries statted, ${s.readAhead.ms} ms on a worker thread), ${s.readAhead.dropped} dropped, ${s.readAhead.pending} pending`)
      if (s.listAhead) out(`listings built ahead of a walk ${s.listAhead.built}, of which served ${s.listAhead.served}; ${s.listAhead.dropped} dropped before being built`)
      out('op            count    mean µs  errors')
      for (const [name, o] of Object.entries(s.ops).sort((a, b) => b[1].count - a[1].count)) {
        const errs = Object.entries(o.errors).map(([k, v]) => `${k}:${v}`).join(' ')
        out(`${name.padEnd(12)} ${String(o.count).padStart(7)} ${o.meanUs.toFixed(1).padStart(10)}  ${errs}`)
      }
      for (const [who, counts] of Object.entries(s.servedBy ?? {})) {
        const ops = Object.entries(counts).filter(([, n]) => n > 0)
        if (ops.length) out(`of these, answered by the ${who} without the daemon's JS: ${ops.map(([op, n]) => `${op} ${n}`).join(', ')}`)
      }
      if (s.requests) {
        // the kernel's own requests, arrival to reply, whoever answered (the ops above are libfuse's calls)
        out('kernel request  count    mean µs  errors')
        for (const [name, r] of Object.entries(s.requests).sort((a, b) => b[1].count - a[1].count)) {
          const errs = Object.entries(r.errors).map(([k, v]) => `${k}:${v}`).join(' ')
          out(`${name.padEnd(14)} ${String(r.count).padStart(7)} ${r.meanUs.toFixed(1).padStart(10)}  ${errs}`)
        }
      }
    })
}

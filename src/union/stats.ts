/**
 * Counters a running stratafs keeps about itself: per-op counts, errors by errno, latency
 * histograms (power-of-two microsecond buckets), copy-ups, and cache hits/misses. Cheap enough to be
 * always on; exported as JSON on SIGUSR1 (src/cli/stratafs.ts).
 */
export class OpStats {
  count = 0
  errors: Record<string, number> = {}
  /** bucket i counts latencies in [2^(i-1), 2^i) µs; bucket 0 is < 1 µs */
  latencyUs: number[] = []
  totalUs = 0
}

export class UnionStats {
  readonly ops = new Map<string, OpStats>()
  copyUps = 0
  copyUpBytes = 0
  nodeHits = 0
  nodeMisses = 0

  /** requests answered, all ops together */
  requests = 0

  record(op: string, startNs: bigint, errno: string | null): void {
    this.requests++
    let s = this.ops.get(op)
    if (!s) {
      s = new OpStats()
      this.ops.set(op, s)
    }
    s.count++
    const us = Number(process.hrtime.bigint() - startNs) / 1000
    s.totalUs += us
    const bucket = us < 1 ? 0 : Math.min(40, 32 - Math.clz32(Math.floor(us)))
    s.latencyUs[bucket] = (s.latencyUs[bucket] ?? 0) + 1
    if (errno) s.errors[errno] = (s.errors[errno] ?? 0) + 1
  }

  toJSON(): object {
    const ops: Record<string, object> = {}
    for (const [name, s] of this.ops) {
      ops[name] = { count: s.count, meanUs: s.count ? +(s.totalUs / s.count).toFixed(1) : 0, errors: s.errors, latencyUsLog2: Array.from(s.latencyUs, (v) => v ?? 0) }
    }
    return {
      ops,
      copyUps: { count: this.copyUps, bytes: this.copyUpBytes },
      nodeCache: { hits: this.nodeHits, misses: this.nodeMisses },
    }
  }
}

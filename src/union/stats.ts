/**
 * Counters a running stratafs keeps about itself: per-op counts, errors by errno, latency
 * histograms (power-of-two microsecond buckets), copy-ups, and cache hits/misses. Cheap enough to be
 * always on; exported as JSON on SIGUSR1 (src/cli/stratafs.ts). Requests the FUSE binding answers
 * itself (reads and writes, src/fuse/direct-io.ts) are counted there and merged in here.
 */
export class OpStats {
  count = 0
  errors: Record<string, number> = {}
  /** bucket i counts latencies in [2^(i-1), 2^i) µs; bucket 0 is < 1 µs */
  latencyUs: number[] = []
  totalUs = 0
}

/** Counters kept elsewhere (the binding answers some requests itself), merged into the report. */
export type StatsSource = () => Map<string, OpStats>

export class UnionStats {
  readonly ops = new Map<string, OpStats>()
  copyUps = 0
  copyUpBytes = 0
  nodeHits = 0
  nodeMisses = 0
  /** readdirs answered from a kept listing (src/fuse/listing-cache.ts) */
  listingHits = 0
  /** directories whose entries' attributes went to the binding without a listing (src/fuse/dir-prefetch.ts), and those entries */
  dirPrefetches = 0
  dirPrefetchEntries = 0
  /** directories whose names alone went to the binding, to answer lookups of others (misses) */
  dirNamePrefetches = 0
  /** listings made without their entries' attributes, and those upgraded by a lookup after (src/fuse/lean-listings.ts) */
  leanListings = 0
  leanUpgrades = 0
  private answeredHere = 0
  private readonly sources = new Map<string, StatsSource>()
  private readonly sections = new Map<string, () => object>()

  /** Counters of requests `name` (e.g. the FUSE binding) answers without this daemon's JS. */
  addSource(name: string, source: StatsSource): void {
    this.sources.set(name, source)
  }

  /** Counters another part keeps itself (read-ahead, list-ahead), reported as `name`, read when the report is made. */
  addSection(name: string, read: () => object): void {
    this.sections.set(name, read)
  }

  /** requests answered, all ops together, here and by the sources */
  get requests(): number {
    let n = this.answeredHere
    for (const source of this.sources.values()) for (const s of source().values()) n += s.count
    return n
  }

  record(op: string, startNs: bigint, errno: string | null): void {
    this.answeredHere++
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

  /** This daemon's counters with the sources' added in. */
  private merged(fromSources: Map<string, OpStats>[]): Map<string, OpStats> {
    const all = new Map<string, OpStats>()
    for (const map of [this.ops, ...fromSources]) {
      for (const [name, s] of map) {
        const into = all.get(name) ?? new OpStats()
        into.count += s.count
        into.totalUs += s.totalUs
        for (const [code, n] of Object.entries(s.errors)) into.errors[code] = (into.errors[code] ?? 0) + n
        s.latencyUs.forEach((n, i) => { into.latencyUs[i] = (into.latencyUs[i] ?? 0) + (n ?? 0) })
        all.set(name, into)
      }
    }
    return all
  }

  toJSON(): object {
    const ops: Record<string, object> = {}
    const servedBy: Record<string, Record<string, number>> = {}
    const fromSources = [...this.sources].map(([source, read]) => {
      const counts = read()
      servedBy[source] = Object.fromEntries([...counts].map(([op, s]) => [op, s.count]))
      return counts
    })
    for (const [name, s] of this.merged(fromSources)) {
      ops[name] = { count: s.count, meanUs: s.count ? +(s.totalUs / s.count).toFixed(1) : 0, errors: s.errors, latencyUsLog2: Array.from(s.latencyUs, (v) => v ?? 0) }
    }
    return {
      ops,
      /** of the counts in `ops`, those answered outside the daemon's JS (by the binding) */
      servedBy,
      copyUps: { count: this.copyUps, bytes: this.copyUpBytes },
      nodeCache: { hits: this.nodeHits, misses: this.nodeMisses },
      listingCache: { hits: this.listingHits },
      dirPrefetch: { dirs: this.dirPrefetches, entries: this.dirPrefetchEntries, namesOnly: this.dirNamePrefetches },
      leanListings: { made: this.leanListings, upgraded: this.leanUpgrades },
      ...Object.fromEntries([...this.sections].map(([name, read]) => [name, read()])),
    }
  }
}

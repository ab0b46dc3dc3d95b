/**
 * A one-line progress bar on stderr, only when stderr is a TTY and only once an operation has run
 * for more than half a second (STRATA_PROGRESS_DELAY_MS changes that; tests use 0).
 */
const MiB = 1024 * 1024
const DELAY_MS = Number(process.env.STRATA_PROGRESS_DELAY_MS ?? 500)

export class Progress {
  private readonly start = Date.now()
  private last = 0
  private shown = false
  private readonly enabled = process.stderr.isTTY === true

  constructor(private readonly label: string, private readonly total?: number) {}

  tick(bytes: number): void {
    if (!this.enabled) return
    const now = Date.now()
    if (now - this.start < DELAY_MS || now - this.last < 100) return
    this.last = now
    this.shown = true
    let line = `${this.label}: ${(bytes / MiB).toFixed(1)} MiB`
    if (this.total) {
      const frac = Math.min(1, bytes / this.total)
      const width = 30
      const fill = Math.round(frac * width)
      line = `${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0)}% ${(bytes / MiB).toFixed(1)}/${(this.total / MiB).toFixed(1)} MiB`
    }
    process.stderr.write(`\r\x1b[K${line.slice(0, (process.stderr.columns || 80) - 1)}`)
  }

  done(): void {
    if (this.shown) process.stderr.write('\r\x1b[K')
    this.shown = false
  }
}

/** A small seeded PRNG (mulberry32), so fixtures and random op sequences replay from a seed. */
export class Rng {
  private s: number
  constructor(readonly seed: number) { this.s = seed >>> 0 }
  /** uniform in [0, 1) */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0)
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  int(n: number): number { return Math.floor(this.next() * n) }
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error('pick from empty list')
    return xs[this.int(xs.length)]!
  }
  chance(p: number): boolean { return this.next() < p }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = this.int(256)
    return b
  }
  /** printable text, for contents that read well in a diff */
  text(n: number): string {
    let s = ''
    for (let i = 0; i < n; i++) s += String.fromCharCode(0x61 + this.int(26))
    return s
  }
}

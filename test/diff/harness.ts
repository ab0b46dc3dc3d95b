/**
 * The differential harness: the same fixture, mounted by the kernel (the reference) and by the
 * target under test ($DIFF_TARGET: stratafs by default, or fuse-overlayfs), the same ops applied
 * to both, and every result and tree compared (STYLE.md lesson 10).
 *
 * Owns: setting up a pair of mounts over byte-identical copies of one seeded fixture, applying
 * op lists in lockstep, and the comparison stages (merged trees, uppers in overlay format, lowers
 * unchanged, after a remount, and with the uppers cross-mounted). Every mismatch is a real tap
 * failure whose message says the scenario, the op and both results; nothing is skipped silently.
 *
 * Known, documented difference (issue 2): kernel overlayfs without redirect_dir answers rename(2)
 * of a directory that exists in a lower layer with EXDEV, and mv(1) falls back to copy + delete;
 * stratafs renames it (by copying up). The op runner does that fallback and marks the result
 * `via: 'EXDEV'`; a target that succeeds directly matches such a result. stratafs must NOT answer
 * EXDEV (issue 2: "a plain `mv dir newname` must work").
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { Test } from 'tap'
import { buildLayers } from '../helpers/fixtures'
import { Mounted, Target, diffTarget, mountUnion } from '../helpers/mounts'
import { Op, Result, runOp, showOp } from '../helpers/ops'
import { tempDir } from '../helpers/tmp'
import { Snapshot, View, diffSnapshots, show, snapshot } from '../helpers/tree'
import type { Entry } from '../helpers/tree'
import { HangError, guarded } from '../helpers/watchdog'

/** How long one op or one tree walk on a FUSE mount may take before the watchdog aborts it. */
const OP_DEADLINE_MS = 20_000
const WALK_DEADLINE_MS = 30_000

/**
 * Snapshot of a mounted tree under the watchdog. A hang is a failure of `t` (with its label) and
 * yields null; callers then report the comparison as failed, never as passed.
 */
export function snapMount(t: Test, m: Mounted, root: string, view: View, label: string): Snapshot | null {
  try {
    return guarded(m.abortPath, WALK_DEADLINE_MS, `${m.target}: walk of ${root} (${label})`, () => snapshot(root, view))
  } catch (e) {
    if (e instanceof HangError) { t.fail(e.message); return null }
    throw e
  }
}

export interface Side {
  target: Target
  dir: string
  lowers: string[]
  upper: string
  work: string
  mnt: string
  m: Mounted
  /** raw snapshot of every lower, taken before the first mount */
  lowerSnaps: Snapshot[]
}

export interface Pair { ref: Side; sut: Side; seed: number; names: string[] }

export interface Divergence { index: number; op: Op; kernel: Result; target: Result }

async function makeSide(t: Test, target: Target, seed: number): Promise<{ side: Side; names: string[] }> {
  const dir = tempDir(t, `strata-diff-${target}-`)
  const { lowers, names } = buildLayers(path.join(dir, 'layers'), seed)
  const upper = path.join(dir, 'upper'); const work = path.join(dir, 'work'); const mnt = path.join(dir, 'mnt')
  for (const d of [upper, work, mnt]) fs.mkdirSync(d, { mode: 0o755 })
  fs.chmodSync(upper, 0o755); fs.chmodSync(mnt, 0o755)
  const lowerSnaps = lowers.map(l => snapshot(l, 'raw'))
  const m = await mountUnion(t, target, { lowers, upper, work, mnt })
  return { side: { target, dir, lowers, upper, work, mnt, m, lowerSnaps }, names }
}

/** Two mounts of identical fixtures: the kernel's and the target's. */
export async function setupPair(t: Test, seed = 1, target: Target = diffTarget()): Promise<Pair> {
  const a = await makeSide(t, 'kernel', seed)
  const b = await makeSide(t, target, seed)
  // the fixture is deterministic: both copies must be identical before anything is compared
  a.side.lowerSnaps.forEach((s, i) => {
    const d = diffSnapshots(s, b.side.lowerSnaps[i]!, {}, ['kernel-copy', 'target-copy'])
    if (d.length) throw new Error(`fixture is not deterministic (lower ${i}):\n${d.join('\n')}`)
  })
  return { ref: a.side, sut: b.side, seed, names: a.names }
}

/** Equal results, treating the kernel's EXDEV + copy/delete fallback as equal to a direct success. */
export function sameResult(k: Result, s: Result, target: Target): boolean {
  if (target === 'stratafs' && s.via === 'EXDEV') return false
  return JSON.stringify({ ok: k.ok, err: k.err }) === JSON.stringify({ ok: s.ok, err: s.err })
}

export function showResult(r: Result): string {
  const v = r.err !== undefined ? `err ${r.err}` : `ok ${JSON.stringify(r.ok)}`
  return show(v) + (r.via ? ` (rename(2) gave ${r.via}; mv-style copy+delete fallback used)` : '')
}

/** Applies ops to both mounts in lockstep; returns every divergence (and counts EXDEV fallbacks). */
export function applyBoth(pair: Pair, ops: Op[]): { divergences: Divergence[]; kernelExdev: string[] } {
  const divergences: Divergence[] = []
  const kernelExdev: string[] = []
  for (const [index, op] of ops.entries()) {
    const kernel = runOp(pair.ref.mnt, op)
    // When the kernel's EXDEV fallback (a copy) broke hard links to outside the tree, rename(2)
    // on the target would keep them and every later op on those files would differ for that
    // reason alone: do the same copy + delete on the target (its own rename of merged
    // directories is checked in the scripted scenarios).
    const sutOp: Op = kernel.via?.includes('hard links') ? { ...op, op: 'renameByCopy' } : op
    let target: Result
    try {
      target = guarded(pair.sut.m.abortPath, OP_DEADLINE_MS, `${pair.sut.target}: ${showOp(op)}`, () => {
        const r = runOp(pair.sut.mnt, sutOp)
        // Documented difference (README): rename flags are EINVAL under libfuse 2 (no RENAME2 in
        // its protocol), except that the VFS itself answers EEXIST for an existing target.
        // Assert exactly that, then do what mv -n does on EINVAL.
        if (op.op === 'renameNoReplace' && pair.sut.target === 'stratafs') {
          if (r.err === 'EEXIST') return r
          if (r.err !== 'EINVAL') return { err: `expected the documented EINVAL, got ${showResult(r)}` }
          return runOp(pair.sut.mnt, { ...op, op: 'renameIfAbsent' })
        }
        return r
      })
    } catch (e) {
      if (!(e instanceof HangError)) throw e
      divergences.push({ index, op, kernel, target: { err: e.message } })
      break // the connection is aborted: nothing after this can be compared
    }
    if (kernel.via?.startsWith('EXDEV')) kernelExdev.push(showOp(op) + (kernel.via === 'EXDEV' ? '' : ` [${kernel.via}]`))
    if (!sameResult(kernel, target, pair.sut.target)) divergences.push({ index, op, kernel, target })
  }
  return { divergences, kernelExdev }
}

export function formatDivergences(label: string, ds: Divergence[], target: Target, max = 15): string {
  const lines = ds.slice(0, max).map(d => `  #${d.index} ${showOp(d.op)}\n      kernel: ${showResult(d.kernel)}\n      ${target}: ${showResult(d.target)}`)
  if (ds.length > max) lines.push(`  ... and ${ds.length - max} more`)
  return `${label}: ${ds.length} op result(s) differ\n${lines.join('\n')}`
}

function report(t: Test, what: string, lines: string[], max = 40): void {
  const msg = lines.length <= max ? lines : [...lines.slice(0, max), `... ${lines.length - max} more`]
  t.same(msg, [], what, { diff: lines.join('\n') })
}

/** Compares two snapshots; a missing one (a hang, already failed) makes the comparison fail too. */
function compareSnaps(t: Test, what: string, a: Snapshot | null, b: Snapshot | null, names: [string, string]): void {
  if (!a || !b) { t.fail(`${what}: not compared, ${!a ? names[0] : names[1]}'s tree could not be read (hang)`); return }
  report(t, what, diffSnapshots(a, b, {}, names))
}

/**
 * An upper snapshot without the format details that cannot change any view over these lowers:
 * the opaque flag of a dir where no lower has a dir (kernel overlayfs marks a renamed pure-upper
 * dir opaque; a copy made by mv(1) is not), and a whiteout where no lower has an entry, inside a
 * non-opaque dir that some lower also has (a merged dir, whose readdir filters whiteouts). A
 * whiteout in a pure-upper or opaque dir is NOT harmless: the kernel lists it in readdir.
 */
function significantOnly(upper: Snapshot, lowers: Snapshot[]): Snapshot {
  const entries = new Map(upper.entries)
  for (const [k, e] of upper.entries) {
    const parent = k.slice(0, k.lastIndexOf('/'))
    const mergedParent = !upper.entries.get(parent)?.opaque && lowers.some(l => l.entries.get(parent)?.type === 'd')
    if (e.type === 'whiteout' && mergedParent && !lowers.some(l => l.entries.has(k))) entries.delete(k)
    else if (e.opaque && !lowers.some(l => l.entries.get(k)?.type === 'd')) entries.set(k, { ...e, opaque: undefined })
    else if (mergedParent && e.type !== 'd' && e.type !== 'whiteout' && sameAsLower(e, lowers.find(l => l.entries.has(k))?.entries.get(k))) {
      // a copy-up that changed nothing (e.g. chown(-1, -1), which the kernel copies up and a FUSE
      // filesystem never hears of): the lower entry shows through identically either way
      entries.delete(k)
    }
  }
  return { ...upper, entries }
}

function sameAsLower(e: Entry, lower: Entry | undefined): boolean {
  if (!lower) return false
  const pick = (x: Entry) => JSON.stringify([x.type, x.mode, x.uid, x.gid, x.size, x.sha256, x.target, x.rdev, x.mtime, x.xattrs ?? {}])
  return pick(e) === pick(lower)
}

/** Merged trees equal, uppers equal in overlay format. Returns the merged snapshots. */
export function compareMounted(t: Test, pair: Pair, stage: string): { ref: Snapshot | null; sut: Snapshot | null } {
  const names: [string, string] = ['kernel', pair.sut.target]
  const ref = snapMount(t, pair.ref.m, pair.ref.mnt, 'merged', stage)
  const sut = snapMount(t, pair.sut.m, pair.sut.mnt, 'merged', stage)
  compareSnaps(t, `${stage}: merged trees equal`, ref, sut, names)
  if (sut) {
    // trusted.overlay.* set by a user through the mount is escaped by the kernel and shown back
    // (overlayfs.rst "Nesting overlayfs mounts"), so only ones the kernel does not show count
    const ovl = (e: { xattrs?: Record<string, string> } | undefined) => Object.keys(e?.xattrs ?? {}).filter(x => x.startsWith('trusted.overlay.'))
    const hidden = [...sut.entries].filter(([k, e]) => /\/\.wh\.|\/\.fuse_hidden/.test(k) ||
      ovl(e).some(x => !ovl(ref?.entries.get(k)).includes(x)))
    t.same(hidden.map(([k]) => show(k)), [], `${stage}: no whiteout/internal names or trusted.overlay.* xattrs visible in ${pair.sut.target}'s merged view`)
  }
  const ru = snapshot(pair.ref.upper, 'upper'); const su = snapshot(pair.sut.upper, 'upper')
  const lowers = pair.ref.lowerSnaps
  const raw = diffSnapshots(ru, su, {}, names)
  const significant = diffSnapshots(significantOnly(ru, lowers), significantOnly(su, lowers), {}, names)
  const insignificant = raw.filter(l => !significant.includes(l))
  if (insignificant.length) t.comment(`${stage}: upper-format differences with no effect on any view (opaque flag or whiteout where no lower has the path, copy-up identical to the lower):\n  ${insignificant.join('\n  ')}`)
  report(t, `${stage}: upper dirs equal in overlay format (whiteouts, opaque, contents, metadata)`, significant)
  return { ref, sut }
}

/** Every lower byte-for-byte (and metadata) unchanged since setup. */
export function checkLowers(t: Test, pair: Pair, stage: string): void {
  for (const side of [pair.ref, pair.sut]) {
    const lines = side.lowers.flatMap((l, i) => diffSnapshots(side.lowerSnaps[i]!, snapshot(l, 'raw'), {}, ['before', 'after']).map(x => `lower ${i}: ${x}`))
    report(t, `${stage}: ${side.target}'s lowers unchanged`, lines)
  }
}

async function remount(t: Test, side: Side, upper = side.upper, work = side.work, target = side.target): Promise<Mounted> {
  return mountUnion(t, target, { lowers: side.lowers, upper, work, mnt: side.mnt })
}

/**
 * The full battery after a scenario: merged + upper compare, unmount, lowers unchanged, remount
 * and compare again (and with the pre-remount view), then cross-mount the uppers.
 */
export async function finalChecks(t: Test, pair: Pair, label: string): Promise<void> {
  const before = compareMounted(t, pair, `${label} [mounted]`)
  await pair.ref.m.unmount(); await pair.sut.m.unmount()
  checkLowers(t, pair, label)

  pair.ref.m = await remount(t, pair.ref)
  pair.sut.m = await remount(t, pair.sut)
  const after = compareMounted(t, pair, `${label} [remounted]`)
  compareSnaps(t, `${label}: kernel view same after remount`, before.ref, after.ref, ['before', 'after'])
  compareSnaps(t, `${label}: ${pair.sut.target} view same after remount`, before.sut, after.sut, ['before', 'after'])
  for (const [side, b, a] of [[pair.ref, before.ref, after.ref], [pair.sut, before.sut, after.sut]] as const) {
    if (!b || !a) continue
    const moved = [...b.inos].filter(([k, ino]) => a.inos.has(k) && a.inos.get(k) !== ino).map(([k, ino]) => `${show(k)}: ${ino} -> ${a.inos.get(k)}`)
    report(t, `${label}: ${side.target}: st_ino of every entry stable across remount`, moved)
    const linked = new Set(a.linkGroups.flat())
    const seen = new Map<number, string>()
    const dup: string[] = []
    for (const [k, ino] of a.inos) {
      if (linked.has(k)) continue
      if (seen.has(ino)) dup.push(`${show(seen.get(ino)!)} and ${show(k)} share st_ino ${ino}`); else seen.set(ino, k)
    }
    report(t, `${label}: ${side.target}: st_ino unique (apart from hard links)`, dup)
  }
  await pair.ref.m.unmount(); await pair.sut.m.unmount()
  t.notOk(pair.sut.m.daemonLingered(), `${label}: ${pair.sut.target} daemon exited after its unmount`)

  // cross-mount: each upper under the other implementation (fresh workdirs on the same fs)
  const kWork = path.join(pair.sut.dir, 'work-kernel'); fs.mkdirSync(kWork)
  const sWork = path.join(pair.ref.dir, 'work-target'); fs.mkdirSync(sWork)
  const kOnS = await remount(t, pair.sut, pair.sut.upper, kWork, 'kernel')
  const kOnSView = snapMount(t, kOnS, pair.sut.mnt, 'merged', `${label}: kernel on ${pair.sut.target}'s upper`)
  await kOnS.unmount()
  const sOnK = await remount(t, pair.ref, pair.ref.upper, sWork, pair.sut.target)
  const sOnKView = snapMount(t, sOnK, pair.ref.mnt, 'merged', `${label}: ${pair.sut.target} on the kernel's upper`)
  await sOnK.unmount()
  compareSnaps(t, `${label}: kernel overlayfs on ${pair.sut.target}'s upper shows ${pair.sut.target}'s tree`,
    after.sut, kOnSView, [pair.sut.target, 'kernel-on-its-upper'])
  compareSnaps(t, `${label}: ${pair.sut.target} on the kernel's upper shows the kernel's tree`,
    after.ref, sOnKView, ['kernel', `${pair.sut.target}-on-kernel-upper`])
  checkLowers(t, pair, `${label} after cross-mount`)
}

/**
 * `rel` paths: a path inside the merged view or inside one layer, without a leading slash; the
 * root is ''. They are latin1 strings (one code unit per byte), so '/' is always byte 0x2f.
 */
export function relFromFuse(p: string): string {
  return p.length <= 1 ? '' : p.slice(1)
}

export function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/')
  return i < 0 ? '' : rel.slice(0, i)
}

export function baseOf(rel: string): string {
  return rel.slice(rel.lastIndexOf('/') + 1)
}

export function joinRel(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`
}

/** Absolute host path of `rel` inside the layer or upper at `root`. */
export function absIn(root: string, rel: string): string {
  return rel === '' ? root : `${root}/${rel}`
}

/** True when `rel` is `dir` itself or lies below it. */
export function isWithin(rel: string, dir: string): boolean {
  return dir === '' || rel === dir || rel.startsWith(`${dir}/`)
}

/**
 * The two on-disk whiteout formats, in one place.
 *
 * Kernel overlayfs (Documentation/filesystems/overlayfs.rst, "whiteouts and opaque directories"):
 *   a whiteout is a character device 0/0; an opaque directory carries the xattr
 *   trusted.overlay.opaque = "y". strata writes this format into every upper and every imported layer.
 * OCI image spec (layer.md, "Whiteouts") / AUFS: `.wh.<name>` marks <name> deleted in the layers
 *   below; `.wh..wh..opq` makes its directory opaque. containers/storage extracts layers this way for
 *   mount programs, so stratafs reads it in lower layers too.
 */
export const OPAQUE_XATTR = 'trusted.overlay.opaque'
/** Every xattr overlayfs keeps for itself; never visible through a mount. */
export const OVERLAY_XATTR_PREFIX = 'trusted.overlay.'
/**
 * Names in the overlay namespace set through a mount are stored escaped, as kernel overlayfs does
 * since 6.7 (overlayfs.rst, "Nesting overlayfs mounts"): trusted.overlay.X ↔ trusted.overlay.overlay.X.
 */
const ESCAPED_PREFIX = 'trusted.overlay.overlay.'

/** The host xattr name for a name given through the mount. */
export function escapeXattr(name: string): string {
  return name.startsWith(OVERLAY_XATTR_PREFIX) ? ESCAPED_PREFIX + name.slice(OVERLAY_XATTR_PREFIX.length) : name
}

/** The name shown through the mount for a host xattr name, or null for overlay's own. */
export function unescapeXattr(name: string): string | null {
  if (name.startsWith(ESCAPED_PREFIX)) return OVERLAY_XATTR_PREFIX + name.slice(ESCAPED_PREFIX.length)
  return name.startsWith(OVERLAY_XATTR_PREFIX) ? null : name
}

export const WH_PREFIX = '.wh.'
export const WH_OPAQUE = '.wh..wh..opq'
/** Directory-entry type of a character device (d_type). */
export const DT_CHR = 2

const S_IFMT = 0o170000
const S_IFCHR = 0o020000

/** Kernel-format whiteout: a character device with device number 0/0. */
export function isWhiteout(mode: number, rdev: number): boolean {
  return (mode & S_IFMT) === S_IFCHR && rdev === 0
}

/** For `.wh.<name>`, the name it deletes; null for other names and for the opaque marker. */
export function aufsWhitedOut(name: string): string | null {
  if (!name.startsWith(WH_PREFIX) || name === WH_OPAQUE) return null
  return name.slice(WH_PREFIX.length)
}

export function isOpaqueValue(value: Buffer | number): boolean {
  return typeof value !== 'number' && value.length >= 1 && value[0] === 0x79 /* 'y' */
}

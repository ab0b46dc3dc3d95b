/**
 * The permission bits a new file, directory or node is made with. POSIX: the creator's umask
 * applies unless the directory has a default ACL, which then decides alone (and is inherited).
 * The kernel leaves both to the daemon (FUSE_DONT_MASK, src/fuse/mount.ts) and sends the caller's
 * umask. The daemon runs with umask 0, so the host applies an upper directory's default ACL to
 * what is made in it; where the directory has none, the caller's umask is applied here.
 */
import * as fs from 'node:fs'
import { ST } from '../native'
import type { FsError } from '../sys/errors'
import * as host from '../sys/hostfs'

const { O_CREAT, O_EXCL, O_TRUNC, O_NOFOLLOW, O_NOCTTY, O_DIRECT } = fs.constants

export const DEFAULT_ACL = 'system.posix_acl_default'

export interface CreateMode {
  /** the bits to make the entry with */
  mode: number
  /** the directory's default ACL, which the new entry inherits (null: none) */
  defaultAcl: Buffer | null
}

/** How an entry made in the host directory `dirAbs` with `mode` by a caller with `umask` is made. */
export function createMode(dirAbs: string, mode: number, umask: number): CreateMode {
  const defaultAcl = defaultAclOf(dirAbs)
  return { mode: defaultAcl ? mode : mode & ~umask, defaultAcl }
}

function defaultAclOf(dirAbs: string): Buffer | null {
  try {
    return host.getxattr(dirAbs, DEFAULT_ACL)
  } catch (err) {
    // a host filesystem without ACLs: the umask applies
    if ((err as FsError).code === 'EOPNOTSUPP' || (err as FsError).code === 'ENOTSUP') return null
    throw err
  }
}

/**
 * Makes the regular file `abs` (O_EXCL, never through a symlink) with the open `flags` the caller
 * gave (less those that mean nothing for a new file) and the bits `mode`, owned by uid:gid, and
 * returns its descriptor.
 */
export function createFile(abs: string, flags: number, mode: number, uid: number, gid: number): number {
  const fd = host.open(abs, (flags & ~(O_TRUNC | O_DIRECT | O_NOCTTY)) | O_CREAT | O_EXCL | O_NOFOLLOW, mode & 0o7777)
  try {
    fs.fchownSync(fd, uid, gid)
    // the chown dropped the set-id bits: a chmod of the bits the file has plus those keeps what a
    // default ACL gave it (its group bits are the ACL's mask)
    if (mode & 0o6000) fs.fchmodSync(fd, (host.fstat(fd)[ST.mode]! & 0o7777) | (mode & 0o6000))
  } catch (err) {
    fs.closeSync(fd)
    throw err
  }
  return fd
}

/**
 * libfuse's hidden names. libfuse 2 (without hard_remove) renames a file that is unlinked, or
 * renamed over, while it is open to `.fuse_hidden<nodeid><counter>` (16 hex digits) in the same
 * directory, and unlinks that name when the file's last handle is released.
 *
 * libfuse 2.9 does this with a race: with flag_nopath, RELEASE takes no path lock, so a release
 * running while the unlink is being carried out can drop the file's open count to 0 after libfuse
 * saw it open and before it marks the name hidden. libfuse then never unlinks the name, and the
 * file stays (in the work dir, or in a data volume, for good). libfuse 3 checks again after hiding;
 * 2.9 does not. So the router removes a hidden file itself as soon as no handle is open at its
 * name (it keeps handle paths across renames), and answers the unlink libfuse may still send for it.
 */
import { baseOf } from '../sys/rel'

/** libfuse 2.9's hidden_name(): ".fuse_hidden%08x%08x". */
const LIBFUSE_HIDDEN = /^\.fuse_hidden[0-9a-f]{16}$/

export const isLibfuseHidden = (rel: string): boolean => LIBFUSE_HIDDEN.test(baseOf(rel))

/**
 * Hidden names this daemon removed whose unlink libfuse may still send. Bounded: in the race above
 * libfuse sends none, and the name is never given out again (its counter only grows).
 */
export class RemovedHiddenNames {
  private readonly names = new Set<string>()

  constructor(private readonly limit = 1024) {}

  add(rel: string): void {
    if (this.names.size >= this.limit) this.names.delete(this.names.values().next().value!)
    this.names.add(rel)
  }

  /** Whether `rel` was removed here (forgetting it: libfuse unlinks a name once). */
  take(rel: string): boolean {
    return this.names.delete(rel)
  }
}

#!/usr/bin/env bash
# Installs what strata needs on a fresh Debian machine (run as root), then the npm packages.
#   runtime:  fuse3 (fusermount3; not Debian's `fuse`, which conflicts with it and with podman),
#             libfuse2 (the library stratafs is linked against)
#   build:    libfuse-dev, pkg-config, g++, make, python3 (fuse-native and strata_sys are built
#             from source against Debian's libfuse; see patches/README.md)
#   tests:    attr (getfattr/setfattr), fuse-overlayfs (peer), podman + runc (round trips)
#             test/programs: busybox-static (container roots), debootstrap, git, sqlite3, rsync
# Idempotent: installs only what is missing; `npm ci` only when node_modules is absent or stale.
set -euo pipefail
cd "$(dirname "$0")/.."
need=(fuse3 libfuse2 libfuse-dev pkg-config g++ make python3 attr fuse-overlayfs podman runc uidmap
      busybox-static debootstrap git sqlite3 rsync)
[ "${STRATA_DEMO_ONLY:-}" = 1 ] && need=(fuse3 libfuse2 libfuse-dev pkg-config g++ make python3 attr)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "install-deps: need root to apt-get install: ${missing[*]}" >&2; exit 1; fi
  echo "install-deps: apt-get install ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || [ ! -f node_modules/fuse-native/build/Release/fuse.node ] || [ ! -f src/native/build/Release/strata_sys.node ]; then
  echo "install-deps: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
# FUSE over io_uring (Linux 6.14+) is off by default in the fuse module (enable_uring); stratafs
# takes requests over it when it is on (one queue per CPU: no cross-CPU wake-up per request).
uring=/sys/module/fuse/parameters/enable_uring
[ -d /sys/module/fuse ] || modprobe fuse 2>/dev/null || true
if [ -e "$uring" ] && [ "$(cat "$uring")" != Y ]; then
  if [ "$(id -u)" = 0 ]; then echo Y >"$uring" && echo "install-deps: fuse enable_uring=Y" >&2
  else echo "install-deps: as root, echo Y > $uring lets stratafs use FUSE over io_uring" >&2; fi
fi

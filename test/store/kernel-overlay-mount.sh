#!/bin/sh
# Test stand-in for stratafs with its podman-style argv (`-o OPTS MNT`): mounts kernel overlayfs
# instead. Imported layers use the kernel whiteout format, so the kernel is a valid oracle.
# Used through STRATAFS_BIN by test/store tests that check the store side of a mount.
set -eu
[ "$1" = "-o" ] || { echo "usage: $0 -o lowerdir=...,upperdir=...,workdir=... MNT" >&2; exit 2; }
exec mount -t overlay overlay -o "$2" "$3"

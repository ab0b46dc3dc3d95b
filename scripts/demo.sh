#!/usr/bin/env bash
# The main job: build two small layers, mount their union with a writable upper through stratafs,
# show a read that falls through, a copy-up, a whiteout and an opaque directory with ordinary shell
# tools, then unmount. Everything lives in a temp dir that is removed at the end.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
demo=$(mktemp -d /tmp/strata-demo.XXXXXX)
mnt="$demo/merged"
cleanup() {
  if grep -q " $mnt " /proc/self/mountinfo 2>/dev/null; then fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; fi
  rm -rf "$demo"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; eval "$@"; }

say "two read-only layers: base (bottom) and app (top)"
mkdir -p "$demo"/{base,app,upper,work,merged}
mkdir -p "$demo/base/etc" "$demo/base/usr/share/doc/pkg" "$demo/app/etc" "$demo/app/opt/app"
echo "Welcome to the base layer" > "$demo/base/etc/motd"
echo "base config v1" > "$demo/base/etc/app.conf"
echo "docs" > "$demo/base/usr/share/doc/pkg/README"
echo "app config v2 (from the app layer)" > "$demo/app/etc/app.conf"
printf '#!/bin/sh\necho hello from the app layer\n' > "$demo/app/opt/app/run.sh"; chmod 755 "$demo/app/opt/app/run.sh"
(cd "$demo" && find base app -type f | sort)

say "mount: stratafs -o lowerdir=app:base,upperdir=upper,workdir=work merged"
run "$repo/bin/stratafs" -o "lowerdir=$demo/app:$demo/base,upperdir=$demo/upper,workdir=$demo/work" "$mnt"
run "grep stratafs /proc/self/mountinfo | cut -d' ' -f5,9,10"

say "reads fall through to the topmost layer that has the name"
run "ls -la $mnt/etc"
run "cat $mnt/etc/app.conf $mnt/etc/motd"
run "$mnt/opt/app/run.sh"

say "the first write copies the file up into the upper; the lower layer is untouched"
run "echo 'edited in the container' >> $mnt/etc/motd"
run "cat $mnt/etc/motd"
run "cat $demo/base/etc/motd"
run "ls -la $demo/upper/etc"

say "a delete leaves a whiteout (character device 0/0) in the upper"
run "rm -rf $mnt/usr/share/doc"
run "ls -la $mnt/usr/share"
run "ls -la $demo/upper/usr/share"

say "a directory deleted and created again is opaque: the old contents do not come back"
run "mkdir $mnt/usr/share/doc && ls -la $mnt/usr/share/doc"
run "getfattr -n trusted.overlay.opaque $demo/upper/usr/share/doc"

say "kernel overlayfs reads the same upper (same on-disk format)"
run "fusermount3 -u $mnt"
run "mount -t overlay overlay -o lowerdir=$demo/app:$demo/base,upperdir=$demo/upper,workdir=$demo/work $mnt"
run "cat $mnt/etc/motd; ls $mnt/usr/share/doc | wc -l"
run "umount $mnt"
say "done: unmounted, nothing left behind"

#!/usr/bin/env bash
# Fails when a FUSE or overlay mount is left behind (a test or demo that did not clean up).
left=$(awk '$9 ~ /^fuse/ || $9 == "overlay" {print $5}' /proc/self/mountinfo | grep -v '^/$' || true)
if [ -n "$left" ]; then echo "mounts left behind:"; echo "$left"; exit 1; fi
echo "no mounts left behind"

#!/usr/bin/env bash
# Builds the two native pieces against this machine's Node headers and Debian's libfuse:
#   node_modules/fuse-native (patched by patches/fuse-native+2.2.6.patch, see patches/README.md)
#   src/native (strata's syscall shim: xattrs, mknod, utimensat, renameat2, sparse copy)
# npm passes npm_config_nodedir from .npmrc inside scripts; fall back to the distro headers.
set -euo pipefail
cd "$(dirname "$0")/.."
nodedir=${npm_config_nodedir:-}
if [ -z "$nodedir" ] && [ -f /usr/include/node/node_api.h ]; then nodedir=/usr; fi
gyp=$(command -v node-gyp || true)
if [ -z "$gyp" ]; then gyp="node $(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js"; fi
args=(rebuild --silent)
[ -n "$nodedir" ] && args+=(--nodedir="$nodedir")
$gyp "${args[@]}" --directory node_modules/fuse-native
$gyp "${args[@]}" --directory src/native

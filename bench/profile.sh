#!/usr/bin/env bash
# CPU profile of the stratafs daemon during one workload (node --cpu-prof), summarised by
# dist/bench/cpuprof-top.js. Needs the fixtures of a kept bench run:
#   BENCH_DIR=/tmp/sbfix BENCH_REPS=1 BENCH_ONLY=none bash bench/run.sh   # just builds fixtures
#   bash bench/profile.sh /tmp/sbfix untar|ls10k|readdir10k|randwrite|chmod1000|lsR_warm|find_warm|rmrf|grep|find_cold|find_fresh
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD FIX=${1:?fixture dir} W=${2:?workload}
RUN=$(mktemp -d "$FIX/prof.XXXXXX") MNT=$RUN/m UP=$RUN/u WK=$RUN/w PROF=$REPO/bench/results/prof
mkdir -p "$MNT" "$UP" "$WK" "$PROF"
case $W in
  untar|randwrite|chmod1000) LOWERS=$FIX/data/l ;;
  ls10k|readdir10k) LOWERS=$FIX/wide/a:$FIX/wide/b; cp -a "$FIX/wide/u/big" "$UP/" ;;
  find_warm|lsR_warm|find_cold|find_fresh) LOWERS=$FIX/tree/l ;;
  rmrf|grep) LOWERS=$FIX/small/l ;;
  *) echo "profile: unknown workload $W" >&2; exit 2 ;;
esac
rm -f "$PROF/$W".cpuprofile
rm -rf "$PROF/tmp"
STRATA_LOG=error node --cpu-prof --cpu-prof-dir="$PROF/tmp" --cpu-prof-interval=200 \
  "$REPO/bin/stratafs" -f -o "lowerdir=$LOWERS,upperdir=$UP,workdir=$WK" "$MNT" 2>>"$PROF/daemon.log" &
PID=$!
trap 'grep -q " $MNT " /proc/self/mountinfo && fusermount3 -u "$MNT"; kill -0 $PID 2>/dev/null && kill $PID; rm -rf "$RUN"' EXIT
for _ in $(seq 1 300); do grep -q " $MNT " /proc/self/mountinfo && break; sleep 0.02; done
cd "$MNT"
t0=$(date +%s%N)
case $W in
  untar) tar -xf "$FIX/small.tar" ;;
  randwrite) fio --name=b --filename="$MNT/new" --rw=randwrite --bs=4k --size=64M --ioengine=psync --fallocate=none --randrepeat=1 --norandommap >/dev/null ;;
  chmod1000) chmod 600 chmod/c* ;;
  ls10k) ls -l big >/dev/null ;;
  readdir10k) ls -f big >/dev/null ;;
  find_warm) find . >/dev/null; find . >/dev/null ;;
  find_cold) sync; echo 3 >/proc/sys/vm/drop_caches; find . >/dev/null ;;
  find_fresh) find . >/dev/null ;;
  lsR_warm) ls -lR . >/dev/null; ls -lR . >/dev/null ;;
  rmrf) rm -rf s ;;
  grep) grep -r needle-not-present s ;;
esac
echo "profile: $W took $(( ($(date +%s%N) - t0) / 1000000 )) ms under --cpu-prof" >&2
cd /
fusermount3 -u "$MNT"
for _ in $(seq 1 500); do kill -0 $PID 2>/dev/null || break; sleep 0.02; done
kill -0 $PID 2>/dev/null && kill $PID
wait $PID 2>/dev/null
f=$(ls "$PROF"/tmp/*.cpuprofile 2>/dev/null | head -1)
[ -n "$f" ] || { echo "profile: no .cpuprofile written (daemon did not exit normally)" >&2; exit 1; }
mv "$f" "$PROF/$W.cpuprofile"; rm -rf "$PROF/tmp"
node "$REPO/dist/bench/cpuprof-top.js" "$PROF/$W.cpuprofile" 25

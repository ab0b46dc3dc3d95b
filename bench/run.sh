#!/usr/bin/env bash
# make bench: kernel overlayfs, fuse-overlayfs, unionfs-fuse and stratafs on the same generated
# fixtures, every workload of issue 7, targets interleaved per repetition; medians and ratios to
# kernel overlayfs go to stdout and bench/results/latest.json (via dist/bench/report.js).
# It reports; it never fails on speed. Needs root and /dev/fuse.
#
#   BENCH_REPS=3            repetitions (median of these)
#   BENCH_TARGETS="kernel fuse-overlayfs unionfs stratafs"
#   BENCH_ONLY="regex"      run only workloads whose name matches
#   BENCH_MILLION=1         also walk a 1M-entry tree on stratafs and report its peak RSS (slow: ~+5 min)
#   BENCH_DIR=/path         fixture dir to reuse (kept); default: a fresh mktemp dir removed at the end
#   BENCH_TIMEOUT=600       per-command limit in seconds (a timed-out run is recorded as missing)
#   BENCH_HOSTFS=1          put fixtures and mounts straight on the host filesystem instead of on a
#                           fresh ext4 image (see below)
#
# Fixtures, uppers and work dirs live on an ext4 filesystem made for the run (a sparse image file on
# a loop device, direct I/O so pages are cached once), like a container store on a user's disk. On
# this VM's root ext4 (no journal) every create passes over the inodes freed lately, so its cost
# depends on what ran before nearby: 1,000 creates took 23 ms in one new directory and 760 ms in
# another, and targets given different run directories were not measured alike (untar, cp -a,
# chmod and append create files).
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
REPS=${BENCH_REPS:-3}
TARGETS=${BENCH_TARGETS:-"kernel fuse-overlayfs unionfs stratafs"}
ONLY=${BENCH_ONLY:-.}
TMO=${BENCH_TIMEOUT:-600}
OUT=$REPO/bench/results
mkdir -p "$OUT"

[ "$(id -u)" = 0 ] || { echo "bench: needs root" >&2; exit 1; }
[ -e /dev/fuse ] || { echo "bench: needs /dev/fuse" >&2; exit 1; }
need=()
command -v fuse-overlayfs >/dev/null || need+=(fuse-overlayfs)
command -v unionfs >/dev/null || need+=(unionfs-fuse)
command -v fio >/dev/null || need+=(fio)
command -v fusermount3 >/dev/null || need+=(fuse3)
if [ ${#need[@]} -gt 0 ]; then
  echo "bench: installing ${need[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null || { echo "bench: apt-get install failed" >&2; exit 1; }
fi

if [ -n "${BENCH_DIR:-}" ]; then FIX=$BENCH_DIR; KEEP=1; mkdir -p "$FIX"; else FIX=$(mktemp -d /tmp/sb.XXXXXX); KEEP=0; fi
IMAGE=""     # the ext4 image mounted on $FIX (kept beside it with BENCH_DIR, so are its fixtures)
LOOP=""
unmount_image() {
  if [ -n "$LOOP" ]; then umount "$FIX" 2>/dev/null || umount -l "$FIX"; losetup -d "$LOOP" 2>/dev/null; LOOP=""; fi
}
if [ "${BENCH_HOSTFS:-0}" != 1 ]; then
  IMAGE=${FIX%/}.ext4
  # mounted twice (through two loop devices) an ext4 corrupts itself: never attach one in use
  if mountpoint -q "$FIX" || [ -n "$(losetup -j "$IMAGE" 2>/dev/null)" ]; then
    echo "bench: $IMAGE is attached or $FIX mounted already (another bench, or one that did not end): unmount it first, or set BENCH_HOSTFS=1 to measure on what is mounted there" >&2
    exit 1
  fi
  if [ ! -f "$IMAGE" ]; then
    # 2M inodes: the 1M-entry walk, the other fixtures and every run's copies fit with room to spare
    # inode tables and journal written now: lazy init would write them during the measurements
    truncate -s 40G "$IMAGE" && mkfs.ext4 -q -F -N 2000000 -E lazy_itable_init=0,lazy_journal_init=0 "$IMAGE" \
      || { echo "bench: could not make $IMAGE" >&2; rm -f "$IMAGE"; exit 1; }
  fi
  LOOP=$(losetup --find --show --direct-io=on "$IMAGE") || { echo "bench: no loop device for $IMAGE" >&2; exit 1; }
  mount "$LOOP" "$FIX" || { losetup -d "$LOOP"; echo "bench: could not mount $IMAGE" >&2; exit 1; }
fi
RUN=$FIX/run            # per-mount uppers, works and mountpoints live here
RAW=$OUT/raw.tsv        # one line per measurement: rep target workload seconds peak_rss_kb
LOG=$OUT/daemons.log    # stderr of the FUSE daemons
rm -rf "$RUN"; mkdir -p "$RUN"; : >"$RAW"; : >"$LOG"

MOUNTED=()   # mountpoints we mounted
DPID=""      # pid of the FUSE daemon we started for the current mount (foreground, backgrounded here)
cleanup() {
  local m
  for m in "${MOUNTED[@]}"; do
    if grep -q " $m " /proc/self/mountinfo 2>/dev/null; then
      fusermount3 -u "$m" 2>/dev/null || umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    fi
  done
  if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then kill "$DPID" 2>/dev/null; fi
  rm -rf "$RUN"
  unmount_image
  if [ "$KEEP" = 0 ]; then rm -rf "$FIX"; [ -z "$IMAGE" ] || rm -f "$IMAGE"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ns() { date +%s%N; }
is_mounted() { awk -v m="$1" '$5 == m { f = 1 } END { exit !f }' /proc/self/mountinfo; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# mount_target TARGET MNT UPPER WORK LOWER... (lowers top first)
mount_target() {
  local t=$1 mnt=$2 up=$3 wk=$4; shift 4
  local lowers; lowers=$(IFS=:; echo "$*")
  mkdir -p "$mnt" "$up" "$wk"
  DPID=""
  case $t in
    kernel) mount -t overlay overlay -o "lowerdir=$lowers,upperdir=$up,workdir=$wk" "$mnt" || return 1 ;;
    fuse-overlayfs) fuse-overlayfs -f -o "lowerdir=$lowers,upperdir=$up,workdir=$wk" "$mnt" 2>>"$LOG" & DPID=$! ;;
    unionfs)
      local br="$up=RW" l
      for l in "$@"; do br="$br:$l=RO"; done
      unionfs -f -o cow,allow_other,use_ino,suid,dev,nonempty "$br" "$mnt" 2>>"$LOG" & DPID=$! ;;
    stratafs) STRATA_LOG=error "$REPO/bin/stratafs" -f -o "lowerdir=$lowers,upperdir=$up,workdir=$wk" "$mnt" 2>>"$LOG" & DPID=$! ;;
    *) echo "bench: unknown target $t" >&2; return 1 ;;
  esac
  MOUNTED+=("$mnt")
  local i
  for i in $(seq 1 300); do
    is_mounted "$mnt" && return 0
    if [ -n "$DPID" ] && ! kill -0 "$DPID" 2>/dev/null; then echo "bench: $t daemon exited before mounting $mnt" >&2; return 1; fi
    sleep 0.02
  done
  echo "bench: $t did not mount $mnt" >&2; return 1
}

# Peak RSS (VmHWM, kB) of the current daemon; 0 for the kernel.
peak_rss() { if [ -n "$DPID" ]; then awk '/^VmHWM/ { print $2 }' "/proc/$DPID/status" 2>/dev/null || echo 0; else echo 0; fi; }

umount_target() {
  local mnt=$1 i
  if is_mounted "$mnt"; then
    fusermount3 -u "$mnt" 2>/dev/null || umount "$mnt" 2>/dev/null || { sleep 1; umount -l "$mnt"; }
  fi
  if [ -n "$DPID" ]; then
    for i in $(seq 1 250); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.02; done
    if kill -0 "$DPID" 2>/dev/null; then kill "$DPID" 2>/dev/null; fi
    wait "$DPID" 2>/dev/null
    DPID=""
  fi
}

# timed CMD...: prints the wall seconds of CMD (run under `timeout`), or "nan" if it failed.
# grep's exit 1 (no match) counts as success; so does exit $OKRC (xargs' "some stat failed" for misses).
timed() {
  local t0 t1 rc
  t0=$(ns); timeout "$TMO" "$@" >/dev/null 2>>"$RUN/cmd.err"; rc=$?; t1=$(ns)
  if [ $rc -ne 0 ] && ! { [ "$1" = grep ] && [ $rc = 1 ]; } && [ "$rc" != "${OKRC:-}" ]; then
    echo "bench: '$*' exited $rc" >>"$RUN/cmd.err"; echo nan; return
  fi
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", (b - a) / 1e9 }'
}

# fio_secs KIND FILE SIZE: runs one fio job and prints its own runtime in seconds (excludes layout).
fio_secs() {
  local kind=$1 file=$2 size=$3 extra=()
  [ "$kind" = randread ] && extra=(--readonly)
  timeout "$TMO" fio --name=b --filename="$file" --rw="$kind" --bs=4k --size="$size" --ioengine=psync \
    --fallocate=none --randrepeat=1 --norandommap "${extra[@]}" --output-format=json 2>>"$RUN/cmd.err" \
    | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{try{const j=JSON.parse(s.slice(s.indexOf("{"))).jobs[0];const k=j.read.io_bytes>0?"read":"write";console.log((j[k].runtime/1000).toFixed(6))}catch{console.log("nan")}})'
}

N=0
# one TARGET WORKLOAD REP: fresh mount (upper + work empty unless the workload seeds them), the
# workload's untimed preparation, the timed part, unmount; appends a line to $RAW.
one() {
  local t=$1 w=$2 rep=$3
  N=$((N + 1))
  local mnt=$RUN/m$N up=$RUN/u$N wk=$RUN/w$N secs=nan rss=0
  local lowers=()
  case $w in
    find_*|lsR_*|stat_*) lowers=("$FIX/tree/l") ;;
    ls10k|readdir10k) lowers=("$FIX/wide/a" "$FIX/wide/b"); mkdir -p "$up"; cp -a "$FIX/wide/u/big" "$up/" ;;
    seqread_*|randread|append256|chmod1000|seqwrite|randwrite) lowers=("$FIX/data/l") ;;
    untar) lowers=("$FIX/data/l") ;;
    rmrf|cpa|grep) lowers=("$FIX/small/l") ;;
    stathit_*|statmiss_*|readdir_*)
      local d=${w##*_} i
      for ((i = 0; i < d - 1; i++)); do lowers+=("$FIX/depth/$(printf %03d $i)"); done
      lowers+=("$FIX/depth/b") ;;
    million) lowers=("$FIX/million/l") ;;
  esac
  if ! mount_target "$t" "$mnt" "$up" "$wk" "${lowers[@]}"; then
    umount_target "$mnt"; printf '%s\t%s\t%s\tnan\t0\n' "$rep" "$t" "$w" >>"$RAW"; return
  fi
  cd "$mnt" || return
  # The previous workload's dirty data (a 512 MiB dd, an untar) is written back now, not during this
  # one's timing: dirty-page throttling made write-heavy times vary 4x from run to run.
  sync
  # This VM gives idle memory back to its host after a few seconds, and the first large write
  # after that pays to fault it in again (a 512 MiB dd on the host ext4: 0.8-1.0 s, 0.13 s right
  # after another): write-heavy workloads get memory that was just in use, whatever the target.
  case $w in
    seqwrite|randwrite|untar|cpa)
      dd if=/dev/zero of="$RUN/prefault" bs=1M count=512 status=none; rm -f "$RUN/prefault"; sync ;;
  esac
  case $w in
    find_warm) find . >/dev/null; secs=$(timed find .) ;;
    lsR_warm) ls -lR . >/dev/null; secs=$(timed ls -lR .) ;;
    stat_warm) xargs -0 -a "$FIX/tree.list" stat >/dev/null; secs=$(timed xargs -0 -a "$FIX/tree.list" stat) ;;
    find_cold) drop_caches; secs=$(timed find .) ;;
    lsR_cold) drop_caches; secs=$(timed ls -lR .) ;;
    stat_cold) drop_caches; secs=$(timed xargs -0 -a "$FIX/tree.list" stat) ;;
    ls10k) secs=$(timed ls -l big) ;;
    readdir10k) secs=$(timed ls -f big) ;;
    seqread_warm) cat f1g >/dev/null; secs=$(timed dd if=f1g of=/dev/null bs=1M) ;;
    seqread_cold) drop_caches; secs=$(timed dd if=f1g of=/dev/null bs=1M) ;;
    randread) cat f1g >/dev/null; secs=$(fio_secs randread "$mnt/f1g" 128M) ;;
    seqwrite) secs=$(timed dd if=/dev/zero of=new bs=1M count=512) ;;
    randwrite) secs=$(fio_secs randwrite "$mnt/new" 64M) ;;
    append256) secs=$(timed sh -c 'printf x >> f256') ;;
    chmod1000) secs=$(timed chmod 600 chmod/c*) ;;
    untar) secs=$(timed tar -xf "$FIX/small.tar") ;;
    rmrf) secs=$(timed rm -rf s) ;;
    cpa) secs=$(timed cp -a s s2) ;;
    grep) secs=$(timed grep -r needle-not-present s) ;;
    stathit_*) secs=$(timed xargs -a "$FIX/depth.hits" stat) ;;
    statmiss_*) secs=$(OKRC=123 timed xargs -a "$FIX/depth.misses" stat) ;;
    readdir_*) secs=$(timed ls -f x) ;;
    million) secs=$(timed find . -printf '%s\n') ;;
  esac
  cd "$RUN" || return
  rss=$(peak_rss)
  umount_target "$mnt"
  printf '%s\t%s\t%s\t%s\t%s\n' "$rep" "$t" "$w" "$secs" "$rss" >>"$RAW"
  printf 'rep %s %-15s %-14s %s s\n' "$rep" "$t" "$w" "$secs" >&2
  rm -rf "$mnt" "$up" "$wk"
}

# --- fixtures (reused across targets and, with BENCH_DIR, across runs) ---
t0=$(date +%s)
node "$REPO/dist/bench/fixtures.js" "$FIX" $([ "${BENCH_MILLION:-0}" = 1 ] && echo --million) || exit 1
[ -f "$FIX/small.tar" ] || tar -cf "$FIX/small.tar" -C "$FIX/small/l" s
[ -f "$FIX/tree.list" ] || (cd "$FIX/tree/l" && find . -type f -print0 >"$FIX/tree.list")
[ -f "$FIX/depth.hits" ] || (cd "$FIX/depth/b" && ls x | sed 's|^|x/|' >"$FIX/depth.hits"; \
  for j in $(seq -w 0 1999); do echo "x/miss$j"; done >"$FIX/depth.misses")
echo "bench: fixtures ready in $(( $(date +%s) - t0 ))s under $FIX" >&2

WORKLOADS=(find_warm lsR_warm stat_warm find_cold lsR_cold stat_cold ls10k readdir10k
  seqread_warm seqread_cold randread seqwrite randwrite append256 chmod1000
  untar rmrf cpa grep)
for d in 1 8 32 128; do WORKLOADS+=("stathit_$d" "statmiss_$d" "readdir_$d"); done

for rep in $(seq 1 "$REPS"); do
  for w in "${WORKLOADS[@]}"; do
    [[ $w =~ $ONLY ]] || continue
    # rotate the target order each repetition so no target always runs right after another
    read -r -a order <<<"$TARGETS"
    k=$(( (rep - 1) % ${#order[@]} ))
    for t in "${order[@]:k}" "${order[@]:0:k}"; do one "$t" "$w" "$rep"; done
  done
done

if [ "${BENCH_MILLION:-0}" = 1 ]; then one stratafs million 1; fi

# Idle vCPUs that halt at once make every cross-thread wake-up slow, and FUSE requests are made of them.
HALTPOLL=$(cat /sys/module/haltpoll/parameters/guest_halt_poll_ns 2>/dev/null || echo n/a)
# stratafs takes requests over io_uring only where the fuse module allows it (install-deps.sh sets it).
URING=$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null || echo n/a)
FSDESC=$(if [ -n "$IMAGE" ]; then echo "fresh ext4 image (loop, direct I/O)"; else findmnt -n -o FSTYPE -T "$FIX"; fi)
MACHINE="nproc=$(nproc); mem=$(free -h | awk '/^Mem:/ { print $2 }'); kernel=$(uname -r); cpuidle=$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo n/a), guest_halt_poll_ns=$HALTPOLL; fuse enable_uring=$URING; fs=$FSDESC; $(date -u +%Y-%m-%dT%H:%MZ); reps=$REPS; total=$(( $(date +%s) - t0 ))s"
node "$REPO/dist/bench/report.js" "$RAW" "$OUT/latest.json" "$MACHINE"

#!/usr/bin/env bash
# A follower catches up through a snapshot of a multi-GiB data set while
# its memory is capped well below that size (issue 17, "Snapshots must
# stream"). Too slow for the test suite; run by hand:
#
#   loadtest/scripts/snapshot-catchup-memory.sh [data-mib] [limit-mib]
#
#  1. 3 nodes (separate processes) + a proxy; fills data-mib (default 2200)
#     of random, incompressible 1 MiB values with pipelined SETs through
#     the proxy.
#  2. Stops node 3, snapshots + purges the log on the leader, wipes node 3.
#  3. Restarts node 3 in a memory cgroup (v1 memory.limit_in_bytes or v2
#     memory.max; both count page cache) of limit-mib (default 512), or
#     under `prlimit --as` when no cgroup can be made.
#  4. Waits until node 3 has applied the snapshot, checks a value through
#     its own data, and prints the time, the snapshot size, node 3's peak
#     RSS (VmHWM) and the cgroup's peak.
set -euo pipefail
cd "$(dirname "$0")/../.."
data_mib="${1:-2200}"
limit_mib="${2:-512}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/rampart/target}"
bin="${BIN:-$CARGO_TARGET_DIR/release/rampart}"
work="${WORK_DIR:-$(mktemp -d /var/tmp/rampart-snapmem.XXXXXX)}"
base="${BASE_PORT:-7800}"
proxy_port=$((base + 90))
cg=""
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "$cg" ] && rmdir "$cg" 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

[ -x "$bin" ] || cargo build --release --bin rampart >/dev/null
raft() { echo "127.0.0.1:$((base + 10 + $1))"; }
client() { echo "127.0.0.1:$((base + $1))"; }
node_cmd() {
    echo "$bin" node --id "$1" --raft-addr "$(raft "$1")" --client-addr "$(client "$1")" \
        --data-dir "$work/node$1" --snapshot-keep-logs 0 --snapshot-logs 1000000 --insecure
}
start_node() { $(node_cmd "$1") > "$work/node$1.log" 2>&1 & pids+=($!); eval "pid$1=$!"; }
status() { "$bin" admin status --insecure --node "$(raft "$1")" 2>/dev/null; }
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" 2>/dev/null; }

for id in 1 2 3; do start_node "$id"; done
sleep 2
members=()
for id in 1 2 3; do members+=(--member "$id=$(raft "$id")/$(client "$id")"); done
for _ in $(seq 1 30); do "$bin" admin init --insecure --node "$(raft 1)" "${members[@]}" >/dev/null 2>&1 && break; sleep 1; done
"$bin" proxy --listen "127.0.0.1:$proxy_port" \
    --nodes "$(client 1),$(client 2),$(client 3)" --insecure > "$work/proxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do redis-cli -p "$proxy_port" set probe 1 >/dev/null 2>&1 && break; sleep 0.5; done

echo "filling ${data_mib} MiB through the proxy..."
t0=$(date +%s)
python3 - "$data_mib" <<'PY' | redis-cli -p "$proxy_port" --pipe | tail -n 2
import os, sys
out = sys.stdout.buffer
val = 1 << 20
for i in range(int(sys.argv[1])):
    key = b"big:%d" % i
    v = os.urandom(val)
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, len(v)) + v + b"\r\n")
PY
echo "filled in $(( $(date +%s) - t0 )) s"
redis-cli -p "$proxy_port" set marker "caught-up" >/dev/null
leader=""
for id in 1 2 3; do
    [ "$(status "$id" | field state)" = leader ] && leader=$id
done
[ -n "$leader" ] || { status 1; echo "no leader"; exit 1; }
follower=3
if [ "$leader" = 3 ]; then follower=2; fi

kill "$(eval echo \$pid$follower)"; sleep 1
applied=$(status "$leader" | field applied_index)
t1=$(date +%s)
# The admin call waits 60 s at most; a multi-GiB build may take longer.
"$bin" admin snapshot --insecure --node "$(raft "$leader")" || true
until st=$(status "$leader") && [ "$(echo "$st" | field snapshot_index)" -ge "$applied" ] \
    && [ "$(echo "$st" | field purged_index)" -ge "$applied" ]; do sleep 1; done
echo "leader built its snapshot and purged its log in $(( $(date +%s) - t1 )) s"
snap_bytes=$(du -cb "$work/node$leader"/raft-snapshots/*.snap | tail -n1 | cut -f1)
echo "leader's snapshot: $((snap_bytes >> 20)) MiB; leader: $(status "$leader")"
rm -rf "$work/node$follower"

# The memory cap.
limit=$((limit_mib << 20))
launch=( $(node_cmd "$follower") )
if mkdir "/sys/fs/cgroup/memory/rampart-snapmem-$$" 2>/dev/null; then
    cg="/sys/fs/cgroup/memory/rampart-snapmem-$$"
    echo "$limit" > "$cg/memory.limit_in_bytes"
    sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$cg" "${launch[@]}" \
        > "$work/node$follower.log" 2>&1 &
    how="cgroup v1 memory.limit_in_bytes=${limit_mib}MiB"
elif mkdir "/sys/fs/cgroup/rampart-snapmem-$$" 2>/dev/null; then
    cg="/sys/fs/cgroup/rampart-snapmem-$$"
    echo "$limit" > "$cg/memory.max"
    sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$cg" "${launch[@]}" \
        > "$work/node$follower.log" 2>&1 &
    how="cgroup v2 memory.max=${limit_mib}MiB"
else
    prlimit --as="$limit" "${launch[@]}" > "$work/node$follower.log" 2>&1 &
    how="prlimit --as=${limit_mib}MiB"
fi
fpid=$!
pids+=("$fpid")
echo "node $follower restarted empty under $how"
t0=$(date +%s.%N)
target=$(status "$leader" | field snapshot_index)
peak_rss=0
while :; do
    if ! kill -0 "$fpid" 2>/dev/null; then
        echo "node $follower died:"; tail -n 30 "$work/node$follower.log"; exit 1
    fi
    rss=$(awk '/VmHWM/{print $2}' "/proc/$fpid/status" 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$peak_rss" ] && peak_rss=$rss
    applied=$(status "$follower" | field applied_index || true)
    if [ -n "$applied" ] && [ "$applied" -ge "$target" ]; then break; fi
    sleep 0.5
done
elapsed=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
rss=$(awk '/VmHWM/{print $2}' "/proc/$fpid/status")
[ "$rss" -gt "$peak_rss" ] && peak_rss=$rss
cg_peak="n/a"
[ -n "$cg" ] && [ -f "$cg/memory.max_usage_in_bytes" ] && cg_peak="$(( $(cat "$cg/memory.max_usage_in_bytes") >> 20 )) MiB"
[ -n "$cg" ] && [ -f "$cg/memory.peak" ] && cg_peak="$(( $(cat "$cg/memory.peak") >> 20 )) MiB"
echo "node $follower caught up to index $target in ${elapsed} s: $(status "$follower")"
echo "snapshot $((snap_bytes >> 20)) MiB; node $follower peak RSS $((peak_rss >> 10)) MiB; cgroup peak (with page cache) $cg_peak; data dir $(du -sm "$work/node$follower" | cut -f1) MiB"
grep -E "snapshot installed|interrupted|InstallSnapshot" "$work/node$follower.log" | tail -n 5 || true
grep -cE "InstallSnapshot RPC timed out|sending snapshot chunk.*offset=0 " "$work/node$leader.log" || true

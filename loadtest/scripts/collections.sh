#!/usr/bin/env bash
# Collections on small vs huge keys (issue 4), in one run against one fresh
# cluster: HGET on a 10-field vs a 1,000,000-field hash, ZSCORE on a 10- vs
# 1,000,000-member zset, LPUSH and RPOP throughput, ZRANGE 0 9 on the big
# zset. Prints each bench table and a summary with the big/small ratios.
#
#   loadtest/scripts/collections.sh [secs] [elements]
#
# Starts `rampart dev` on proxy port 6390 / base port 7300 (data in
# /tmp/lt-data, deleted at the end) and stops it at the end. Bench shape:
# 8 connections (the proxy's per-IP cap) x pipeline 4, 2 s warm-up; ZRANGE
# (heavy_data class, 3 slots here) 3 connections x pipeline 1.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-10}"
elements="${2:-1000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/rampart/target}"
rampart="$CARGO_TARGET_DIR/release/rampart"
lt="$CARGO_TARGET_DIR/release/rampart-loadtest"
ep=127.0.0.1:6390
work="$(mktemp -d)"
data=/tmp/lt-data
cleanup() {
    [ -n "${dev_pid:-}" ] && kill "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true
    rm -rf "$work" "$data"
}
trap cleanup EXIT

# NO_BUILD=1 uses the binaries already in $CARGO_TARGET_DIR/release.
[ -n "${NO_BUILD:-}" ] || cargo build --release -p rampart -p rampart-loadtest >/dev/null
"$rampart" dev --fresh --data-dir "$data" --proxy-port 6390 --base-port 7300 > "$work/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 120); do grep -q ready "$work/dev.log" && break; sleep 0.5; done
grep -q ready "$work/dev.log" || { cat "$work/dev.log"; exit 1; }

pop() { "$lt" populate --endpoint "$ep" --quiet "$@" | tee -a "$work/populate.txt"; }
bench() { # name, "connections pipeline", then more bench flags
    local name="$1" c p; read -r c p <<< "$2"; shift 2
    echo "== $name"
    "$lt" bench --endpoint "$ep" --threads 1 -c "$c" -P "$p" --warmup 2 --duration "$secs" --quiet \
        --json "$work/$name.json" "$@" | tee "$work/$name.txt"
    echo
}

pop --type hash --key h:small --elements 10
pop --type hash --key h:big --elements "$elements"
pop --type zset --key z:small --elements 10
pop --type zset --key z:big --elements "$elements"
# Let the nodes flush and compact what populate wrote before measuring.
sleep "${SETTLE:-30}"

bench hget-small "8 4" --keyspace 10 --command 'HGET h:small f:__key__'
bench hget-big "8 4" --keyspace "$elements" --command 'HGET h:big f:__key__'
bench zscore-small "8 4" --keyspace 10 --command 'ZSCORE z:small m:__key__'
bench zscore-big "8 4" --keyspace "$elements" --command 'ZSCORE z:big m:__key__'
# ZRANGE is in the heavy_data class: at most heavy (2 x cores = 4 here) minus
# the one slot reserved for scans run at once and the rest get BUSY, so 3
# requests in flight stay within the limit.
bench zrange-big "3 1" --command 'ZRANGE z:big 0 9'
# The list last: after it the database holds one ~50 MB SST whose bloom
# filter no longer stays in the block cache, which slows every point read
# (see docs/benchmarks.md, "Collections (issue 4)").
pop --type list --key l:pop --elements "$elements" --value-size 32
sleep "${SETTLE:-30}"
bench lpush "8 4" --command 'LPUSH l:push __data__'
bench rpop "8 4" --command 'RPOP l:pop'
bench hget-small-after-list "8 4" --keyspace 10 --command 'HGET h:small f:__key__'

python3 - "$work" <<'EOF'
import json, sys
d = sys.argv[1]
r = {n: json.load(open(f"{d}/{n}.json"))["total"] for n in
     ["hget-small", "hget-big", "zscore-small", "zscore-big", "zrange-big", "lpush", "rpop",
      "hget-small-after-list"]}
print(f"{'bench':<22}{'ops/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
for n, t in r.items():
    print(f"{n:<22}{t['ops_per_sec']:>12.0f}{t['latency_ms']['p50']:>10.3f}"
          f"{t['latency_ms']['p99']:>10.3f}{t['errors']:>8}")
for a in ["hget", "zscore"]:
    s, b = r[f"{a}-small"], r[f"{a}-big"]
    print(f"{a}: big/small p50 {b['latency_ms']['p50'] / s['latency_ms']['p50']:.2f}x, "
          f"small/big ops/s {s['ops_per_sec'] / b['ops_per_sec']:.2f}x (goal < 1.5)")
EOF

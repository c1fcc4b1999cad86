#!/usr/bin/env bash
# Cost of the admission policies, measured in one run:
#  1. GET throughput through a proxy with every policy on vs a proxy with
#     policies off, both in front of the same cluster, alternating rounds.
#  2. Proxy CPU while one IP (127.0.0.20) storms it with reconnects.
#
#   loadtest/scripts/policies-overhead.sh [rounds] [requests]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-4}"
requests="${2:-200000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/rampart/target}"
bin="$CARGO_TARGET_DIR/release/rampart"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

[ -n "${NO_BUILD:-}" ] || cargo build --release --bin rampart >/dev/null
# Policies on (defaults, but the benchmark's 50 connections come from one IP).
"$bin" dev --proxy-port 6420 --base-port 7600 --data-dir "$work/c" --fresh \
    --per-ip-max-connections 100 > "$work/dev.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do grep -q ready "$work/dev.log" && break; sleep 0.5; done
grep -q ready "$work/dev.log" || { cat "$work/dev.log"; exit 1; }
"$bin" proxy --listen 127.0.0.1:6421 --nodes 127.0.0.1:7601,127.0.0.1:7602,127.0.0.1:7603 \
    --policies false > "$work/off.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do redis-cli -p 6421 ping >/dev/null 2>&1 && break; sleep 0.2; done
redis-cli -p 6420 set key:__rand_int__ x >/dev/null

get_rps() { redis-benchmark -p "$1" -t get -c 50 -n "$requests" -P 16 -q 2>/dev/null \
    | tr '\r' '\n' | awk '/^GET: [0-9]/{print $2}'; }
on_total=0; off_total=0
for r in $(seq 1 "$rounds"); do
    on=$(get_rps 6420); off=$(get_rps 6421)
    echo "round $r: policies on ${on} req/s, off ${off} req/s"
    on_total=$(awk -v a="$on_total" -v b="$on" 'BEGIN{print a+b}')
    off_total=$(awk -v a="$off_total" -v b="$off" 'BEGIN{print a+b}')
done
awk -v a="$on_total" -v b="$off_total" 'BEGIN{printf "GET -P 16: policies on / off = %.3f\n", a/b}'

# Reject storm from 127.0.0.20 against the policies-on proxy.
proxy_pid=$(pgrep -f -- "proxy --listen 127.0.0.1:6420" | head -n1)
cpu() { awk '{print $14+$15}' "/proc/$proxy_pid/stat"; }
hz=$(getconf CLK_TCK)
secs=5
before=$(cpu)
cat > "$work/storm.py" <<'PY'
import socket, sys, time
end = time.time() + float(sys.argv[1]); n = 0
while time.time() < end:
    s = socket.socket(); s.bind(("127.0.0.20", 0))
    try:
        s.connect(("127.0.0.1", 6420)); n += 1
    except OSError:
        pass
    s.close()
print(f"storm: {n} connects in {sys.argv[1]} s ({n/float(sys.argv[1]):.0f}/s)")
PY
# Two connect loops, as one host with a reconnecting client pool would do.
python3 "$work/storm.py" "$secs" &
storm=$!
python3 "$work/storm.py" "$secs"
wait "$storm"
after=$(cpu)
awk -v a="$before" -v b="$after" -v hz="$hz" -v s="$secs" \
    'BEGIN{printf "proxy CPU during the storm: %.2f cores\n", (b-a)/hz/s}'

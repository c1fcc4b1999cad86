#!/usr/bin/env bash
# Runs redis-benchmark against a Rampart proxy and against a plain
# redis-server with appendfsync always, in the same run, and prints a table.
#
#   loadtest/scripts/compare-redis.sh [requests] [clients]
#
# Starts its own cluster (rampart dev on ports 6390 / 7300..) and redis-server
# (port 6391), both on loopback, and stops them at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
requests="${1:-200000}"
clients="${2:-50}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/rampart/target}"
work="$(mktemp -d)"
cleanup() {
    [ -n "${dev_pid:-}" ] && kill "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true
    redis-cli -p 6391 shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

[ -n "${NO_BUILD:-}" ] || cargo build --release --bin rampart >/dev/null
"$CARGO_TARGET_DIR/release/rampart" dev --proxy-port 6390 --base-port 7300 \
    --data-dir "$work/rampart" --fresh --per-ip-max-connections 0 > "$work/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 120); do grep -q ready "$work/dev.log" && break; sleep 0.5; done
grep -q ready "$work/dev.log" || { cat "$work/dev.log"; exit 1; }

redis-server --port 6391 --save '' --appendonly yes --appendfsync always \
    --dir "$work" --daemonize yes --logfile "$work/redis.log"
for _ in $(seq 1 50); do redis-cli -p 6391 ping >/dev/null 2>&1 && break; sleep 0.1; done

run() { # port pipeline -> "set_rps get_rps"
    redis-benchmark -p "$1" -t set,get -c "$clients" -n "$requests" -P "$2" -q \
        | tr '\r' '\n' | awk '/^SET:/{s=$2} /^GET:/{g=$2} END{print s, g}'
}
printf "%-10s %-4s %14s %14s\n" target P "SET req/s" "GET req/s"
for p in 1 16; do
    read -r rs rg < <(run 6391 "$p")
    read -r ps pg < <(run 6390 "$p")
    printf "%-10s %-4s %14s %14s\n" redis "$p" "$rs" "$rg"
    printf "%-10s %-4s %14s %14s\n" rampart "$p" "$ps" "$pg"
    awk -v a="$ps" -v b="$rs" -v c="$pg" -v d="$rg" \
        'BEGIN{printf "%-10s %-4s %13.2fx %13.2fx\n", "ratio", "'"$p"'", a/b, c/d}'
done

echo
echo "single SET latency through the proxy (1 client, no pipelining):"
redis-benchmark -p 6390 -t set -c 1 -n 2000 --precision 3 2>/dev/null \
    | tr '\r' '\n' | grep -E "latency summary" -A 3 || true
echo "single SET latency on redis-server appendfsync always:"
redis-benchmark -p 6391 -t set -c 1 -n 2000 --precision 3 2>/dev/null \
    | tr '\r' '\n' | grep -E "latency summary" -A 3 || true

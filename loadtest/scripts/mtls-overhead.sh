#!/usr/bin/env bash
# Cost of mutual TLS inside the cluster (proxy -> node, node <-> node),
# measured in one run: two `rampart dev` clusters on the same machine, one
# with mutual TLS (the default) and one with --insecure, and alternating
# redis-benchmark rounds of SET and GET through each proxy (clients talk
# plaintext RESP to both proxies; only the cluster links differ). Only one
# cluster is under load at a time.
#
#   loadtest/scripts/mtls-overhead.sh [rounds] [requests] [pipeline]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds="${1:-4}"
requests="${2:-100000}"
pipeline="${3:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/rampart/target}"
bin="$CARGO_TARGET_DIR/release/rampart"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

[ -n "${NO_BUILD:-}" ] || cargo build --release --bin rampart >/dev/null
start() { # name port base [flags]
    local name=$1 port=$2 base=$3; shift 3
    "$bin" dev --proxy-port "$port" --base-port "$base" --data-dir "$work/$name" --fresh \
        --per-ip-max-connections 0 "$@" > "$work/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 240); do grep -q ready "$work/$name.log" && return 0; sleep 0.5; done
    cat "$work/$name.log"; exit 1
}
start tls 6430 7700
start plain 6440 7800 --insecure
grep -q "mutual TLS" "$work/tls.log" && grep -q "plaintext" "$work/plain.log"

# "SET: 41322.31 requests per second, p50=1.047 msec" -> "41322.31 1.047"
bench() { # port test
    redis-benchmark -p "$1" -t "$2" -c 50 -n "$requests" -P "$pipeline" -r 100000 -q 2>/dev/null \
        | tr '\r' '\n' | awk -v t="${2^^}" '$1 == t":" && $2 ~ /^[0-9]/ {
            p50 = $0; sub(/.*p50=/, "", p50); sub(/ msec.*/, "", p50); print $2, p50 }' | tail -n 1
}
declare -A sum
for r in $(seq 1 "$rounds"); do
    for t in set get; do
        # Alternate which cluster goes first, so drift hits both alike.
        if (( r % 2 )); then order="tls plain"; else order="plain tls"; fi
        for c in $order; do
            port=6430; [ "$c" = plain ] && port=6440
            read -r rps p50 < <(bench "$port" "$t")
            echo "round $r ${t^^} -P $pipeline mtls=$([ "$c" = tls ] && echo on || echo off): $rps req/s p50 $p50 ms"
            sum[$c.$t.rps]=$(awk -v a="${sum[$c.$t.rps]:-0}" -v b="$rps" 'BEGIN{print a+b}')
            sum[$c.$t.p50]=$(awk -v a="${sum[$c.$t.p50]:-0}" -v b="$p50" 'BEGIN{print a+b}')
        done
    done
done
for t in set get; do
    awk -v on="${sum[tls.$t.rps]}" -v off="${sum[plain.$t.rps]}" \
        -v pon="${sum[tls.$t.p50]}" -v poff="${sum[plain.$t.p50]}" -v n="$rounds" -v t="${t^^}" \
        'BEGIN{printf "%s -P %s: mean %.0f req/s with mTLS, %.0f without (on/off %.3f); mean p50 %.3f vs %.3f ms\n",
               t, '"$pipeline"', on/n, off/n, on/off, pon/n, poff/n}'
done

#!/usr/bin/env bash
# Ordinary pooled load while the incident's abuser runs (issue 18, "an
# application host's connection pool is not an abuser"): redis-benchmark's
# default test set at -c 50 from 127.0.0.1 during the abuse phase of
# `rampart-loadtest incident` (abuser from 127.0.0.100, ordinary clients from
# 127.0.0.2-5), once per admission.wait_ms value given, each through its own
# proxy (--class-wait-ms) in front of one cluster. Prints redis-benchmark's
# outcome (it exits at the first error reply) and the incident's ordinary
# p99 per phase.
#
#   loadtest/scripts/pooled-load.sh [phase_secs] [requests] [wait_ms...]
#   e.g. loadtest/scripts/pooled-load.sh 90 5000 0 2000
set -euo pipefail
cd "$(dirname "$0")/../.."
phase="${1:-90}"
requests="${2:-5000}"
shift 2 || true
waits=("$@")
[ ${#waits[@]} -eq 0 ] && waits=(0 2000)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/rampart/target}"
work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    [ -n "${dev_pid:-}" ] && kill "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

[ -n "${NO_BUILD:-}" ] || cargo build --release -p rampart -p rampart-loadtest >/dev/null
bin="$CARGO_TARGET_DIR/release"
"$bin/rampart" dev --proxy-port 6390 --base-port 7300 \
    --data-dir "$work/rampart" --fresh > "$work/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 120); do grep -q ready "$work/dev.log" && break; sleep 0.5; done
grep -q ready "$work/dev.log" || { cat "$work/dev.log"; exit 1; }
# The dev cluster's throwaway certificates, for the extra proxies.
certs="$work/rampart/certs"
tls_args=(--cluster-tls-ca-file "$certs/ca.pem" --cluster-tls-cert-file "$certs/proxy.pem"
          --cluster-tls-key-file "$certs/proxy-key.pem")

common=(--phase-secs "$phase" --stream-entries 20000 --seed 7 --quiet)
# Prepare the data once.
"$bin/rampart-loadtest" incident --endpoint 127.0.0.1:6390 --phase-secs 1 \
    --stream-entries 20000 --seed 7 --quiet >/dev/null

port=6395
for wait in "${waits[@]}"; do
    "$bin/rampart" proxy --listen "127.0.0.1:$port" \
        --nodes 127.0.0.1:7301,127.0.0.1:7302,127.0.0.1:7303 --class-wait-ms "$wait" \
        "${tls_args[@]}" > "$work/proxy-$wait.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    "$bin/rampart-loadtest" incident --endpoint "127.0.0.1:$port" --reuse-data --settle-secs 0 \
        "${common[@]}" --json "$work/incident-$wait.json" > "$work/incident-$wait.log" 2>&1 &
    incident=$!
    sleep "$phase"   # the baseline phase; the abuse phase starts now
    start=$(date +%s)
    status=0
    redis-benchmark -p "$port" -c 50 -n "$requests" -q > "$work/bench-$wait.txt" 2>&1 || status=$?
    took=$(( $(date +%s) - start ))
    wait "$incident" || true
    echo "== admission.wait_ms = $wait: redis-benchmark -c 50 -n $requests (default tests) exit $status in ${took}s (abuse phase ${phase}s)"
    tr '\r' '\n' < "$work/bench-$wait.txt" | grep -E "requests per second|Error|BUSY" | sed 's/^/   /'
    python3 - "$work/incident-$wait.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for name in ["baseline", "abuse", "recovery"]:
    p = r["phases"][name]
    print(f"   incident {name:9} ordinary p50 {p['cheap_p50_ms']:7.2f} ms  p99 {p['cheap_p99_ms']:7.2f} ms  "
          f"errors {p['cheap_errors']}  abuser ops {p['abuser_ops']} busy {p['abuser_busy']}")
b = r["phases"]["baseline"]["cheap_p99_ms"]
print(f"   abuse/baseline p99 = {r['phases']['abuse']['cheap_p99_ms'] / b:.2f}x")
PY
    port=$((port + 1))
done

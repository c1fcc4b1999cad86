#!/usr/bin/env bash
# Admission by identity (docs/policies.md, "Users"): the incident's abusive
# host and the ordinary clients share ONE source address, as two tenants
# behind a NAT gateway. Two runs of `rampart-loadtest incident`, same
# cluster, same settings:
#   users:   the abuser logs in as tenant_a (limit-connections=8,
#            limit-share=heavy_scan:1), the ordinary clients as tenant_b;
#   same-ip: both are the default user (what Layer 1 and 3 keyed on IP see).
# Prints each run's ordinary p99 per phase, errors and the abuse/baseline
# ratio (the incident goal is <= 2x).
#
#   loadtest/scripts/identity-isolation.sh [phase_secs]
#
# Starts its own cluster (rampart dev: proxy 6390, nodes 7301-7303) and
# stops it at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
phase="${1:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/rampart/target}"
work="$(mktemp -d)"
cleanup() {
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
cli() { redis-cli -p 6390 "$@"; }
cli ACL SETUSER tenant_a reset on '>pa' '~*' '&*' +@all \
    limit-connections=8 limit-share=heavy_scan:1 >/dev/null
cli ACL SETUSER tenant_b reset on '>pb' '~*' '&*' +@all limit-connections=32 >/dev/null

ip=127.0.0.60
common=(--endpoint 127.0.0.1:6390 --phase-secs "$phase" --cheap-source-ips "$ip"
        --abuser-source-ip "$ip" --seed 7 --quiet)
"$bin/rampart-loadtest" incident "${common[@]}" \
    --cheap-user tenant_b:pb --abuser-user tenant_a:pa --json "$work/users.json" >/dev/null
"$bin/rampart-loadtest" incident "${common[@]}" --reuse-data \
    --json "$work/same-ip.json" >/dev/null
python3 - "$work/users.json" "$work/same-ip.json" <<'PY'
import json, sys
print(f"{'run':8} {'phase':9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'abuser ops':>10} {'busy':>6} {'conn rejects':>12}")
for name, path in zip(["users", "same-ip"], sys.argv[1:]):
    r = json.load(open(path))
    phases = r["phases"]
    for phase in ["baseline", "abuse", "recovery"]:
        p = phases[phase]
        print(f"{name:8} {phase:9} {p['cheap_p50_ms']:8.2f} {p['cheap_p99_ms']:8.2f} {p['cheap_errors']:7d} "
              f"{p['abuser_ops']:10d} {p['abuser_busy']:6d} {p['abuser_conn_rejects']:12d}")
    base = phases["baseline"]["cheap_p99_ms"]
    ratio = phases["abuse"]["cheap_p99_ms"] / base if base else float("nan")
    print(f"{name:8} abuse/baseline p99 = {ratio:.2f}x")
PY

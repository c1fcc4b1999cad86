#!/usr/bin/env bash
# Client TLS cost at the proxy: redis-benchmark SET/GET through one proxy
# process, on its plaintext port and on its TLS port, interleaved in the same
# run, and prints throughput and p50 for each.
#
#   loadtest/scripts/tls-overhead.sh [requests] [clients] [rounds]
#
# Starts its own cluster (rampart dev: proxy 6390, nodes 7301-7303), a second
# proxy with --listen 127.0.0.1:6392 --tls-port 6393 (--tls-auth-clients no,
# a throwaway CA made with openssl) and stops everything at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."
requests="${1:-100000}"
clients="${2:-50}"
rounds="${3:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/rampart/target}"
work="$(mktemp -d)"
cleanup() {
    [ -n "${proxy_pid:-}" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null || true
    [ -n "${dev_pid:-}" ] && kill "$dev_pid" 2>/dev/null && wait "$dev_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A CA and a server certificate for 127.0.0.1 / localhost (EC P-256).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=bench CA" -keyout "$work/ca.key" -out "$work/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
printf "subjectAltName=DNS:localhost,IP:127.0.0.1\n" > "$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/san.ext" -out "$work/server.crt" 2>/dev/null

[ -n "${NO_BUILD:-}" ] || cargo build --release --bin rampart >/dev/null
bin="$CARGO_TARGET_DIR/release/rampart"
"$bin" dev --proxy-port 6390 --base-port 7300 \
    --data-dir "$work/rampart" --fresh --per-ip-max-connections 0 > "$work/dev.log" 2>&1 &
dev_pid=$!
for _ in $(seq 1 120); do grep -q ready "$work/dev.log" && break; sleep 0.5; done
grep -q ready "$work/dev.log" || { cat "$work/dev.log"; exit 1; }

# The dev cluster's throwaway cluster certificates (mutual TLS to the nodes).
certs="$work/rampart/certs"
"$bin" proxy --listen 127.0.0.1:6392 --tls-port 6393 \
    --nodes 127.0.0.1:7301,127.0.0.1:7302,127.0.0.1:7303 --per-ip-max-connections 0 \
    --cluster-tls-ca-file "$certs/ca.pem" --cluster-tls-cert-file "$certs/proxy.pem" \
    --cluster-tls-key-file "$certs/proxy-key.pem" \
    --tls-cert-file "$work/server.crt" --tls-key-file "$work/server.key" \
    --tls-auth-clients no > "$work/proxy.log" 2>&1 &
proxy_pid=$!
for _ in $(seq 1 50); do redis-cli -p 6392 ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli --tls --cacert "$work/ca.crt" -p 6393 ping | grep -q PONG

run() { # mode pipeline -> lines "mode P test rps p50"
    local mode=$1 p=$2 args=(-p 6392)
    [ "$mode" = tls ] && args=(-p 6393 --tls --cacert "$work/ca.crt")
    redis-benchmark "${args[@]}" -t set,get -c "$clients" -n "$requests" -P "$p" --csv \
        | tr -d '"' | awk -F, -v m="$mode" -v p="$p" \
            '$1=="SET"||$1=="GET"{printf "%-5s %-3s %-4s %12.0f %10.3f\n", m, p, $1, $2, $5}'
}
printf "%-5s %-3s %-4s %12s %10s\n" mode P test "req/s" "p50 ms"
for round in $(seq 1 "$rounds"); do
    for p in 1 16; do
        # Alternate which goes first so drift does not favour one side.
        if [ $((round % 2)) -eq 1 ]; then order="plain tls"; else order="tls plain"; fi
        for mode in $order; do run "$mode" "$p"; done
    done
done
grep -c "TLS handshake failed" "$work/proxy.log" | sed 's/^/failed handshakes: /' || true

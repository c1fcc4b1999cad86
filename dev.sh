#!/usr/bin/env bash
# One entry point for a fresh machine:
#   ./dev.sh up     build and start a local cluster (3 nodes + proxy on 127.0.0.1:6379)
#   ./dev.sh test   run the whole test suite
# Both install what the machine lacks first (clang for RocksDB's bindings,
# protoc for the gRPC code, redis-server for the comparison tests, faketime
# for the chaos tool's clock faults,
# cargo-nextest for the test runner; for `test`, redis-py for the client TLS
# tests).
set -euo pipefail
cd "$(dirname "$0")"

# Builds share one target dir outside the clone, so a fresh clone does not
# recompile RocksDB's C++ (tens of minutes on 2 cores).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/rampart/target}"

install_prerequisites() {
    local missing=()
    command -v clang >/dev/null 2>&1 || missing+=(clang)
    # clang-sys needs the unversioned libclang.so (libclang-dev), not just libclang.so.1.
    [ -n "$(ls /usr/lib/llvm-*/lib/libclang.so /usr/lib/*/libclang.so 2>/dev/null | head -n1)" ] || missing+=(libclang-dev)
    command -v protoc >/dev/null 2>&1 || missing+=(protobuf-compiler)
    command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
    # tests/command_keys.rs compares every command's key specs with a real
    # redis-server (started by the test on a free port; none runs as a service).
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    # rampart-loadtest chaos: the clock nemesis runs nodes under libfaketime.
    command -v faketime >/dev/null 2>&1 || missing+=(faketime)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
        # Debian's package may start a redis-server on 6379, the proxy's port.
        if [[ " ${missing[*]} " == *" redis-server "* ]]; then
            $sudo service redis-server stop >/dev/null 2>&1 || true
        fi
    fi
    if ! cargo nextest --version >/dev/null 2>&1; then
        cargo install --locked cargo-nextest
    fi
    mkdir -p "$CARGO_TARGET_DIR" 2>/dev/null || {
        export CARGO_TARGET_DIR="$HOME/.cache/rampart/target"
        mkdir -p "$CARGO_TARGET_DIR"
    }
}

# tests/client_tls.rs drives redis-py (ssl=True) as a TLS client. Only the
# test setup needs it; a no-op when it is already importable.
install_test_prerequisites() {
    python3 -c 'import redis' >/dev/null 2>&1 && return 0
    if ! python3 -m pip --version >/dev/null 2>&1; then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -q
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q python3 python3-pip
    fi
    if ! python3 -c 'import redis' >/dev/null 2>&1; then
        echo "installing: redis-py"
        # Debian's own python3 refuses pip without --break-system-packages
        # (PEP 668); a user or pyenv python takes the plain form.
        python3 -m pip install --quiet --disable-pip-version-check redis 2>/dev/null ||
            python3 -m pip install --quiet --disable-pip-version-check --break-system-packages redis
    fi
}

case "${1:-}" in
    up)
        shift
        install_prerequisites
        exec cargo run --release --bin rampart -- dev "$@"
        ;;
    test)
        shift
        install_prerequisites
        install_test_prerequisites
        exec cargo nextest run --workspace --release "$@"
        ;;
    *)
        echo "usage: ./dev.sh up [rampart dev flags] | ./dev.sh test [nextest flags]" >&2
        exit 2
        ;;
esac

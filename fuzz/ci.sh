#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time over a copy of its
# committed seed corpus (docs/fuzzing.md). Used by .ci/run; also by hand:
#   fuzz/ci.sh            # 30 s per target
#   FUZZ_SECONDS=300 fuzz/ci.sh resp_decoder
set -euo pipefail
cd "$(dirname "$0")"
seconds="${FUZZ_SECONDS:-30}"
# Its own target dir: the instrumented build must not thrash the main one.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/cache/rampart/fuzz-target}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# No sanitizer: the targets are safe Rust without C dependencies, and ASan
# doubles build and run time; debug assertions catch integer overflows.
flags=(--sanitizer none --debug-assertions)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build "${flags[@]}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for target in "${targets[@]}"; do
    # New inputs go to the scratch dir (the first corpus dir), so the
    # committed seeds stay as they are.
    mkdir -p "$work/$target"
    echo "fuzz: $target for ${seconds}s"
    status=0
    cargo +nightly fuzz run "${flags[@]}" "$target" "$work/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$work/$target.log" 2>&1 || status=$?
    grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb)' "$work/$target.log" || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$work/$target.log" >&2
        echo "fuzz: $target failed; a crashing input is in fuzz/artifacts/$target/" >&2
        exit 1
    fi
done

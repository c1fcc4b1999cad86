#!/usr/bin/env bash
# Builds the Rampart image that docker-compose.yml runs (default rampart:local).
#
#   deploy/docker/build-image.sh              full multi-stage build (Dockerfile;
#                                             pulls rust and debian images)
#   deploy/docker/build-image.sh --prebuilt   no registry: the host-built
#                                             release binary on a local base image
#
# RAMPART_DOCKER_TARGET=prebuilt is the same as --prebuilt.
#
# Environment:
#   RAMPART_IMAGE     tag to build                  [rampart:local]
#   RAMPART_BINARY    binary for --prebuilt         [$CARGO_TARGET_DIR/release/rampart,
#                                                    CARGO_TARGET_DIR defaulting to
#                                                    /var/cache/rampart/target as in dev.sh]
#   RAMPART_BASE_IMAGE base for --prebuilt          [rampart-base:bookworm, created by
#                                                    make-base-image.sh when missing]
#   RAMPART_STRIP     0 keeps the binary's debug info (line tables) [1]
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE="${RAMPART_IMAGE:-rampart:local}"
target="${RAMPART_DOCKER_TARGET:-runtime}"
[ "${1:-}" = "--prebuilt" ] && target=prebuilt

if [ "$target" != "prebuilt" ]; then
    exec docker build --target "$target" -t "$IMAGE" .
fi

BASE="${RAMPART_BASE_IMAGE:-rampart-base:bookworm}"
BINARY="${RAMPART_BINARY:-${CARGO_TARGET_DIR:-/var/cache/rampart/target}/release/rampart}"
if [ ! -x "$BINARY" ]; then
    echo "build-image: no binary at $BINARY; build it first:" >&2
    echo "  CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/rampart/target} cargo build --release --bin rampart" >&2
    exit 1
fi
RAMPART_BASE_IMAGE="$BASE" deploy/docker/make-base-image.sh

# A small build context: the binary, the init script and the Dockerfile.
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
# The release profile keeps line tables (hundreds of MB); the image gets the
# binary without debug sections (function names stay for backtraces).
if [ "${RAMPART_STRIP:-1}" = "1" ] && command -v strip >/dev/null 2>&1; then
    strip --strip-debug -o "$context/rampart" "$BINARY"
else
    cp "$BINARY" "$context/rampart"
fi
cp deploy/docker/init-cluster.sh "$context/init-cluster.sh"
cp deploy/docker/Dockerfile.prebuilt "$context/Dockerfile"
docker build --build-arg BASE_IMAGE="$BASE" -t "$IMAGE" "$context"

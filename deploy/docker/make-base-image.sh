#!/usr/bin/env bash
# Creates the local base image for the prebuilt Rampart image (default
# rampart-base:bookworm) from Debian packages, without any container
# registry: debootstrap a minimal Debian bookworm into a folder, then
# `docker import` that folder as an image.
#
#   deploy/docker/make-base-image.sh            # no-op when the image exists
#   deploy/docker/make-base-image.sh --force    # rebuild it
#
# Environment:
#   RAMPART_BASE_IMAGE   image name            [rampart-base:bookworm]
#   DEBIAN_MIRROR        Debian mirror URL     [the one apt already uses]
#   RAMPART_BASE_WORKDIR scratch folder        [/var/cache/rampart/base-image]
#
# Needs root (debootstrap), Docker, and debootstrap (installed with apt-get
# when missing). Takes a few minutes the first time.
set -euo pipefail

IMAGE="${RAMPART_BASE_IMAGE:-rampart-base:bookworm}"
SUITE=bookworm
# What the rampart binary links to (libc6, libgcc-s1, libstdc++6 come with
# minbase) plus the tools the containers use: redis-cli
# (proxy healthcheck and `docker compose exec proxy redis-cli`).
INCLUDE="libstdc++6,libgcc-s1,redis-tools,ca-certificates"

if [ "${1:-}" != "--force" ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "make-base-image: $IMAGE already exists"
    exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "make-base-image: installing debootstrap"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q debootstrap
fi

# The Debian mirror apt already uses (deb822 .sources or one-line .list).
detect_mirror() {
    local files
    files=$(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
    [ -n "$files" ] || return 0
    # shellcheck disable=SC2086
    {
        grep -h '^URIs:' $files | awk '{print $2}' || true
        grep -h '^deb ' $files | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' || true
    } | grep -E '/debian/?$' | grep -v -- '-security' | head -n1 || true
}
MIRROR="${DEBIAN_MIRROR:-$(detect_mirror)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

WORK="${RAMPART_BASE_WORKDIR:-/var/cache/rampart/base-image}"
ROOTFS="$WORK/rootfs-$SUITE"
$sudo rm -rf "$ROOTFS"
mkdir -p "$WORK"

start=$(date +%s)
echo "make-base-image: debootstrap $SUITE from $MIRROR into $ROOTFS"
$sudo debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR"

# Slim it down: package caches, lists, docs and man pages are not needed.
$sudo rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
    "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
    "$ROOTFS"/var/log/*.log "$ROOTFS"/var/cache/debconf/*-old

echo "make-base-image: importing as $IMAGE"
$sudo tar --numeric-owner -C "$ROOTFS" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "debootstrap --variant=minbase $SUITE $MIRROR" \
    - "$IMAGE"
$sudo rm -rf "$ROOTFS"
echo "make-base-image: $IMAGE ready in $(( $(date +%s) - start ))s"
docker image ls "$IMAGE"

# Rampart container image: one binary, `rampart`, runs a storage node
# (`rampart node`), a proxy (`rampart proxy`) and the admin CLI
# (`rampart admin`).
#
# Default (any machine with internet access):
#   docker build -t rampart:local .          # or just: docker compose up
#
# Offline (no registry; binary built on the host) see
# deploy/docker/Dockerfile.prebuilt and deploy/docker/build-image.sh.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# --- builder: compiles RocksDB's C++ and the workspace (release) ----------
FROM ${RUST_IMAGE} AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      clang libclang-dev protobuf-compiler \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin rampart \
 && strip --strip-debug -o /usr/local/bin/rampart target/release/rampart

# --- runtime: the default target ------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
# libc6, libgcc-s1 and libstdc++6 (what the binary links to) are in the
# base; redis-cli serves the proxy's healthcheck and `docker compose exec`.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libstdc++6 redis-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin rampart \
 && mkdir -p /data \
 && chown rampart:rampart /data
COPY --from=builder /usr/local/bin/rampart /usr/local/bin/rampart
COPY deploy/docker/init-cluster.sh /usr/local/bin/rampart-init-cluster
USER rampart
WORKDIR /data
# proxy 6379 (RESP) and 7130 (metrics); node 7101 (client), 7111 (Raft), 7121 (metrics)
EXPOSE 6379 7101 7111 7121 7130
ENTRYPOINT ["rampart"]
CMD ["--help"]

# One image with every Reserve Mesh binary; the Helm chart picks one per Deployment with
# `command`. Build:  docker build -t reserve-mesh:0.1.0 .
#
# Stage 1 builds release binaries (protoc is vendored; SQLite and libpq are built from source
# and linked in, libpq with OpenSSL) in two layers: first the dependencies alone, from the
# manifests, the lock file and empty crates (cached until a manifest or Cargo.lock changes),
# then our own code. Only the binaries the chart runs are built; no test targets, no e2e
# tools.
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
ENV CRATES="proto mesh-core product-svc reservation-svc payment-svc notice-svc mypage-svc gateway e2e" \
    PACKAGES="-p mesh-core -p product-svc -p reservation-svc -p payment-svc -p notice-svc -p mypage-svc -p gateway"

# Layer 1: dependencies. Every workspace member needs its manifest and a target to load.
COPY Cargo.toml Cargo.lock ./
COPY proto/Cargo.toml proto/
COPY mesh-core/Cargo.toml mesh-core/
COPY product-svc/Cargo.toml product-svc/
COPY reservation-svc/Cargo.toml reservation-svc/
COPY payment-svc/Cargo.toml payment-svc/
COPY notice-svc/Cargo.toml notice-svc/
COPY mypage-svc/Cargo.toml mypage-svc/
COPY gateway/Cargo.toml gateway/
COPY e2e/Cargo.toml e2e/
RUN for crate in $CRATES; do mkdir -p "$crate/src" && : >"$crate/src/lib.rs"; done
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=reserve-mesh-target \
    cargo build --release --locked $PACKAGES

# Layer 2: our code (e2e stays an empty crate: the image has no use for it). The sources are
# touched so that cargo rebuilds them over layer 1's empty crates whatever their mtimes.
COPY proto proto
COPY mesh-core mesh-core
COPY product-svc product-svc
COPY reservation-svc reservation-svc
COPY payment-svc payment-svc
COPY notice-svc notice-svc
COPY mypage-svc mypage-svc
COPY gateway gateway
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=reserve-mesh-target \
    find $CRATES -name '*.rs' -exec touch {} + \
 && cargo build --release --locked --bins $PACKAGES \
 && mkdir -p /out \
 && cd target/release \
 && cp product-svc reservation-svc payment-svc mypage-svc notice-svc gateway \
       jetstream-provision dead-letters mesh-token /out/

# Stage 2: a slim runtime, no shell tools beyond Debian's base, running as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 mesh \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin mesh
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
ENV RUST_LOG=info
# No default service: the chart (or `docker run … product-svc`) names the binary.
CMD ["/usr/local/bin/gateway"]

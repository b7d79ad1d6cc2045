# One image with every Reserve Mesh binary; the Helm chart picks one per Deployment with
# `command`. Build:  docker build -t reserve-mesh:0.1.0 .
#
# Stage 1 builds release binaries (protoc is vendored, SQLite bundled; libpq for PostgreSQL).
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --workspace --bins \
 && mkdir -p /out \
 && cp target/release/product-svc target/release/reservation-svc target/release/payment-svc \
       target/release/mypage-svc target/release/notice-svc target/release/gateway \
       target/release/jetstream-provision target/release/dead-letters /out/

# Stage 2: a slim runtime, no shell tools beyond Debian's base, running as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 mesh \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin mesh
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
ENV RUST_LOG=info
# No default service: the chart (or `docker run … product-svc`) names the binary.
CMD ["/usr/local/bin/gateway"]

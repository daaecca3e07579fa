#!/usr/bin/env bash
# registries.sh DIR: distribution 2.8 registries, the two regions and their helpers.
#   A        region A, filesystem storage
#   B        region B, Swift storage (needs swift.sh first), as Magnum configures it
#   B_NODE   a second registry process on B's Swift container: what a Magnum node's
#            localhost:5000 registry sees
#   BUILDSET an intermediate/buildset registry (filesystem): base images, promote source
# Exports SLIPWAY_TEST_REGISTRY_{A,B,B_NODE,BUILDSET}=127.0.0.1:PORT.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ $# -eq 1 ] || usage
dir=$1; root="$dir/registry"; mkdir -p "$root"
command -v docker-registry >/dev/null || die "docker-registry missing: run hack/install-deps.sh"

fs_conf() { # name port
  mkdir -p "$root/$1-data"
  cat >"$root/$1.yml" <<CONF
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $root/$1-data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$2, secret: slipway-test-$1}
CONF
}
swift_conf() { # name port
  [ -f "$dir/env.d/swift.env" ] || die "registry $1 needs swift: start it first (hack/testenv.sh up DIR swift registries)"
  # shellcheck source=/dev/null # written by hack/servers/swift.sh
  . "$dir/env.d/swift.env"
  cat >"$root/$1.yml" <<CONF
version: 0.1
log: {level: warn}
storage:
  swift:
    authurl: $SLIPWAY_TEST_SWIFT_AUTH_URL
    authversion: 1
    username: $SLIPWAY_TEST_SWIFT_USER
    password: $SLIPWAY_TEST_SWIFT_KEY
    container: docker_registry
    chunksize: 5242880
    insecureskipverify: true
  delete: {enabled: true}
http: {addr: 127.0.0.1:$2, secret: slipway-test-swift}
CONF
}
a=$(free_port); b=$(free_port); n=$(free_port); bs=$(free_port)
fs_conf a "$a"; fs_conf buildset "$bs"; swift_conf b "$b"; swift_conf b-node "$n"
# B creates the Swift container; the node registry starts after it, as on Magnum.
for r in a buildset b; do start_bg "registry-$r" "$dir" env -u AWS_CA_BUNDLE docker-registry serve "$root/$r.yml"; done
for p in "$a" "$bs" "$b"; do wait_for "registry on port $p" 30 curl -fsS "http://127.0.0.1:$p/v2/"; done
start_bg registry-b-node "$dir" env -u AWS_CA_BUNDLE docker-registry serve "$root/b-node.yml"
wait_for "registry on port $n" 30 curl -fsS "http://127.0.0.1:$n/v2/"

cat >"$dir/env.d/registries.env" <<ENV
export SLIPWAY_TEST_REGISTRY_A=127.0.0.1:$a
export SLIPWAY_TEST_REGISTRY_B=127.0.0.1:$b
export SLIPWAY_TEST_REGISTRY_B_NODE=127.0.0.1:$n
export SLIPWAY_TEST_REGISTRY_BUILDSET=127.0.0.1:$bs
export SLIPWAY_TEST_REGISTRY_DATA_A=$root/a-data
ENV

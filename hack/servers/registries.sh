#!/usr/bin/env bash
# registries.sh DIR: distribution 2.8 registries, the two regions and their helpers.
#   A        region A's CI-local registry: Swift storage through Keystone v3, as
#            Magnum configures a node registry of region A (RegionOne)
#   B        region B's CI-local registry, the same on region B's container (RegionTwo)
#   B_NODE   a second registry process on B's Swift container: what a Magnum node's
#            localhost:5000 registry sees, logged in as Magnum's trustee with
#            the trust (region A's node registry is node.sh's)
#   BUILDSET an intermediate/buildset registry (filesystem): base images, promote source
# Needs swift.sh first (and so openstack.sh). Each registry's config is
# DIR/registry/NAME.yml (0600, it holds the Keystone password); node.sh copies
# the top-level `storage:` section of a.yml. A registry on Swift is ready when
# a blob pushed through it reads back, through the node registry too.
# Exports SLIPWAY_TEST_REGISTRY_{A,B,B_NODE,BUILDSET}=127.0.0.1:PORT.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ $# -eq 1 ] || usage
dir=$1; root="$dir/registry"; mkdir -p "$root"
command -v docker-registry >/dev/null || die "docker-registry missing: run hack/install-deps.sh"

[ -f "$dir/env.d/swift.env" ] || die "the registries need swift: start it first (hack/testenv.sh up DIR openstack swift registries)"
# shellcheck source=/dev/null # written by hack/servers/swift.sh
. "$dir/env.d/swift.env"
# A start that failed half-way is undone first: its registries may still run.
stop_bg "$dir" registry-a registry-buildset registry-b registry-b-node
chmod 700 "$root"; umask 077

# conf NAME PORT SECRET: NAME's config, its storage driver's lines read from
# stdin. SECRET names the HTTP secret: registries on one storage share it.
conf() {
  {
    printf 'version: 0.1\nlog: {level: warn}\nstorage:\n'
    cat
    printf '  delete: {enabled: true}\nhttp: {addr: 127.0.0.1:%s, secret: slipway-test-%s}\n' "$2" "$3"
  } >"$root/$1.yml"
}
fs_conf() { # name port
  mkdir -p "$root/$1-data"
  conf "$1" "$2" "$1" <<CONF
  filesystem: {rootdirectory: $root/$1-data}
CONF
}
# swift_conf: the parameters Magnum's configure-docker-registry.sh writes.
# The Keystone identity is the project's user (project), or, for a node
# registry exactly as Magnum configures it, the trustee with the cluster's
# trust and no project of its own (trustee).
swift_conf() { # name port region container project|trustee
  local identity
  case $5 in
    project) identity="username: $SLIPWAY_TEST_SWIFT_KEYSTONE_USER
    password: $SLIPWAY_TEST_SWIFT_KEYSTONE_PASSWORD
    domain: $SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN
    tenant: $SLIPWAY_TEST_SWIFT_KEYSTONE_PROJECT
    tenantdomain: $SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN" ;;
    trustee) identity="username: $SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_USER
    password: $SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_PASSWORD
    domainid: $SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_DOMAIN_ID
    trustid: $SLIPWAY_TEST_SWIFT_KEYSTONE_TRUST_ID" ;;
    *) die "swift_conf: identity $5 is not project or trustee" ;;
  esac
  conf "$1" "$2" "$4" <<CONF
  swift:
    authurl: $SLIPWAY_TEST_SWIFT_KEYSTONE_AUTH_URL
    authversion: 3
    $identity
    region: $3
    container: $4
    chunksize: 5242880
    insecureskipverify: true
CONF
}
a=$(free_port); b=$(free_port); n=$(free_port); bs=$(free_port)
fs_conf buildset "$bs"
swift_conf a "$a" "$SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_A" "$SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_A" project
swift_conf b "$b" "$SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_B" "$SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_B" project
swift_conf b-node "$n" "$SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_B" "$SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_B" trustee
# Region A's node registry is node.sh's: it takes the storage section of
# a-node.yml (the port here is unused).
swift_conf a-node 0 "$SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_A" "$SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_A" trustee
umask 022
for r in a buildset b b-node; do start_bg "registry-$r" "$dir" env -u AWS_CA_BUNDLE docker-registry serve "$root/$r.yml"; done
for p in "$a" "$bs" "$b" "$n"; do wait_for "registry on port $p" 30 curl -fsS "http://127.0.0.1:$p/v2/"; done

# blob_roundtrip PUSH PULL... uploads a fresh blob through PUSH and reads it
# back through each PULL registry, checking its digest: the registry's
# storage works end to end (Keystone token, Swift account, container).
blob_roundtrip() {
  local push=$1 blob digest loc got; shift
  blob=$(mktemp); head -c 4096 /dev/urandom >"$blob"
  digest=sha256:$(sha256sum "$blob" | cut -d' ' -f1)
  loc=$(curl -fsS -X POST -D - -o /dev/null "http://$push/v2/slipway-testenv/ready/blobs/uploads/" |
    tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
  case $loc in http*) ;; *) loc=http://$push$loc ;; esac
  case $loc in *\?*) loc="$loc&digest=$digest" ;; *) loc="$loc?digest=$digest" ;; esac
  curl -fsS -X PUT -o /dev/null -H 'Content-Type: application/octet-stream' --data-binary "@$blob" "$loc" || { rm -f "$blob"; return 1; }
  rm -f "$blob"
  for pull in "$@"; do
    got=sha256:$(curl -fsS "http://$pull/v2/slipway-testenv/ready/blobs/$digest" | sha256sum | cut -d' ' -f1) || return 1
    [ "$got" = "$digest" ] || return 1
  done
}
wait_for "registry A: a blob round-trip through Swift" 60 blob_roundtrip "127.0.0.1:$a" "127.0.0.1:$a"
wait_for "registry B: a blob round-trip through Swift, read by B_NODE" 60 blob_roundtrip "127.0.0.1:$b" "127.0.0.1:$b" "127.0.0.1:$n"

cat >"$dir/env.d/registries.env" <<ENV
export SLIPWAY_TEST_REGISTRY_A=127.0.0.1:$a
export SLIPWAY_TEST_REGISTRY_B=127.0.0.1:$b
export SLIPWAY_TEST_REGISTRY_B_NODE=127.0.0.1:$n
export SLIPWAY_TEST_REGISTRY_BUILDSET=127.0.0.1:$bs
ENV

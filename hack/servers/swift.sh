#!/usr/bin/env bash
# swift.sh DIR: a one-node OpenStack Swift (SAIO) behind Keystone, as the
# operators' radosgw runs it: the proxy validates every token with
# keystonemiddleware's auth_token against the OpenStack emulator's Keystone
# (start openstack.sh first) and authorizes with keystoneauth. Also the
# memcached auth_token caches validated tokens in. Details, verified settings
# and traps: docs/testenv-swift.md.
#
# In Keystone it creates Swift's service user (project service, roles admin
# and service), registers the object-store service with endpoints in every
# emulator region (all on this proxy, account AUTH_<project id>), and creates
# the registry user (project registry, role member) with one container per
# region: region A (RegionOne) and region B (RegionTwo), and Magnum's kind of
# trustee (registry-trustee, domain magnum) with a trust from the registry
# user (role member, impersonation), the login of Magnum's node registries.
#
# Exports SLIPWAY_TEST_SWIFT_URL (the proxy) and SLIPWAY_TEST_SWIFT_KEYSTONE_*:
# AUTH_URL (Keystone v3), USER, PASSWORD, DOMAIN (of the user and the
# project), PROJECT, PROJECT_ID, ACCOUNT (AUTH_<project id>), REGION_A/_B,
# CONTAINER_A/_B, the same credentials in a 0600 OpenStack clouds.yaml
# (CLIENT_CONFIG_FILE, clouds swift-a and swift-b), and TRUSTEE_USER,
# TRUSTEE_PASSWORD, TRUSTEE_DOMAIN_ID, TRUST_ID.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ $# -eq 1 ] || usage
dir=$1; root="$dir/swift"
[ -f /etc/swift/swift.conf ] || die "/etc/swift/swift.conf missing: install the swift package (hack/install-deps.sh)"
# (A file test: importing it costs a second of CPU.)
[ -f /usr/lib/python3/dist-packages/keystonemiddleware/auth_token/__init__.py ] ||
  die "keystonemiddleware missing: install python3-keystonemiddleware (hack/install-deps.sh)"
command -v jq >/dev/null || die "jq missing: run hack/install-deps.sh"
[ -f "$dir/env.d/openstack.env" ] || die "swift needs the OpenStack emulator's Keystone first: hack/testenv.sh up DIR openstack swift"
# shellcheck source=/dev/null # written by hack/servers/openstack.sh
. "$dir/env.d/openstack.env"
keystone=$SLIPWAY_TEST_OS_AUTH_URL admin=$SLIPWAY_TEST_OS_EMULATOR_ADMIN
IFS=, read -r region_a region_b _ <<<"$SLIPWAY_TEST_OS_REGIONS"
[ -n "${region_b:-}" ] || die "the emulator has one region ($SLIPWAY_TEST_OS_REGIONS); swift needs two"
container_a=docker_registry_a container_b=docker_registry_b

mkdir -p "$root/etc" "$root/srv/node/d1" "$root/run"
chmod 700 "$root"
# A start that failed half-way is undone first: its servers may still run.
stop_bg "$dir" swift-memcached swift-object swift-container swift-account swift-proxy

# --- Keystone: the service user and the registry user -------------------------
# Passwords survive a rerun after a failed start: the users already exist then.
creds="$root/keystone-users"
(umask 077; touch "$creds")
for u in service registry trustee; do
  grep -q "^${u}_password=." "$creds" || printf '%s_password=%s\n' "$u" "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')" >>"$creds"
done
service_password=$(sed -n 's/^service_password=//p' "$creds")
registry_password=$(sed -n 's/^registry_password=//p' "$creds")
trustee_password=$(sed -n 's/^trustee_password=//p' "$creds")
add_user() { # name password project roles-json [domain]
  local out
  out=$(jq -n --arg n "$1" --arg p "$2" --arg pr "$3" --argjson r "$4" --arg d "${5:-Default}" \
      '{name: $n, password: $p, project: $pr, roles: $r, domain: $d}' |
    curl -sS -H 'Content-Type: application/json' --data-binary @- "$admin/users") || die "emulator admin API at $admin: no answer"
  jq -e '.user_id' <<<"$out" >/dev/null || grep -q 'already exists' <<<"$out" || die "creating Keystone user $1: $out"
}
add_user swift "$service_password" service '["admin", "service"]'
add_user registry "$registry_password" registry '["member", "reader"]'
# Magnum's trustee: a user of the magnum domain the node registries log in
# as, with a trust from the cluster's owner (the registry user).
add_user registry-trustee "$trustee_password" magnum-trustees '["member"]' magnum

# password_auth USER PASSWORD PROJECT prints the body of a project-scoped
# password login; trust_auth USER PASSWORD DOMAIN_ID TRUST one scoped to a trust.
password_auth() {
  jq -n --arg u "$1" --arg p "$2" --arg pr "$3" '{auth: {
    identity: {methods: ["password"], password: {user: {name: $u, domain: {id: "default"}, password: $p}}},
    scope: {project: {name: $pr, domain: {id: "default"}}}}}'
}
trust_auth() {
  jq -n --arg u "$1" --arg p "$2" --arg d "$3" --arg t "$4" '{auth: {
    identity: {methods: ["password"], password: {user: {name: $u, domain: {id: $d}, password: $p}}},
    scope: {"OS-TRUST:trust": {id: $t}}}}'
}
# token BODY prints the token of a login; with a 2nd argument the token's
# JSON body instead.
token() {
  local hdrs out
  hdrs=$(mktemp)
  out=$(curl -fsS -D "$hdrs" -H 'Content-Type: application/json' --data-binary @- "$keystone/auth/tokens" <<<"$1") || { rm -f "$hdrs"; return 1; }
  if [ $# -eq 2 ]; then echo "$out"; else tr -d '\r' <"$hdrs" | awk -F': ' 'tolower($1)=="x-subject-token"{print $2}'; fi
  rm -f "$hdrs"
}

mc=$(free_port); obj=$(free_port); con=$(free_port); acc=$(free_port); proxy=$(free_port)
me=$(id -un)

# --- Keystone: the object-store service and its endpoints ---------------------
# As `openstack service create` / `openstack endpoint create` would; a rerun
# replaces what an earlier start registered (Keystone deletes a service's
# endpoints with it).
svc_token=$(token "$(password_auth swift "$service_password" service)") || die "the Swift service user cannot log in to $keystone"
ks() { # METHOD PATH [JSON]
  curl -fsS -X "$1" -H "X-Auth-Token: $svc_token" -H 'Content-Type: application/json' ${3:+--data-binary "$3"} "$keystone$2"
}
for id in $(ks GET '/services?type=object-store' | jq -r '.services[].id'); do ks DELETE "/services/$id" >/dev/null; done
svc_id=$(ks POST /services '{"service": {"type": "object-store", "name": "swift", "description": "Swift SAIO (hack/servers/swift.sh)"}}' | jq -r .service.id)
for r in "$region_a" "$region_b"; do
  for iface in public internal admin; do
    url="http://127.0.0.1:$proxy/v1/AUTH_\$(project_id)s"
    [ "$iface" = admin ] && url="http://127.0.0.1:$proxy"
    ks POST /endpoints "$(jq -n --arg s "$svc_id" --arg i "$iface" --arg r "$r" --arg u "$url" \
      '{endpoint: {service_id: $s, interface: $i, region_id: $r, url: $u}}')" >/dev/null
  done
done

# --- Swift ---------------------------------------------------------------------
server_conf() { # name port
  cat >"$root/etc/$1-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $2
workers = 0
user = $me
swift_dir = $root/etc
devices = $root/srv/node
mount_check = false
log_level = WARNING
[pipeline:main]
pipeline = healthcheck $1-server
[app:$1-server]
use = egg:swift#$1
[filter:healthcheck]
use = egg:swift#healthcheck
CONF
}
server_conf object "$obj"; server_conf container "$con"; server_conf account "$acc"
(umask 077; cat >"$root/etc/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $proxy
workers = 0
user = $me
swift_dir = $root/etc
log_level = WARNING
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl authtoken keystoneauth copy slo dlo versioned_writes proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mc
# The defaults (0.3 s to connect, 1 s for a pooled connection, and after 10
# errors the server is ignored for 60 s) fail under a loaded CI machine: the
# proxy then loses its cached tokens and account info, and a registry on it
# reports blobs it has as unknown. One memcached on loopback needs no haste.
connect_timeout = 5
pool_timeout = 10
io_timeout = 10
tries = 3
error_suppression_limit = 1000
[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
www_authenticate_uri = $keystone
auth_url = $keystone
auth_type = password
username = swift
password = $service_password
project_name = service
user_domain_id = default
project_domain_id = default
region_name = $region_a
interface = internal
delay_auth_decision = false
include_service_catalog = false
cache = swift.cache
token_cache_time = 300
http_connect_timeout = 5
http_request_max_retries = 2
service_token_roles_required = true
[filter:keystoneauth]
use = egg:swift#keystoneauth
reseller_prefix = AUTH_
operator_roles = admin, member
reseller_admin_role = ResellerAdmin
CONF
)
# The filters that take no settings: each is its egg's entry point.
for f in catch_errors gatekeeper healthcheck proxy-logging listing_formats bulk tempurl copy slo dlo versioned_writes; do
  printf '[filter:%s]\nuse = egg:swift#%s\n' "$f" "${f//-/_}"
done >>"$root/etc/proxy-server.conf"
cp /etc/mime.types "$root/etc/mime.types" 2>/dev/null || true

# Rings name the ports, so they are rebuilt for every start (one Python process).
(cd "$root/etc" && /usr/bin/python3 - "$obj" "$con" "$acc" <<'PY'
import sys
from swift.common.ring import RingBuilder
for name, port in zip(("object", "container", "account"), sys.argv[1:]):
    b = RingBuilder(10, 1, 1)
    b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": int(port), "device": "d1", "weight": 1})
    b.rebalance()
    b.get_ring().save(f"{name}.ring.gz")
PY
) >"$dir/logs/swift-rings.log" 2>&1 || die "building swift rings failed (see $dir/logs/swift-rings.log)"

start_bg swift-memcached "$dir" memcached -u "$me" -l 127.0.0.1 -p "$mc" -U 0 -m 64
for s in object container account proxy; do
  start_bg "swift-$s" "$dir" /usr/bin/python3 "/usr/bin/swift-$s-server" "$root/etc/$s-server.conf" -v
done
for p in "$obj" "$con" "$acc" "$proxy"; do
  wait_for "swift on port $p" 300 curl -fsS "http://127.0.0.1:$p/healthcheck"
done

# --- ready: a registry-user token from Keystone opens its account through the
# catalog's object-store URL (auth_token validated it with the service user),
# and both regions' containers exist.
tok_json=$(token "$(password_auth registry "$registry_password" registry)" json) || die "the registry user cannot log in to $keystone"
project_id=$(jq -r .token.project.id <<<"$tok_json")
for r in "$region_a" "$region_b"; do
  url=$(jq -r --arg r "$r" '.token.catalog[] | select(.type == "object-store") | .endpoints[] |
    select(.interface == "public" and .region_id == $r) | .url' <<<"$tok_json")
  [ "$url" = "http://127.0.0.1:$proxy/v1/AUTH_$project_id" ] || die "object-store endpoint of $r in the catalog is '$url'"
done
account_url="http://127.0.0.1:$proxy/v1/AUTH_$project_id"
reg_token=$(token "$(password_auth registry "$registry_password" registry)")
wait_for "swift account through Keystone" 60 curl -fsS -o /dev/null -I -H "X-Auth-Token: $reg_token" "$account_url"
for c in "$container_a" "$container_b"; do
  curl -fsS -o /dev/null -X PUT -H "X-Auth-Token: $reg_token" "$account_url/$c" || die "creating container $c"
done
curl -fsS -H "X-Auth-Token: $reg_token" "$account_url" | grep -qx "$container_b" || die "container $container_b not listed in $account_url"

# The trust: the registry user lets the trustee act in its project as member,
# impersonating it (Magnum's trust for a cluster); the trustee's token opens
# the same account.
trustee_id=$(token "$(jq -n --arg p "$trustee_password" '{auth: {identity: {methods: ["password"],
  password: {user: {name: "registry-trustee", domain: {id: "magnum"}, password: $p}}}}}')" json | jq -r .token.user.id) ||
  die "the trustee cannot log in to $keystone"
trust_id=$(jq -n --arg tor "$(jq -r .token.user.id <<<"$tok_json")" --arg tee "$trustee_id" --arg p "$project_id" \
    '{trust: {trustor_user_id: $tor, trustee_user_id: $tee, project_id: $p, impersonation: true, roles: [{name: "member"}]}}' |
  curl -fsS -H "X-Auth-Token: $reg_token" -H 'Content-Type: application/json' --data-binary @- "$keystone/OS-TRUST/trusts" |
  jq -r .trust.id) || die "creating the trust for registry-trustee"
trust_token=$(token "$(trust_auth registry-trustee "$trustee_password" magnum "$trust_id")") || die "the trustee cannot log in with trust $trust_id"
curl -fsS -o /dev/null -I -H "X-Auth-Token: $trust_token" "$account_url" || die "the trustee's token does not open $account_url"

(umask 077; cat >"$root/clouds.yaml" <<YAML
clouds:
  swift-a: &swift
    auth_type: password
    auth:
      auth_url: $keystone
      username: registry
      password: $registry_password
      project_name: registry
      user_domain_name: Default
      project_domain_name: Default
    region_name: $region_a
    interface: public
    identity_api_version: 3
  swift-b:
    <<: *swift
    region_name: $region_b
YAML
)

cat >"$dir/env.d/swift.env" <<ENV
export SLIPWAY_TEST_SWIFT_URL=http://127.0.0.1:$proxy
export SLIPWAY_TEST_SWIFT_KEYSTONE_AUTH_URL=$keystone
export SLIPWAY_TEST_SWIFT_KEYSTONE_USER=registry
export SLIPWAY_TEST_SWIFT_KEYSTONE_PASSWORD=$registry_password
export SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN=Default
export SLIPWAY_TEST_SWIFT_KEYSTONE_PROJECT=registry
export SLIPWAY_TEST_SWIFT_KEYSTONE_PROJECT_ID=$project_id
export SLIPWAY_TEST_SWIFT_KEYSTONE_ACCOUNT=AUTH_$project_id
export SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_A=$region_a
export SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_B=$region_b
export SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_A=$container_a
export SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_B=$container_b
export SLIPWAY_TEST_SWIFT_KEYSTONE_CLIENT_CONFIG_FILE=$root/clouds.yaml
export SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_USER=registry-trustee
export SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_PASSWORD=$trustee_password
export SLIPWAY_TEST_SWIFT_KEYSTONE_TRUSTEE_DOMAIN_ID=magnum
export SLIPWAY_TEST_SWIFT_KEYSTONE_TRUST_ID=$trust_id
ENV

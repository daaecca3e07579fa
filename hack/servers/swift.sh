#!/usr/bin/env bash
# swift.sh DIR: a one-node OpenStack Swift (SAIO) with tempauth and s3api,
# plus the memcached it keeps tokens in. Exports SLIPWAY_TEST_SWIFT_*.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ $# -eq 1 ] || usage
dir=$1; root="$dir/swift"
mkdir -p "$root/etc" "$root/srv/node/d1" "$root/run"
[ -f /etc/swift/swift.conf ] || die "/etc/swift/swift.conf missing: install the swift package (hack/install-deps.sh)"

mc=$(free_port); obj=$(free_port); con=$(free_port); acc=$(free_port); proxy=$(free_port)
me=$(id -un)

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
cat >"$root/etc/proxy-server.conf" <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $proxy
workers = 0
user = $me
swift_dir = $root/etc
log_level = WARNING
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats bulk tempurl s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
user_admin_admin = admin .admin .reseller_admin
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$mc
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
dns_compliant_bucket_names = false
CONF
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
  wait_for "swift on port $p" 180 curl -fsS "http://127.0.0.1:$p/healthcheck"
done
auth_ok() {
  tok=$(curl -fsS -D - -o /dev/null -H 'X-Auth-User: test:tester' -H 'X-Auth-Key: testing' \
    "http://127.0.0.1:$proxy/auth/v1.0" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-auth-token"{print $2}')
  [ -n "$tok" ] && curl -fsS -o /dev/null -I -H "X-Auth-Token: $tok" "http://127.0.0.1:$proxy/v1/AUTH_test"
}
wait_for "swift auth" 120 auth_ok

cat >"$dir/env.d/swift.env" <<ENV
export SLIPWAY_TEST_SWIFT_AUTH_URL=http://127.0.0.1:$proxy/auth/v1.0
export SLIPWAY_TEST_SWIFT_URL=http://127.0.0.1:$proxy
export SLIPWAY_TEST_SWIFT_USER=test:tester
export SLIPWAY_TEST_SWIFT_KEY=testing
ENV

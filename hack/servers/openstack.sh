#!/usr/bin/env bash
# openstack.sh DIR: the OpenStack emulator (Keystone v3 + Magnum v1, two
# regions) from test/openstack-emulator. When kube.sh ran first, created
# clusters get the real kube-apiserver as api_address and the certificates
# API signs with its CA, so kubeconfigs from magnum-cluster work against it;
# when kube-b.sh ran too, RegionTwo's clusters get region B's control plane
# and CA.
# Start it before swift.sh: Swift validates tokens against its Keystone.
# Exports SLIPWAY_TEST_OS_* (auth URL, clouds.yaml + cloud name, password and
# application-credential users, regions, the fault-injection admin URL).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ $# -eq 1 ] || usage
dir=$1; root="$dir/openstack"; mkdir -p "$root"

log "building the OpenStack emulator"
(cd "$SLIPWAY_ROOT" && go build -trimpath -o "$root/openstack-emulator" ./test/openstack-emulator) \
  >"$dir/logs/openstack-build.log" 2>&1 || die "building test/openstack-emulator failed (see $dir/logs/openstack-build.log)"

port=$(free_port)
rnd() { od -An -N16 -tx1 /dev/urandom | tr -d ' \n'; }
password=$(rnd); ac_id=$(rnd); ac_secret=$(rnd)
cat >"$root/users.json" <<JSON
[{"name": "slipway", "password": "$password", "project": "slipway",
  "application_credential_id": "$ac_id", "application_credential_name": "slipway-ci",
  "application_credential_secret": "$ac_secret"}]
JSON
chmod 600 "$root/users.json"

# Tokens live 12 h, not Keystone's default 1 h: the registries on Swift keep
# theirs, and the first write after it runs out fails once
# (docs/testenv-swift.md); tests that need expiry use the admin API.
args=(-listen "127.0.0.1:$port" -regions "RegionOne,RegionTwo" -users "$root/users.json" -token-ttl 12h
      -create-duration 2s -update-duration 1s -delete-duration 1s -url-file "$root/url")
if [ -f "$dir/env.d/kube.env" ]; then
  # shellcheck source=/dev/null # written by hack/servers/kube.sh
  . "$dir/env.d/kube.env"
  args+=(-ca-cert "$SLIPWAY_TEST_KUBE_CA_CERT" -ca-key "$SLIPWAY_TEST_KUBE_CA_KEY" -api-address "$SLIPWAY_TEST_KUBE_SERVER")
fi
if [ -f "$dir/env.d/kube-b.env" ]; then
  # RegionTwo's clusters are region B's control plane, with its own CA.
  # shellcheck source=/dev/null # written by hack/servers/kube-b.sh
  . "$dir/env.d/kube-b.env"
  args+=(-site "RegionTwo=$SLIPWAY_TEST_KUBE_B_SERVER,$SLIPWAY_TEST_KUBE_B_CA_CERT,$SLIPWAY_TEST_KUBE_B_CA_KEY")
fi
start_bg openstack "$dir" "$root/openstack-emulator" "${args[@]}"
wait_for "openstack emulator on port $port" 30 curl -fsS "http://127.0.0.1:$port/identity/v3"

auth="http://127.0.0.1:$port/identity/v3"
cat >"$root/clouds.yaml" <<YAML
clouds:
  emulator:
    auth_type: password
    auth:
      auth_url: $auth
      username: slipway
      password: $password
      project_name: slipway
      user_domain_name: Default
      project_domain_name: Default
    region_name: RegionOne
    interface: public
    identity_api_version: 3
  emulator-appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: $auth
      application_credential_id: $ac_id
      application_credential_secret: $ac_secret
    region_name: RegionTwo
YAML
chmod 600 "$root/clouds.yaml"

cat >"$dir/env.d/openstack.env" <<ENV
export SLIPWAY_TEST_OS_AUTH_URL=$auth
export SLIPWAY_TEST_OS_CLIENT_CONFIG_FILE=$root/clouds.yaml
export SLIPWAY_TEST_OS_CLOUD=emulator
export SLIPWAY_TEST_OS_CLOUD_APPCRED=emulator-appcred
export SLIPWAY_TEST_OS_USERNAME=slipway
export SLIPWAY_TEST_OS_PASSWORD=$password
export SLIPWAY_TEST_OS_PROJECT_NAME=slipway
export SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_ID=$ac_id
export SLIPWAY_TEST_OS_APPLICATION_CREDENTIAL_SECRET=$ac_secret
export SLIPWAY_TEST_OS_REGIONS=RegionOne,RegionTwo
export SLIPWAY_TEST_OS_EMULATOR_ADMIN=http://127.0.0.1:$port/admin
ENV

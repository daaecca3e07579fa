#!/usr/bin/env bash
# s3.sh DIR: a real S3 server, versitygw (posix backend, from tools/data), with
# one root account and the bucket "slipway-test" already made. Clients must
# use path-style addressing, as with Ceph radosgw.
# Exports SLIPWAY_TEST_S3_{ENDPOINT,ACCESS_KEY,SECRET_KEY,REGION,BUCKET,ROOT}
# (ROOT is the posix directory behind it, for tests that inspect storage).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ $# -eq 1 ] || usage
dir=$1; root="$dir/s3/data"; mkdir -p "$root/slipway-test"
if command -v versitygw >/dev/null; then
  gw=$(command -v versitygw)
else
  gw="$("$SLIPWAY_ROOT/hack/tools/data.sh" | tail -n 1)/versitygw"
fi
[ -x "$gw" ] || die "versitygw missing: run hack/tools/data.sh"
port=$(free_port)
# A random access key too: it is a secret to the binaries (redacted from
# their output), so it must not equal a word that appears elsewhere, such as
# the bucket's name or the test runner's temp dir.
access=AK$(head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
secret=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
# Keys go through the environment, never argv.
ROOT_ACCESS_KEY_ID=$access ROOT_SECRET_ACCESS_KEY=$secret VGW_PORT=127.0.0.1:$port \
  start_bg s3 "$dir" env -u AWS_CA_BUNDLE "$gw" --quiet posix "$root"
# Any HTTP answer (anonymous GET / is 403) means it serves.
wait_for "versitygw" 30 sh -c "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/ | grep -q '^[1-5]'"
cat >"$dir/env.d/s3.env" <<ENV
export SLIPWAY_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export SLIPWAY_TEST_S3_ACCESS_KEY=$access
export SLIPWAY_TEST_S3_SECRET_KEY=$secret
export SLIPWAY_TEST_S3_REGION=us-east-1
export SLIPWAY_TEST_S3_BUCKET=slipway-test
export SLIPWAY_TEST_S3_ROOT=$root
ENV

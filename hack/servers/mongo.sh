#!/usr/bin/env bash
# mongo.sh DIR: two MongoDB-wire servers (FerretDB on SQLite, from tools/data),
# PRIMARY and DR, plus the mongo-tools clients built beside them.
# Exports SLIPWAY_TEST_MONGO_{PRIMARY,DR}_URI and SLIPWAY_TEST_MONGODUMP /
# SLIPWAY_TEST_MONGORESTORE (absolute paths).
# FerretDB accepts no SCRAM users: URIs carry no credentials (or PLAIN ones).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ $# -eq 1 ] || usage
dir=$1; root="$dir/mongo"; mkdir -p "$root"
if command -v ferretdb >/dev/null && command -v mongodump >/dev/null && command -v mongorestore >/dev/null; then
  bin=$(dirname "$(command -v ferretdb)")
else
  bin=$("$SLIPWAY_ROOT/hack/tools/data.sh" | tail -n 1)
fi
for b in ferretdb mongodump mongorestore; do [ -x "$bin/$b" ] || die "$bin/$b missing: run hack/tools/data.sh"; done

tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
lines=()
for site in primary dr; do
  port=$(free_port)
  start_bg "mongo-$site" "$dir" "$bin/ferretdb" -listen "127.0.0.1:$port" -dir "$root/$site"
  wait_for "ferretdb $site" 60 tcp_open "$port"
  up=${site^^}
  lines+=("export SLIPWAY_TEST_MONGO_${up}_URI=mongodb://127.0.0.1:$port/")
done
lines+=("export SLIPWAY_TEST_MONGODUMP=$bin/mongodump" "export SLIPWAY_TEST_MONGORESTORE=$bin/mongorestore")
printf '%s\n' "${lines[@]}" >"$dir/env.d/mongo.env"

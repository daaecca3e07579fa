#!/usr/bin/env bash
# data.sh builds the test-only data servers and clients of tools/data into
# $SLIPWAY_CACHE/data-HASH/bin and prints that directory as its last line:
#   ferretdb      FerretDB v1.24.2 (MongoDB wire protocol on SQLite), wrapped
#   mongodump     from mongo-tools (no Debian package for MongoDB)
#   mongorestore  from mongo-tools
#   versitygw     versitygw v1.8.0, a real S3 gateway (posix backend)
# A cache directory that already exists is reused as is.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
case ${1:-} in -h|--help) usage ;; esac
mod="$SLIPWAY_ROOT/tools/data"
hash=$(tools_hash "$mod")
out="$SLIPWAY_CACHE/data-$hash"
if [ -x "$out/bin/versitygw" ] && [ -x "$out/bin/ferretdb" ] && [ -x "$out/bin/mongodump" ] && [ -x "$out/bin/mongorestore" ]; then
  echo "$out/bin"; exit 0
fi
mkdir -p "$SLIPWAY_CACHE"
tmp=$(mktemp -d "$SLIPWAY_CACHE/.data-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# sum.golang.org does not know mongo-tools' pseudo-version; go.sum pins it.
export GONOSUMDB=github.com/mongodb/mongo-tools GOFLAGS=-mod=mod CGO_ENABLED=0
mt=github.com/mongodb/mongo-tools
mtflags="-X main.VersionStr=100.12.2-slipway -X main.GitCommit=887641268977"
cd "$mod"
log "building data tools into $out (takes minutes on a cold cache)"
go build -trimpath -o "$tmp/bin/ferretdb" ./ferretdb
go build -trimpath -ldflags "$mtflags" -o "$tmp/bin/mongodump" "$mt/mongodump/main"
go build -trimpath -ldflags "$mtflags" -o "$tmp/bin/mongorestore" "$mt/mongorestore/main"
go build -trimpath -o "$tmp/bin/versitygw" github.com/versity/versitygw/cmd/versitygw
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "$out/bin"

#!/usr/bin/env bash
# test.sh runs every slipway test against real local servers: the README's
# test command, and what CI runs (.ci/run).
#
#   hack/test.sh [go test packages or flags...]   default: ./...
#
# It installs what is missing (hack/install-deps.sh), builds the test-only
# tools once (hack/tools.sh, cached) and bin/, runs the static checks (gofmt,
# go vet, staticcheck, shellcheck of hack/ and .ci/run: any finding fails),
# starts every server (hack/testenv.sh) under one temp dir, runs `go test`
# with SLIPWAY_TEST_STRICT=1 (a missing server fails, never skips), and stops
# the servers on exit, even when tests fail.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SLIPWAY_ROOT"

case ${1:-} in -h|--help) usage ;; esac
setup_tools install

log "static checks: gofmt, go vet, staticcheck, shellcheck"
unformatted=$(git ls-files -z '*.go' | xargs -0 -r gofmt -l)
[ -z "$unformatted" ] || die "gofmt would change: $unformatted"
go vet ./...
staticcheck ./...
shopt -s globstar
shellcheck -x hack/**/*.sh .ci/run

envdir=$(mktemp -d "${TMPDIR:-/tmp}/slipway-test.XXXXXX")
cleanup() { hack/testenv.sh down "$envdir" || true; rm -rf "$envdir"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
log "starting test servers in $envdir"
hack/testenv.sh up "$envdir"
# shellcheck source=/dev/null # written by hack/testenv.sh up
. "$envdir/env"
export SLIPWAY_TEST_STRICT=1 TMPDIR="$envdir/tmp"
mkdir -p "$TMPDIR"

args=("$@"); [ ${#args[@]} -gt 0 ] || args=(./...)
log "go test ${args[*]}"
go test -count=1 -timeout 60m "${args[@]}"

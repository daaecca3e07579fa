#!/usr/bin/env bash
# tools.sh builds every test-only tool (hack/tools/NAME.sh, each a separate Go
# module under tools/NAME) into $SLIPWAY_CACHE, in parallel, and prints one
# PATH fragment with all their bin dirs. A tool whose module did not change is
# not rebuilt.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
case ${1:-} in -h|--help) usage ;; esac
mkdir -p "$SLIPWAY_CACHE/logs"
pids=(); names=()
for t in "$SLIPWAY_ROOT"/hack/tools/*.sh; do
  [ -x "$t" ] || continue
  n=$(basename "$t" .sh)
  "$t" >"$SLIPWAY_CACHE/logs/$n.out" 2>"$SLIPWAY_CACHE/logs/$n.log" & pids+=($!); names+=("$n")
done
path=""
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    tail -n 40 "$SLIPWAY_CACHE/logs/${names[$i]}.log" >&2
    die "building test tool ${names[$i]} failed (log: $SLIPWAY_CACHE/logs/${names[$i]}.log)"
  fi
  path="$path:$(tail -n 1 "$SLIPWAY_CACHE/logs/${names[$i]}.out")"
done
echo "${path#:}"

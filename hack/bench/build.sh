#!/usr/bin/env bash
# bench/build.sh [SIZE_MB]: build-image's native backend vs buildah on the
# same ~200 MB tree (half incompressible, half text), both writing an OCI
# layout. Prints wall time and peak RSS (GNU time -v) of each, and ratios
# against buildah alone (`buildah build` of `FROM scratch` + `COPY`, then
# `buildah push` to an OCI layout), all measured in this run. No server needed.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
case ${1:-} in -h|--help) usage ;; esac
size=${1:-200}
for t in buildah /usr/bin/time go; do command -v "$t" >/dev/null || die "$t missing: run hack/install-deps.sh"; done
work=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench-build.XXXXXX")
cleanup() {
  buildah --root "$work/root" --runroot "$work/run" --storage-driver overlay rm --all >/dev/null 2>&1 || true
  buildah --root "$work/root" --runroot "$work/run" --storage-driver overlay rmi --all --force >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

log "building build-image"
(cd "$SLIPWAY_ROOT" && go build -o "$work/build-image" ./cmd/build-image)

log "writing a ${size} MB tree"
tree="$work/ctx/tree"; mkdir -p "$tree"
half=$(( size * 1024 / 2 ))            # KiB per half
n_bin=$(( half / 256 )); n_txt=$(( half / 32 ))
for i in $(seq 1 "$n_bin"); do
  d="$tree/bin/$(( i % 16 ))"; mkdir -p "$d"; head -c 262144 /dev/urandom >"$d/blob$i.bin"
done
head -c $(( 24 * 1024 )) /dev/urandom | base64 -w 76 >"$work/seed.txt"   # ~32 KiB of text
for i in $(seq 1 "$n_txt"); do
  d="$tree/static/$(( i % 64 ))"; mkdir -p "$d"; { echo "file $i"; cat "$work/seed.txt"; } >"$d/page$i.js"
done
printf 'FROM scratch\nCOPY tree /srv/tree\n' >"$work/ctx/Dockerfile"
actual=$(du -sm "$tree" | cut -f1)
sync

# measure NAME CMD...: runs CMD under GNU time, records seconds and peak KiB.
declare -A secs rss
measure() {
  local name=$1; shift
  /usr/bin/time -v -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || { tail -20 "$work/$name.err" >&2; die "$name failed"; }
  local wall; wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$work/$name.time")
  secs[$name]=$(awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }' <<<"$wall")
  rss[$name]=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/$name.time")
  log "$name: ${secs[$name]} s, peak RSS $(( ${rss[$name]} / 1024 )) MiB"
}
bud() { buildah --root "$work/root" --runroot "$work/run" --storage-driver overlay "$@"; }
export -f bud; export work

log "buildah alone: build (FROM scratch, COPY) + push to an OCI layout"
# The child bash expands $work (exported above).
# shellcheck disable=SC2016
measure buildah_build bash -c 'bud build --isolation chroot --layers --timestamp 0 -q -f "$work/ctx/Dockerfile" -t localhost/bench:1 "$work/ctx"'
# shellcheck disable=SC2016
measure buildah_push bash -c 'bud push -q localhost/bench:1 "oci:$work/layout-buildah:1"'
buildah_secs=$(awk -v a="${secs[buildah_build]}" -v b="${secs[buildah_push]}" 'BEGIN{print a+b}')
buildah_rss=$(( rss[buildah_build] > rss[buildah_push] ? rss[buildah_build] : rss[buildah_push] ))

log "build-image --backend buildah (fresh storage, same Dockerfile)"
measure bi_buildah "$work/build-image" --context "$work/ctx" --repository bench/tree --source-date-epoch 0 \
  --work-dir "$work" --output "$work/out-buildah"
log "build-image native (same tree as one layer)"
measure bi_native "$work/build-image" --native --repository bench/tree --add "$tree:/srv/tree" --source-date-epoch 0 \
  --output "$work/out-native"

layer_mb() { du -sm "$1" | cut -f1; }
printf '\nbuild of a %s MB tree (%s files), %s, %s cores\n' "$actual" "$(find "$tree" -type f | wc -l)" "$(buildah --version)" "$(nproc)"
printf '%-34s %9s %12s %10s %10s %9s\n' "" "seconds" "peak RSS MiB" "time ratio" "RSS ratio" "layout MB"
row() { # label secs rss layout
  printf '%-34s %9.2f %12d %10.2f %10.2f %9s\n' "$1" "$2" $(( $3 / 1024 )) \
    "$(awk -v a="$2" -v b="$buildah_secs" 'BEGIN{print a/b}')" "$(awk -v a="$3" -v b="$buildah_rss" 'BEGIN{print a/b}')" "$4"
}
row "buildah build+push (baseline)" "$buildah_secs" "$buildah_rss" "$(layer_mb "$work/layout-buildah")"
row "build-image --backend buildah" "${secs[bi_buildah]}" "${rss[bi_buildah]}" "$(layer_mb "$work/out-buildah/tree")"
row "build-image native" "${secs[bi_native]}" "${rss[bi_native]}" "$(layer_mb "$work/out-native/tree")"

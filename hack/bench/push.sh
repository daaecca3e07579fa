#!/usr/bin/env bash
# push.sh: push-registry benchmark, every figure measured in one run.
#
#   hack/bench/push.sh [LAYER_MIB] [REPS]   (default 26: 8 layers x 26 MiB = 208 MiB; 2 reps)
#
# Timed runs are repeated REPS times (fresh repositories each time) and the
# fastest is reported: on a shared machine the minimum is the least noisy.
#
# Uses the registries of a running test env (source its env file first), or
# starts swift + registries in a scratch directory and stops them at the end.
# Regions: A (filesystem) and B (Swift). Prints:
#   - single-region push times (A, B) and the dual-region push time,
#     ratio dual / slowest single (target <= 1.15)
#   - two sequential `skopeo copy` runs (A then B), ratio dual / skopeo (target <= 0.6)
#   - a balanced pair of filesystem regions (A + BUILDSET) vs A alone
#   - re-push of the unchanged image: blob bytes uploaded (target 0)
#   - peak RSS of a dual push for 8 small layers vs 2 layers 4x larger (target <= 100 MB, flat)
# With Swift behind Keystone in the env (SLIPWAY_TEST_SWIFT_KEYSTONE_*), also
# storage-backed regions (push-registry runs a registry on each region's
# Swift container), on an image of STORAGE_MIB (default 200) MiB:
#   - the dual push to two storage-backed regions vs two sequential `skopeo
#     copy` into the env's registries on the same containers (target <= 0.6)
#   - verify --deep of that push (every blob read back) vs the push
#   - registry start-up overhead: a re-push of a small image through
#     storage-backed regions minus the same through the env's registries
# STORAGE_ONLY=1 runs only these.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
case ${1:-} in -h|--help) usage ;; esac
need() { command -v "$1" >/dev/null || die "$1 missing: run hack/install-deps.sh"; }
need skopeo; [ -x /usr/bin/time ] || die "/usr/bin/time missing (Debian package time)"

LAYER_MIB=${1:-26}
REPS=${2:-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/slipway-bench-push.XXXXXX")
started_env=""
cleanup() {
  if [ -n "$started_env" ]; then "$SLIPWAY_ROOT/hack/testenv.sh" down "$started_env" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
if [ -z "${SLIPWAY_TEST_REGISTRY_A:-}" ] || [ -z "${SLIPWAY_TEST_REGISTRY_B:-}" ]; then
  started_env="$work/env"
  "$SLIPWAY_ROOT/hack/testenv.sh" up "$started_env" openstack swift registries
  # shellcheck source=/dev/null # written by hack/testenv.sh up
  . "$started_env/env"
fi
A=$SLIPWAY_TEST_REGISTRY_A B=$SLIPWAY_TEST_REGISTRY_B BS=${SLIPWAY_TEST_REGISTRY_BUILDSET:-}

cd "$SLIPWAY_ROOT"
log "building push-registry and the test image tool"
go build -o "$work/push-registry" ./cmd/push-registry
go build -o "$work/mkimage" ./internal/push/internal/mkimage
go build -o "$work/wanlink" ./internal/push/internal/wanlink
if [ "${STORAGE_ONLY:-0}" != 1 ]; then
  log "making images: 8 x ${LAYER_MIB} MiB and 2 x $((LAYER_MIB * 4)) MiB random layers"
  # A fresh image per rep: skopeo's blob-info cache would otherwise mount
  # blobs it saw in the previous rep, and no registry may already hold them.
  for rep in $(seq 1 "$REPS"); do
    "$work/mkimage" -out "$work/small-$rep" -layers 8 -size $((LAYER_MIB << 20)) >/dev/null
  done
  ln -s "$work/small-1" "$work/small"
  "$work/mkimage" -out "$work/large" -layers 2 -size $((LAYER_MIB * 4 << 20)) >/dev/null
  total_mib=$(du -sm "$work/small/blobs" | cut -f1)
fi

run_id=$(date +%s)-$RANDOM
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", b-a}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }

# push NAME LAYOUT REGION-ARGS...: times one push, records peak RSS and the result.
push() {
  local name=$1 layout=$2; shift 2
  local t0; t0=$(now)
  /usr/bin/time -f '%M' -o "$work/$name.rss" "$work/push-registry" --log-format json push \
    --source "oci:$layout" --repository "bench/$run_id/$name" --tag v1 \
    --result "$work/$name.json" "$@" >/dev/null 2>"$work/$name.log" \
    || { cat "$work/$name.log" >&2; die "push $name failed"; }
  secs "$t0" "$(now)"
}
# skopeo_pair NAME LAYOUT HOST...: times sequential `skopeo copy` runs of
# LAYOUT to repository bench/RUN/NAME on each HOST, the baseline of a push.
skopeo_pair() {
  local name=$1 layout=$2 host t0; shift 2
  t0=$(now)
  for host in "$@"; do
    TMPDIR=$work skopeo copy -q --dest-tls-verify=false "oci:$layout" "docker://$host/bench/$run_id/$name:v1" >/dev/null
  done
  secs "$t0" "$(now)"
}
uploaded() { grep -o '"bytesUploaded": [0-9]*' "$work/$1.json" | awk '{s+=$2} END{print s+0}'; }
rss_mb() { awk '{printf "%.0f", $1/1024}' "$work/$1.rss"; }

minof() { tr ' ' '\n' | sort -g | head -1; }
if [ "${STORAGE_ONLY:-0}" != 1 ]; then
ta=() tb=() tab=() tsk=() tabs=() tskfs=()
for rep in $(seq 1 "$REPS"); do
  img=$work/small-$rep
  log "rep $rep/$REPS: single region A"; ta+=("$(push "single-a-$rep" "$img" --region a="$A")")
  log "rep $rep/$REPS: single region B"; tb+=("$(push "single-b-$rep" "$img" --region b="$B")")
  log "rep $rep/$REPS: dual A + B";      tab+=("$(push "dual-$rep" "$img" --region a="$A" --region b="$B")")
  log "rep $rep/$REPS: two skopeo copies"
  tsk+=("$(skopeo_pair "skopeo-$rep" "$img" "$A" "$B")")
  if [ -n "$BS" ]; then
    log "rep $rep/$REPS: balanced pair A + BUILDSET (both filesystem), ours and skopeo"
    tabs+=("$(push "dual-fs-$rep" "$img" --region a="$A" --region c="$BS")")
    tskfs+=("$(skopeo_pair "skopeo-fs-$rep" "$img" "$A" "$BS")")
  fi
done
t_a=$(echo "${ta[*]}" | minof) t_b=$(echo "${tb[*]}" | minof) t_ab=$(echo "${tab[*]}" | minof) t_sk=$(echo "${tsk[*]}" | minof)
[ -n "$BS" ] && { t_abs=$(echo "${tabs[*]}" | minof); t_skfs=$(echo "${tskfs[*]}" | minof); }
log "re-push dual";    t_re=$(push dual-1 "$work/small" --region a="$A" --region b="$B")
re_bytes=$(uploaded dual-1)
cp "$work/dual-1.rss" "$work/dual.rss"
log "dual push of larger layers (RSS)"
t_large=$(push dual-large "$work/large" --region a="$A" --region b="$B")

# Remote regions: the same two filesystem registries, each behind a link of
# WAN_MIB MiB/s (a token bucket shared by all connections to that region).
# Locally both "regions" share this machine's 2 cores and disk, so the runs
# above measure the registries' own hashing and writing twice over; behind
# links, the network is the bottleneck, as between real regions.
WAN_MIB=${WAN_MIB:-40}
t_wa="" t_wab="" t_wsk=""
if [ -n "$BS" ]; then
  start_link() { "$work/wanlink" -to "$1" -rate "$WAN_MIB" >"$work/link-$2.addr" & echo $! >>"$work/link.pids"
    for _ in $(seq 1 50); do [ -s "$work/link-$2.addr" ] && break; sleep 0.1; done; cat "$work/link-$2.addr"; }
  LA=$(start_link "$A" a); LC=$(start_link "$BS" c)
  trap 'kill $(cat "$work/link.pids") 2>/dev/null || true; cleanup' EXIT
  wa=() wab=() wsk=()
  for rep in $(seq 1 "$REPS"); do
    img=$work/small-$rep
    log "rep $rep/$REPS: remote regions (${WAN_MIB} MiB/s links): single, dual, two skopeo copies"
    wa+=("$(push "wan-a-$rep" "$img" --region a="$LA")")
    wab+=("$(push "wan-ac-$rep" "$img" --region a="$LA" --region c="$LC")")
    wsk+=("$(skopeo_pair "wan-skopeo-$rep" "$img" "$LA" "$LC")")
  done
  t_wa=$(echo "${wa[*]}" | minof) t_wab=$(echo "${wab[*]}" | minof) t_wsk=$(echo "${wsk[*]}" | minof)
fi

slow=$(awk -v a="$t_a" -v b="$t_b" 'BEGIN{print (a>b)?a:b}')
echo
echo "push-registry benchmark: image of 8 layers x ${LAYER_MIB} MiB (${total_mib} MiB incompressible), regions A and B: the env's registries (on Swift)"
echo "  best of $REPS; all runs: A ${ta[*]} | B ${tb[*]} | A+B ${tab[*]} | skopeo ${tsk[*]}${BS:+ | A+BUILDSET ${tabs[*]} | skopeo A,BUILDSET ${tskfs[*]}}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '  %-46s %8ss\n' "single region A" "$t_a"
printf '  %-46s %8ss\n' "single region B" "$t_b"
printf '  %-46s %8ss  ratio to slowest single %s (target <= 1.15)\n' "dual A + B" "$t_ab" "$(ratio "$t_ab" "$slow")"
printf '  %-46s %8ss  ratio dual / skopeo %s (target <= 0.60)\n' "two sequential skopeo copy (A, then B)" "$t_sk" "$(ratio "$t_ab" "$t_sk")"
if [ -n "$BS" ]; then
  printf '  %-46s %8ss  ratio to single A %s\n' "dual A + BUILDSET (two filesystem regions)" "$t_abs" "$(ratio "$t_abs" "$t_a")"
  printf '  %-46s %8ss  ratio dual / skopeo %s\n' "two sequential skopeo copy (A, then BUILDSET)" "$t_skfs" "$(ratio "$t_abs" "$t_skfs")"
fi
printf '  %-46s %8ss  blob bytes uploaded: %s (target 0)\n' "re-push unchanged (A + B)" "$t_re" "$re_bytes"
printf '  %-46s %8s MB (8 x %d MiB layers)\n' "peak RSS, dual push" "$(rss_mb dual)" "$LAYER_MIB"
printf '  %-46s %8s MB (2 x %d MiB layers, %.2fx the small-layer RSS) in %ss\n' "peak RSS, dual push, 4x larger layers" "$(rss_mb dual-large)" "$((LAYER_MIB * 4))" "$(ratio "$(rss_mb dual-large)" "$(rss_mb dual)")" "$t_large"
if [ -n "$t_wa" ]; then
  echo "  remote regions: A and BUILDSET each behind a ${WAN_MIB} MiB/s link (all runs: single ${wa[*]} | dual ${wab[*]} | skopeo ${wsk[*]})"
  printf '  %-46s %8ss\n' "single remote region" "$t_wa"
  printf '  %-46s %8ss  ratio to single %s (target <= 1.15)\n' "dual remote regions" "$t_wab" "$(ratio "$t_wab" "$t_wa")"
  printf '  %-46s %8ss  ratio dual / skopeo %s (target <= 0.60)\n' "two sequential skopeo copy, remote" "$t_wsk" "$(ratio "$t_wab" "$t_wsk")"
fi
fi

# --- storage-backed regions ---------------------------------------------------
if [ -z "${SLIPWAY_TEST_SWIFT_KEYSTONE_AUTH_URL:-}" ]; then
  echo "  storage-backed regions: skipped (no SLIPWAY_TEST_SWIFT_KEYSTONE_* in the env: start it with hack/testenv.sh up DIR openstack swift registries)"
  exit 0
fi
STORAGE_MIB=${STORAGE_MIB:-200}
layer=$(( (STORAGE_MIB + 3) / 4 ))
targets=$work/storage-targets.yaml secrets=$work/storage-secrets.yaml state=$work/state
{
  echo "regions:"
  for r in A B; do
    region=SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_$r container=SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_$r
    cat <<YAML
  - name: ${r,,}
    swift:
      authurl: $SLIPWAY_TEST_SWIFT_KEYSTONE_AUTH_URL
      authversion: 3
      region: ${!region}
      container: ${!container}
      username: $SLIPWAY_TEST_SWIFT_KEYSTONE_USER
      domain: $SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN
      tenant: $SLIPWAY_TEST_SWIFT_KEYSTONE_PROJECT
      tenantdomain: $SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN
      chunksize: 5242880
      insecureskipverify: true
YAML
  done
} >"$targets"
(umask 077; printf 'swift_credentials:\n  a: {password: "%s"}\n  b: {password: "%s"}\n' \
  "$SLIPWAY_TEST_SWIFT_KEYSTONE_PASSWORD" "$SLIPWAY_TEST_SWIFT_KEYSTONE_PASSWORD" >"$secrets")
storage=(--targets "$targets" --secrets-file "$secrets" --state-dir "$state")
log "storage-backed regions: making images of 4 x ${layer} MiB"
for rep in $(seq 1 "$REPS"); do
  "$work/mkimage" -out "$work/storage-$rep" -layers 4 -size $((layer << 20)) >/dev/null
done
"$work/mkimage" -out "$work/tiny" -layers 1 -size 4096 >/dev/null
storage_mib=$(du -sm "$work/storage-1/blobs" | cut -f1)
sd=() ssk=() sdeep=()
for rep in $(seq 1 "$REPS"); do
  log "rep $rep/$REPS: dual push to storage-backed regions"
  sd+=("$(push "storage-$rep" "$work/storage-$rep" "${storage[@]}")")
  log "rep $rep/$REPS: verify --deep of it"
  t0=$(now)
  /usr/bin/time -f '%M' -o "$work/deep.rss" "$work/push-registry" verify --deep --result "$work/storage-$rep.json" "${storage[@]}" >/dev/null 2>"$work/deep-$rep.log" \
    || { cat "$work/deep-$rep.log" >&2; die "verify --deep failed"; }
  sdeep+=("$(secs "$t0" "$(now)")")
  log "rep $rep/$REPS: two skopeo copies into the registries on the same containers"
  ssk+=("$(skopeo_pair "storage-skopeo-$rep" "$work/storage-$rep" "$A" "$B")")
done
t_sd=$(echo "${sd[*]}" | minof) t_ssk=$(echo "${ssk[*]}" | minof) t_sdeep=$(echo "${sdeep[*]}" | minof)
log "start-up overhead: re-push of a small image, storage-backed vs the env's registries"
push tiny-storage "$work/tiny" "${storage[@]}" >/dev/null
push tiny-registry "$work/tiny" --region a="$A" --region b="$B" >/dev/null
su=() ru=()
for rep in $(seq 1 "$REPS"); do
  su+=("$(push tiny-storage "$work/tiny" "${storage[@]}")")
  ru+=("$(push tiny-registry "$work/tiny" --region a="$A" --region b="$B")")
done
t_su=$(echo "${su[*]}" | minof) t_ru=$(echo "${ru[*]}" | minof)
left=$(find "$state" -mindepth 1 -maxdepth 1 -name 'reg-*' | wc -l)
echo "  storage-backed regions a and b (push-registry's own registries on the env's Swift containers behind Keystone),"
echo "  image of 4 x ${layer} MiB (${storage_mib} MiB); all runs: push ${sd[*]} | skopeo ${ssk[*]} | verify --deep ${sdeep[*]}; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '  %-46s %8ss\n' "dual push, storage-backed (registries started)" "$t_sd"
printf '  %-46s %8ss  ratio dual / skopeo %s (target <= 0.60)\n' "two sequential skopeo copy (same containers)" "$t_ssk" "$(ratio "$t_sd" "$t_ssk")"
printf '  %-46s %8ss  ratio to the push %s; peak RSS %s MB (4 blobs at a time per region)\n' "verify --deep (GET + sha256 of every blob)" "$t_sdeep" "$(ratio "$t_sdeep" "$t_sd")" "$(rss_mb deep)"
printf '  %-46s %8ss  vs %ss through the env registries: start-up overhead %ss (regions in parallel); state dirs left: %s\n' \
  "re-push of a small image, storage-backed" "$t_su" "$t_ru" "$(awk -v a="$t_su" -v b="$t_ru" 'BEGIN{printf "%.2f", a-b}')" "$left"

#!/usr/bin/env bash
# deploy.sh: deploy-k8s against `kubectl apply --server-side` (both built from
# the same Kubernetes release line, same apiserver, same run).
#
#   1. a 300-object tree (150 ConfigMaps, 100 Services, 50 Deployments) applied
#      by kubectl apply --server-side, and by deploy-k8s deploy --no-wait, each
#      into a fresh namespace (goal: deploy-k8s <= 1.0x kubectl);
#   2. the full deploy-k8s deploy (apply + rollout wait + revision) into a fresh
#      namespace, then the same deploy again with no change (goal: <= 0.3x);
#   3. a changed redeploy (every ConfigMap and Deployment changed) against the
#      same redeploy killed (kill -9, crash hook) after its second apply group
#      (ConfigMaps and Services sent, Deployments not) and run again: what the
#      rerun that finishes it costs (goal: <= 1.0x).
#
# Uses the servers in $SLIPWAY_TEST_KUBECONFIG when set (source DIR/env of
# hack/testenv.sh), else starts its own kube server and stops it at the end.
#   hack/bench/deploy.sh [ROUNDS]   (default 3; the median is reported)
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
case ${1:-} in -h|--help) usage ;; esac
rounds=${1:-3}
work=$(mktemp -d /tmp/slipway-bench-deploy.XXXXXX)
own_env=""
namespaces=()
cleanup() {
  # Every round leaves 200 pods on the shared kwok node (finite capacity).
  if [ -z "$own_env" ] && [ "${#namespaces[@]}" -gt 0 ]; then
    "$kubectl" --kubeconfig "$kc" delete namespace --wait=false --ignore-not-found "${namespaces[@]}" >/dev/null || true
  fi
  if [ -n "$own_env" ]; then "$SLIPWAY_ROOT/hack/testenv.sh" down "$own_env" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
if [ -z "${SLIPWAY_TEST_KUBECONFIG:-}" ]; then
  own_env="$work/env"
  "$SLIPWAY_ROOT/hack/testenv.sh" up "$own_env" kube
  # shellcheck source=/dev/null # written by hack/testenv.sh up
  . "$own_env/env"
fi
kc=$SLIPWAY_TEST_KUBECONFIG
kubectl=$SLIPWAY_TEST_KUBECTL
export KUBECACHEDIR="$work/kube-cache"

log "building deploy-k8s (and a copy with the crash hook)"
(cd "$SLIPWAY_ROOT" && go build -o "$work/deploy-k8s" ./cmd/deploy-k8s &&
  go build -tags slipway_crashpoints -o "$work/deploy-k8s-crash" ./cmd/deploy-k8s)

tree="$work/tree"; mkdir -p "$tree"
{
  for i in $(seq 1 150); do
    printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d, labels: {app: bench}}\ndata: {key: "value-%d", settings.py: "DEBUG = False\\nSITE_ID = %d\\n"}\n' "$i" "$i" "$i"
  done
  for i in $(seq 1 100); do
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-%d, labels: {app: bench}}\nspec: {selector: {app: web-%d}, ports: [{port: 8000, name: http}]}\n' "$i" "$i"
  done
  for i in $(seq 1 50); do
    printf -- '---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web-%d, labels: {app: bench}}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web-%d}}\n  template:\n    metadata: {labels: {app: web-%d}}\n    spec: {containers: [{name: web, image: "docker.io/library/busybox:1.36", ports: [{containerPort: 8000}]}]}\n' "$i" "$i" "$i"
  done
} >"$tree/objects.yaml"
[ "$(grep -c '^kind:' "$tree/objects.yaml")" = 300 ] || die "tree does not have 300 objects"
# The changed tree: every ConfigMap value and every pod template differ.
changed="$work/changed"; mkdir -p "$changed"
sed -e 's/DEBUG = False/DEBUG = True/' -e 's/containerPort: 8000/containerPort: 8001/' "$tree/objects.yaml" >"$changed/objects.yaml"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.3f", b-a}'; }
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
run_id=$(date +%s)

deploy() { # branch [extra flags]
  deploy_tree "$tree" "$@"
}
deploy_tree() { # tree branch [extra flags]
  local m=$1 b=$2; shift 2
  "$work/deploy-k8s" deploy --kubeconfig "$kc" --branch "$b" --manifests "$m" \
    --allow-image 'docker.io/library/*' --timeout 5m "$@" >/dev/null 2>"$work/deploy.log" \
    || { cat "$work/deploy.log" >&2; die "deploy-k8s deploy failed"; }
}

kubectl_times=(); apply_times=(); first_times=(); again_times=(); redeploy_times=(); resume_times=()
for r in $(seq 1 "$rounds"); do
  ns="bench-kubectl-$run_id-$r"
  namespaces+=("$ns" "bench-apply-$run_id-$r" "bench-full-$run_id-$r" "bench-resume-$run_id-$r")
  "$kubectl" --kubeconfig "$kc" create namespace "$ns" >/dev/null
  until "$kubectl" --kubeconfig "$kc" -n "$ns" get serviceaccount default >/dev/null 2>&1; do sleep 0.1; done
  t0=$(now)
  "$kubectl" --kubeconfig "$kc" -n "$ns" apply --server-side --field-manager=bench -f "$tree/objects.yaml" >/dev/null
  kubectl_times+=("$(elapsed "$t0")")

  t0=$(now); deploy "platform/bench-apply-$run_id-$r" --no-wait
  apply_times+=("$(elapsed "$t0")")

  t0=$(now); deploy "platform/bench-full-$run_id-$r"
  first_times+=("$(elapsed "$t0")")
  t0=$(now); deploy "platform/bench-full-$run_id-$r"
  again_times+=("$(elapsed "$t0")")
  t0=$(now); deploy_tree "$changed" "platform/bench-full-$run_id-$r"
  redeploy_times+=("$(elapsed "$t0")")

  b="platform/bench-resume-$run_id-$r"
  deploy "$b"
  SLIPWAY_CRASHPOINT=deploy.apply:2 "$work/deploy-k8s-crash" deploy --kubeconfig "$kc" --branch "$b" \
    --manifests "$changed" --allow-image 'docker.io/library/*' --timeout 5m >/dev/null 2>&1 \
    && die "the crash hook did not kill deploy-k8s at deploy.apply:2"
  t0=$(now); deploy_tree "$changed" "$b"
  resume_times+=("$(elapsed "$t0")")
  log "round $r: kubectl ${kubectl_times[-1]}s, deploy --no-wait ${apply_times[-1]}s, deploy ${first_times[-1]}s, no-change ${again_times[-1]}s, changed ${redeploy_times[-1]}s, rerun after kill ${resume_times[-1]}s"
done

k=$(printf '%s\n' "${kubectl_times[@]}" | median)
a=$(printf '%s\n' "${apply_times[@]}" | median)
f=$(printf '%s\n' "${first_times[@]}" | median)
g=$(printf '%s\n' "${again_times[@]}" | median)
c=$(printf '%s\n' "${redeploy_times[@]}" | median)
s=$(printf '%s\n' "${resume_times[@]}" | median)
echo "300 objects, median of $rounds rounds (seconds):"
printf '  kubectl apply --server-side          %7.3f  (baseline)\n' "$k"
printf '  deploy-k8s deploy --no-wait          %7.3f  ratio %.2fx  (goal <= 1.0x)\n' "$a" "$(awk -v a="$a" -v k="$k" 'BEGIN{print a/k}')"
printf '  deploy-k8s deploy (apply+wait+record) %6.3f\n' "$f"
printf '  deploy-k8s deploy, no change         %7.3f  ratio %.2fx of first deploy (goal <= 0.3x)\n' "$g" "$(awk -v g="$g" -v f="$f" 'BEGIN{print g/f}')"
printf '  deploy-k8s deploy, changed            %6.3f  (baseline)\n' "$c"
printf '  rerun after a kill -9 mid-apply      %7.3f  ratio %.2fx of the changed deploy (goal <= 1.0x)\n' "$s" "$(awk -v s="$s" -v c="$c" 'BEGIN{print s/c}')"

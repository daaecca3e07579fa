#!/usr/bin/env bash
# kube.sh DIR: a real Kubernetes control plane: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler (v1.33.13) and kwok faking one Node
# (kwok-node-0) and its pods. Built by hack/tools/kube.sh. A real kubelet node
# (node-a0, tainted: only pods that tolerate it go there) joins it from
# hack/servers/node.sh.
#
# kwok stages: pods run and become Ready at once, Job pods complete, and
#   annotation test.kwok/never-ready  -> pod Running with Ready=False forever
#   annotation test.kwok/fail         -> pod Failed (exit code 1, reason Error)
# kwok also serves the kubelet API for the node, so `kubectl logs` works: every
# container's log is the content of $SLIPWAY_TEST_KUBE_POD_LOG (CRI log format:
# "TIMESTAMP stdout F LINE"; kubectl logs prints the LINE parts).
#
# Exports SLIPWAY_TEST_KUBECONFIG (admin, O=system:masters), SLIPWAY_TEST_KUBE_SERVER,
# SLIPWAY_TEST_KUBE_CA_CERT / _CA_KEY (the cluster CA: sign client certs with it),
# SLIPWAY_TEST_KUBECTL, SLIPWAY_TEST_KUBE_NODE, SLIPWAY_TEST_KUBE_POD_LOG.
#
# SLIPWAY_KUBE_SITE=b (hack/servers/kube-b.sh) starts region B's control plane
# instead: its own etcd, CA and kwok node kwok-b-node-0, under DIR/kube-b,
# exporting the same variables as SLIPWAY_TEST_KUBE_B_* (kubeconfig:
# SLIPWAY_TEST_KUBE_B_KUBECONFIG).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
site=${SLIPWAY_KUBE_SITE:-}
case $site in
  "") sfx=""; var=SLIPWAY_TEST_KUBE; kcvar=SLIPWAY_TEST_KUBECONFIG; nodename="kwok-node-0"; cidr=10.244.0.1/16 ;;
  b) sfx=-b; var=SLIPWAY_TEST_KUBE_B; kcvar=SLIPWAY_TEST_KUBE_B_KUBECONFIG; nodename="kwok-b-node-0"; cidr=10.245.0.1/16 ;;
  *) die "SLIPWAY_KUBE_SITE=$site: only b is known" ;;
esac
dir=$1; root="$dir/kube$sfx"
rm -rf "$root"; mkdir -p "$root/pki" "$root/home" "$root/certs" "$root/kube-cache"
mkdir -m 700 "$root/etcd"
command -v openssl >/dev/null || die "openssl missing: run hack/install-deps.sh"

# The binaries: from PATH when the test runner put them there, else from the cache.
if command -v kube-apiserver >/dev/null && command -v kwok >/dev/null; then
  bin=$(dirname "$(command -v kube-apiserver)")
else
  bin=$("$SLIPWAY_ROOT/hack/tools/kube.sh" | tail -n 1)
fi
for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok; do
  [ -x "$bin/$b" ] || die "$bin/$b missing: run hack/tools/kube.sh"
done

etcd_c=$(free_port); etcd_p=$(free_port); api=$(free_port); kcm=$(free_port); sched=$(free_port); kwok=$(free_port)

# --- PKI ---------------------------------------------------------------------
pki="$root/pki"
ossl() { openssl "$@" 2>>"$dir/logs/kube$sfx-pki.log"; }
ossl genrsa -out "$pki/ca.key" 2048
ossl req -x509 -new -key "$pki/ca.key" -subj "/CN=kube-test-ca$sfx" -days 3650 -out "$pki/ca.crt"
sign() { # name subject extfile-lines
  ossl genrsa -out "$pki/$1.key" 2048
  ossl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr"
  printf '%s\n' "$3" >"$pki/$1.ext"
  ossl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$pki/$1.ext" -out "$pki/$1.crt"
}
sign apiserver /CN=kube-apiserver "extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
sign admin "/O=system:masters/CN=kube-admin" "extendedKeyUsage=clientAuth"
ossl genrsa -out "$pki/sa.key" 2048
ossl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
chmod 600 "$pki"/*.key

kc="$root/admin.kubeconfig"
cat >"$kc" <<KC
apiVersion: v1
kind: Config
clusters:
- name: kube-test
  cluster: {server: "https://127.0.0.1:$api", certificate-authority: "$pki/ca.crt"}
users:
- name: kube-admin
  user: {client-certificate: "$pki/admin.crt", client-key: "$pki/admin.key"}
contexts:
- name: kube-test
  context: {cluster: kube-test, user: kube-admin}
current-context: kube-test
KC
chmod 600 "$kc"

# --- etcd --------------------------------------------------------------------
start_bg kube-etcd$sfx "$dir" "$bin/etcd" --name=default --data-dir="$root/etcd" \
  --listen-client-urls="http://127.0.0.1:$etcd_c" --advertise-client-urls="http://127.0.0.1:$etcd_c" \
  --listen-peer-urls="http://127.0.0.1:$etcd_p" --initial-advertise-peer-urls="http://127.0.0.1:$etcd_p" \
  --initial-cluster="default=http://127.0.0.1:$etcd_p" \
  --unsafe-no-fsync --heartbeat-interval=10 --election-timeout=100 --log-level=warn
wait_for etcd 30 sh -c "curl -fsS http://127.0.0.1:$etcd_c/health | grep -q '\"health\":\"true\"'"

# --- kube-apiserver ----------------------------------------------------------
start_bg kube-apiserver$sfx "$dir" "$bin/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$etcd_c" \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range=10.0.0.0/16 --authorization-mode=Node,RBAC \
  --endpoint-reconciler-type=none --allow-privileged=true --cert-dir="$root/certs/apiserver" \
  --kubelet-preferred-address-types=InternalIP --kubelet-certificate-authority="$pki/ca.crt" \
  --kubelet-client-certificate="$pki/admin.crt" --kubelet-client-key="$pki/admin.key"
wait_for kube-apiserver 60 sh -c "curl -fsS --cacert '$pki/ca.crt' --cert '$pki/admin.crt' --key '$pki/admin.key' https://127.0.0.1:$api/readyz | grep -qx ok"

# --- controller-manager, scheduler -------------------------------------------
start_bg kube-controller-manager$sfx "$dir" "$bin/kube-controller-manager" \
  --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
  --bind-address=127.0.0.1 --secure-port="$kcm" --cert-dir="$root/certs/kcm" --leader-elect=false \
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
  --service-cluster-ip-range=10.0.0.0/16 --flex-volume-plugin-dir="$root/flexvolume" \
  --node-monitor-grace-period=24h --node-startup-grace-period=24h \
  --kube-api-qps=200 --kube-api-burst=400 --concurrent-deployment-syncs=10 --concurrent-replicaset-syncs=10
# Long node grace periods: kwok's node heartbeat (with our own pod stages,
# which turn off its built-in ones) comes only about every 10 minutes, and
# later on a loaded CI machine; past the grace period the node-lifecycle
# controller marks every pod of the node NotReady (event NodeNotReady) and
# kwok never makes them Ready again, stalling rollouts that have nothing
# wrong with them (seen at 10m with tests of several packages side by side).
# (The controller must still run: it removes the node's initial not-ready
# taint.)
start_bg kube-scheduler$sfx "$dir" "$bin/kube-scheduler" \
  --kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
  --bind-address=127.0.0.1 --secure-port="$sched" --cert-dir="$root/certs/scheduler" --leader-elect=false \
  --kube-api-qps=200 --kube-api-burst=400

# --- kwok: stages, logs, node ------------------------------------------------
podlog="$root/pod.log"
# kwok serves logs in the CRI format the kubelet reads from disk.
ts=$(date -u +%Y-%m-%dT%H:%M:%S.000000000Z)
printf "$ts stdout F %s\n" "kwok fake container log line 1" "kwok fake container log line 2" "kwok fake container: exiting" >"$podlog"
# kwok's standard fast pod stages, from its module (tools/kube/kwokstages:
# they skip the test annotations), then the project's own test stages.
(cd "$SLIPWAY_ROOT/tools/kube" && go run ./kwokstages) >"$root/kwok.yaml"
cat "$SLIPWAY_ROOT/hack/servers/kube/kwok-stages.yaml" >>"$root/kwok.yaml"
cat >>"$root/kwok.yaml" <<LOGS
---
# Every container's log (kubectl logs, through the apiserver's kubelet proxy).
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata: {name: all-pods}
spec:
  logs:
  - logsFile: $podlog
    follow: false
LOGS
start_bg kube-kwok$sfx "$dir" env HOME="$root/home" "$bin/kwok" --kubeconfig="$kc" --config="$root/kwok.yaml" \
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --cidr=$cidr --node-ip=127.0.0.1 --node-port="$kwok" --server-address="127.0.0.1:$kwok" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key"

wait_for kube-controller-manager 60 sh -c "curl -fsSk https://127.0.0.1:$kcm/healthz | grep -qx ok"
wait_for kube-scheduler 60 sh -c "curl -fsSk https://127.0.0.1:$sched/readyz | grep -qx ok"
wait_for kwok 60 sh -c "curl -fsSk https://127.0.0.1:$kwok/healthz | grep -qx ok"

k() { KUBECACHEDIR="$root/kube-cache" "$bin/kubectl" --kubeconfig="$kc" "$@"; }
k apply -f - >/dev/null <<NODE
apiVersion: v1
kind: Node
metadata:
  name: $nodename
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: $nodename, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok}
status:
  allocatable: {cpu: "64", memory: 512Gi, pods: "2000"}
  capacity: {cpu: "64", memory: 512Gi, pods: "2000"}
NODE
wait_for "node $nodename" 60 k wait --for=condition=Ready "node/$nodename" --timeout=1s
# The scheduler places nothing until the node-lifecycle controller has removed
# the node's initial not-ready taint.
no_taints() { [ -z "$(k get node "$nodename" -o 'jsonpath={.spec.taints}')" ]; }
wait_for "node $nodename untainted" 60 no_taints
wait_for "default ServiceAccount" 60 k -n default get serviceaccount default

cat >"$dir/env.d/kube$sfx.env" <<ENV
export $kcvar=$kc
export ${var}_SERVER=https://127.0.0.1:$api
export ${var}_CA_CERT=$pki/ca.crt
export ${var}_CA_KEY=$pki/ca.key
export SLIPWAY_TEST_KUBECTL=$bin/kubectl
export ${var}_NODE=$nodename
export ${var}_POD_LOG=$podlog
ENV

#!/usr/bin/env bash
# node.sh DIR: a real Kubernetes node, `node-a0`, in the test control plane
# beside kwok's node: the kubelet (v1.33.13, from hack/tools/kube.sh) with
# containerd and runc, and the node's registry, as on a Magnum node of region
# A. Needs registries.sh, baseimages.sh and kube.sh first. Details, choices and
# traps: docs/testenv-node.md.
#
# - The node registry is a distribution 2.8 process with the storage of region
#   A's CI registry, so the node pulls exactly what push-registry pushed there.
#   containerd sees it as localhost:5000 and also under the CI registry's own
#   address (hosts.toml), the way a Magnum node's localhost:5000 and CI's
#   registry of that region name one store.
# - The node is tainted slipway.test/real-node=true:NoSchedule and labelled
#   type=real: only pods that tolerate the taint run on it; everything else
#   stays on kwok.
# - Pods get addresses on a bridge of this env (10.251.X.0/24, no gateway, no
#   NAT, no forwarding): they reach only each other and the node.
# - containerd and the kubelet run in a private mount namespace
#   (hack/servers/node/ns.sh); `hack/testenv.sh down` runs
#   hack/servers/node/down.sh to kill the containers and remove the cgroups
#   and the bridge.
#
# Exports SLIPWAY_TEST_NODE (node-a0), SLIPWAY_TEST_NODE_TAINT (the taint's
# key), SLIPWAY_TEST_NODE_REGISTRY (the node registry's 127.0.0.1:PORT),
# SLIPWAY_TEST_NODE_REGISTRY_NAME (localhost:5000),
# SLIPWAY_TEST_NODE_CONTAINERD (containerd's socket), SLIPWAY_TEST_NODE_CGROUP,
# SLIPWAY_TEST_NODE_IP (the node's InternalIP, its pod bridge's address).
#
# SLIPWAY_NODE_SITE=b (hack/servers/node-b.sh) starts region B's node instead:
# `node-b0` in region B's control plane (kube-b), its node registry on region
# B's container (registries.sh's b-node.yml), under DIR/node-b with its own
# containerd, mount namespace, bridge, subnet and cgroup, exporting the same
# variables as SLIPWAY_TEST_NODE_B_* (SLIPWAY_TEST_NODE_B is node-b0).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
[ $# -eq 1 ] || usage
site=${SLIPWAY_NODE_SITE:-}
case $site in
  "") name=node node=node-a0 kube=kube var=SLIPWAY_TEST_NODE conf=a-node.yml ;;
  b) name=node-b node=node-b0 kube=kube-b var=SLIPWAY_TEST_NODE_B conf=b-node.yml ;;
  *) die "SLIPWAY_NODE_SITE=$site: only b is known" ;;
esac
dir=$1; root="$dir/$name"; here="$SLIPWAY_ROOT/hack/servers/node"
taint=slipway.test/real-node regname=localhost:5000
[ "$(id -u)" = 0 ] || die "the test node needs root (containerd, runc, mounts, a bridge)"
for f in registries baseimages "$kube"; do
  [ -f "$dir/env.d/$f.env" ] || die "$name needs $f first: hack/testenv.sh up DIR $kube openstack swift registries baseimages $name"
  # shellcheck source=/dev/null # written by hack/servers/$f.sh
  . "$dir/env.d/$f.env"
done
# The site's control plane and CI registry (kube.sh, registries.sh).
if [ "$site" = b ]; then
  kube_server=$SLIPWAY_TEST_KUBE_B_SERVER kube_ca=$SLIPWAY_TEST_KUBE_B_CA_CERT kube_ca_key=$SLIPWAY_TEST_KUBE_B_CA_KEY
  kubeconfig=$SLIPWAY_TEST_KUBE_B_KUBECONFIG ci_registry=$SLIPWAY_TEST_REGISTRY_B
else
  kube_server=$SLIPWAY_TEST_KUBE_SERVER kube_ca=$SLIPWAY_TEST_KUBE_CA_CERT kube_ca_key=$SLIPWAY_TEST_KUBE_CA_KEY
  kubeconfig=$SLIPWAY_TEST_KUBECONFIG ci_registry=$SLIPWAY_TEST_REGISTRY_A
fi
case $dir in /run/*|/var/lib/*|/var/log/*) die "the env dir must not be under /run, /var/lib or /var/log (the node hides them)";; esac
for c in containerd containerd-shim-runc-v2 runc unshare nsenter ip umoci skopeo docker-registry; do
  command -v "$c" >/dev/null || die "$c missing: run hack/install-deps.sh"
done
[ -x /usr/lib/cni/bridge ] || die "CNI plugins missing in /usr/lib/cni: run hack/install-deps.sh"
kube_bin=$(dirname "$SLIPWAY_TEST_KUBECTL")
if [ -x "$kube_bin/kubelet" ]; then bin=$kube_bin; else bin=$("$SLIPWAY_ROOT/hack/tools/kube.sh" | tail -n 1); fi
[ -x "$bin/kubelet" ] || die "$bin/kubelet missing: run hack/tools/kube.sh"

# A start that failed half-way is undone first (its processes may still run).
[ -f "$root/state" ] && "$here/down.sh" "$dir" "$name"
rm -rf "$root"; mkdir -p "$root"/{containerd,cni/net.d,cni/ipam,certs.d,kubelet,pki,pod-logs,volume-plugins,tmp} "$dir/down.d"
# The undo script is in place before anything needs undoing.
printf '#!/bin/sh\nexec %q %q %q\n' "$here/down.sh" "$dir" "$name" >"$dir/down.d/$name"
chmod +x "$dir/down.d/$name"
# Names of host objects (bridge, cgroup): one set per env and node. Region
# A's keep the env dir's hash alone, as before there was a region B node.
if [ "$site" = b ]; then idsrc="$dir $name"; else idsrc=$dir; fi
id=$(printf '%s' "$idsrc" | sha256sum | cut -c1-8)
bridge=slipway$id cgroup=slipway-$name-$id
printf 'bridge=%s\ncgroup=%s\n' "$bridge" "$cgroup" >"$root/state"

# --- the node registry: the region's storage, its own process ----------------
# As Magnum writes it on a node of the region (registries.sh's a-node.yml or
# b-node.yml: Swift through Keystone v3, Magnum's trustee with the trust, the
# region's container, where the region's CI registry stores too), on a port
# of its own.
regport=$(free_port)
node_conf="$dir/registry/$conf"
[ -f "$node_conf" ] || die "$node_conf missing: hack/testenv.sh up DIR $kube openstack swift registries baseimages $name"
(umask 077; {
  echo "version: 0.1"
  echo "log: {level: warn}"
  sed -n '/^storage:/,/^[^ ]/{/^storage:/p;/^ /p}' "$node_conf"
  echo "http: {addr: 127.0.0.1:$regport, secret: slipway-test-$node}"
} >"$root/registry.yml")
grep -q '^storage:' "$root/registry.yml" || die "no storage section in $node_conf"
start_bg "$name-registry" "$dir" env -u AWS_CA_BUNDLE docker-registry serve "$root/registry.yml"
wait_for "node registry on port $regport" 30 curl -fsS "http://127.0.0.1:$regport/v2/"

# --- the pause image: the busybox base image sleeping, in the node registry --
pause_ref=slipway/pause:1
(
  cd "$root/tmp"
  export TMPDIR="$root/tmp"
  skopeo copy --quiet --src-tls-verify=false "docker://$SLIPWAY_TEST_BASE_IMAGE" "oci:$root/tmp/pause:base"
  umoci config --image "$root/tmp/pause:base" --tag pause --no-history \
    --config.entrypoint /bin/sleep --config.cmd 2147483647 --config.workingdir /
  skopeo copy --quiet --dest-tls-verify=false "oci:$root/tmp/pause:pause" "docker://127.0.0.1:$regport/$pause_ref"
) >"$dir/logs/$name-pause.log" 2>&1 || { cat "$dir/logs/$name-pause.log" >&2; die "building the pause image"; }
rm -rf "$root/tmp/pause"

# --- the pod network: a bridge of this env, one /24 nobody else routes --------
subnet=""
for _ in $(seq 1 50); do
  x=$(( RANDOM % 256 ))
  [ -z "$(ip -4 -o addr show to "10.251.$x.0/24")" ] || continue
  ip -4 route show to match "10.251.$x.1" | grep -vq '^default' && continue
  subnet=10.251.$x; break
done
[ -n "$subnet" ] || die "no free 10.251.X.0/24 subnet for the pod bridge"
nodeip=$subnet.1
ip link del "$bridge" 2>/dev/null || true
ip link add name "$bridge" type bridge
ip addr add "$nodeip/24" dev "$bridge"
ip link set "$bridge" up
# Two envs starting at once could pick the same subnet: the second gives way.
[ "$(ip -4 -o addr show to "$subnet.0/24" | wc -l)" = 1 ] || die "subnet $subnet.0/24 taken meanwhile; start again"
cat >"$root/cni/net.d/10-slipway.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "slipway-node",
  "plugins": [{
    "type": "bridge", "bridge": "$bridge",
    "isGateway": false, "ipMasq": false, "hairpinMode": false,
    "ipam": {"type": "host-local", "dataDir": "$root/cni/ipam",
             "ranges": [[{"subnet": "$subnet.0/24", "rangeStart": "$subnet.10", "gateway": "$nodeip"}]]}
  }]
}
CNI

# --- containerd: private root, state and socket; registry hosts ---------------
sock="$root/containerd.sock"
for h in "$regname" "$ci_registry"; do
  mkdir -p "$root/certs.d/$h"
  # `server` (the fallback) is the node registry too: a pull never falls
  # through to another registry that might hold the image. containerd 1.6
  # rejects a hosts.toml without a [host] table ("invalid `host` tree").
  printf 'server = "http://127.0.0.1:%s"\n[host."http://127.0.0.1:%s"]\n  capabilities = ["pull", "resolve"]\n' \
    "$regport" "$regport" >"$root/certs.d/$h/hosts.toml"
done
cat >"$root/containerd.toml" <<TOML
version = 2
root = "$root/containerd/root"
state = "$root/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$root/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$regname/$pause_ref"
  # Without it every sandbox fails: runc may not set oom_score_adj -998 here.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$root/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$root/certs.d"
TOML

# --- kubelet: PKI, kubeconfig, configuration ----------------------------------
pki="$root/pki"
ossl() { openssl "$@" 2>>"$dir/logs/$name-pki.log"; }
sign() { # name subject extfile-lines
  ossl genrsa -out "$pki/$1.key" 2048
  ossl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr"
  printf '%s\n' "$3" >"$pki/$1.ext"
  ossl x509 -req -in "$pki/$1.csr" -CA "$kube_ca" -CAkey "$kube_ca_key" \
    -CAcreateserial -CAserial "$pki/ca.srl" -days 3650 -extfile "$pki/$1.ext" -out "$pki/$1.crt"
}
# The node's own identity (the Node authorizer's system:node:NAME) and the
# serving cert the apiserver checks against the cluster CA.
sign kubelet-client "/O=system:nodes/CN=system:node:$node" "extendedKeyUsage=clientAuth"
sign kubelet-serving "/CN=$node" "extendedKeyUsage=serverAuth
subjectAltName=IP:$nodeip,DNS:$node"
chmod 600 "$pki"/*.key
cat >"$root/kubelet.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: kube-test
  cluster: {server: "$kube_server", certificate-authority: "$kube_ca"}
users:
- name: $node
  user: {client-certificate: "$pki/kubelet-client.crt", client-key: "$pki/kubelet-client.key"}
contexts:
- name: kube-test
  context: {cluster: kube-test, user: $node}
current-context: kube-test
KC
kport=$(free_port); hport=$(free_port)
cat >"$root/kubelet.yaml" <<CONF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The apiserver reaches the kubelet (logs, exec) at the node's address: the
# pod bridge's own address, a device of this env (the kubelet refuses a
# loopback node IP).
address: $nodeip
port: $kport
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $hport
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $kube_ca}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$sock
imageServiceEndpoint: unix://$sock
# cgroup v1 without systemd: cgroupfs; the QoS tree and every pod under one
# cgroup of this env, which down.sh removes.
cgroupDriver: cgroupfs
cgroupsPerQOS: true
cgroupRoot: /$cgroup
enforceNodeAllocatable: []
failSwapOn: false
# No eviction, no image garbage collection: the host's disk is not the node's.
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
# No iptables chains, no global paths. Pods get the cluster DNS address of
# a real cluster (no route leads there, so a lookup fails at once) instead of
# a MissingClusterDNS warning event on every pod, which would crowd out the
# events deploy-k8s reports.
makeIPTablesUtilChains: false
resolvConf: ""
clusterDNS: [10.0.0.10]
clusterDomain: cluster.local
podLogsDir: $root/pod-logs
volumePluginDir: $root/volume-plugins
serializeImagePulls: false
maxPods: 50
registerWithTaints:
- {key: $taint, value: "true", effect: NoSchedule}
CONF
for c in /sys/fs/cgroup/*/; do
  [ -f "$c/cgroup.procs" ] || continue
  mkdir -p "$c$cgroup" || die "cannot create cgroup $c$cgroup"
done

# --- start: the mount namespace, containerd, the kubelet ----------------------
start_bg "$name-ns" "$dir" unshare --mount --propagation private "$here/ns.sh" "$root"
nspid=$(cat "$dir/pids/$name-ns.pid")
wait_for "node mount namespace" 10 test -f "$root/ns-ready"
echo "mntns='$(readlink "/proc/$nspid/ns/mnt")'" >>"$root/state"
in_ns=(nsenter --mount="/proc/$nspid/ns/mnt" --)
start_bg "$name-containerd" "$dir" "${in_ns[@]}" env -u AWS_CA_BUNDLE TMPDIR="$root/tmp" containerd --config "$root/containerd.toml"
wait_for containerd 30 ctr --address "$sock" version
start_bg "$name-kubelet" "$dir" "${in_ns[@]}" env TMPDIR="$root/tmp" "$bin/kubelet" --config="$root/kubelet.yaml" \
  --kubeconfig="$root/kubelet.kubeconfig" --root-dir="$root/kubelet" --cert-dir="$pki" \
  --hostname-override="$node" --node-ip="$nodeip" --node-labels=type=real --v=1
wait_for "kubelet healthz" 60 curl -fsS "http://127.0.0.1:$hport/healthz"
k() { KUBECACHEDIR="$dir/$kube/kube-cache" "$SLIPWAY_TEST_KUBECTL" --kubeconfig="$kubeconfig" "$@"; }
wait_for "node $node Ready" 90 k wait --for=condition=Ready "node/$node" --timeout=1s
# Pods are placed only once the node-lifecycle controller has removed the
# not-ready taint: then the node's own taint is its only one.
only_own_taint() { [ "$(k get node "$node" -o 'jsonpath={.spec.taints[*].key}')" = "$taint" ]; }
wait_for "node $node without the not-ready taint" 60 only_own_taint

cat >"$dir/env.d/$name.env" <<ENV
export $var=$node
export ${var}_TAINT=$taint
export ${var}_REGISTRY=127.0.0.1:$regport
export ${var}_REGISTRY_NAME=$regname
export ${var}_CONTAINERD=$sock
export ${var}_CGROUP=$cgroup
export ${var}_IP=$nodeip
ENV

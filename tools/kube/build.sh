#!/usr/bin/env bash
# build.sh OUTDIR builds the test-only Kubernetes control plane (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl v1.33.13, etcd v3.5.21,
# kwok v0.7.0) and the kubelet of the real test node (v1.33.13) into OUTDIR.
# It is part of tools_hash, so changing a flag here rebuilds the cache. Keep
# the compile flags stable: changing them recompiles everything (7+ minutes on
# 2 cores).
set -euo pipefail
out=${1:?usage: build.sh OUTDIR}
cd "$(dirname "$0")"
K8S=v1.33.13
ldf="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldf="$ldf -X $p.gitVersion=$K8S -X $p.gitMajor=1 -X $p.gitMinor=33 -X $p.gitTreeState=clean"
done
go build -trimpath -ldflags "$ldf" -o "$out/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet \
  sigs.k8s.io/kwok/cmd/kwok
go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3

#!/usr/bin/env bash
# kube.sh builds the real Kubernetes control plane used by the tests
# (tools/kube: kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl, etcd, kwok) and the real test node's kubelet into
# $SLIPWAY_CACHE/kube-<hash>/bin. It does nothing when that directory exists.
# The last stdout line is the bin directory.
# A cold build takes about 7 minutes on 2 cores and about 3.2 GB of GOCACHE.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
mod="$SLIPWAY_ROOT/tools/kube"
dest="$SLIPWAY_CACHE/kube-$(tools_hash "$mod")"
if [ -x "$dest/bin/kube-apiserver" ] && [ -x "$dest/bin/etcd" ] && [ -x "$dest/bin/kubelet" ]; then
  echo "$dest/bin"; exit 0
fi
mkdir -p "$SLIPWAY_CACHE"
tmp=$(mktemp -d "$SLIPWAY_CACHE/kube-build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log "building tools/kube into $dest (cold: about 7 minutes)"
"$mod/build.sh" "$tmp/bin" >&2
for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kwok etcd; do
  [ -x "$tmp/bin/$b" ] || die "tools/kube build did not produce $b"
done
rm -rf "$dest"
mv "$tmp" "$dest"
trap - EXIT
echo "$dest/bin"

#!/usr/bin/env bash
# node-b.sh DIR: region B's real Kubernetes node, `node-b0`, in region B's
# control plane (kube-b), with its node registry on region B's Swift
# container: hack/servers/node.sh with SLIPWAY_NODE_SITE=b. Needs
# registries.sh, baseimages.sh and kube-b.sh first. Exports
# SLIPWAY_TEST_NODE_B_* (SLIPWAY_TEST_NODE_B is node-b0).
set -euo pipefail
SLIPWAY_NODE_SITE=b exec "$(dirname "$0")/node.sh" "$@"

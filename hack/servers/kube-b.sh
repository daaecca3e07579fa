#!/usr/bin/env bash
# kube-b.sh DIR: region B's Kubernetes control plane (the DR site's cluster):
# hack/servers/kube.sh with SLIPWAY_KUBE_SITE=b. Exports SLIPWAY_TEST_KUBE_B_*.
set -euo pipefail
SLIPWAY_KUBE_SITE=b exec "$(dirname "$0")/kube.sh" "$@"

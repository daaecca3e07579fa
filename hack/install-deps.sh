#!/usr/bin/env bash
# install-deps.sh installs what a fresh Debian machine lacks for slipway's
# tests and local pipeline: Debian packages (only the missing ones) and the
# Go-built checkers. Safe to rerun: it does nothing when all is there.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
case ${1:-} in -h|--help) usage ;; esac

PACKAGES=(
  # registries, images, daemonless builds
  docker-registry skopeo buildah runc busybox-static umoci
  # the real Kubernetes node (hack/servers/node.sh): containerd, runc, CNI plugins
  containerd containernetworking-plugins
  # OpenStack Swift SAIO (registry storage) behind the emulator's Keystone;
  # jq reads Keystone's answers in hack/servers/swift.sh
  swift swift-proxy swift-object swift-container swift-account memcached python3-swiftclient
  python3-keystonemiddleware jq
  # databases
  mariadb-server mariadb-client
  # Zuul playbooks and config checks
  ansible-core ansible-lint yamllint
  # static checks of hack/ and .ci/run (hack/test.sh)
  shellcheck
  # test and benchmark helpers
  time curl openssl iproute2 ca-certificates git
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  # Another apt may hold the lock for a while on a fresh machine: wait for it.
  for _ in $(seq 1 120); do
    pgrep -x apt-get >/dev/null || pgrep -x dpkg >/dev/null || break; sleep 1
  done
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v go >/dev/null || die "Go is missing: install Go 1.26 (https://go.dev/dl) at /usr/local/go"

# Go-built checkers, cached like the test tools.
bin="$SLIPWAY_CACHE/gobin"; mkdir -p "$bin"
[ -x "$bin/staticcheck" ] || GOBIN="$bin" go install honnef.co/go/tools/cmd/staticcheck@v0.7.0
echo "$bin"

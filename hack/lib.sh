#!/usr/bin/env bash
# Shared shell helpers for slipway's scripts: usage, free ports, readiness
# waits, process bookkeeping, the tool set-up of the test and pipeline runs.
# Source it; do not run it.

# Debian's Python tools (swift, ansible) need the system python, not pyenv's.
export PATH="/usr/local/go/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
unset AWS_CA_BUNDLE

SLIPWAY_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SLIPWAY_ROOT
# Heavy test-only tools (kube-apiserver, etcd, kwok, versitygw, FerretDB,
# mongo-tools) are built once into this cache, keyed by their module's go.sum.
export SLIPWAY_CACHE="${SLIPWAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/slipway}"

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# usage prints the calling script's header comment (the lines after the
# shebang up to the first line that is not a comment) and exits 2.
usage() {
  awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0" >&2
  exit 2
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on. It is
# taken below the kernel's ephemeral range: a port from that range can be
# handed to any outgoing connection between this pick and the server's bind
# (a full test run connects a lot), and the server then fails to start.
free_port() {
  local p lo=10000 hi ports="${SLIPWAY_PORTS_DIR:-/tmp/slipway-ports}"
  hi=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null) || hi=32768
  if ! [ "${hi:-0}" -gt $((lo + 2000)) ] 2>/dev/null; then
    hi=32768
  fi
  mkdir -p "$ports"
  for _ in $(seq 1 200); do
    p=$(( lo + RANDOM % (hi - lo) ))
    if ! ss -Htan "sport = :$p" | grep -q .; then
      # Reserve it for this run so two servers of one run never pick the same port.
      if mkdir "$ports/$p" 2>/dev/null; then
        echo "$p"; return 0
      fi
    fi
  done
  die "no free port found"
}

# wait_for DESC TIMEOUT_SECONDS CMD... polls CMD every 0.1 s until it succeeds.
wait_for() {
  local desc=$1 timeout=$2; shift 2
  local deadline=$(( $(date +%s) + timeout ))
  until "$@" >/dev/null 2>&1; do
    if (( $(date +%s) >= deadline )); then
      die "$desc not ready after ${timeout}s"
    fi
    sleep 0.1
  done
}

# start_bg NAME DIR CMD... starts CMD in the background with its output in
# DIR/logs/NAME.log and records its PID in DIR/pids/NAME.pid.
start_bg() {
  local name=$1 dir=$2; shift 2
  mkdir -p "$dir/logs" "$dir/pids"
  "$@" >"$dir/logs/$name.log" 2>&1 &
  echo $! >"$dir/pids/$name.pid"
}

# stop_bg DIR NAME... stops the processes start_bg recorded under these
# names (TERM, then KILL after 5 s) and forgets them: a server script calls
# it first, so a start that failed half-way leaves nothing running when it
# is run again.
stop_bg() {
  local dir=$1 name pid; shift
  for name in "$@"; do
    [ -f "$dir/pids/$name.pid" ] || continue
    pid=$(cat "$dir/pids/$name.pid")
    if kill -TERM "$pid" 2>/dev/null; then
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$dir/pids/$name.pid"
  done
}

# tools_hash DIR prints a short hash of a tools module's go.mod, go.sum and
# build script, the key of its build cache.
tools_hash() {
  # A module without scripts is fine: the glob may match nothing.
  { cat "$1"/go.mod "$1"/go.sum; cat "$1"/*.sh 2>/dev/null || true; } | sha256sum | cut -c1-16
}

# setup_tools MODE makes the tools of a test or pipeline run ready and builds
# the binaries into bin/, first on PATH. MODE "install" installs what is
# missing (hack/install-deps.sh), builds the test-only tools (hack/tools.sh,
# cached) and puts them and the Go-built checkers on PATH; MODE "on-path" is
# for a caller whose PATH already has them (a test env's).
setup_tools() {
  case $1 in
    install)
      local gobin toolpath
      gobin=$("$SLIPWAY_ROOT/hack/install-deps.sh" | tail -n 1)
      log "building test tools (cached in $SLIPWAY_CACHE)"
      toolpath=$("$SLIPWAY_ROOT/hack/tools.sh")
      PATH="$toolpath:$gobin:$PATH" ;;
    on-path) ;;
    *) die "setup_tools: unknown mode $1 (install or on-path)" ;;
  esac
  export PATH="$SLIPWAY_ROOT/bin:$PATH"
  log "building the binaries into bin/"
  (cd "$SLIPWAY_ROOT" && go build -trimpath -o bin/ ./cmd/...)
}

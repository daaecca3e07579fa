#!/usr/bin/env bash
# down.sh DIR [NAME] undoes hack/servers/node.sh's node NAME (node, the
# default, region A's; node-b, region B's) in test env DIR; hack/testenv.sh
# down runs it (through DIR/down.d/NAME) after stopping the recorded processes.
# It kills what those PIDs do not cover: the containerd shims and every
# process left in the node's mount namespace, and every container in the
# node's cgroups; then it removes the cgroups and the pod bridge. The mounts
# (tmpfs, overlay rootfs, pod netns) exist only in the node's mount namespace
# and in the containers' and go away with their last process.
set -euo pipefail
. "$(dirname "$0")/../../lib.sh"
dir=${1:?usage: down.sh DIR [NAME]}
name=${2:-node}
state="$dir/$name/state"
[ -f "$state" ] || exit 0
bridge="" cgroup="" mntns=""
# shellcheck source=/dev/null # written by hack/servers/node.sh
. "$state"

# Only this node's: the other node's PID files start with node- too.
for p in ns registry containerd kubelet; do
  f="$dir/pids/$name-$p.pid"
  if [ -f "$f" ]; then kill -KILL "$(cat "$f")" 2>/dev/null || true; fi
done

# node_pids prints the PIDs of every process in the node's mount namespace
# or in its cgroups.
node_pids() {
  if [ -n "$mntns" ]; then
    # One find, not a readlink per process: on a loaded machine a fork per
    # process made each scan take seconds.
    find /proc/[0-9]*/ns/mnt -maxdepth 0 -lname "$(printf '%s' "$mntns" | sed 's/[][*?\\]/\\&/g')" 2>/dev/null |
      cut -d/ -f3 || true
  fi
  if [ -n "$cgroup" ]; then
    find /sys/fs/cgroup/*/"$cgroup" -name cgroup.procs -exec cat {} + 2>/dev/null || true
  fi
}
for _ in $(seq 1 100); do
  pids=$(node_pids | sort -u)
  [ -z "$pids" ] && break
  # shellcheck disable=SC2086 # one PID per word
  kill -KILL $pids 2>/dev/null || true
  sleep 0.1
done
[ -z "$(node_pids)" ] || log "$name: processes still alive after SIGKILL: $(node_pids | sort -u | tr '\n' ' ')"

if [ -n "$cgroup" ]; then
  for _ in $(seq 1 50); do
    find /sys/fs/cgroup/*/"$cgroup" -depth -type d -exec rmdir {} + 2>/dev/null || true
    compgen -G "/sys/fs/cgroup/*/$cgroup" >/dev/null || break
    sleep 0.1
  done
  compgen -G "/sys/fs/cgroup/*/$cgroup" >/dev/null && log "$name: cgroups left: $(echo /sys/fs/cgroup/*/"$cgroup")"
fi

if [ -n "$bridge" ] && ip link show "$bridge" >/dev/null 2>&1; then
  # Pod veths go with their network namespaces; any left are detached here.
  for v in $(ip -o link show master "$bridge" | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$v" 2>/dev/null || true
  done
  ip link del "$bridge"
fi
# Nothing of the node is mounted in the host's namespace; should a mount
# have leaked there, it must not survive the env dir's removal.
{ grep -F " $dir/$name/" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r | while read -r m; do
  umount -l "$m" || true
done
rm -f "$state"

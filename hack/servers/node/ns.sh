#!/bin/sh
# ns.sh ROOT: the first process of the test node's private mount namespace
# (started by hack/servers/node.sh under `unshare --mount`). It hides the
# host's /run, /var/lib and /var/log behind tmpfs mounts, so containerd, runc
# and the kubelet write their fixed-path state (/run/containerd/s,
# /var/lib/kubelet/device-plugins, /var/log/containers...) where no other
# process sees it and where it vanishes with the namespace; it shows the
# kubelet the kernel settings it wants (so it never changes the host's), and
# then holds the namespace open until it is killed.
set -eu
root=$1
for d in /run /var/lib /var/log; do
  mount -t tmpfs -o mode=0755,size=256m slipway-node "$d"
done
# The kubelet's container manager sets these sysctls when they differ
# (kernel.panic_on_oops=1 would reboot the machine on any oops). Read-only
# copies with the values it expects make it leave the real ones alone.
mkdir -p "$root/sysctl"
for kv in vm/overcommit_memory=1 vm/panic_on_oom=0 kernel/panic=10 kernel/panic_on_oops=1 \
          kernel/keys/root_maxkeys=1000000 kernel/keys/root_maxbytes=25000000; do
  k=${kv%%=*}; f="$root/sysctl/$(echo "$k" | tr / .)"
  echo "${kv#*=}" >"$f"
  mount --bind "$f" "/proc/sys/$k"
  mount -o remount,bind,ro "/proc/sys/$k"
done
touch "$root/ns-ready"
exec sleep 2147483647

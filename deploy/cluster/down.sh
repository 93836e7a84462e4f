#!/usr/bin/env bash
# Stops the cluster deploy/cluster/up.sh started and removes all it made: its processes,
# the pods' containers, mounts, network namespaces and bridge, kube-proxy's iptables
# rules, and .tools/cluster. Safe to run when nothing is up.
set -uo pipefail
cd "$(dirname "$0")/../.."
source deploy/cluster/env.sh
if [[ -f $CLUSTER/pids ]]; then
  # The node first (so that nothing restarts pods), the store last.
  for name in kubelet kube-proxy coredns kube-scheduler kube-controller-manager containerd \
              kube-apiserver etcd; do
    pid=$(awk -v n="$name" '$1 == n {print $2}' "$CLUSTER/pids")
    [[ -n $pid ]] && kill "$pid" 2>/dev/null
  done
  for _ in $(seq 20); do  # up to 10 s for a clean exit, then no more asking
    alive=$(awk '{print $2}' "$CLUSTER/pids" | xargs -r ps -o pid= -p 2>/dev/null)
    [[ -z $alive ]] && break
    sleep 0.5
  done
  awk '{print $2}' "$CLUSTER/pids" | xargs -r kill -9 2>/dev/null
fi
# The pods' processes (kubelet is gone, so nothing restarts them): with their
# shims gone they would run on, orphaned.
find /sys/fs/cgroup/pids/kubepods /sys/fs/cgroup/kubepods -name cgroup.procs 2>/dev/null \
  | xargs -r cat | sort -u | xargs -r kill -9 2>/dev/null
# Anything of the cluster's still running (started by hand, or from a lost pid file), and
# what containerd's shims leave behind.
pkill -f "cluster/containerd/config.toml" 2>/dev/null
pkill -f "containerd-shim-runc-v2 -namespace k8s.io" 2>/dev/null
[[ -x $K8S_BIN/kube-proxy ]] && "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1
for netns in $(ip netns list 2>/dev/null | awk '/^cni-/ {print $1}'); do ip netns delete "$netns"; done
ip link delete aura0 2>/dev/null
if [[ -d $CLUSTER ]]; then
  grep -o " $CLUSTER[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$CLUSTER"
fi
echo "cluster down"

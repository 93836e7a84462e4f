#!/usr/bin/env bash
# Stops the cluster deploy/cluster/up.sh started and removes all it made: its processes,
# the pods' containers, mounts, network namespaces and bridge, kube-proxy's iptables
# rules, and .tools/cluster. Safe to run when nothing is up, and on a shared host: it
# stops processes by the ids it recorded or found under its own containerd, never by name.
set -uo pipefail
cd "$(dirname "$0")/../.."
source deploy/cluster/env.sh
# Only what this cluster started is stopped, by process id: the processes up.sh recorded,
# and the pods' processes under the containerd shims of this cluster's containerd (a shim
# names its containerd's socket, which is this checkout's own). Nothing is matched by name,
# so another cluster or program on the same host is left alone.
shims=()
for proc in /proc/[0-9]*; do
  if tr '\0' '\n' < "$proc/cmdline" 2>/dev/null | grep -qxF -- "$CONTAINERD_SOCKET"; then
    [[ $(tr '\0' ' ' < "$proc/cmdline") == *containerd-shim* ]] && shims+=("${proc#/proc/}")
  fi
done
descendants() {  # the process ids below the given ones
  local queue=("$@") pid child
  while ((${#queue[@]})); do
    pid=${queue[0]}
    queue=("${queue[@]:1}")
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
      echo "$child"
      queue+=("$child")
    done
  done
}
pods=()
((${#shims[@]})) && mapfile -t pods < <(descendants "${shims[@]}")
# The pods' network namespaces, before their processes are gone.
netns=()
for pid in "${pods[@]}"; do
  name=$(ip netns identify "$pid" 2>/dev/null) && [[ -n $name ]] && netns+=("$name")
done
if [[ -f $CLUSTER/pids ]]; then
  # The node first (so that nothing restarts pods), the store last.
  for name in kubelet kube-router kube-proxy coredns kube-scheduler kube-controller-manager \
              containerd kube-apiserver etcd; do
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
# The pods' processes and their shims (kubelet is gone, so nothing restarts them): they
# would run on, orphaned.
((${#pods[@]} + ${#shims[@]})) && kill -9 "${pods[@]}" "${shims[@]}" 2>/dev/null
[[ -x $K8S_BIN/kube-proxy ]] && "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1
# kube-router's firewall: its jumps, chains and ipsets, by the names it alone uses (not its
# --cleanup-config, which would also clear every IPVS service and route it did not make).
for chain in INPUT FORWARD OUTPUT; do
  iptables -L "$chain" --line-numbers 2>/dev/null | awk '/kube-router netpol/ {print $1}' \
    | sort -rn | xargs -r -n1 iptables -D "$chain" 2>/dev/null
done
chains=$(iptables -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-(ROUTER-|POD-FW-|NWPLCY-)/ {print $2}')
for chain in $chains; do iptables -F "$chain" 2>/dev/null; done
for chain in $chains; do iptables -X "$chain" 2>/dev/null; done
ipset list -n 2>/dev/null | grep -E '^(TMP-)?(inet6:)?KUBE-(SRC|DST)-' | xargs -r -n1 ipset destroy 2>/dev/null
# The public name's line in /etc/hosts (deploy/cluster/ingress.sh).
if grep -q "# aura-cluster$" /etc/hosts 2>/dev/null; then
  sed '/# aura-cluster$/d' /etc/hosts > "/etc/hosts.aura-$$" && cat "/etc/hosts.aura-$$" > /etc/hosts
  rm -f "/etc/hosts.aura-$$"
fi
for name in $(printf '%s\n' "${netns[@]}" | sort -u); do ip netns delete "$name" 2>/dev/null; done
ip link delete aura0 2>/dev/null
ip link delete "$NODE_LINK" 2>/dev/null  # the node's address (env.sh)
if [[ -d $CLUSTER ]]; then
  grep -o " $CLUSTER[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  rm -rf "$CLUSTER"
fi
echo "cluster down"

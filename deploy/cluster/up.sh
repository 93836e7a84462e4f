#!/usr/bin/env bash
# Starts a single-node Kubernetes cluster from upstream components on this machine, for
# machines where kind cannot run (no Docker engine, no registry to pull its node image):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kube-proxy
# built from source (deploy/cluster/build-tools.sh), Debian's containerd and CNI plugins
# (a bridge network for pods), CoreDNS for Service names, and kube-router's firewall to
# enforce NetworkPolicies (the bridge plugin enforces none); deploy/cluster/ingress.sh adds
# the ingress controller. Everything lives under .tools/cluster (certificates, data, logs,
# kubeconfig); deploy/cluster/down.sh removes it.
# Needs root. Usage: deploy/cluster/up.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/cluster/env.sh

[[ $(id -u) -eq 0 ]] || { echo "the cluster needs root (kubelet, containerd, iptables)" >&2; exit 1; }
for tool in containerd ctr openssl iptables ipset; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/system-packages.sh cluster" >&2; exit 1; }
done
[[ -x $K8S_BIN/kubelet && -x $ETCD_BIN && -x $COREDNS_BIN && -x $KUBE_ROUTER_BIN ]] \
  || { echo "the cluster's programs are not built: run deploy/cluster/build-tools.sh" >&2; exit 1; }
if [[ -f $CLUSTER/pids ]]; then
  echo "a cluster is already up (deploy/cluster/down.sh stops it)" >&2; exit 1
fi
mkdir -p "$CLUSTER"/{pki,logs,etcd,containerd,kubelet,cni/net.d,cni/ipam}

# --- the node's own address -----------------------------------------------------------------
# An interface of the cluster's own with NODE_IP: the API server, kubelet, CoreDNS and
# Jaeger listen there (the rest on loopback), reachable from this machine and its pods,
# not from its network. A bridge without ports: not every kernel has the dummy driver.
ip link show "$NODE_LINK" >/dev/null 2>&1 || ip link add "$NODE_LINK" type bridge
ip addr replace "$NODE_IP/32" dev "$NODE_LINK"
ip link set "$NODE_LINK" up

# --- certificates -----------------------------------------------------------------------
pki=$CLUSTER/pki
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=aura-cluster-ca" \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
certificate() {  # <name> <subject> [subjectAltName]
  openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null
  local extensions=$pki/$1.ext
  echo "extendedKeyUsage=serverAuth,clientAuth" > "$extensions"
  [[ -n ${3:-} ]] && echo "subjectAltName=$3" >> "$extensions"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 2 -extfile "$extensions" -out "$pki/$1.crt" 2>/dev/null
}
certificate apiserver "/CN=kube-apiserver" \
  "IP:127.0.0.1,IP:$NODE_IP,IP:$API_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
certificate apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
certificate admin "/O=system:masters/CN=aura-admin"
certificate controller-manager "/CN=system:kube-controller-manager"
certificate scheduler "/CN=system:kube-scheduler"
certificate kube-proxy "/CN=system:kube-proxy"
certificate kube-router "/CN=system:kube-router"
certificate kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "IP:$NODE_IP,DNS:$NODE_NAME"
openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

kubeconfig() {  # <name>: a kubeconfig for the certificate of that name
  cat > "$CLUSTER/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: aura
    cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$pki/ca.crt"}
users:
  - name: $1
    user: {client-certificate: "$pki/$1.crt", client-key: "$pki/$1.key"}
contexts:
  - name: aura
    context: {cluster: aura, user: $1}
current-context: aura
EOF
}
for name in admin controller-manager scheduler kube-proxy kube-router kubelet; do kubeconfig "$name"; done

start() {  # <name> <command...>: in the background, logged, remembered for down.sh
  local name=$1; shift
  "$@" > "$CLUSTER/logs/$name.log" 2>&1 &
  echo "$name $!" >> "$CLUSTER/pids"
}

wait_for() {  # <what> <seconds> <command...>
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then
      echo "$what did not come up in ${seconds}s; logs in $CLUSTER/logs" >&2; exit 1
    fi
    sleep 1
  done
  echo "$what is up"
}

# --- the control plane --------------------------------------------------------------------
start etcd "$ETCD_BIN" --name aura --data-dir "$CLUSTER/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster aura=http://127.0.0.1:2380 --unsafe-no-fsync
start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers=http://127.0.0.1:2379 --advertise-address="$NODE_IP" --secure-port=6443 \
  --bind-address="$NODE_IP" \
  --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true \
  --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" \
  --tls-private-key-file="$pki/apiserver.key" \
  --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --kubelet-preferred-address-types=InternalIP
wait_for "the API server" 90 "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG" get --raw /readyz
start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$CLUSTER/controller-manager.kubeconfig" --bind-address=127.0.0.1 \
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
  --use-service-account-credentials=true --leader-elect=false \
  --service-cluster-ip-range="$SERVICE_CIDR"
start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig="$CLUSTER/scheduler.kubeconfig" --bind-address=127.0.0.1 --leader-elect=false

# --- the node -----------------------------------------------------------------------------
sysctl -qw net.ipv4.ip_forward=1
sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
cat > "$CLUSTER/containerd/config.toml" <<EOF
version = 2
root = "$CLUSTER/containerd/root"
state = "$CLUSTER/containerd/state"
[grpc]
  address = "$CONTAINERD_SOCKET"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # This VM refuses a negative oom_score_adj (kubelet asks -998 for sandboxes): keep
  # every container's at or above containerd's own instead of failing to start it.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$CLUSTER/cni/net.d"
EOF
cat > "$CLUSTER/cni/net.d/10-aura.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "aura",
  "plugins": [
    {"type": "bridge", "bridge": "aura0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$CLUSTER/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
EOF
start containerd containerd --config "$CLUSTER/containerd/config.toml"
wait_for "containerd" 30 ctr --address "$CONTAINERD_SOCKET" version
# The pod sandbox image: Kubernetes' own pause program, built with the other programs,
# alone in an image (no registry to pull registry.k8s.io/pause from).
deploy/cluster/program-image.sh "$PAUSE_IMAGE" "$K8S_BIN/pause" 65535

cat > "$CLUSTER/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$pki/ca.crt"}
authorization: {mode: Webhook}
address: "$NODE_IP"
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
tlsCertFile: "$pki/kubelet.crt"
tlsPrivateKeyFile: "$pki/kubelet.key"
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDNS: ["$NODE_IP"]
clusterDomain: cluster.local
containerRuntimeEndpoint: "unix://$CONTAINERD_SOCKET"
# A build machine's disk is shared with everything else: do not evict pods over it.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
imageGCHighThresholdPercent: 100
maxPods: 60
EOF
start kubelet "$K8S_BIN/kubelet" --config="$CLUSTER/kubelet/config.yaml" \
  --kubeconfig="$CLUSTER/kubelet.kubeconfig" --root-dir="$CLUSTER/kubelet/root" \
  --hostname-override="$NODE_NAME" --node-ip="$NODE_IP"
cat > "$CLUSTER/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: "$POD_CIDR"
hostnameOverride: "$NODE_NAME"
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: ["$NODE_IP/32"]
clientConnection: {kubeconfig: "$CLUSTER/kube-proxy.kubeconfig"}
conntrack: {maxPerCore: 0}
EOF
start kube-proxy "$K8S_BIN/kube-proxy" --config="$CLUSTER/kube-proxy.yaml"
cat > "$CLUSTER/Corefile" <<EOF
.:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG aura
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 30
}
EOF
start coredns "$COREDNS_BIN" -conf "$CLUSTER/Corefile"
wait_for "node $NODE_NAME" 120 \
  "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG" wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s

# NetworkPolicies, enforced: kube-router's firewall alone (the bridge plugin routes pods,
# kube-proxy serves Services), iptables rules and ipsets per pod; started once the node is
# registered, where it finds its own address. What it may read:
"$K8S_BIN/kubectl" apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:kube-router"}
rules:
  - apiGroups: [""]
    resources: [namespaces, pods, nodes, services, endpoints]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:kube-router"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:kube-router"}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:kube-router"}]
EOF
# No health or metrics listener (they would be on every address), IPv4 only (the pods').
start kube-router "$KUBE_ROUTER_BIN" --kubeconfig="$CLUSTER/kube-router.kubeconfig" \
  --hostname-override="$NODE_NAME" --run-firewall=true --run-router=false \
  --run-service-proxy=false --enable-cni=false --enable-ipv4=true --enable-ipv6=false \
  --service-cluster-ip-range="$SERVICE_CIDR" --health-port=0 --metrics-port=0
wait_for "kube-router's firewall" 60 iptables -S KUBE-ROUTER-FORWARD
echo "cluster up: export KUBECONFIG=$KUBECONFIG"

# Shared by the cluster scripts: where things are, and the cluster's addresses.
tools=$PWD/.tools
# 1.34: the last minor whose kubelet runs on cgroup v1 hosts by default (this VM's kind).
K8S_VERSION=${K8S_VERSION:-1.34.4}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
COREDNS_VERSION=${COREDNS_VERSION:-1.15.0}
JAEGER_VERSION=${JAEGER_VERSION:-1.76.0}
TRAEFIK_VERSION=${TRAEFIK_VERSION:-3.6.12}
# The only version the module proxy serves (kube-network-policies, kind's own engine, needs
# the nft queue expression, which not every kernel has).
KUBE_ROUTER_VERSION=${KUBE_ROUTER_VERSION:-2.1.0}
K8S_BIN=$tools/k8s-$K8S_VERSION/bin
ETCD_BIN=$tools/etcd-$ETCD_VERSION/bin/etcd
COREDNS_BIN=$tools/coredns-$COREDNS_VERSION/bin/coredns
JAEGER_BIN=$tools/jaeger-$JAEGER_VERSION/bin/jaeger
TRAEFIK_BIN=$tools/traefik-$TRAEFIK_VERSION/bin/traefik
KUBE_ROUTER_BIN=$tools/kube-router-$KUBE_ROUTER_VERSION/bin/kube-router
CLUSTER=$tools/cluster
export KUBECONFIG=$CLUSTER/admin.kubeconfig
CONTAINERD_SOCKET=$CLUSTER/containerd/containerd.sock
CNI_BIN_DIR=${CNI_BIN_DIR:-/usr/lib/cni}
NODE_NAME=aura-node
# The address pods and the host reach the node on: on an interface up.sh makes (a bridge
# without ports) and down.sh removes, so that the cluster's components listen there (and on loopback), never
# on the machine's outward-facing address.
NODE_IP=${NODE_IP:-10.250.0.1}
NODE_LINK=aura-node0
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
PAUSE_IMAGE=localhost/aura-pause:$K8S_VERSION
TRAEFIK_IMAGE=localhost/aura-traefik:$TRAEFIK_VERSION
# The release's public name: Twilio's webhooks and WebSockets reach it through Traefik over
# HTTPS, on NODE_IP's port 443 (an /etc/hosts line up.sh adds and down.sh removes).
PUBLIC_HOST=calls.aura.test

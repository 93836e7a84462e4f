# Shared by the cluster scripts: where things are, and the cluster's addresses.
tools=$PWD/.tools
# 1.34: the last minor whose kubelet runs on cgroup v1 hosts by default (this VM's kind).
K8S_VERSION=${K8S_VERSION:-1.34.4}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
COREDNS_VERSION=${COREDNS_VERSION:-1.15.0}
JAEGER_VERSION=${JAEGER_VERSION:-1.76.0}
K8S_BIN=$tools/k8s-$K8S_VERSION/bin
ETCD_BIN=$tools/etcd-$ETCD_VERSION/bin/etcd
COREDNS_BIN=$tools/coredns-$COREDNS_VERSION/bin/coredns
JAEGER_BIN=$tools/jaeger-$JAEGER_VERSION/bin/jaeger
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

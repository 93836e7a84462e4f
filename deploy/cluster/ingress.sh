#!/usr/bin/env bash
# The cluster's ingress controller, as a user's cluster has one: Traefik (built from source
# by build-tools.sh, in an image of its own) as a pod in namespace traefik, watching
# Ingresses of class traefik, serving HTTPS on the node's port 443 (a hostPort on NODE_IP),
# with PUBLIC_HOST resolving there through /etc/hosts. The release's certificate, from a
# CA of the cluster's own (scripts/ingress-cert.sh), is the Secret aura-tls in namespace
# aura; the e2e suite trusts that CA (`ca` prints its file). down.sh removes it all.
# Usage: deploy/cluster/ingress.sh start|url|ca
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/cluster/env.sh
kubectl=("$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG")
certs=$CLUSTER/ingress
case "${1:-}" in
  start)
    scripts/ingress-cert.sh "$certs" "$PUBLIC_HOST"
    deploy/cluster/program-image.sh "$TRAEFIK_IMAGE" "$TRAEFIK_BIN" 65532
    "${kubectl[@]}" apply -f - <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: traefik}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: traefik, namespace: traefik}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: traefik}
rules:
  - apiGroups: [""]
    resources: [services, secrets, nodes]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses, ingressclasses]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [ingresses/status]
    verbs: [update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: traefik}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: traefik}
subjects: [{kind: ServiceAccount, name: traefik, namespace: traefik}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: traefik}
spec: {controller: traefik.io/ingress-controller}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: traefik, namespace: traefik}
spec:
  replicas: 1
  selector: {matchLabels: {app.kubernetes.io/name: traefik}}
  template:
    metadata: {labels: {app.kubernetes.io/name: traefik}}
    spec:
      serviceAccountName: traefik
      securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532}
      containers:
        - name: traefik
          image: $TRAEFIK_IMAGE
          imagePullPolicy: Never
          args:
            - --entryPoints.websecure.address=:8443
            - --entryPoints.websecure.http.tls=true
            - --entryPoints.traefik.address=:9000
            - --ping=true
            - --providers.kubernetesIngress=true
            - --providers.kubernetesIngress.ingressClass=traefik
            - --accessLog=true
            - --global.checkNewVersion=false
            - --global.sendAnonymousUsage=false
          ports:
            - {name: websecure, containerPort: 8443, hostPort: 443, hostIP: "$NODE_IP"}
          readinessProbe:
            httpGet: {path: /ping, port: 9000}
            periodSeconds: 2
          livenessProbe:
            httpGet: {path: /ping, port: 9000}
          resources:
            requests: {cpu: 50m, memory: 64Mi}
            limits: {memory: 256Mi}
          securityContext:
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: {drop: [ALL]}
EOF
    # The release's certificate, where its Ingress looks for it (the chart's default name).
    "${kubectl[@]}" create namespace aura --dry-run=client -o yaml | "${kubectl[@]}" apply -f -
    "${kubectl[@]}" -n aura create secret tls aura-tls --cert "$certs/tls.crt" \
      --key "$certs/tls.key" --dry-run=client -o yaml | "${kubectl[@]}" apply -f -
    if ! grep -q "# aura-cluster$" /etc/hosts; then
      echo "$NODE_IP $PUBLIC_HOST # aura-cluster" >> /etc/hosts
    fi
    "${kubectl[@]}" -n traefik rollout status deployment/traefik --timeout=180s
    ;;
  url) echo "https://$PUBLIC_HOST" ;;
  ca) echo "$certs/ca.crt" ;;
  *) echo "usage: $0 start|url|ca" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Copies images from podman's store into the cluster's containerd (its k8s.io namespace),
# as `kind load` does for kind: `podman save | ctr images import`.
# Usage: deploy/cluster/load.sh IMAGE...
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/cluster/env.sh
for image in "$@"; do
  podman save --format docker-archive "$image" \
    | ctr --address "$CONTAINERD_SOCKET" -n k8s.io images import - >/dev/null
  echo "loaded $image"
done

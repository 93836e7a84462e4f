#!/usr/bin/env bash
# An image of one static program built here (no registry to pull it from), made with
# buildah when podman does not have it yet, then loaded into the cluster's containerd.
# Usage: deploy/cluster/program-image.sh IMAGE PROGRAM UID
set -euo pipefail
cd "$(dirname "$0")/../.."
image=$1 program=$2 uid=$3
if ! podman image exists "$image"; then
  name=/$(basename "$program")
  container=$(buildah from scratch)
  buildah copy "$container" "$program" "$name" >/dev/null
  buildah config --entrypoint "[\"$name\"]" --user "$uid:$uid" "$container"
  buildah commit -q "$container" "$image" >/dev/null
  buildah rm "$container" >/dev/null
fi
deploy/cluster/load.sh "$image"

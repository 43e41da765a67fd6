#!/usr/bin/env bash
# Build kube-apiserver, kube-scheduler, kube-controller-manager and etcd of the current
# Kubernetes release from the Go module proxy, into a per-user cache keyed by version.
#
# Usage: build-kubernetes-modules.sh [CACHE_DIR]   (gibbous dev-cluster and the tests run it)
#   CACHE_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/gibbous/kubernetes-VERSION
# Prints the bin directory on the last line of stdout. Idempotent: a complete cache is
# reused and nothing is fetched.
#
# The release is the k8s.io/kubernetes requirement of kubebuild/go.mod, beside this file:
# a module of Gibbous's own that requires it and pins each k8s.io staging module to the
# matching v0.x with `replace` (k8s.io/kubernetes names them as ./staging/... paths, which
# only work inside its own repository), plus etcd's server at the version Kubernetes
# requires. go.sum pins every module's hash. Needs Go >= the module's `go` line on PATH and
# the Go module proxy; no root, no C compiler (CGO_ENABLED=0).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
module=$here/kubebuild
VERSION=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {sub(/^v/, "", $2); print $2; exit}' "$module/go.mod")
[ -n "$VERSION" ] || { echo "build-kubernetes-modules: no k8s.io/kubernetes version in $module/go.mod" >&2; exit 1; }
cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/gibbous/kubernetes-$VERSION}
bin=$cache/bin
wanted=(kube-apiserver kube-scheduler kube-controller-manager etcd)

have_all() { for b in "${wanted[@]}"; do [ -x "$bin/$b" ] || return 1; done; }
if have_all; then echo "$bin"; exit 0; fi

log() { echo "build-kubernetes-modules: $*" >&2; }

need_go=$(awk '$1 == "go" {print $2; exit}' "$module/go.mod")
if ! command -v go >/dev/null; then
  log "needs Go >= $need_go on PATH to build Kubernetes v$VERSION (or set KUBE_*_BIN / KUBEBUILDER_ASSETS)"
  exit 1
fi
have_go=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$need_go" "$have_go" | sort -V | head -n1)" != "$need_go" ]; then
  log "Go $have_go on PATH is older than the $need_go Kubernetes v$VERSION needs"
  exit 1
fi

# A writable copy: the package may be installed read-only.
work=$(mktemp -d "${TMPDIR:-/tmp}/gibbous-kubebuild.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$module/." "$work/"

minor=${VERSION#*.}; minor=${minor%%.*}
ldflags="-s -w"
# What hack/lib/version.sh stamps: without it the binaries call themselves v0.0.0-master,
# and clients (and Gibbous's version checks) cannot tell what they talk to.
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=v$VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

log "building ${wanted[*]} of Kubernetes v$VERSION from the Go module proxy (several minutes on 2 cores the first time)"
rm -rf "$bin.tmp"; mkdir -p "$bin.tmp"
(
  cd "$work"
  CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" \
    go build -trimpath -ldflags "$ldflags" -o "$bin.tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      ./etcd >&2
)
rm -rf "$bin"; mv "$bin.tmp" "$bin"
log "done: $bin"
echo "$bin"

#!/usr/bin/env bash
# Build kube-apiserver, kube-scheduler and kube-controller-manager v1.20.2 from
# Debian's `kubernetes` source package, into a per-user cache keyed by version.
#
# Usage: build-kubernetes.sh [CACHE_DIR]   (gibbous dev-cluster and the tests run it)
#   CACHE_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/gibbous/kubernetes-1.20.2
# Prints the bin directory on the last line of stdout. Idempotent: a complete
# cache is reused and nothing is installed.
#
# Why from source: no registry reachable here ships these binaries; Debian's
# source package vendors the whole v1.20.2 tree, and golang-go builds it.
set -euo pipefail

VERSION=1.20.2
cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/gibbous/kubernetes-$VERSION}
bin=$cache/bin
wanted=(kube-apiserver kube-scheduler kube-controller-manager)

have_all() { for b in "${wanted[@]}"; do [ -x "$bin/$b" ] || return 1; done; }
if have_all && command -v etcd >/dev/null; then echo "$bin"; exit 0; fi

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "build-kubernetes: need root (or sudo) to apt-get install the build tools" >&2; exit 1; fi; }

log() { echo "build-kubernetes: $*" >&2; }

# Build tools and etcd. golang-github-modern-go-reflect2-dev supplies reflect2
# 1.0.2: the vendored 1.0.1 built with Go 1.19 segfaults the apiserver on its
# first admission-webhook call (JSON map encoding).
pkgs=(golang-go etcd-server golang-github-modern-go-reflect2-dev rsync jq dpkg-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done

srcfile=/etc/apt/sources.list.d/gibbous-deb-src.sources
need_src=1
have_all && need_src=0
if [ ${#missing[@]} -gt 0 ] || [ $need_src = 1 ]; then
  if [ $need_src = 1 ] && [ ! -f "$srcfile" ]; then
    # Source entries: a copy of the system's own Debian entries (no mirror host
    # is hard-coded here), typed deb-src.
    sys=$(grep -l '^Types: *deb' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v gibbous | head -n1 || true)
    if [ -n "$sys" ]; then
      sed -e 's/^Types: *deb$/Types: deb-src/' "$sys" | as_root tee "$srcfile" >/dev/null
    elif [ -f /etc/apt/sources.list ]; then
      grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' | as_root tee /etc/apt/sources.list.d/gibbous-deb-src.list >/dev/null
    else
      log "no Debian apt source entry found to copy"; exit 1
    fi
  fi
  log "apt-get update"
  as_root apt-get update -qq >&2
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >&2
  fi
fi
if have_all; then echo "$bin"; exit 0; fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gibbous-k8s-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
log "downloading Debian source package kubernetes"
apt-get source --download-only kubernetes >&2
orig=$(ls kubernetes_*.orig.tar.gz | head -n1)
log "unpacking $orig"
mkdir tree && tar -xzf "$orig" -C tree --strip-components=1
tree=$work/tree
grep -q "gitVersion.*v$VERSION\|$VERSION" "$tree/CHANGELOG/CHANGELOG-1.20.md" 2>/dev/null || true

r2=/usr/share/gocode/src/github.com/modern-go/reflect2
rm -rf "$tree/vendor/github.com/modern-go/reflect2"
mkdir -p "$tree/vendor/github.com/modern-go/reflect2"
find "$r2" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
  -exec cp {} "$tree/vendor/github.com/modern-go/reflect2/" \;

# GOPATH mode, as the v1.20 build scripts expect.
mkdir -p "$work/gopath/src/k8s.io"
ln -s "$tree" "$work/gopath/src/k8s.io/kubernetes"
log "building ${wanted[*]} (a few minutes on 2 cores)"
(
  cd "$work/gopath/src/k8s.io/kubernetes"
  export GOPATH=$work/gopath GO111MODULE=off GOFLAGS=-mod=vendor CGO_ENABLED=0 GOPROXY=off \
         GOCACHE=$work/gocache KUBE_GIT_VERSION=v$VERSION KUBE_GIT_TREE_STATE=clean
  unset GOFLAGS
  make WHAT="cmd/kube-apiserver cmd/kube-scheduler cmd/kube-controller-manager" >&2
)
out=$(find "$tree/_output" -type f -name kube-apiserver -path '*/bin/*' | head -n1)
mkdir -p "$bin.tmp"
for b in "${wanted[@]}"; do cp "$(dirname "$out")/$b" "$bin.tmp/$b"; chmod 755 "$bin.tmp/$b"; done
rm -rf "$bin"; mv "$bin.tmp" "$bin"
as_root rm -f "$srcfile" /etc/apt/sources.list.d/gibbous-deb-src.list
log "done: $bin"
echo "$bin"

#!/usr/bin/env bash
# Build the peers bench/race.py races Gibbous against, from the Go module proxy, into a
# per-user cache keyed by version:
#   karpenter-kwok  sigs.k8s.io/karpenter/kwok  (Karpenter with its KWOK cloud provider)
#   kwok            sigs.k8s.io/kwok/cmd/kwok   (the KWOK controller: fake nodes Ready, pods Running)
# and copy beside them the files they need at run time: Karpenter's CRDs (kwok/charts/crds,
# kwok/apis/crds) and KWOK's fast node/pod and heartbeat stages (kustomize/stage).
#
# Usage: build-peers.sh [CACHE_DIR]
#   CACHE_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/gibbous/peers-karpenter-KV-kwok-WV
# Prints the cache directory on the last line of stdout. Idempotent: a complete cache is
# reused and nothing is fetched.
#
# Each program has a module of Gibbous's own beside this file (peerbuild/karpenter,
# peerbuild/kwok) that requires it; go.sum pins every module's hash. Karpenter v1.15.0's
# go.mod asks for Go >= 1.26.9, newer than the Go 1.26.8 CI has, so it is built with
# GOTOOLCHAIN=go1.27.3: the go command fetches that toolchain from the Go module proxy
# (about 10 s, once). KWOK builds with the installed Go. Needs Go on PATH and the Go
# module proxy; no root, no C compiler (CGO_ENABLED=0).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
KARPENTER_TOOLCHAIN=go1.27.3
version_of() { awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$here/peerbuild/$1/go.mod"; }
KARPENTER=$(version_of karpenter sigs.k8s.io/karpenter)
KWOK=$(version_of kwok sigs.k8s.io/kwok)
[ -n "$KARPENTER" ] && [ -n "$KWOK" ] || { echo "build-peers: no version in peerbuild/*/go.mod" >&2; exit 1; }
cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/gibbous/peers-karpenter-$KARPENTER-kwok-$KWOK}
bin=$cache/bin
complete() { [ -x "$bin/karpenter-kwok" ] && [ -x "$bin/kwok" ] && [ -d "$cache/karpenter-crds" ] && [ -d "$cache/kwok-stages" ]; }
if complete; then echo "$cache"; exit 0; fi

log() { echo "build-peers: $*" >&2; }
if ! command -v go >/dev/null; then
  log "needs Go on PATH (any 1.21+; Karpenter $KARPENTER is built with GOTOOLCHAIN=$KARPENTER_TOOLCHAIN, which the go command fetches from the Go module proxy) to build the race's peers; or set KARPENTER_KWOK_BIN and KWOK_BIN"
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/gibbous-peerbuild.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$here/peerbuild/." "$work/"
rm -rf "$cache.tmp"; mkdir -p "$cache.tmp/bin"

build() {  # build DIR TOOLCHAIN OUTPUT PACKAGE
  ( cd "$work/$1" && CGO_ENABLED=0 GOTOOLCHAIN=$2 GOFLAGS="-mod=readonly -buildvcs=false" \
      go build -trimpath -ldflags "-s -w" -o "$cache.tmp/bin/$3" "$4" >&2 )
}
module_dir() { ( cd "$work/$1" && GOTOOLCHAIN=$2 GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' "$3" ); }

log "building Karpenter $KARPENTER's KWOK provider with GOTOOLCHAIN=$KARPENTER_TOOLCHAIN (several minutes on 2 cores the first time)"
build karpenter "$KARPENTER_TOOLCHAIN" karpenter-kwok sigs.k8s.io/karpenter/kwok
karpenter_src=$(module_dir karpenter "$KARPENTER_TOOLCHAIN" sigs.k8s.io/karpenter)
mkdir -p "$cache.tmp/karpenter-crds"
cp "$karpenter_src"/kwok/charts/crds/*.yaml "$karpenter_src"/kwok/apis/crds/*.yaml "$cache.tmp/karpenter-crds/"

log "building the KWOK controller $KWOK"
build kwok local kwok sigs.k8s.io/kwok/cmd/kwok
kwok_src=$(module_dir kwok local sigs.k8s.io/kwok)
mkdir -p "$cache.tmp/kwok-stages"
for stage in node/fast node/heartbeat pod/fast; do
  for file in "$kwok_src/kustomize/stage/$stage"/*.yaml; do
    [ "$(basename "$file")" = kustomization.yaml ] || cp "$file" "$cache.tmp/kwok-stages/"
  done
done
chmod -R u+w "$cache.tmp"
rm -rf "$cache"; mv "$cache.tmp" "$cache"
log "done: $cache"
echo "$cache"

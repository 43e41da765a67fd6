//go:build tools

// Package karpenter pins Karpenter's KWOK provider (sigs.k8s.io/karpenter/kwok), the real
// Karpenter that bench/race.py races Gibbous against (see build-peers.sh). The build tag keeps
// it out of every build; it is here so that `go mod tidy` keeps its modules in go.mod and go.sum.
package karpenter

import (
	_ "sigs.k8s.io/karpenter/kwok"
)

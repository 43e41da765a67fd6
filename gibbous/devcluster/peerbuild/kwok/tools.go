//go:build tools

// Package kwok pins the KWOK controller (sigs.k8s.io/kwok/cmd/kwok), the node stand-in of
// bench/race.py's clusters (see build-peers.sh). The build tag keeps it out of every build; it
// is here so that `go mod tidy` keeps its modules in go.mod and go.sum.
package kwok

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)

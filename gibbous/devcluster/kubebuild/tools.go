//go:build tools

// Package kubebuild pins the control-plane commands Gibbous builds for its end-to-end tests
// and the dev cluster (see build-kubernetes-modules.sh). The build tag keeps it out of every
// build; it is here so that `go mod tidy` keeps their modules in go.mod and go.sum.
package kubebuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)

//go:build tools

// Package tools pins the Kubernetes control-plane commands that the e2e
// cluster builds (see ../cluster.sh). It is never compiled; it only keeps
// `go mod tidy` from dropping the requirements those commands need.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
)

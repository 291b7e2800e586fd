//go:build tools

// Package envtest pins the control-plane commands built by hack/setup-envtest.sh.
package envtest

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)

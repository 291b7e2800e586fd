//go:build tools

// Package helm pins the helm command built by `make helm`.
package helm

import (
	_ "helm.sh/helm/v4/cmd/helm"
)

//go:build tools

// Package tools pins the Prometheus server that e2e/node.sh builds into the demo's local
// Prometheus image (`go build github.com/prometheus/prometheus/cmd/prometheus`). It is never
// compiled; it only keeps `go mod tidy` from dropping the requirement. Module v0.305.0 is
// Prometheus 3.5.0, the version of the upstream image the demo profile renders.
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"

//go:build tools

// Package conformance runs the Gateway API conformance suite against
// sekisho; this file pins echo-basic, the suite's backend, in go.mod.
package conformance

import _ "sigs.k8s.io/gateway-api/conformance/echo-basic"

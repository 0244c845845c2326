// Package crds holds sekisho's Kubernetes APIs and the CustomResourceDefinitions
// a cluster needs for them.
//
//   - config/v1alpha1: config.sekisho.dev, GatewayClassConfig (GatewayClass parameters).
//   - generated/: the CRD YAML controller-gen makes from every API package here.
//   - gateway-api/: the Gateway API standard-channel CRDs, copied from the
//     sigs.k8s.io/gateway-api module go.mod pins.
//   - gateway-api-experimental/: the experimental-channel CRDs of the same
//     module: file mode validates against them (it accepts experimental fields
//     such as HTTPRoute retry), and the extended conformance run installs them.
//
// Each API package's zz_generated.deepcopy.go, generated/, gateway-api/,
// gateway-api-experimental/, the Helm
// chart's crds/ and deploy/install.yaml are all generated: `make generate` rewrites
// them, and TestGenerated fails when a checked-in copy differs from what the
// generators make. A new API package (policy/v1alpha1, say) needs only the
// `+kubebuilder:object:generate=true` and `+groupName` markers on its package.
package crds

import "embed"

// FS holds generated/*.yaml and gateway-api/*.yaml: every CRD sekisho installs.
//
//go:embed generated/*.yaml gateway-api/*.yaml
var FS embed.FS

// ExperimentalFS holds generated/*.yaml and gateway-api-experimental/*.yaml:
// sekisho's CRDs with the Gateway API's experimental channel, the set file
// mode validates against.
//
//go:embed generated/*.yaml gateway-api-experimental/*.yaml
var ExperimentalFS embed.FS

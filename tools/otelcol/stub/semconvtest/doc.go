// Package semconvtest stands in for the contrib module of the same path,
// which the module proxy lists but refuses to serve (403 on every .zip).
// Only k8sattributesprocessor's integration tests import it, so nothing in
// the Collector binary uses this package; it exists so `go mod tidy` can
// complete. See tools/otelcol/manifest.yaml.
package semconvtest

package controllers

// Operator metrics, on controller-runtime's registry so that the manager's
// metrics endpoint serves them.

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// signingKeyNextRotation is when each AuthorizationServer's signing keys
// next rotate; an alert compares it with the time, so a rotation the
// operator failed to carry out shows.
var signingKeyNextRotation = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "certbound_signing_key_next_rotation_timestamp_seconds",
	Help: "When the AuthorizationServer's signing keys next rotate (Unix time): its published successor starts signing, or the signer's rotation period ends and a successor is published.",
}, []string{"namespace", "authorizationserver"})

func init() {
	metrics.Registry.MustRegister(signingKeyNextRotation)
}

func recordNextRotation(namespace, name string, at time.Time) {
	signingKeyNextRotation.WithLabelValues(namespace, name).Set(float64(at.UnixNano()) / 1e9)
}

// forgetServerMetrics removes a deleted AuthorizationServer's series, so
// that its last rotation time does not go overdue.
func forgetServerMetrics(namespace, name string) {
	signingKeyNextRotation.DeleteLabelValues(namespace, name)
}

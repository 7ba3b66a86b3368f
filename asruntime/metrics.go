package asruntime

// Prometheus metrics of the authorization server, on a registry of its own
// so that embedding the server (tests, other binaries) never collides with
// the global default registry.

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds the server's collectors. A nil *Metrics records nothing.
type Metrics struct {
	registry *prometheus.Registry

	tokenRequests      *prometheus.CounterVec
	issued             prometheus.Counter
	authFailures       map[authFailure]prometheus.Counter
	registryLoadErrors prometheus.Counter
	clientsLoaded      prometheus.Gauge
	jwksFetchErrors    prometheus.Counter
}

// NewMetrics registers the collectors, plus the Go and process collectors,
// on a new registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		registry: reg,
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certbound_as_token_requests_total",
			Help: "Token endpoint requests by outcome: issued, or the OAuth error code returned.",
		}, []string{"outcome"}),
		registryLoadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certbound_as_registry_load_errors_total",
			Help: "Client registration documents that could not be read or were refused, counted at every registry load.",
		}),
		clientsLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certbound_as_clients_loaded",
			Help: "Clients in the current registry snapshot.",
		}),
		jwksFetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certbound_as_jwks_uri_fetch_errors_total",
			Help: "Failed fetches of a self_signed_tls_client_auth client's jwks_uri.",
		}),
		authFailures: make(map[authFailure]prometheus.Counter, len(authFailures)),
	}
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certbound_as_client_auth_failures_total",
		Help: "Failed client authentications at the token endpoint by reason.",
	}, []string{"reason"})
	for _, f := range authFailures {
		m.authFailures[f] = failures.WithLabelValues(string(f))
	}
	m.issued = m.tokenRequests.WithLabelValues("issued")
	reg.MustRegister(m.tokenRequests, failures, m.registryLoadErrors, m.clientsLoaded, m.jwksFetchErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Registry is the Prometheus registry the collectors are on.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

func (m *Metrics) tokenIssued() {
	if m != nil {
		m.issued.Inc()
	}
}

func (m *Metrics) tokenFailed(code string) {
	if m != nil {
		m.tokenRequests.WithLabelValues(code).Inc()
	}
}

func (m *Metrics) clientAuthFailed(f authFailure) {
	if m != nil {
		m.authFailures[f].Inc()
	}
}

func (m *Metrics) registryLoaded(clients, rejected int) {
	if m != nil {
		m.clientsLoaded.Set(float64(clients))
		m.registryLoadErrors.Add(float64(rejected))
	}
}

func (m *Metrics) jwksFetchError() {
	if m != nil {
		m.jwksFetchErrors.Inc()
	}
}

package asruntime

// Prometheus metrics of the authorization server, on a registry of its own
// so that embedding the server (tests, other binaries) never collides with
// the global default registry.

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/certbound/certbound/asruntime/certrevocation"
)

// Metrics holds the server's collectors. A nil *Metrics records nothing.
type Metrics struct {
	registry *prometheus.Registry

	tokenRequests      *prometheus.CounterVec
	tokenLatency       tokenLatency
	issued             prometheus.Counter
	authFailures       map[authFailure]prometheus.Counter
	registryLoadErrors prometheus.Counter
	clientsLoaded      prometheus.Gauge
	jwksFetchErrors    prometheus.Counter
	jwksFetchRefusals  *prometheus.CounterVec

	revocationChecks  map[certrevocation.Status]prometheus.Counter
	crlFetchErrors    prometheus.Counter
	crlFileLoadErrors prometheus.Counter

	introspections       *prometheus.CounterVec
	introspectionLatency prometheus.Observer
	revocations          *prometheus.CounterVec
	revocationLatency    prometheus.Observer
	headerIgnored        prometheus.Counter
	revocationEntries    prometheus.Gauge
	revocationRefusals   *prometheus.CounterVec
	// publicClients are the token exchange and refresh metrics.
	publicClients publicClientMetrics
}

// NewMetrics registers the collectors, plus the Go and process collectors,
// on a new registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		registry: reg,
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certbound_as_token_requests_total",
			Help: "Token endpoint requests by outcome: " + outcomeIssued + ", or the OAuth error code returned.",
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
		jwksFetchRefusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certbound_as_jwks_uri_fetches_refused_total",
			Help: "jwks_uri fetches refused by reason: rate_limited (the client's fetch budget is used up), destination_not_allowed (a special-purpose address outside --jwks-uri-allowed-cidrs), redirect_not_allowed (off the origin or off https).",
		}, []string{"reason"}),
		authFailures: make(map[authFailure]prometheus.Counter, len(authFailures)),
		introspections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certbound_as_introspection_requests_total",
			Help: "Introspection requests (RFC 7662) by outcome: active, inactive, not_permitted (answered inactive: the caller is neither the token's client nor a resource server of its audience), or the OAuth error code returned.",
		}, []string{"outcome"}),
		revocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certbound_as_revocation_requests_total",
			Help: "Revocation requests (RFC 7009) by outcome: revoked, ignored (unknown, invalid or expired token), or the OAuth error code returned.",
		}, []string{"outcome"}),
		headerIgnored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "certbound_as_client_cert_header_ignored_total",
			Help: "Requests carrying the forwarded client certificate header from an address outside --trusted-proxy-cidrs, or without the --trusted-proxy-subject certificate when one is required; the header was ignored.",
		}),
		revocationEntries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "certbound_as_revocation_store_entries",
			Help: "Unexpired revoked tokens in the revocation store, at the last prune.",
		}),
	}
	introspectionLatency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "certbound_as_introspection_duration_seconds",
		Help:    "Time to answer an introspection request, client authentication included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	})
	revocationLatency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "certbound_as_revocation_duration_seconds",
		Help:    "Time to answer a revocation request, the durable write included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	})
	m.introspectionLatency, m.revocationLatency = introspectionLatency, revocationLatency
	failures := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certbound_as_client_auth_failures_total",
		Help: "Failed client authentications at the token, introspection and revocation endpoints by reason.",
	}, []string{"reason"})
	for _, f := range authFailures {
		m.authFailures[f] = failures.WithLabelValues(string(f))
	}
	for _, f := range revocationFailures {
		m.authFailures[f] = failures.WithLabelValues(string(f))
	}
	revocationChecks := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certbound_as_client_certificate_revocation_checks_total",
		Help: "Revocation checks of tls_client_auth chains by result: good, revoked, unavailable (refused when failing closed, accepted when failing open).",
	}, []string{"result"})
	m.revocationChecks = map[certrevocation.Status]prometheus.Counter{}
	for _, s := range []certrevocation.Status{certrevocation.Good, certrevocation.Revoked, certrevocation.Unavailable} {
		m.revocationChecks[s] = revocationChecks.WithLabelValues(string(s))
	}
	m.crlFetchErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "certbound_as_crl_fetch_errors_total",
		Help: "Failed fetches of CRLs from certificates' CRL distribution points.",
	})
	m.crlFileLoadErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "certbound_as_crl_file_load_errors_total",
		Help: "CRL file reloads that failed; the file's previous CRL stays in use until it is stale.",
	})
	reg.MustRegister(revocationChecks, m.crlFetchErrors, m.crlFileLoadErrors)
	m.revocationRefusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certbound_as_revocation_refusals_total",
		Help: "Revocation requests answered 503 by the limit that refused them: rate_limit (the client's request rate), client_quota (the client's revoked, unexpired tokens in the store), store_full (the store's size).",
	}, []string{"limit"})
	for _, l := range []string{refusalRateLimit, refusalClientQuota, refusalStoreFull} {
		m.revocationRefusals.WithLabelValues(l)
	}
	reg.MustRegister(m.revocationRefusals)
	m.issued = m.tokenRequests.WithLabelValues(outcomeIssued)
	m.tokenLatency = newTokenLatency(reg)
	m.publicClients = newPublicClientMetrics(reg)
	for _, r := range jwksRefusalReasons {
		m.jwksFetchRefusals.WithLabelValues(r)
	}
	reg.MustRegister(m.tokenRequests, failures, m.registryLoadErrors, m.clientsLoaded, m.jwksFetchErrors, m.jwksFetchRefusals,
		m.introspections, introspectionLatency, m.revocations, revocationLatency, m.headerIgnored, m.revocationEntries,
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

// tokenServed observes the time a token request took, once per request.
func (m *Metrics) tokenServed(grantType, outcome string, start time.Time) {
	if m != nil {
		m.tokenLatency.observer(grantType, outcome).Observe(time.Since(start).Seconds())
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

func (m *Metrics) jwksFetchRefused(reason string) {
	if m != nil {
		m.jwksFetchRefusals.WithLabelValues(reason).Inc()
	}
}

// RevocationChecked counts one revocation check by result; with
// CRLFetchFailed and CRLFileLoadFailed it makes Metrics a
// certrevocation.Observer.
func (m *Metrics) RevocationChecked(s certrevocation.Status) {
	if m != nil {
		m.revocationChecks[s].Inc()
	}
}

// CRLFetchFailed counts a failed distribution-point fetch.
func (m *Metrics) CRLFetchFailed() {
	if m != nil {
		m.crlFetchErrors.Inc()
	}
}

// CRLFileLoadFailed counts a failed CRL file reload.
func (m *Metrics) CRLFileLoadFailed() {
	if m != nil {
		m.crlFileLoadErrors.Inc()
	}
}

func (m *Metrics) introspected(outcome string, start time.Time) {
	if m != nil {
		m.introspections.WithLabelValues(outcome).Inc()
		m.introspectionLatency.Observe(time.Since(start).Seconds())
	}
}

func (m *Metrics) revoked(outcome string, start time.Time) {
	if m != nil {
		m.revocations.WithLabelValues(outcome).Inc()
		m.revocationLatency.Observe(time.Since(start).Seconds())
	}
}

// ClientCertHeaderIgnored counts a request whose forwarded client
// certificate header was ignored because it did not come from a trusted
// proxy; it is the clientcert.Config OnIgnored hook.
func (m *Metrics) ClientCertHeaderIgnored(*http.Request) {
	if m != nil {
		m.headerIgnored.Inc()
	}
}

func (m *Metrics) revocationStoreSize(n int) {
	if m != nil {
		m.revocationEntries.Set(float64(n))
	}
}

func (m *Metrics) revocationRefused(limit string) {
	if m != nil {
		m.revocationRefusals.WithLabelValues(limit).Inc()
	}
}

// outcomeIssued is the outcome label of a token request that got a token.
const outcomeIssued = "issued"

// grantTypeOther labels a token request whose grant_type is missing or not
// one this server knows, so a client cannot create label values.
const grantTypeOther = "other"

// tokenGrantTypes are the grant_type label values besides grantTypeOther.
var tokenGrantTypes = []string{GrantTypeClientCredentials, GrantTypeTokenExchange, GrantTypeRefreshToken}

// tokenOutcomes are the outcome label values: issued, or an OAuth error code
// the token endpoint answers with (RFC 6749 §5.2, RFC 8693 §2.2.2).
var tokenOutcomes = []string{
	outcomeIssued, "invalid_request", "invalid_client", "invalid_grant", "invalid_scope", "invalid_target",
	"unauthorized_client", "unsupported_grant_type", "server_error", "temporarily_unavailable",
}

// tokenLatency is the token endpoint's latency histogram with every
// observer resolved up front: the endpoint's hot path only looks one up.
type tokenLatency struct {
	vec       *prometheus.HistogramVec
	observers map[tokenLatencyLabels]prometheus.Observer
}

type tokenLatencyLabels struct{ grantType, outcome string }

func newTokenLatency(reg *prometheus.Registry) tokenLatency {
	vec := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "certbound_as_token_request_duration_seconds",
		Help: "Time to answer a token request, client authentication and signing included, by grant_type (" +
			strings.Join(tokenGrantTypes, ", ") + ", or " + grantTypeOther + ") and outcome (" + outcomeIssued +
			", or the OAuth error code returned).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	}, []string{"grant_type", "outcome"})
	reg.MustRegister(vec)
	l := tokenLatency{vec: vec, observers: make(map[tokenLatencyLabels]prometheus.Observer, (len(tokenGrantTypes)+1)*len(tokenOutcomes))}
	for _, g := range append(slices.Clone(tokenGrantTypes), grantTypeOther) {
		for _, o := range tokenOutcomes {
			l.observers[tokenLatencyLabels{g, o}] = vec.WithLabelValues(g, o)
		}
	}
	return l
}

// observer is the observer of a request's labels, the grant type folded to
// grantTypeOther unless it is a known one.
func (l tokenLatency) observer(grantType, outcome string) prometheus.Observer {
	if !slices.Contains(tokenGrantTypes, grantType) {
		grantType = grantTypeOther
	}
	if o, ok := l.observers[tokenLatencyLabels{grantType, outcome}]; ok {
		return o
	}
	// An error code missing from tokenOutcomes: still a constant of this
	// server, so still a bounded label value.
	return l.vec.WithLabelValues(grantType, outcome)
}

package asruntime

import "github.com/prometheus/client_golang/prometheus"

// publicClientMetrics count the token exchange and refresh grants by
// outcome, with every label value created up front so a dashboard sees
// zeros rather than gaps.
type publicClientMetrics struct {
	exchanges map[string]prometheus.Counter
	refreshes map[refreshOutcome]prometheus.Counter
	families  prometheus.Gauge
}

func newPublicClientMetrics(reg *prometheus.Registry) publicClientMetrics {
	exchanges := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certbound_as_token_exchanges_total",
		Help: "Token exchange grants (RFC 8693) that reached the subject token check, by outcome: issued, subject_token_rejected, service_account_mismatch, token_review_unavailable, refresh_store_unavailable.",
	}, []string{"outcome"})
	refreshes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "certbound_as_refreshes_total",
		Help: "refresh_token grants by outcome: rotated, or why the token was refused (unknown_token, expired, client_mismatch, certificate_mismatch, reused — the family was revoked —, registration_changed).",
	}, []string{"outcome"})
	families := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "certbound_as_refresh_token_families",
		Help: "Unexpired refresh-token families in the store, at the last prune.",
	})
	reg.MustRegister(exchanges, refreshes, families)
	m := publicClientMetrics{
		exchanges: make(map[string]prometheus.Counter, len(exchangeOutcomes)),
		refreshes: make(map[refreshOutcome]prometheus.Counter, len(refreshOutcomes)),
		families:  families,
	}
	for _, o := range exchangeOutcomes {
		m.exchanges[o] = exchanges.WithLabelValues(o)
	}
	for _, o := range refreshOutcomes {
		m.refreshes[o] = refreshes.WithLabelValues(string(o))
	}
	return m
}

func (m *Metrics) exchanged(outcome string) {
	if m != nil {
		m.publicClients.exchanges[outcome].Inc()
	}
}

func (m *Metrics) refreshed(outcome refreshOutcome) {
	if m != nil {
		m.publicClients.refreshes[outcome].Inc()
	}
}

func (m *Metrics) refreshFamilies(n int) {
	if m != nil {
		m.publicClients.families.Set(float64(n))
	}
}

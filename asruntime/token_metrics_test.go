package asruntime

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

const tokenLatencyMetric = "certbound_as_token_request_duration_seconds"

func TestTokenRequestLatencyLabels(t *testing.T) {
	const secret = "s3cret+/=-correct-horse-battery-staple"
	as := startAS(t, map[string]map[string]any{
		"post.json":    secretClient("post", AuthMethodClientSecretPost, nil),
		"nogrant.json": secretClient("nogrant", AuthMethodClientSecretPost, map[string]any{"grant_types": nil}),
	})
	m := as.srv.Metrics()
	for _, tc := range []struct {
		name               string
		method             string
		form               url.Values
		grantType, outcome string
	}{
		{"issued", http.MethodPost, ccForm("post", "client_secret", secret), GrantTypeClientCredentials, outcomeIssued},
		{"wrong secret", http.MethodPost, ccForm("post", "client_secret", secret+"x"), GrantTypeClientCredentials, "invalid_client"},
		{"grant not registered", http.MethodPost, ccForm("nogrant", "client_secret", secret), GrantTypeClientCredentials, "unauthorized_client"},
		{"refresh without public grants", http.MethodPost, url.Values{"grant_type": {GrantTypeRefreshToken}, "client_id": {"post"}, "client_secret": {secret}}, GrantTypeRefreshToken, "unsupported_grant_type"},
		{"unknown grant folded to other", http.MethodPost, url.Values{"grant_type": {"password"}, "client_id": {"post"}, "client_secret": {secret}}, grantTypeOther, "unsupported_grant_type"},
		{"no grant_type", http.MethodPost, url.Values{"client_id": {"post"}, "client_secret": {secret}}, grantTypeOther, "invalid_request"},
		{"GET", http.MethodGet, nil, grantTypeOther, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := histogramCounts(t, m)
			req := httptest.NewRequest(tc.method, tokenPath, strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			as.srv.handleToken(httptest.NewRecorder(), req)
			after := histogramCounts(t, m)
			want := tokenLatencyLabels{tc.grantType, tc.outcome}
			if got := after[want] - before[want]; got != 1 {
				t.Errorf("%v observed %d times, want 1", want, got)
			}
			if got, wantTotal := total(after)-total(before), uint64(1); got != wantTotal {
				t.Errorf("%d observations in all, want %d", got, wantTotal)
			}
		})
	}
	// Every label pair exists from the start, and a client cannot add one.
	if got, want := testutil.CollectAndCount(m.tokenLatency.vec), (len(tokenGrantTypes)+1)*len(tokenOutcomes); got != want {
		t.Errorf("%d series, want %d", got, want)
	}
	if problems, err := testutil.GatherAndLint(m.Registry(), tokenLatencyMetric); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

// histogramCounts are the token latency histogram's sample counts by labels.
func histogramCounts(t *testing.T, m *Metrics) map[tokenLatencyLabels]uint64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[tokenLatencyLabels]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != tokenLatencyMetric {
			continue
		}
		for _, s := range mf.GetMetric() {
			var l tokenLatencyLabels
			for _, p := range s.GetLabel() {
				switch p.GetName() {
				case "grant_type":
					l.grantType = p.GetValue()
				case "outcome":
					l.outcome = p.GetValue()
				}
			}
			counts[l] = s.GetHistogram().GetSampleCount()
		}
	}
	return counts
}

func total(counts map[tokenLatencyLabels]uint64) uint64 {
	var n uint64
	for _, c := range counts {
		n += c
	}
	return n
}

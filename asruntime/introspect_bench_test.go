package asruntime

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// BenchmarkIntrospectKeepAliveMTLS: introspection of a bound token by a
// tls_client_auth caller over kept-alive mTLS connections, client and
// server in this process.
func BenchmarkIntrospectKeepAliveMTLS(b *testing.B) {
	f := newBenchFixture(b)
	token := f.as.tokenFor(b, &f.pkiCert, "pki")
	body := []byte(url.Values{"client_id": {"pki"}, "token": {token}}.Encode())
	f.run(b, introspectionPath, f.transport(&f.pkiCert, true), body)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "introspections/s")
}

// BenchmarkIntrospectHandler is the server's share of one introspection
// (client authentication, signature check, revocation lookup in a
// directory store), without TLS or the HTTP client.
func BenchmarkIntrospectHandler(b *testing.B) {
	f := newBenchFixture(b)
	store := openStore(b, b.TempDir(), 0)
	f.as.srv.revocations = store
	token := f.as.tokenFor(b, &f.pkiCert, "pki")
	body := []byte(url.Values{"client_id": {"pki"}, "token": {token}}.Encode())
	state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{f.pkiCert.Leaf}}
	ctx := context.WithValue(context.Background(), connKey{}, &connState{})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, introspectionPath, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.TLS = state
		w := httptest.NewRecorder()
		f.as.srv.handleIntrospect(w, req)
		if w.Code != http.StatusOK || !bytes.HasPrefix(w.Body.Bytes(), []byte(`{"active":true`)) {
			b.Fatalf("HTTP %d %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "introspections/s")
}

// BenchmarkRevocationPropagation: one op is a revocation at one server and
// introspections at another server sharing the state directory until the
// token is inactive there. polls/op above 1 would mean a propagation delay;
// ns/op is the revocation round trip (two fsyncs included) plus one
// introspection.
func BenchmarkRevocationPropagation(b *testing.B) {
	state := b.TempDir()
	docs := map[string]map[string]any{"pki.json": pkiClient("pki", "tls_client_auth_subject_dn", "CN=billing,O=Acme")}
	first := startAS(b, docs, withRevocations(openStore(b, state, 0)))
	second := startAS(b, docs, replicaOf(first, openStore(b, state, 0)))
	cert := first.clientCA.leaf(b, x509.Certificate{Subject: pkix.Name{CommonName: "billing", Organization: []string{"Acme"}}})
	revoker, reader := first.client(&cert), second.client(&cert)
	polls := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		token := first.tokenFor(b, &cert, "pki")
		b.StartTimer()
		if a := postForm(b, revoker, first.mtlsURL+revocationPath, url.Values{"client_id": {"pki"}, "token": {token}}); a.status != http.StatusOK {
			b.Fatalf("revoke: %d %s", a.status, a.body)
		}
		for {
			polls++
			a := postForm(b, reader, second.mtlsURL+introspectionPath, url.Values{"client_id": {"pki"}, "token": {token}})
			if a.status != http.StatusOK {
				b.Fatalf("introspect: %d %s", a.status, a.body)
			}
			if a.body == `{"active":false}` {
				break
			}
		}
	}
	b.ReportMetric(float64(polls)/float64(b.N), "polls/op")
}

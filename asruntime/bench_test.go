package asruntime

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/asruntime/certrevocation"
	"github.com/certbound/certbound/internal/signingkey"
)

// typicalClaims is the size and shape of a bound token's claims.
func typicalClaims() []byte {
	return []byte(`{"iss":"https://as.example.com","sub":"billing","client_id":"billing","aud":"https://api.example.com",` +
		`"scope":"read write","iat":1700000000,"exp":1700000600,"jti":"3q2-7wAAAAAAAAAAAAAAAA",` +
		`"cnf":{"x5t#S256":"` + certbinding.Thumbprint([]byte("x")) + `"}}`)
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// benchSigningKeys makes a signing key of alg.
func benchSigningKeys(b *testing.B, alg jose.SignatureAlgorithm) *SigningKeys {
	key, err := signingkey.Generate(alg)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := newSigningKeys([]jose.JSONWebKey{key})
	if err != nil {
		b.Fatal(err)
	}
	return keys
}

// benchmarkSign is the raw rate at which keys sign a typical token on one
// core: the ceiling of the token endpoint's rate with that key.
func benchmarkSign(b *testing.B, alg jose.SignatureAlgorithm) {
	keys := benchSigningKeys(b, alg)
	claims := typicalClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := keys.sign(claims); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkES256Sign is the raw ES256 signing rate on one core.
func BenchmarkES256Sign(b *testing.B) { benchmarkSign(b, jose.ES256) }

// BenchmarkEdDSASign is the raw Ed25519 signing rate on one core, to
// compare with BenchmarkES256Sign in the same run.
func BenchmarkEdDSASign(b *testing.B) { benchmarkSign(b, jose.EdDSA) }

// BenchmarkES256SignParallel is the raw signing rate on all cores, the
// ceiling for the token endpoint benchmarks below.
func BenchmarkES256SignParallel(b *testing.B) {
	keys, err := GenerateSigningKeys()
	if err != nil {
		b.Fatal(err)
	}
	claims := typicalClaims()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := keys.sign(claims); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b)
}

// clientsPerCore is the number of concurrent clients per GOMAXPROCS in the
// endpoint benchmarks: with one, each core idles while its client waits
// for the round trip, and the benchmark measures latency, not throughput.
const clientsPerCore = 4

type benchFixture struct {
	as         *testAS
	pkiCert    tls.Certificate
	selfCert   tls.Certificate
	pkiBody    []byte
	selfBody   []byte
	transports []*http.Transport
}

func newBenchFixture(b *testing.B, opts ...asOption) *benchFixture {
	self, jwk := selfSigned(b, "self")
	as := startAS(b, map[string]map[string]any{
		"pki.json":  pkiClient("pki", "tls_client_auth_subject_dn", "CN=billing,O=Acme"),
		"self.json": selfSignedClient("self", map[string]any{"jwks": jwksJSON(b, jwk)}),
	}, opts...)
	f := &benchFixture{
		as:       as,
		pkiCert:  as.clientCA.leaf(b, x509.Certificate{Subject: pkix.Name{CommonName: "billing", Organization: []string{"Acme"}}}),
		selfCert: self,
		pkiBody:  []byte(ccForm("pki").Encode()),
		selfBody: []byte(ccForm("self").Encode()),
	}
	b.Cleanup(func() {
		for _, t := range f.transports {
			t.CloseIdleConnections()
		}
	})
	return f
}

func (f *benchFixture) transport(cert *tls.Certificate, keepAlive bool) *http.Transport {
	c := *cert
	t := &http.Transport{
		TLSClientConfig: &tls.Config{
			RootCAs:              f.as.servingCA.pool(),
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil },
			// A new handshake per request means a full one, not a resumption.
			SessionTicketsDisabled: !keepAlive,
		},
		DisableKeepAlives:   !keepAlive,
		MaxIdleConnsPerHost: 4 * runtime.GOMAXPROCS(0),
	}
	f.transports = append(f.transports, t)
	return t
}

// run posts body to the mTLS listener's path from parallel clients over t
// and fails on any answer but 200.
func (f *benchFixture) run(b *testing.B, path string, t *http.Transport, body []byte) {
	url := f.as.mtlsURL + path
	b.ReportAllocs()
	b.SetParallelism(clientsPerCore)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := t.RoundTrip(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("HTTP %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkTokenKeepAliveMTLS: tls_client_auth over kept-alive mTLS
// connections, client and server in this process.
func BenchmarkTokenKeepAliveMTLS(b *testing.B) {
	f := newBenchFixture(b)
	f.run(b, tokenPath, f.transport(&f.pkiCert, true), f.pkiBody)
	reportRate(b)
}

// BenchmarkTokenNewHandshake: tls_client_auth with a full TLS handshake
// (and so a chain verification) for every token.
func BenchmarkTokenNewHandshake(b *testing.B) {
	f := newBenchFixture(b)
	f.run(b, tokenPath, f.transport(&f.pkiCert, false), f.pkiBody)
	reportRate(b)
}

// BenchmarkTokenSelfSigned: self_signed_tls_client_auth over kept-alive
// connections.
func BenchmarkTokenSelfSigned(b *testing.B) {
	f := newBenchFixture(b)
	f.run(b, tokenPath, f.transport(&f.selfCert, true), f.selfBody)
	reportRate(b)
}

// BenchmarkTokenHandler is the server's share of a keep-alive request: the
// handler alone, without TLS or the HTTP client, so allocs/op are the
// server's allocations per token.
func BenchmarkTokenHandler(b *testing.B) { benchmarkTokenHandler(b) }

// BenchmarkTokenHandlerEdDSA is BenchmarkTokenHandler signing with an
// Ed25519 key.
func BenchmarkTokenHandlerEdDSA(b *testing.B) {
	keys := benchSigningKeys(b, jose.EdDSA)
	benchmarkTokenHandler(b, func(_ *testAS, cfg *Config) { cfg.SigningKeys = keys })
}

func benchmarkTokenHandler(b *testing.B, opts ...asOption) {
	f := newBenchFixture(b, opts...)
	state := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{f.pkiCert.Leaf}}
	ctx := context.WithValue(context.Background(), connKey{}, &connState{})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/token", bytes.NewReader(f.pkiBody))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.TLS = state
		w := httptest.NewRecorder()
		f.as.srv.handleToken(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("HTTP %d %s", w.Code, w.Body)
		}
	}
	reportRate(b)
}

// BenchmarkTokenKeepAliveMTLSLeanClient is BenchmarkTokenKeepAliveMTLS with
// a load generator's client instead of net/http's: one kept-alive TLS
// connection per goroutine writing a pre-encoded HTTP/1.1 request and
// reading the response by its Content-Length, so the cores the client and
// server share go mostly to the server.
func BenchmarkTokenKeepAliveMTLSLeanClient(b *testing.B) {
	f := newBenchFixture(b)
	addr := strings.TrimPrefix(f.as.mtlsURL, "https://")
	request := []byte("POST " + tokenPath + " HTTP/1.1\r\nHost: " + addr +
		"\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: " + strconv.Itoa(len(f.pkiBody)) + "\r\n\r\n" + string(f.pkiBody))
	cert := f.pkiCert
	cfg := &tls.Config{RootCAs: f.as.servingCA.pool(), Certificates: []tls.Certificate{cert}}
	b.ReportAllocs()
	b.SetParallelism(clientsPerCore)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		tp := textproto.NewReader(r)
		for pb.Next() {
			if _, err := conn.Write(request); err != nil {
				b.Error(err)
				return
			}
			status, err := tp.ReadLine()
			if err != nil || !strings.HasPrefix(status, "HTTP/1.1 200") {
				b.Errorf("status %q: %v", status, err)
				return
			}
			h, err := tp.ReadMIMEHeader()
			if err != nil {
				b.Error(err)
				return
			}
			n, err := strconv.Atoi(h.Get("Content-Length"))
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := r.Discard(n); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b)
}

// withBenchCRL checks the fixture's client certificates against a current
// CRL file of the client CA that lists one unrelated certificate, as the
// crl scenario of hack/bench-token does.
func withBenchCRL(b *testing.B) asOption {
	ca := newCRLCA(b, "client CA")
	unrelated := ca.leaf(b, x509.Certificate{Subject: pkix.Name{CommonName: "unrelated"}})
	crlFile := filepath.Join(b.TempDir(), "ca.crl")
	replaceFile(b, crlFile, ca.currentCRL(b, unrelated))
	return withRevocation(b, ca, certrevocation.Config{Files: []string{crlFile}})
}

// BenchmarkTokenHandlerCRL is BenchmarkTokenHandler with CRL checking on:
// the difference is what revocation checking costs a kept-alive client.
func BenchmarkTokenHandlerCRL(b *testing.B) { benchmarkTokenHandler(b, withBenchCRL(b)) }

// BenchmarkTokenKeepAliveMTLSCRL is BenchmarkTokenKeepAliveMTLS with CRL
// checking on.
func BenchmarkTokenKeepAliveMTLSCRL(b *testing.B) {
	f := newBenchFixture(b, withBenchCRL(b))
	f.run(b, tokenPath, f.transport(&f.pkiCert, true), f.pkiBody)
	reportRate(b)
}

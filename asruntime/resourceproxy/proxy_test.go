package resourceproxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certbound/certbound/asruntime/resourceproxy"
	"github.com/certbound/certbound/asruntime/resourceserver"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
)

const audience = "https://orders.example.test"

// upstream records the last request the protected service received.
type upstream struct {
	url  *url.URL
	mu   sync.Mutex
	last *http.Request
	hits int
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.last, u.hits = r, u.hits+1
		u.mu.Unlock()
		io.WriteString(w, "from upstream")
	}))
	t.Cleanup(srv.Close)
	u.url, _ = url.Parse(srv.URL + "/api")
	return u
}

func (u *upstream) seen() (*http.Request, int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last, u.hits
}

// startProxy runs a Proxy on a loopback listener until the test ends and
// returns its https URL and the CA that signed its serving certificate.
func startProxy(t *testing.T, cfg resourceproxy.Config) (string, *rstest.CA) {
	t.Helper()
	return startProxyWith(t, cfg, nil)
}

// startProxyWith is startProxy with a chance to adjust the Proxy before it
// serves.
func startProxyWith(t *testing.T, cfg resourceproxy.Config, adjust func(*resourceproxy.Proxy)) (string, *rstest.CA) {
	t.Helper()
	ca := rstest.NewCA(t, "proxy serving CA")
	serving := ca.ServingCertificate(t)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil }
	p, err := resourceproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if adjust != nil {
		adjust(p)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v after its context ended, want nil", err)
		}
	})
	return "https://" + ln.Addr().String(), ca
}

func client(serverCA *rstest.CA, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: serverCA.Pool()}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

func newVerifier(t *testing.T, as *rstest.Authority) *resourceserver.Verifier {
	t.Helper()
	v, err := resourceserver.New(resourceserver.Config{Issuer: as.Issuer, Audience: audience, RootCAs: as.CA.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestProxy(t *testing.T) {
	as := rstest.NewAuthority(t)
	up := newUpstream(t)
	registry := prometheus.NewRegistry()
	proxyURL, proxyCA := startProxy(t, resourceproxy.Config{Upstream: up.url, Verifier: newVerifier(t, as), Metrics: registry})
	clientCA := rstest.NewCA(t, "client CA")
	cert := clientCA.ClientCertificate(t, "orders-worker")
	other := clientCA.ClientCertificate(t, "orders-worker")
	token := as.Token(t, "orders", audience, &cert)

	for _, tc := range []struct {
		name            string
		cert            *tls.Certificate
		headers         http.Header
		wantStatus      int
		wantChallenge   string
		wantForwarded   bool
		wantUpstreamHdr map[string]string // "" means absent
	}{
		{
			name:          "a bound token with its certificate reaches upstream with the verified identity",
			cert:          &cert,
			headers:       http.Header{"Authorization": {"Bearer " + token}},
			wantStatus:    200,
			wantForwarded: true,
			wantUpstreamHdr: map[string]string{
				"X-Certbound-Client-Id": "orders", "X-Certbound-Scope": "read write", "Authorization": "",
			},
		},
		{
			name: "identity headers sent by the client are replaced or dropped",
			cert: &cert,
			headers: http.Header{
				"Authorization":         {"Bearer " + token},
				"X-Certbound-Client-Id": {"admin"},
				"X-Certbound-Scope":     {"everything"},
				"X-Certbound-Role":      {"root"},
				"x-certbound-lowercase": {"sneaky"},
			},
			wantStatus:    200,
			wantForwarded: true,
			wantUpstreamHdr: map[string]string{
				"X-Certbound-Client-Id": "orders", "X-Certbound-Scope": "read write",
				"X-Certbound-Role": "", "X-Certbound-Lowercase": "",
			},
		},
		{
			name:          "the token replayed with another certificate is refused",
			cert:          &other,
			headers:       http.Header{"Authorization": {"Bearer " + token}},
			wantStatus:    401,
			wantChallenge: `Bearer error="invalid_token", error_description="the access token is bound to a different client certificate"`,
		},
		{
			name:          "the token without a client certificate is refused",
			headers:       http.Header{"Authorization": {"Bearer " + token}},
			wantStatus:    401,
			wantChallenge: `Bearer error="invalid_token", error_description="the access token is certificate-bound but the connection has no client certificate"`,
		},
		{
			name:          "a request without a token gets a bare challenge",
			cert:          &cert,
			headers:       http.Header{"X-Certbound-Client-Id": {"admin"}},
			wantStatus:    401,
			wantChallenge: "Bearer",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, hitsBefore := up.seen()
			req, _ := http.NewRequest(http.MethodGet, proxyURL+"/orders/42", nil)
			for name, values := range tc.headers {
				req.Header[name] = values // as given, so non-canonical names reach the proxy
			}
			resp, err := client(proxyCA, tc.cert).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("WWW-Authenticate") != tc.wantChallenge {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), tc.wantStatus, tc.wantChallenge)
			}
			last, hits := up.seen()
			if forwarded := hits > hitsBefore; forwarded != tc.wantForwarded {
				t.Fatalf("forwarded upstream: %v, want %v", forwarded, tc.wantForwarded)
			}
			if !tc.wantForwarded {
				return
			}
			if last.URL.Path != "/api/orders/42" {
				t.Errorf("upstream path %q, want /api/orders/42", last.URL.Path)
			}
			for name, want := range tc.wantUpstreamHdr {
				if got := last.Header.Values(name); (want == "" && len(got) != 0) || (want != "" && (len(got) != 1 || got[0] != want)) {
					t.Errorf("upstream header %s = %q, want %q", name, got, want)
				}
			}
		})
	}

	counts := requestCounts(t, registry)
	want := map[string]float64{"Allowed": 2, "CertificateMismatch": 1, "MissingClientCertificate": 1, "MissingToken": 1}
	for result, n := range want {
		if counts[result] != n {
			t.Errorf("certbound_resource_proxy_requests_total{result=%q} = %v, want %v (all: %v)", result, counts[result], n, counts)
		}
	}
}

func requestCounts(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "certbound_resource_proxy_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			counts[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return counts
}

func TestProxyWithClientCAsAlsoChecksTheChain(t *testing.T) {
	as := rstest.NewAuthority(t)
	up := newUpstream(t)
	trusted := rstest.NewCA(t, "trusted client CA")
	proxyURL, proxyCA := startProxy(t, resourceproxy.Config{Upstream: up.url, Verifier: newVerifier(t, as), ClientCAs: trusted.Pool()})

	good := trusted.ClientCertificate(t, "orders-worker")
	resp, err := client(proxyCA, &good).Do(authorized(t, proxyURL, as.Token(t, "orders", audience, &good)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("certificate from the trusted CA: got %d, want 200", resp.StatusCode)
	}

	// Bound token and all: only the chain is wrong. The client sends its
	// certificate even though the server's list of acceptable CAs does not
	// name its issuer (Go's client would otherwise send none).
	stranger := rstest.NewCA(t, "untrusted CA").ClientCertificate(t, "orders-worker")
	insistent := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:              proxyCA.Pool(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger, nil },
	}}}
	if resp, err := insistent.Do(authorized(t, proxyURL, as.Token(t, "orders", audience, &stranger))); err == nil {
		resp.Body.Close()
		t.Fatalf("certificate from an untrusted CA: got %d, want a failed handshake", resp.StatusCode)
	}
}

func authorized(t *testing.T, target, token string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return req
}

func TestUnreachableUpstreamIsABadGateway(t *testing.T) {
	as := rstest.NewAuthority(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	ln.Close()
	proxyURL, proxyCA := startProxy(t, resourceproxy.Config{Upstream: dead, Verifier: newVerifier(t, as)})
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "orders-worker")
	resp, err := client(proxyCA, &cert).Do(authorized(t, proxyURL, as.Token(t, "orders", audience, &cert)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("got %d, want 502", resp.StatusCode)
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	as := rstest.NewAuthority(t)
	v := newVerifier(t, as)
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, errors.New("unused") }
	up := &url.URL{Scheme: "http", Host: "127.0.0.1:1"}
	for _, tc := range []struct {
		name string
		cfg  resourceproxy.Config
	}{
		{"no upstream", resourceproxy.Config{Verifier: v, GetCertificate: getCert}},
		{"a relative upstream", resourceproxy.Config{Upstream: &url.URL{Path: "/api"}, Verifier: v, GetCertificate: getCert}},
		{"no verifier", resourceproxy.Config{Upstream: up, GetCertificate: getCert}},
		{"no serving certificate", resourceproxy.Config{Upstream: up, Verifier: v}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := resourceproxy.New(tc.cfg); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

// writeKeyPair writes cert as PEM files in dir.
func writeKeyPair(t *testing.T, dir string, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePEM(t, certFile, "CERTIFICATE", cert.Certificate[0])
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	return certFile, keyFile
}

func writePEM(t *testing.T, file, blockType string, der []byte) {
	t.Helper()
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

package asruntime

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbound/certbound/internal/poll"
	"github.com/certbound/certbound/test/testenv"
	jose "github.com/go-jose/go-jose/v4"
	dto "github.com/prometheus/client_model/go"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

var serialCounter atomic.Int64

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func createCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl.SerialNumber = big.NewInt(serialCounter.Add(1))
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore = time.Now().Add(-time.Hour)
	}
	if tmpl.NotAfter.IsZero() {
		tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	}
	if parent == nil {
		parent = tmpl
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key := newKey(t)
	cert := createCert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, nil, key.Public(), key)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) intermediate(t testing.TB, cn string) *testCA {
	t.Helper()
	key := newKey(t)
	cert := createCert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}, ca.cert, key.Public(), ca.key)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// leaf issues a client certificate; tmpl sets subject, SANs, validity and
// usages (client auth unless tmpl says otherwise). chain is appended to the
// presented certificate list.
func (ca *testCA) leaf(t testing.TB, tmpl x509.Certificate, chain ...*x509.Certificate) tls.Certificate {
	t.Helper()
	key := newKey(t)
	if tmpl.ExtKeyUsage == nil {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	cert := createCert(t, &tmpl, ca.cert, key.Public(), ca.key)
	tc := tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	for _, c := range chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc
}

// selfSigned makes a self-signed client certificate and the public JWK
// that registers it (x5c[0] is the certificate).
func selfSigned(t testing.TB, cn string) (tls.Certificate, jose.JSONWebKey) {
	t.Helper()
	key := newKey(t)
	cert := createCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: cn}}, nil, key.Public(), key)
	jwk := jose.JSONWebKey{Key: key.Public(), Certificates: []*x509.Certificate{cert}, Use: "sig"}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, jwk
}

func jwksJSON(t testing.TB, keys ...jose.JSONWebKey) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeClient writes one registration document into dir.
func writeClient(t testing.TB, dir, name string, doc map[string]any) {
	t.Helper()
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pkiClient is the registration document of a tls_client_auth client.
func pkiClient(id, member, value string) map[string]any {
	return map[string]any{
		"client_id":                  id,
		"token_endpoint_auth_method": AuthMethodTLSClientAuth,
		"grant_types":                []string{GrantTypeClientCredentials},
		"scope":                      "read write",
		"tls_client_certificate_bound_access_tokens": true,
		member: value,
	}
}

// testAS is an authorization server running on loopback.
type testAS struct {
	srv        *Server
	servingCA  *testCA
	clientCA   *testCA
	clock      *fakeClock
	dir        string
	registry   *DirectoryRegistry
	publicURL  string
	mtlsURL    string
	metricsURL string
	servingDir string
	// certs serves the key pair in servingDir, as RunAuthorizationServer does.
	certs *certwatcher.CertWatcher
	// stop shuts the server down and waits for it; it runs at cleanup too.
	stop func()
}

type asOption func(*testAS, *Config)

// fakeClock is a clock.PassiveClock tests can move.
type fakeClock struct{ offset atomic.Int64 }

func (c *fakeClock) Now() time.Time                  { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *fakeClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
func (c *fakeClock) advance(d time.Duration)         { c.offset.Add(int64(d)) }

var _ clock.PassiveClock = (*fakeClock)(nil)

// startAS starts a server with a fresh serving CA, client CA and clients
// directory, on 127.0.0.1 ports chosen by the kernel.
func startAS(t testing.TB, docs map[string]map[string]any, opts ...asOption) *testAS {
	t.Helper()
	as := &testAS{servingCA: newCA(t, "serving CA"), clientCA: newCA(t, "client CA"), clock: &fakeClock{}, dir: t.TempDir(), servingDir: t.TempDir()}
	for name, doc := range docs {
		writeClient(t, as.dir, name, doc)
	}
	key := newKey(t)
	serving := createCert(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "as"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, as.servingCA.cert, key.Public(), as.servingCA.key)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(as.servingDir, "tls.crt"), filepath.Join(as.servingDir, "tls.key")
	writePEM(t, certFile, "CERTIFICATE", serving.Raw)
	writePEM(t, keyFile, "PRIVATE KEY", keyDER)
	as.certs, err = certwatcher.New(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	metrics := NewMetrics()
	as.registry, err = NewDirectoryRegistry(as.dir, log, metrics)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		GetCertificate: as.certs.GetCertificate,
		TrustAnchors:   as.clientCA.pool(),
		Registry:       as.registry,
		Clock:          as.clock,
		Logger:         log,
		Metrics:        metrics,
	}
	// Bound first, so that options see the server's URLs.
	ls, err := Listen("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	as.publicURL = "https://" + ls.Public.Addr().String()
	as.mtlsURL = "https://" + ls.MTLS.Addr().String()
	as.metricsURL = "http://" + ls.Metrics.Addr().String()
	cfg.Issuer = as.publicURL
	for _, o := range opts {
		o(as, &cfg)
	}
	as.srv, err = New(cfg)
	if err != nil {
		ls.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- as.srv.Serve(ctx, ls) }()
	go as.registry.Watch(ctx)
	watched := make(chan error, 1)
	go func() { watched <- as.certs.Start(ctx) }()
	var once sync.Once
	as.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			if err := <-watched; err != nil {
				t.Errorf("serving certificate watcher: %v", err)
			}
			ls.Close()
		})
	}
	t.Cleanup(as.stop)
	return as
}

// client is an HTTPS client trusting the serving CA, presenting cert if
// given.
func (as *testAS) client(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: as.servingCA.pool()}
	if cert != nil {
		c := *cert
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}

type tokenResponse struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r tokenResponse) errorCode() string {
	s, _ := r.body["error"].(string)
	return s
}

// post sends a token request.
func (as *testAS) post(t testing.TB, c *http.Client, base string, form url.Values, mutate ...func(*http.Request)) tokenResponse {
	t.Helper()
	got := postForm(t, c, base+tokenPath, form, mutate...)
	out := tokenResponse{status: got.status, header: got.header, raw: got.body}
	if err := json.Unmarshal([]byte(got.body), &out.body); err != nil {
		t.Fatalf("response %d is not JSON: %q", got.status, got.body)
	}
	return out
}

func ccForm(clientID string, kv ...string) url.Values {
	f := url.Values{"grant_type": {GrantTypeClientCredentials}}
	if clientID != "" {
		f.Set("client_id", clientID)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		f.Add(kv[i], kv[i+1])
	}
	return f
}

// claims verifies a token against the server's published JWKS and returns
// its claims and header type.
func (as *testAS) claims(t testing.TB, token string) map[string]any {
	t.Helper()
	resp, err := as.client(nil).Get(as.publicURL + jwksPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := jws.Signatures[0].Protected.ExtraHeaders["typ"]; typ != "at+jwt" {
		t.Fatalf("typ = %v, want at+jwt", typ)
	}
	keys := set.Key(jws.Signatures[0].Protected.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in the published JWKS", jws.Signatures[0].Protected.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// counterValue reads one sample of a counter or gauge; label may be empty.
func counterValue(t testing.TB, m *Metrics, name, label, value string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, s := range mf.GetMetric() {
			if label != "" && !hasLabel(s.GetLabel(), label, value) {
				continue
			}
			if s.Counter != nil {
				return s.Counter.GetValue()
			}
			return s.Gauge.GetValue()
		}
	}
	return 0
}

func hasLabel(labels []*dto.LabelPair, name, value string) bool {
	for _, l := range labels {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds, for at most 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 10*time.Second, what, func() (bool, string) { return cond(), "" })
}

// startControlPlane starts a real kube-apiserver and etcd (no cert-manager)
// for one test, stopped when it ends, and a context that ends after
// timeout; it skips the test in -short runs.
func startControlPlane(t *testing.T, timeout time.Duration) (*testenv.Environment, context.Context) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	env, err := testenv.Start(testenv.Options{WithoutCertManager: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return env, ctx
}

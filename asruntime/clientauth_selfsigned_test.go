package asruntime

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/internal/poll"
	jose "github.com/go-jose/go-jose/v4"
)

func selfSignedClient(id string, extra map[string]any) map[string]any {
	doc := map[string]any{
		"client_id":                  id,
		"token_endpoint_auth_method": AuthMethodSelfSignedTLSClientAuth,
		"grant_types":                []string{GrantTypeClientCredentials},
		"tls_client_certificate_bound_access_tokens": true,
	}
	for k, v := range extra {
		doc[k] = v
	}
	return doc
}

func TestSelfSignedInlineJWKS(t *testing.T) {
	registered, jwk := selfSigned(t, "worker")
	other, otherJWK := selfSigned(t, "worker")
	as := startAS(t, map[string]map[string]any{
		"worker.json": selfSignedClient("worker", map[string]any{"jwks": jwksJSON(t, jwk)}),
		"other.json":  selfSignedClient("other", map[string]any{"jwks": jwksJSON(t, otherJWK)}),
	})
	resp := as.post(t, as.client(&registered), as.mtlsURL, ccForm("worker"))
	if resp.status != http.StatusOK {
		t.Fatalf("registered certificate: %d %s", resp.status, resp.raw)
	}
	cnf := as.claims(t, resp.body["access_token"].(string))["cnf"].(map[string]any)
	if cnf["x5t#S256"] != certbinding.Thumbprint(registered.Certificate[0]) {
		t.Fatalf("cnf = %v", cnf)
	}
	// Another client's certificate, same subject and key type: the bytes
	// differ, so it is refused.
	if resp := as.post(t, as.client(&other), as.mtlsURL, ccForm("worker")); resp.status != http.StatusUnauthorized {
		t.Fatalf("unregistered certificate: %d %s", resp.status, resp.raw)
	}
	if resp := as.post(t, as.client(nil), as.mtlsURL, ccForm("worker")); resp.status != http.StatusUnauthorized {
		t.Fatalf("no certificate: %d %s", resp.status, resp.raw)
	}
}

// jwksServer is an https jwks_uri on loopback whose answers tests can
// change.
type jwksServer struct {
	srv          *httptest.Server
	body         atomic.Value // []byte
	cacheControl atomic.Value // string; empty sends none
	failing      atomic.Bool  // answer 503
	fetches      atomic.Int32
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	j := &jwksServer{}
	j.body.Store(body)
	j.cacheControl.Store("")
	j.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.fetches.Add(1)
		if j.failing.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if cc := j.cacheControl.Load().(string); cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(j.body.Load().([]byte))
	}))
	t.Cleanup(j.srv.Close)
	return j
}

// trusted makes the server under test trust srv's certificate (every
// httptest TLS server has the same one).
func trusted(srv *httptest.Server) asOption {
	return func(_ *testAS, c *Config) {
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		c.JWKSRootCAs = pool
	}
}

// loopbackAllowed lets jwks_uri fetches reach loopback, where the test
// servers listen.
func loopbackAllowed(_ *testAS, c *Config) {
	c.JWKSFetch.AllowedCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
}

// reachable makes j fetchable: trusted, and on an allowed range.
func (j *jwksServer) reachable() []asOption {
	return []asOption{trusted(j.srv), loopbackAllowed}
}

func TestSelfSignedJWKSURI(t *testing.T) {
	first, firstJWK := selfSigned(t, "worker")
	rotated, rotatedJWK := selfSigned(t, "worker")
	js := newJWKSServer(t, jwksJSON(t, firstJWK))
	as := startAS(t, map[string]map[string]any{
		"worker.json": selfSignedClient("worker", map[string]any{"jwks_uri": js.srv.URL + "/jwks"}),
	}, js.reachable()...)

	for range 3 {
		if resp := as.post(t, as.client(&first), as.mtlsURL, ccForm("worker")); resp.status != http.StatusOK {
			t.Fatalf("certificate from jwks_uri: %d %s", resp.status, resp.raw)
		}
	}
	if n := js.fetches.Load(); n != 1 {
		t.Fatalf("jwks_uri fetched %d times for three requests, want 1 (cached)", n)
	}

	// The client rotates: its new certificate is not in the cached set,
	// so one refetch finds it.
	js.body.Store([]byte(jwksJSON(t, rotatedJWK, firstJWK)))
	if resp := as.post(t, as.client(&rotated), as.mtlsURL, ccForm("worker")); resp.status != http.StatusOK {
		t.Fatalf("rotated certificate: %d %s", resp.status, resp.raw)
	}
	if n := js.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}
}

// A certificate removed from a jwks_uri stops authenticating within the
// maximum age, however often it is presented meanwhile.
func TestSelfSignedJWKSURIRemovedCertificate(t *testing.T) {
	removed, removedJWK := selfSigned(t, "worker")
	_, keptJWK := selfSigned(t, "worker")
	for name, c := range map[string]struct {
		cacheControl string
		// advance is how far the clock moves after the removal; when
		// stillServed, the cached set is presented once more, still
		// trusted, and starts a refresh in the background.
		advance     time.Duration
		stillServed bool
	}{
		"past half the maximum age a hit refreshes the set in the background": {advance: DefaultJWKSMaxAge/2 + time.Second, stillServed: true},
		"past the maximum age the set is refetched before it is used again":   {advance: DefaultJWKSMaxAge + time.Second},
		"a shorter Cache-Control max-age is honoured":                         {cacheControl: "max-age=60", advance: 61 * time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			js := newJWKSServer(t, jwksJSON(t, removedJWK, keptJWK))
			js.cacheControl.Store(c.cacheControl)
			as := startAS(t, map[string]map[string]any{
				"worker.json": selfSignedClient("worker", map[string]any{"jwks_uri": js.srv.URL}),
			}, js.reachable()...)
			if resp := as.post(t, as.client(&removed), as.mtlsURL, ccForm("worker")); resp.status != http.StatusOK {
				t.Fatalf("before the removal: %d %s", resp.status, resp.raw)
			}
			js.body.Store([]byte(jwksJSON(t, keptJWK)))
			as.clock.advance(c.advance)
			if c.stillServed {
				if resp := as.post(t, as.client(&removed), as.mtlsURL, ccForm("worker")); resp.status != http.StatusOK {
					t.Fatalf("within the maximum age, from the cache: %d %s", resp.status, resp.raw)
				}
			}
			// The clock stands still: the refusal comes within the age.
			poll.Until(t, 10*time.Second, "the removed certificate is refused", func() (bool, string) {
				resp := as.post(t, as.client(&removed), as.mtlsURL, ccForm("worker"))
				return resp.status == http.StatusUnauthorized && resp.errorCode() == "invalid_client", fmt.Sprintf("%d %s", resp.status, resp.errorCode())
			})
			if n := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failCertNotRegistered)); n == 0 {
				t.Fatal("the refusal is not counted as certificate_not_registered")
			}
		})
	}
}

// A set that cannot be refetched is served until its maximum age and then
// authenticates no one, until a refetch succeeds.
func TestSelfSignedJWKSURIFailsClosedPastMaxAge(t *testing.T) {
	cert, jwk := selfSigned(t, "worker")
	js := newJWKSServer(t, jwksJSON(t, jwk))
	as := startAS(t, map[string]map[string]any{
		"worker.json": selfSignedClient("worker", map[string]any{"jwks_uri": js.srv.URL}),
	}, js.reachable()...)
	token := func() tokenResponse { return as.post(t, as.client(&cert), as.mtlsURL, ccForm("worker")) }
	if resp := token(); resp.status != http.StatusOK {
		t.Fatalf("first: %d %s", resp.status, resp.raw)
	}
	js.failing.Store(true)
	as.clock.advance(DefaultJWKSMaxAge/2 + time.Second)
	if resp := token(); resp.status != http.StatusOK {
		t.Fatalf("past half the maximum age: %d %s", resp.status, resp.raw)
	}
	poll.Until(t, 10*time.Second, "the background refresh fails", func() (bool, string) {
		n := counterValue(t, as.srv.Metrics(), "certbound_as_jwks_uri_fetch_errors_total", "", "")
		return n >= 1, fmt.Sprintf("%v fetch errors", n)
	})
	if resp := token(); resp.status != http.StatusOK {
		t.Fatalf("after a failed refresh, within the maximum age: %d %s", resp.status, resp.raw)
	}
	as.clock.advance(DefaultJWKSMaxAge / 2)
	if resp := token(); resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
		t.Fatalf("past the maximum age with the jwks_uri down: %d %s", resp.status, resp.raw)
	}
	if n := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failJWKSUnavailable)); n != 1 {
		t.Fatalf("jwks_uri_unavailable counted %v times, want 1", n)
	}
	js.failing.Store(false)
	as.clock.advance(DefaultJWKSClientFetchInterval)
	if resp := token(); resp.status != http.StatusOK {
		t.Fatalf("once the jwks_uri is back: %d %s", resp.status, resp.raw)
	}
}

// jwks_uri fetches connect only to globally reachable addresses unless the
// address is in an allowed range; the check is on the address connected
// to, so a name resolving to loopback is refused like the literal.
func TestSelfSignedJWKSURIDestination(t *testing.T) {
	cert, jwk := selfSigned(t, "worker")
	byAddress := newJWKSServer(t, jwksJSON(t, jwk))
	byName, namedCA := newNamedJWKSServer(t, "localhost", jwksJSON(t, jwk))
	_, port, err := net.SplitHostPort(byName.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	named := "https://localhost:" + port
	trustNamed := func(_ *testAS, c *Config) { c.JWKSRootCAs = namedCA.pool() }
	allow := func(cidrs ...string) asOption {
		return func(_ *testAS, c *Config) {
			for _, p := range cidrs {
				c.JWKSFetch.AllowedCIDRs = append(c.JWKSFetch.AllowedCIDRs, netip.MustParsePrefix(p))
			}
		}
	}
	for name, c := range map[string]struct {
		uri     string
		opts    []asOption
		allowed bool
	}{
		"loopback without an allowed range is refused":                    {uri: byAddress.srv.URL, opts: []asOption{trusted(byAddress.srv)}},
		"loopback inside an allowed range is fetched":                     {uri: byAddress.srv.URL, opts: []asOption{trusted(byAddress.srv), allow("127.0.0.0/8")}, allowed: true},
		"an allowed range elsewhere does not allow loopback":              {uri: byAddress.srv.URL, opts: []asOption{trusted(byAddress.srv), allow("10.0.0.0/8")}},
		"a name resolving to loopback is refused":                         {uri: named, opts: []asOption{trustNamed}},
		"a name resolving to loopback is fetched inside an allowed range": {uri: named, opts: []asOption{trustNamed, allow("127.0.0.0/8", "::1/128")}, allowed: true},
	} {
		t.Run(name, func(t *testing.T) {
			as := startAS(t, map[string]map[string]any{
				"worker.json": selfSignedClient("worker", map[string]any{"jwks_uri": c.uri}),
			}, c.opts...)
			resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("worker"))
			refusals := counterValue(t, as.srv.Metrics(), "certbound_as_jwks_uri_fetches_refused_total", "reason", jwksRefusedDestination)
			switch {
			case c.allowed && (resp.status != http.StatusOK || refusals != 0):
				t.Fatalf("%d %s, %v refusals", resp.status, resp.errorCode(), refusals)
			case !c.allowed && (resp.status != http.StatusUnauthorized || refusals != 1):
				t.Fatalf("%d %s, %v refusals, want 401 and 1", resp.status, resp.errorCode(), refusals)
			}
		})
	}
	if n := byAddress.fetches.Load(); n != 1 {
		t.Fatalf("the loopback jwks_uri was fetched %d times, want 1 (where allowed)", n)
	}
}

// newNamedJWKSServer serves body over TLS on loopback with a certificate
// for host from a CA of its own.
func newNamedJWKSServer(t *testing.T, host string, body []byte) (*httptest.Server, *testCA) {
	ca := newCA(t, "jwks_uri CA")
	leaf := ca.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: host}, DNSNames: []string{host}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, ca
}

// A jwks_uri may redirect on its own origin only.
func TestSelfSignedJWKSURIRedirect(t *testing.T) {
	cert, jwk := selfSigned(t, "worker")
	elsewhere := newJWKSServer(t, jwksJSON(t, jwk))
	mux := http.NewServeMux()
	mux.Handle("/moved", http.RedirectHandler("/keys", http.StatusFound))
	mux.Handle("/away", http.RedirectHandler(elsewhere.srv.URL+"/keys", http.StatusFound))
	mux.HandleFunc("/keys", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(jwksJSON(t, jwk)) })
	origin := httptest.NewTLSServer(mux)
	defer origin.Close()
	for path, allowed := range map[string]bool{"/moved": true, "/away": false} {
		t.Run(path, func(t *testing.T) {
			as := startAS(t, map[string]map[string]any{
				"worker.json": selfSignedClient("worker", map[string]any{"jwks_uri": origin.URL + path}),
			}, trusted(origin), loopbackAllowed)
			resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("worker"))
			refusals := counterValue(t, as.srv.Metrics(), "certbound_as_jwks_uri_fetches_refused_total", "reason", jwksRefusedRedirect)
			switch {
			case allowed && (resp.status != http.StatusOK || refusals != 0):
				t.Fatalf("same-origin redirect: %d %s, %v refusals", resp.status, resp.raw, refusals)
			case !allowed && (resp.status != http.StatusUnauthorized || refusals != 1):
				t.Fatalf("redirect to another host: %d %s, %v refusals, want 401 and 1", resp.status, resp.raw, refusals)
			}
		})
	}
	if n := elsewhere.fetches.Load(); n != 0 {
		t.Fatalf("the other host was fetched %d times", n)
	}
}

// Anyone can present random certificates with a client's client_id; the
// fetches that causes are limited per client, and neither that client's
// cached set nor another client's fetches suffer.
func TestSelfSignedJWKSURIClientRateLimit(t *testing.T) {
	a, aJWK := selfSigned(t, "a")
	b, bJWK := selfSigned(t, "b")
	js := newJWKSServer(t, jwksJSON(t, aJWK, bJWK))
	as := startAS(t, map[string]map[string]any{
		"a.json": selfSignedClient("a", map[string]any{"jwks_uri": js.srv.URL + "/a"}),
		"b.json": selfSignedClient("b", map[string]any{"jwks_uri": js.srv.URL + "/b"}),
	}, js.reachable()...)
	impersonate := func() {
		t.Helper()
		random, _ := selfSigned(t, "a")
		if resp := as.post(t, as.client(&random), as.mtlsURL, ccForm("a")); resp.status != http.StatusUnauthorized {
			t.Fatalf("random certificate: %d %s", resp.status, resp.raw)
		}
	}
	for range DefaultJWKSClientFetchBurst + 2 {
		impersonate()
	}
	if n := js.fetches.Load(); n != DefaultJWKSClientFetchBurst {
		t.Fatalf("%d random certificates made %d fetches, want %d", DefaultJWKSClientFetchBurst+2, n, DefaultJWKSClientFetchBurst)
	}
	if n := counterValue(t, as.srv.Metrics(), "certbound_as_jwks_uri_fetches_refused_total", "reason", jwksRefusedRateLimited); n != 2 {
		t.Fatalf("rate_limited counted %v times, want 2", n)
	}
	if resp := as.post(t, as.client(&a), as.mtlsURL, ccForm("a")); resp.status != http.StatusOK {
		t.Fatalf("a's own certificate during the flood: %d %s", resp.status, resp.raw)
	}
	if resp := as.post(t, as.client(&b), as.mtlsURL, ccForm("b")); resp.status != http.StatusOK {
		t.Fatalf("b, whose budget is its own: %d %s", resp.status, resp.raw)
	}
	as.clock.advance(DefaultJWKSClientFetchInterval)
	before := js.fetches.Load()
	impersonate()
	impersonate()
	if n := js.fetches.Load() - before; n != 1 {
		t.Fatalf("one interval later: %d fetches, want 1", n)
	}
}

func TestSelfSignedBrokenJWKSURI(t *testing.T) {
	cert, jwk := selfSigned(t, "worker")
	_, unrelated := selfSigned(t, "worker")
	mismatched := jwk
	mismatched.Key = unrelated.Key
	mismatchedJSON, err := json.Marshal(map[string]any{"keys": []any{json.RawMessage(mustJSON(t, jwk)), json.RawMessage(mustJSON(t, mismatched))}})
	if err != nil {
		t.Fatal(err)
	}
	huge := make([]byte, jwksMaxBytes+10)
	for i := range huge {
		huge[i] = ' '
	}
	copy(huge, jwksJSON(t, jwk))
	for name, body := range map[string][]byte{
		"not JSON": []byte("<html>oops</html>"),
		"x5c whose key differs from the key members": mismatchedJSON,
		"larger than the limit":                      huge,
		"garbage in x5c":                             []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA","x5c":["Z2FyYmFnZQ=="]}]}`),
	} {
		t.Run(name, func(t *testing.T) {
			js := newJWKSServer(t, body)
			as := startAS(t, map[string]map[string]any{
				"worker.json": selfSignedClient("worker", map[string]any{"jwks_uri": js.srv.URL}),
			}, js.reachable()...)
			resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("worker"))
			if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
				t.Fatalf("%d %s", resp.status, resp.raw)
			}
			// A second attempt refetches and is refused for the same
			// logged reason.
			if resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("worker")); resp.status != http.StatusUnauthorized {
				t.Fatalf("second attempt: %d %s", resp.status, resp.raw)
			}
			if n := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failJWKSUnavailable)); n != 2 {
				t.Fatalf("jwks_uri_unavailable counted %v times, want 2", n)
			}
			if n := js.fetches.Load(); n != 2 {
				t.Fatalf("%d fetches, want 2", n)
			}
		})
	}
	t.Run("a redirect to plain http", func(t *testing.T) {
		plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write(jwksJSON(t, jwk))
		}))
		defer plain.Close()
		redirect := httptest.NewTLSServer(http.RedirectHandler(plain.URL, http.StatusFound))
		defer redirect.Close()
		as := startAS(t, map[string]map[string]any{
			"worker.json": selfSignedClient("worker", map[string]any{"jwks_uri": redirect.URL}),
		}, trusted(redirect), loopbackAllowed)
		if resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("worker")); resp.status != http.StatusUnauthorized {
			t.Fatalf("%d %s", resp.status, resp.raw)
		}
	})
	t.Run("a server whose certificate is not trusted", func(t *testing.T) {
		js := newJWKSServer(t, jwksJSON(t, jwk))
		as := startAS(t, map[string]map[string]any{
			"worker.json": selfSignedClient("worker", map[string]any{"jwks_uri": js.srv.URL}),
		}, loopbackAllowed)
		if resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("worker")); resp.status != http.StatusUnauthorized {
			t.Fatalf("%d %s", resp.status, resp.raw)
		}
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCertificatesFromJWKS(t *testing.T) {
	cert, jwk := selfSigned(t, "a")
	noCert := jwk
	noCert.Certificates = nil
	private := jose.JSONWebKey{Key: cert.PrivateKey, Certificates: jwk.Certificates}
	for name, c := range map[string]struct {
		doc     []byte
		certs   int
		wantErr bool
	}{
		"a key with x5c gives its certificate":  {doc: jwksJSON(t, jwk), certs: 1},
		"a key without x5c gives none":          {doc: jwksJSON(t, noCert), certs: 0},
		"an unknown key type is skipped":        {doc: []byte(`{"keys":[{"kty":"XYZ"},` + string(mustJSON(t, jwk)) + `]}`), certs: 1},
		"private key material is refused":       {doc: jwksJSON(t, private), wantErr: true},
		"a key set that is not an object fails": {doc: []byte(`[1,2]`), wantErr: true},
		"an EC key with a bad point fails":      {doc: []byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`), wantErr: true},
	} {
		t.Run(name, func(t *testing.T) {
			certs, err := certificatesFromJWKS(c.doc)
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, c.wantErr)
			}
			if len(certs) != c.certs {
				t.Fatalf("%d certificates, want %d", len(certs), c.certs)
			}
		})
	}
}

package asruntime

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbound/certbound/asruntime/certbinding"
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

// jwksServer is an https jwks_uri whose document tests can change.
type jwksServer struct {
	srv     *httptest.Server
	body    atomic.Value
	fetches atomic.Int32
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	j := &jwksServer{}
	j.body.Store(body)
	j.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.fetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(j.body.Load().([]byte))
	}))
	t.Cleanup(j.srv.Close)
	return j
}

func (j *jwksServer) roots() asOption {
	return func(_ *testAS, c *Config) {
		pool := x509.NewCertPool()
		pool.AddCert(j.srv.Certificate())
		c.JWKSRootCAs = pool
	}
}

func TestSelfSignedJWKSURI(t *testing.T) {
	first, firstJWK := selfSigned(t, "worker")
	rotated, rotatedJWK := selfSigned(t, "worker")
	js := newJWKSServer(t, jwksJSON(t, firstJWK))
	as := startAS(t, map[string]map[string]any{
		"worker.json": selfSignedClient("worker", map[string]any{"jwks_uri": js.srv.URL + "/jwks"}),
	}, js.roots())

	for range 3 {
		if resp := as.post(t, as.client(&first), as.mtlsURL, ccForm("worker")); resp.status != http.StatusOK {
			t.Fatalf("certificate from jwks_uri: %d %s", resp.status, resp.raw)
		}
	}
	if n := js.fetches.Load(); n != 1 {
		t.Fatalf("jwks_uri fetched %d times for three requests, want 1 (cached)", n)
	}

	// The client rotates: the new certificate is found by one refetch on
	// the miss, but only once the minute since the last fetch has passed.
	js.body.Store([]byte(jwksJSON(t, rotatedJWK, firstJWK)))
	if resp := as.post(t, as.client(&rotated), as.mtlsURL, ccForm("worker")); resp.status != http.StatusUnauthorized {
		t.Fatalf("refetch within a minute: %d %s", resp.status, resp.raw)
	}
	if n := js.fetches.Load(); n != 1 {
		t.Fatalf("jwks_uri refetched within a minute (%d fetches)", n)
	}
	as.clock.advance(61 * time.Second)
	if resp := as.post(t, as.client(&rotated), as.mtlsURL, ccForm("worker")); resp.status != http.StatusOK {
		t.Fatalf("rotated certificate after a minute: %d %s", resp.status, resp.raw)
	}
	if n := js.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
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
			}, js.roots())
			resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("worker"))
			if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
				t.Fatalf("%d %s", resp.status, resp.raw)
			}
			// A second attempt within the minute is refused without a
			// refetch, for the same logged reason.
			if resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("worker")); resp.status != http.StatusUnauthorized {
				t.Fatalf("second attempt: %d %s", resp.status, resp.raw)
			}
			if n := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failJWKSUnavailable)); n != 2 {
				t.Fatalf("jwks_uri_unavailable counted %v times, want 2", n)
			}
			if n := js.fetches.Load(); n != 1 {
				t.Fatalf("%d fetches, want 1", n)
			}
		})
	}
	t.Run("a redirect to plain http", func(t *testing.T) {
		plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write(jwksJSON(t, jwk))
		}))
		defer plain.Close()
		redirect := &jwksServer{srv: httptest.NewTLSServer(http.RedirectHandler(plain.URL, http.StatusFound))}
		defer redirect.srv.Close()
		as := startAS(t, map[string]map[string]any{
			"worker.json": selfSignedClient("worker", map[string]any{"jwks_uri": redirect.srv.URL}),
		}, redirect.roots())
		if resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("worker")); resp.status != http.StatusUnauthorized {
			t.Fatalf("%d %s", resp.status, resp.raw)
		}
	})
	t.Run("a server whose certificate is not trusted", func(t *testing.T) {
		js := newJWKSServer(t, jwksJSON(t, jwk))
		as := startAS(t, map[string]map[string]any{
			"worker.json": selfSignedClient("worker", map[string]any{"jwks_uri": js.srv.URL}),
		})
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

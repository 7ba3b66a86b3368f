package asruntime

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// selfSignedAt is selfSigned with a chosen NotBefore.
func selfSignedAt(t testing.TB, cn string, notBefore time.Time) (tls.Certificate, jose.JSONWebKey) {
	t.Helper()
	key := newKey(t)
	cert := createCert(t, &x509.Certificate{Subject: pkix.Name{CommonName: cn}, NotBefore: notBefore}, nil, key.Public(), key)
	jwk := jose.JSONWebKey{Key: key.Public(), Certificates: []*x509.Certificate{cert}, Use: "sig"}
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, jwk
}

// TestMinCertificateNotBefore: a certificate issued before the client's
// min_certificate_not_before never authenticates, with either mTLS method,
// and the answer says why — but only to a certificate that otherwise
// would have authenticated.
func TestMinCertificateNotBefore(t *testing.T) {
	// Whole seconds: certificates and RFC 3339 times carry no fractions.
	min := time.Now().Add(-30 * time.Minute).Truncate(time.Second)
	minText := min.UTC().Format(time.RFC3339)
	before, at, after := min.Add(-time.Hour), min, min.Add(20*time.Minute)

	ssBefore, jwkBefore := selfSignedAt(t, "worker", before)
	ssAt, jwkAt := selfSignedAt(t, "worker", at)
	ssAfter, jwkAfter := selfSignedAt(t, "worker", after)

	pki := pkiClient("pki", "tls_client_auth_san_dns", "pki.example")
	pki["min_certificate_not_before"] = minText
	unbounded := pkiClient("unbounded", "tls_client_auth_san_dns", "unbounded.example")
	as := startAS(t, map[string]map[string]any{
		"pki.json":       pki,
		"unbounded.json": unbounded,
		"self.json": selfSignedClient("self", map[string]any{
			"jwks":                       jwksJSON(t, jwkBefore, jwkAt, jwkAfter),
			"min_certificate_not_before": minText,
		}),
	})
	pkiLeaf := func(dns string, notBefore time.Time) tls.Certificate {
		return as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{dns}, NotBefore: notBefore})
	}
	const stale = "certificate issued before the client's current registration"

	for name, c := range map[string]struct {
		cert        tls.Certificate
		clientID    string
		ok          bool
		description string // of the invalid_client answer
	}{
		"tls_client_auth, issued before":                       {cert: pkiLeaf("pki.example", before), clientID: "pki", description: stale},
		"tls_client_auth, issued a second before":              {cert: pkiLeaf("pki.example", min.Add(-time.Second)), clientID: "pki", description: stale},
		"tls_client_auth, issued at the bound":                 {cert: pkiLeaf("pki.example", at), clientID: "pki", ok: true},
		"tls_client_auth, issued after":                        {cert: pkiLeaf("pki.example", after), clientID: "pki", ok: true},
		"tls_client_auth, issued before, wrong subject":        {cert: pkiLeaf("other.example", before), clientID: "pki", description: errInvalidClient.description},
		"tls_client_auth without a bound, an old certificate":  {cert: pkiLeaf("unbounded.example", before), clientID: "unbounded", ok: true},
		"self_signed_tls_client_auth, issued before":           {cert: ssBefore, clientID: "self", description: stale},
		"self_signed_tls_client_auth, issued at the bound":     {cert: ssAt, clientID: "self", ok: true},
		"self_signed_tls_client_auth, issued after":            {cert: ssAfter, clientID: "self", ok: true},
		"self_signed_tls_client_auth, an unregistered old one": {cert: func() tls.Certificate { c, _ := selfSignedAt(t, "worker", before); return c }(), clientID: "self", description: errInvalidClient.description},
	} {
		t.Run(name, func(t *testing.T) {
			failures := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failCertBeforeRegistration))
			resp := as.post(t, as.client(&c.cert), as.mtlsURL, ccForm(c.clientID))
			if c.ok {
				if resp.status != http.StatusOK {
					t.Fatalf("%d %s", resp.status, resp.raw)
				}
				return
			}
			if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" || resp.body["error_description"] != c.description {
				t.Fatalf("%d %s, want invalid_client %q", resp.status, resp.raw, c.description)
			}
			want := failures
			if c.description == stale {
				want++
			}
			if got := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failCertBeforeRegistration)); got != want {
				t.Fatalf("%s counted %v, want %v", failCertBeforeRegistration, got, want)
			}
		})
	}

	t.Run("introspection callers are held to the bound too", func(t *testing.T) {
		current := pkiLeaf("pki.example", after)
		token := as.tokenFor(t, &current, "pki")
		old := pkiLeaf("pki.example", before)
		a := as.introspect(t, &old, "pki", token)
		if a.status != http.StatusUnauthorized || a.json(t)["error_description"] != stale {
			t.Fatalf("%d %s", a.status, a.body)
		}
		requireActive(t, as.introspect(t, &current, "pki", token))
	})
}

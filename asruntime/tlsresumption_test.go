package asruntime

// TLS session resumption on the mTLS listener (issue #15). A resumed
// connection carries the certificates of the handshake that created the
// session, not freshly presented ones; these tests show that the token
// endpoint still authenticates them on every request — against the current
// registration, trust anchors, CRLs and clock — and that no session outlives
// its client certificate.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/asruntime/certrevocation"
)

// resumingClient is an mTLS client that keeps its TLS sessions and opens a
// new connection for every request, so that every request after the first
// offers the session of an earlier one.
type resumingClient struct {
	*http.Client
	// certs are presented in turn, one per full handshake; the last one
	// repeats.
	certs []tls.Certificate
	// Counters over all handshakes: completed, resumed, with a client
	// certificate presented, with a cached session offered.
	handshakes, resumed, presented, offered atomic.Int64
	// version is the TLS version of the latest handshake.
	version atomic.Uint32
}

// handshake is what happened in the one handshake of a request.
type handshake struct {
	version uint16
	// offered: the client offered a cached session; resumed: the server
	// accepted it; presented: the server asked for a certificate and the
	// client sent one.
	offered, resumed, presented bool
}

// offerCountingCache counts the lookups that find a session, i.e. the
// handshakes in which the client offers one.
type offerCountingCache struct {
	tls.ClientSessionCache
	offered *atomic.Int64
}

func (c offerCountingCache) Get(key string) (*tls.ClientSessionState, bool) {
	s, ok := c.ClientSessionCache.Get(key)
	if ok && s != nil {
		c.offered.Add(1)
	}
	return s, ok
}

// newResumingClient trusts servingCAs and negotiates at most maxVersion.
func newResumingClient(servingCAs *x509.CertPool, maxVersion uint16, certs ...tls.Certificate) *resumingClient {
	rc := &resumingClient{certs: certs}
	cfg := &tls.Config{
		RootCAs:            servingCAs,
		MaxVersion:         maxVersion,
		ClientSessionCache: offerCountingCache{ClientSessionCache: tls.NewLRUClientSessionCache(1), offered: &rc.offered},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			n := int(rc.presented.Add(1)) - 1
			return &rc.certs[min(n, len(rc.certs)-1)], nil
		},
		// Called at the end of every handshake, resumed or not.
		VerifyConnection: func(cs tls.ConnectionState) error {
			rc.version.Store(uint32(cs.Version))
			if cs.DidResume {
				rc.resumed.Add(1)
			}
			rc.handshakes.Add(1)
			return nil
		},
	}
	rc.Client = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	return rc
}

// post sends a token request for clientID to as's mTLS listener on a new
// connection and reports that connection's handshake.
func (rc *resumingClient) post(t testing.TB, as *testAS, clientID string) (tokenResponse, handshake) {
	t.Helper()
	handshakes, resumed, presented, offered := rc.handshakes.Load(), rc.resumed.Load(), rc.presented.Load(), rc.offered.Load()
	resp := as.post(t, rc.Client, as.mtlsURL, ccForm(clientID))
	if n := rc.handshakes.Load() - handshakes; n != 1 {
		t.Fatalf("%d handshakes for one request, want 1", n)
	}
	return resp, handshake{
		version:   uint16(rc.version.Load()),
		offered:   rc.offered.Load() > offered,
		resumed:   rc.resumed.Load() > resumed,
		presented: rc.presented.Load() > presented,
	}
}

// boundThumbprint is the cnf x5t#S256 of the token in a successful
// response.
func boundThumbprint(t testing.TB, as *testAS, resp tokenResponse) string {
	t.Helper()
	if resp.status != http.StatusOK {
		t.Fatalf("%d %s", resp.status, resp.raw)
	}
	cnf, _ := as.claims(t, resp.body["access_token"].(string))["cnf"].(map[string]any)
	thumbprint, _ := cnf[certbinding.ConfirmationKey].(string)
	return thumbprint
}

// TestResumedConnectionBindsTheOriginalCertificate: a token requested on a
// resumed connection is bound to the certificate of the session's first
// handshake; the client presents no certificate on the resumed connection
// (and would present another one if asked).
func TestResumedConnectionBindsTheOriginalCertificate(t *testing.T) {
	selfFirst, jwkFirst := selfSigned(t, "worker")
	selfSecond, jwkSecond := selfSigned(t, "worker")
	as := startAS(t, map[string]map[string]any{
		"pki.json":  pkiClient("pki", "tls_client_auth_san_dns", "pki.example"),
		"self.json": selfSignedClient("self", map[string]any{"jwks": jwksJSON(t, jwkFirst, jwkSecond)}),
	})
	pkiLeaf := func() tls.Certificate {
		return as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"pki.example"}})
	}
	pkiFirst, pkiSecond := pkiLeaf(), pkiLeaf()

	for name, c := range map[string]struct {
		version       uint16
		clientID      string
		first, second tls.Certificate
	}{
		"TLS 1.3, tls_client_auth":             {tls.VersionTLS13, "pki", pkiFirst, pkiSecond},
		"TLS 1.3, self_signed_tls_client_auth": {tls.VersionTLS13, "self", selfFirst, selfSecond},
		"TLS 1.2, tls_client_auth":             {tls.VersionTLS12, "pki", pkiFirst, pkiSecond},
		"TLS 1.2, self_signed_tls_client_auth": {tls.VersionTLS12, "self", selfFirst, selfSecond},
	} {
		t.Run(name, func(t *testing.T) {
			rc := newResumingClient(as.servingCA.pool(), c.version, c.first, c.second)
			original := certbinding.Thumbprint(c.first.Certificate[0])

			resp, hs := rc.post(t, as, c.clientID)
			if hs.version != c.version || hs.resumed || !hs.presented {
				t.Fatalf("first connection: %+v, want a full handshake of version %x with a certificate", hs, c.version)
			}
			if got := boundThumbprint(t, as, resp); got != original {
				t.Fatalf("first token bound to %q, want %q", got, original)
			}

			resp, hs = rc.post(t, as, c.clientID)
			if hs.version != c.version || !hs.resumed || hs.presented {
				t.Fatalf("second connection: %+v, want a resumption of version %x without a certificate", hs, c.version)
			}
			if got := boundThumbprint(t, as, resp); got != original {
				t.Fatalf("token on the resumed connection bound to %q, want the original certificate's %q", got, original)
			}
		})
	}
}

// TestResumedConnectionFollowsTheRegistration: a registration that no
// longer accepts the session's certificate refuses the token request on a
// resumed connection, as it would on a new handshake.
func TestResumedConnectionFollowsTheRegistration(t *testing.T) {
	for name, c := range map[string]struct {
		// change rewrites the registration; leaf is the session's
		// certificate.
		change      func(t *testing.T, as *testAS, leaf *x509.Certificate)
		reason      authFailure
		description string // of the invalid_client answer
	}{
		"registration removed": {
			change: func(t *testing.T, as *testAS, _ *x509.Certificate) {
				if err := os.Remove(filepath.Join(as.dir, "pki.json")); err != nil {
					t.Fatal(err)
				}
			},
			reason: failUnknownClient, description: errInvalidClient.description,
		},
		"registered subject changed": {
			change: func(t *testing.T, as *testAS, _ *x509.Certificate) {
				writeClient(t, as.dir, "pki.json", pkiClient("pki", "tls_client_auth_san_dns", "other.example"))
			},
			reason: failSubjectMismatch, description: errInvalidClient.description,
		},
		"re-registered after the certificate was issued": {
			change: func(t *testing.T, as *testAS, leaf *x509.Certificate) {
				doc := pkiClient("pki", "tls_client_auth_san_dns", "pki.example")
				doc["min_certificate_not_before"] = leaf.NotBefore.Add(time.Second).UTC().Format(time.RFC3339)
				writeClient(t, as.dir, "pki.json", doc)
			},
			reason: failCertBeforeRegistration, description: errInvalidClientStaleCert.description,
		},
	} {
		t.Run(name, func(t *testing.T) {
			as := startAS(t, map[string]map[string]any{"pki.json": pkiClient("pki", "tls_client_auth_san_dns", "pki.example")})
			cert := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"pki.example"}})
			rc := newResumingClient(as.servingCA.pool(), tls.VersionTLS13, cert)
			if resp, hs := rc.post(t, as, "pki"); resp.status != http.StatusOK || hs.resumed {
				t.Fatalf("first connection: %+v %d %s", hs, resp.status, resp.raw)
			}

			c.change(t, as, cert.Leaf)
			if err := as.registry.Reload(); err != nil {
				t.Fatal(err)
			}
			resp, hs := rc.post(t, as, "pki")
			if !hs.resumed || hs.presented {
				t.Fatalf("second connection: %+v, want a resumption without a certificate", hs)
			}
			if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" || resp.body["error_description"] != c.description {
				t.Fatalf("%d %s, want invalid_client %q", resp.status, resp.raw, c.description)
			}
			if n := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(c.reason)); n != 1 {
				t.Fatalf("%v refusals counted as %s, want 1", n, c.reason)
			}
		})
	}
}

// TestExpiredCertificateIsNotResumed: once the server's clock passes the
// session certificate's NotAfter the server declines the offered session,
// the client must present a certificate again, and its expired one is
// refused; before that the session resumes.
func TestExpiredCertificateIsNotResumed(t *testing.T) {
	notAfter := time.Now().Add(2 * time.Hour)
	for name, c := range map[string]struct {
		version uint16
		advance time.Duration
		expired bool
	}{
		"TLS 1.3, within validity": {tls.VersionTLS13, time.Hour, false},
		"TLS 1.3, after NotAfter":  {tls.VersionTLS13, 3 * time.Hour, true},
		"TLS 1.2, within validity": {tls.VersionTLS12, time.Hour, false},
		"TLS 1.2, after NotAfter":  {tls.VersionTLS12, 3 * time.Hour, true},
	} {
		t.Run(name, func(t *testing.T) {
			as := startAS(t, map[string]map[string]any{"pki.json": pkiClient("pki", "tls_client_auth_san_dns", "pki.example")})
			cert := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"pki.example"}, NotAfter: notAfter})
			rc := newResumingClient(as.servingCA.pool(), c.version, cert)
			if resp, hs := rc.post(t, as, "pki"); resp.status != http.StatusOK || hs.resumed {
				t.Fatalf("first connection: %+v %d %s", hs, resp.status, resp.raw)
			}

			as.clock.advance(c.advance)
			resp, hs := rc.post(t, as, "pki")
			if !hs.offered {
				t.Fatalf("second connection: %+v, the client offered no session", hs)
			}
			if !c.expired {
				if !hs.resumed || hs.presented || resp.status != http.StatusOK {
					t.Fatalf("second connection: %+v %d %s, want a resumption and a token", hs, resp.status, resp.raw)
				}
				return
			}
			if hs.resumed || !hs.presented {
				t.Fatalf("second connection: %+v, want a full handshake with the certificate", hs)
			}
			if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
				t.Fatalf("%d %s, want invalid_client", resp.status, resp.raw)
			}
			if n := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failExpiredChain)); n != 1 {
				t.Fatalf("%v refusals counted as %s, want 1", n, failExpiredChain)
			}
		})
	}
}

// TestResumedConnectionChecksRevocation: a certificate revoked after its
// session was created is refused on a connection resuming that session.
func TestResumedConnectionChecksRevocation(t *testing.T) {
	ca := newCRLCA(t, "client CA")
	cert := ca.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "billing"}})
	crlFile := filepath.Join(t.TempDir(), "ca.crl")
	replaceFile(t, crlFile, ca.currentCRL(t))
	as := startAS(t, revocationDocs(), withRevocation(t, ca, certrevocation.Config{Files: []string{crlFile}}))
	rc := newResumingClient(as.servingCA.pool(), tls.VersionTLS13, cert)
	if resp, hs := rc.post(t, as, revocationClient); resp.status != http.StatusOK || hs.resumed {
		t.Fatalf("first connection: %+v %d %s", hs, resp.status, resp.raw)
	}

	replaceFile(t, crlFile, ca.currentCRL(t, cert))
	chains := [][]*x509.Certificate{{cert.Leaf, ca.cert}}
	waitFor(t, "the checker loaded the CRL that revokes the certificate", func() bool {
		return as.srv.pki.revocation.Check(context.Background(), chains).Status == certrevocation.Revoked
	})
	resp, hs := rc.post(t, as, revocationClient)
	if !hs.resumed || hs.presented {
		t.Fatalf("second connection: %+v, want a resumption without a certificate", hs)
	}
	if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
		t.Fatalf("%d %s, want invalid_client", resp.status, resp.raw)
	}
	if n := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failCertRevoked)); n != 1 {
		t.Fatalf("%v refusals counted as %s, want 1", n, failCertRevoked)
	}
}

// TestNoResumptionAcrossARestart: trust anchors are fixed for the life of a
// server (a new client CA bundle restarts it), and a restarted server
// resumes no session of its predecessor, so a chain the new anchors do not
// verify is presented again and refused.
func TestNoResumptionAcrossARestart(t *testing.T) {
	docs := map[string]map[string]any{"pki.json": pkiClient("pki", "tls_client_auth_san_dns", "pki.example")}
	// after has its own serving CA and its own, different client CA as
	// its only trust anchor. Both listen on 127.0.0.1, the name the
	// client's sessions are cached under.
	before, after := startAS(t, docs), startAS(t, docs)
	servingCAs := before.servingCA.pool()
	servingCAs.AddCert(after.servingCA.cert)
	cert := before.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"pki.example"}})
	rc := newResumingClient(servingCAs, tls.VersionTLS13, cert)
	for i, wantResumed := range []bool{false, true} {
		if resp, hs := rc.post(t, before, "pki"); resp.status != http.StatusOK || hs.resumed != wantResumed {
			t.Fatalf("connection %d before the restart: %+v %d %s", i+1, hs, resp.status, resp.raw)
		}
	}
	before.stop()

	resp, hs := rc.post(t, after, "pki")
	if !hs.offered || hs.resumed || !hs.presented {
		t.Fatalf("after the restart: %+v, want the session offered, declined, and the certificate presented", hs)
	}
	if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
		t.Fatalf("%d %s, want invalid_client", resp.status, resp.raw)
	}
	if n := counterValue(t, after.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failUntrustedChain)); n != 1 {
		t.Fatalf("%v refusals counted as %s, want 1", n, failUntrustedChain)
	}
}

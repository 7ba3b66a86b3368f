package asruntime

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbound/certbound/asruntime/certrevocation"
)

// newCRLCA is a client CA that may sign CRLs (RFC 5280 §4.2.1.3 cRLSign).
func newCRLCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key := newKey(t)
	cert := createCert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: cn},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}, nil, key.Public(), key)
	return &testCA{cert: cert, key: key}
}

// crl is a DER CRL with ca's name, signed by signer, valid from thisUpdate
// to nextUpdate, listing revoked.
func (ca *testCA) crl(t testing.TB, signer crypto.Signer, thisUpdate, nextUpdate time.Time, revoked ...tls.Certificate) []byte {
	t.Helper()
	tmpl := &x509.RevocationList{Number: big.NewInt(serialCounter.Add(1)), ThisUpdate: thisUpdate, NextUpdate: nextUpdate}
	for _, r := range revoked {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries, x509.RevocationListEntry{
			SerialNumber: r.Leaf.SerialNumber, RevocationTime: time.Now().Add(-time.Minute), ReasonCode: 1, // keyCompromise
		})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, ca.cert, signer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (ca *testCA) currentCRL(t testing.TB, revoked ...tls.Certificate) []byte {
	return ca.crl(t, ca.key, time.Now().Add(-time.Minute), time.Now().Add(time.Hour), revoked...)
}

// replaceFile swaps path's content in one rename, as a ConfigMap update
// does.
func replaceFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// withRevocation makes ca the client trust anchor and checks revocation
// with cfg, running the checker for the life of the test.
func withRevocation(t testing.TB, ca *testCA, cfg certrevocation.Config) asOption {
	return func(as *testAS, c *Config) {
		as.clientCA = ca
		c.TrustAnchors = ca.pool()
		cfg.Logger, cfg.Observer = c.Logger, c.Metrics
		checker, err := certrevocation.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); checker.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		c.ClientCertificateRevocation = checker
	}
}

const revocationClient = "billing"

func revocationDocs() map[string]map[string]any {
	return map[string]map[string]any{
		"billing.json": pkiClient(revocationClient, "tls_client_auth_subject_dn", "CN=billing"),
	}
}

// TestRevokedClientCertificateIsRefused: a certificate that gets tokens
// stops getting them once the CRL file that lists it is loaded, on the
// same kept-alive connection, while the client's other certificate keeps
// working; the refusal is counted as certificate_revoked.
func TestRevokedClientCertificateIsRefused(t *testing.T) {
	ca := newCRLCA(t, "client CA")
	compromised := ca.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "billing"}})
	renewed := ca.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "billing"}})
	crlFile := filepath.Join(t.TempDir(), "ca.crl")
	replaceFile(t, crlFile, ca.currentCRL(t))
	as := startAS(t, revocationDocs(), withRevocation(t, ca, certrevocation.Config{Files: []string{crlFile}}))
	metrics := as.srv.Metrics()

	compromisedClient := as.client(&compromised)
	if resp := as.post(t, compromisedClient, as.mtlsURL, ccForm(revocationClient)); resp.status != http.StatusOK {
		t.Fatalf("before revocation: %d %s", resp.status, resp.raw)
	}
	replaceFile(t, crlFile, ca.currentCRL(t, compromised))
	waitFor(t, "the revoked certificate is refused", func() bool {
		resp := as.post(t, compromisedClient, as.mtlsURL, ccForm(revocationClient))
		return resp.status == http.StatusUnauthorized && resp.errorCode() == "invalid_client"
	})
	if n := counterValue(t, metrics, "certbound_as_client_auth_failures_total", "reason", "certificate_revoked"); n == 0 {
		t.Fatal("refusal not counted as certificate_revoked")
	}
	if n := counterValue(t, metrics, "certbound_as_client_certificate_revocation_checks_total", "result", "revoked"); n == 0 {
		t.Fatal("revoked check not counted")
	}
	if resp := as.post(t, as.client(&renewed), as.mtlsURL, ccForm(revocationClient)); resp.status != http.StatusOK {
		t.Fatalf("the renewed certificate: %d %s", resp.status, resp.raw)
	}
}

// TestUnusableCRLFollowsTheFailureMode: a CRL signed by another key, or
// past its nextUpdate, establishes nothing: failing closed refuses the
// client (reason certificate_revocation_unavailable), failing open lets it
// through.
func TestUnusableCRLFollowsTheFailureMode(t *testing.T) {
	ca := newCRLCA(t, "client CA")
	impostor := newKey(t)
	now := time.Now()
	crls := map[string][]byte{
		"signed by another key": ca.crl(t, impostor, now.Add(-time.Minute), now.Add(time.Hour)),
		"stale":                 ca.crl(t, ca.key, now.Add(-2*time.Hour), now.Add(-time.Hour)),
	}
	for name, crl := range crls {
		for _, mode := range []certrevocation.FailureMode{certrevocation.FailClosed, certrevocation.FailOpen} {
			t.Run(name+", fail "+string(mode), func(t *testing.T) {
				crlFile := filepath.Join(t.TempDir(), "ca.crl")
				replaceFile(t, crlFile, crl)
				as := startAS(t, revocationDocs(), withRevocation(t, ca, certrevocation.Config{Files: []string{crlFile}, FailureMode: mode}))
				cert := ca.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "billing"}})
				resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm(revocationClient))
				unavailable := counterValue(t, as.srv.Metrics(), "certbound_as_client_certificate_revocation_checks_total", "result", "unavailable")
				if unavailable != 1 {
					t.Fatalf("%v unavailable checks, want 1", unavailable)
				}
				if mode == certrevocation.FailOpen {
					if resp.status != http.StatusOK {
						t.Fatalf("failing open: %d %s", resp.status, resp.raw)
					}
					return
				}
				if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
					t.Fatalf("failing closed: %d %s", resp.status, resp.raw)
				}
				if n := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", "certificate_revocation_unavailable"); n != 1 {
					t.Fatalf("%v refusals counted as certificate_revocation_unavailable, want 1", n)
				}
			})
		}
	}
}

// TestDistributionPointCRLRevokesOverMTLS: the CRL named by the client
// certificate's distribution point is fetched once and decides both a
// revoked and a good certificate.
func TestDistributionPointCRLRevokesOverMTLS(t *testing.T) {
	ca := newCRLCA(t, "client CA")
	var crl []byte
	var fetches atomic.Int64
	dp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		_, _ = w.Write(crl)
	}))
	t.Cleanup(dp.Close)
	revoked := ca.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "billing"}, CRLDistributionPoints: []string{dp.URL + "/ca.crl"}})
	good := ca.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "billing"}, CRLDistributionPoints: []string{dp.URL + "/ca.crl"}})
	crl = ca.currentCRL(t, revoked)
	as := startAS(t, revocationDocs(), withRevocation(t, ca, certrevocation.Config{DistributionPoints: true}))

	if resp := as.post(t, as.client(&revoked), as.mtlsURL, ccForm(revocationClient)); resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
		t.Fatalf("revoked: %d %s", resp.status, resp.raw)
	}
	if resp := as.post(t, as.client(&good), as.mtlsURL, ccForm(revocationClient)); resp.status != http.StatusOK {
		t.Fatalf("good: %d %s", resp.status, resp.raw)
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1 (cached)", n)
	}
}

package asruntime

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbound/certbound/asruntime/certrevocation"
)

// TestKeptAliveConnectionFollowsEachCRLReload: a CRL's signature check is
// remembered for as long as that CRL is loaded, never across a reload.
// On one kept-alive connection, each CRL file in turn decides the next
// token request: one with the CA's name but another key refuses the
// client (failing closed), a valid one that lists nothing lets it in
// again, and one that lists its certificate refuses it as revoked.
func TestKeptAliveConnectionFollowsEachCRLReload(t *testing.T) {
	ca := newCRLCA(t, "client CA")
	cert := ca.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "billing"}})
	impostor := newKey(t)
	crlFile := filepath.Join(t.TempDir(), "ca.crl")
	replaceFile(t, crlFile, ca.currentCRL(t))
	as := startAS(t, revocationDocs(), withRevocation(t, ca, certrevocation.Config{Files: []string{crlFile}}))
	client := as.client(&cert)
	var newConnections atomic.Int64
	countNewConnections := func(r *http.Request) {
		*r = *r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) {
				if !info.Reused {
					newConnections.Add(1)
				}
			},
		}))
	}
	now := time.Now()
	steps := []struct {
		name   string
		crl    []byte
		reason authFailure // "" : a token is issued
	}{
		{"the CA's CRL listing nothing", nil, ""},
		{"a CRL with the CA's name signed by another key", ca.crl(t, impostor, now.Add(-time.Minute), now.Add(time.Hour)), failRevocationUnavailable},
		{"the CA's CRL listing nothing, reloaded", ca.currentCRL(t), ""},
		{"the CA's CRL listing the certificate", ca.currentCRL(t, cert), failCertRevoked},
	}
	for _, step := range steps {
		if step.crl != nil {
			replaceFile(t, crlFile, step.crl)
		}
		var refusals float64
		if step.reason != "" {
			refusals = counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(step.reason))
		}
		waitFor(t, step.name+" decides the request", func() bool {
			resp := as.post(t, client, as.mtlsURL, ccForm(revocationClient), countNewConnections)
			if step.reason == "" {
				return resp.status == http.StatusOK
			}
			return resp.status == http.StatusUnauthorized && resp.errorCode() == "invalid_client"
		})
		if step.reason != "" {
			if n := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(step.reason)); n <= refusals {
				t.Fatalf("%s: the refusal was not counted as %s", step.name, step.reason)
			}
		}
	}
	if n := newConnections.Load(); n != 1 {
		t.Fatalf("%d connections, want every request on one kept-alive connection", n)
	}
}

package asruntime

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/certbound/certbound/asruntime/clientcert"
	"github.com/certbound/certbound/asruntime/clientcert/clientcertflag"
)

const ingressIdentity = "spiffe://cluster.local/ns/ingress/sa/envoy"

// withProxyIdentity trusts the rfc9440 header from 127.0.0.0/8 (a pod
// network, as far as the test can tell) only on connections that present a
// certificate of proxyCA carrying ingressIdentity.
func withProxyIdentity(t *testing.T, proxyCA *testCA) asOption {
	caFile := filepath.Join(t.TempDir(), "proxy-ca.pem")
	writePEM(t, caFile, "CERTIFICATE", proxyCA.cert.Raw)
	return func(as *testAS, cfg *Config) {
		flags := clientcertflag.Flags{Header: "rfc9440", Proxies: "127.0.0.0/8", ProxyCAFile: caFile, ProxySubject: "uri:" + ingressIdentity}
		src, err := flags.Source(cfg.Metrics.ClientCertHeaderIgnored, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		cfg.ClientCertificates = src
	}
}

// identifiedProxy is a TLS-terminating proxy on loopback that forwards its
// client's leaf in Client-Cert to target, connecting with its own client
// certificate.
func identifiedProxy(t *testing.T, as *testAS, target string, own tls.Certificate) *httptest.Server {
	t.Helper()
	u, _ := url.Parse(target)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Header.Del(clientcert.HeaderClientCert)
			if pr.In.TLS != nil && len(pr.In.TLS.PeerCertificates) > 0 {
				setCertHeader(pr.Out.Header, clientcert.FormatRFC9440, pr.In.TLS.PeerCertificates[0])
			}
		},
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: as.servingCA.pool(), Certificates: []tls.Certificate{own}}},
	}
	srv := httptest.NewUnstartedServer(rp)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// TestTheProxyIdentityGuardsTheCertificateHeader: with a trusted proxy
// network as wide as a pod network, a workload connecting directly cannot
// authenticate as another client by putting that client's certificate in
// Client-Cert; the proxy, presenting its own certificate on the mTLS
// listener, still can forward it.
func TestTheProxyIdentityGuardsTheCertificateHeader(t *testing.T) {
	proxyCA := newCA(t, "proxy identity CA")
	as := startAS(t, map[string]map[string]any{"victim.json": pkiClient("victim", "tls_client_auth_subject_dn", "CN=victim")},
		withProxyIdentity(t, proxyCA))
	victim := as.clientCA.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "victim"}})
	attacker := as.clientCA.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "attacker"}})
	ingressURI, _ := url.Parse(ingressIdentity)
	otherURI, _ := url.Parse("spiffe://cluster.local/ns/tenant/sa/default")
	ingress := proxyCA.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "ingress"}, URIs: []*url.URL{ingressURI}})
	tenant := proxyCA.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "ingress"}, URIs: []*url.URL{otherURI}})
	claimVictim := func(r *http.Request) { setCertHeader(r.Header, clientcert.FormatRFC9440, victim.Leaf) }
	ignored := func() float64 {
		return counterValue(t, as.srv.Metrics(), "certbound_as_client_cert_header_ignored_total", "", "")
	}

	for _, c := range []struct {
		name        string
		own         *tls.Certificate
		wantStatus  int
		wantIgnored float64
	}{
		{"a workload with its own certificate", &attacker, http.StatusUnauthorized, 1},
		{"a workload of the proxy CA with another identity", &tenant, http.StatusUnauthorized, 1},
		{"a workload without a certificate", nil, http.StatusUnauthorized, 1},
		{"the proxy's own certificate", &ingress, http.StatusOK, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := ignored()
			got := as.post(t, as.client(c.own), as.mtlsURL, ccForm("victim"), claimVictim)
			if got.status != c.wantStatus {
				t.Fatalf("status %d, want %d: %s", got.status, c.wantStatus, got.raw)
			}
			if n := ignored() - before; n != c.wantIgnored {
				t.Fatalf("%v ignored headers counted, want %v", n, c.wantIgnored)
			}
		})
	}

	viaProxy := func(target string) int {
		front := identifiedProxy(t, as, target, ingress)
		resp, err := proxyClient(front, &victim).PostForm(front.URL+tokenPath, ccForm("victim"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := viaProxy(as.mtlsURL); got != http.StatusOK {
		t.Fatalf("the victim through the proxy to the mTLS listener: %d, want 200", got)
	}
	// The conventional listener asks for no client certificate, so there
	// a proxy cannot prove its identity.
	if got := viaProxy(as.publicURL); got != http.StatusUnauthorized {
		t.Fatalf("the victim through the proxy to the conventional listener: %d, want 401", got)
	}
}

package asruntime

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/asruntime/clientcert"
)

func withCertHeader(format clientcert.Format, trusted string, intermediates ...*x509.Certificate) asOption {
	return func(as *testAS, cfg *Config) {
		src, err := clientcert.New(clientcert.Config{Format: format, TrustedProxies: []netip.Prefix{netip.MustParsePrefix(trusted)},
			OnIgnored: cfg.Metrics.ClientCertHeaderIgnored})
		if err != nil {
			panic(err)
		}
		cfg.ClientCertificates = src
		cfg.Intermediates = intermediates
	}
}

// escapedPEM is what nginx and Envoy put in their headers.
func escapedPEM(certs ...*x509.Certificate) string {
	var b strings.Builder
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return strings.ReplaceAll(url.QueryEscape(b.String()), "+", "%20")
}

// setCertHeader writes the leaf (only) in format, as a proxy would.
func setCertHeader(h http.Header, format clientcert.Format, leaf *x509.Certificate) {
	switch format {
	case clientcert.FormatRFC9440:
		h.Set(clientcert.HeaderClientCert, ":"+base64.StdEncoding.EncodeToString(leaf.Raw)+":")
	case clientcert.FormatXFCC:
		h.Set(clientcert.HeaderXFCC, `By=spiffe://proxy;Hash=x;Cert="`+escapedPEM(leaf)+`";URI=`)
	case clientcert.FormatPEMURLEncoded:
		h.Set(clientcert.HeaderSSLClientCert, escapedPEM(leaf))
	}
}

// terminatingProxy is a TLS-terminating reverse proxy on loopback: it asks
// its clients for a certificate and forwards the leaf, in format, to the
// AS's conventional TLS listener.
func terminatingProxy(t *testing.T, as *testAS, format clientcert.Format) *httptest.Server {
	t.Helper()
	target, _ := url.Parse(as.publicURL)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			for _, h := range []string{clientcert.HeaderClientCert, clientcert.HeaderClientCertChain, clientcert.HeaderXFCC, clientcert.HeaderSSLClientCert} {
				pr.Out.Header.Del(h)
			}
			if pr.In.TLS != nil && len(pr.In.TLS.PeerCertificates) > 0 {
				setCertHeader(pr.Out.Header, format, pr.In.TLS.PeerCertificates[0])
			}
		},
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: as.servingCA.pool()}},
	}
	srv := httptest.NewUnstartedServer(rp)
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func proxyClient(srv *httptest.Server, cert *tls.Certificate) *http.Client {
	// srv.Client() is one shared client: copy its transport, never change it.
	tr := srv.Client().Transport.(*http.Transport).Clone()
	if cert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: tr}
}

func TestForwardedClientCertificates(t *testing.T) {
	for _, format := range []clientcert.Format{clientcert.FormatRFC9440, clientcert.FormatXFCC, clientcert.FormatPEMURLEncoded} {
		t.Run(string(format), func(t *testing.T) {
			var inter *testCA
			as := startAS(t, twoClients(), func(as *testAS, cfg *Config) {
				inter = as.clientCA.intermediate(t, "issuing CA")
				withCertHeader(format, "127.0.0.1/32", inter.cert)(as, cfg)
			})
			// Issued by the intermediate; the proxy forwards the leaf only.
			billing := inter.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "b"}, DNSNames: []string{"billing.example"}})
			proxy := terminatingProxy(t, as, format)
			c := proxyClient(proxy, &billing)

			tok := postForm(t, c, proxy.URL+tokenPath, ccForm("billing"))
			if tok.status != http.StatusOK {
				t.Fatalf("token through the proxy: %d %s", tok.status, tok.body)
			}
			token := tok.json(t)["access_token"].(string)
			if cnf := as.claims(t, token)["cnf"].(map[string]any); cnf["x5t#S256"] != certbinding.Thumbprint(billing.Leaf.Raw) {
				t.Fatalf("token bound to %v, want the forwarded leaf", cnf)
			}
			m := requireActive(t, postForm(t, c, proxy.URL+introspectionPath, url.Values{"client_id": {"billing"}, "token": {token}}))
			if m["cnf"].(map[string]any)["x5t#S256"] != certbinding.Thumbprint(billing.Leaf.Raw) {
				t.Fatalf("introspection cnf %v", m["cnf"])
			}
			// Several clients over the proxy's kept-alive connection: no
			// per-connection state may carry one's verification to another.
			payroll := inter.leaf(t, x509.Certificate{DNSNames: []string{"payroll.example"}})
			if a := postForm(t, proxyClient(proxy, &payroll), proxy.URL+tokenPath, ccForm("billing")); a.status != http.StatusUnauthorized {
				t.Fatalf("payroll's certificate authenticated as billing: %d %s", a.status, a.body)
			}
			if a := postForm(t, proxyClient(proxy, nil), proxy.URL+tokenPath, ccForm("billing")); a.status != http.StatusUnauthorized {
				t.Fatalf("no certificate at the proxy: %d %s", a.status, a.body)
			}
			if a := postForm(t, c, proxy.URL+revocationPath, url.Values{"client_id": {"billing"}, "token": {token}}); a.status != http.StatusOK {
				t.Fatalf("revocation through the proxy: %d %s", a.status, a.body)
			}
			requireInactive(t, postForm(t, c, proxy.URL+introspectionPath, url.Values{"client_id": {"billing"}, "token": {token}}))
		})
	}
}

func TestALeafOnlyHeaderNeedsTheIntermediates(t *testing.T) {
	var inter *testCA
	as := startAS(t, twoClients(), func(as *testAS, cfg *Config) {
		inter = as.clientCA.intermediate(t, "issuing CA")
		withCertHeader(clientcert.FormatRFC9440, "127.0.0.1/32")(as, cfg) // no intermediates
	})
	billing := inter.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
	proxy := terminatingProxy(t, as, clientcert.FormatRFC9440)
	a := postForm(t, proxyClient(proxy, &billing), proxy.URL+tokenPath, ccForm("billing"))
	if a.status != http.StatusUnauthorized {
		t.Fatalf("a leaf without its intermediate authenticated: %d %s", a.status, a.body)
	}
	if got := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", "untrusted_chain"); got != 1 {
		t.Fatalf("untrusted_chain failures = %v, want 1", got)
	}
	// With the chain in Client-Cert-Chain it authenticates.
	h := func(r *http.Request) {
		r.Header.Set(clientcert.HeaderClientCert, ":"+base64.StdEncoding.EncodeToString(billing.Leaf.Raw)+":")
		r.Header.Set(clientcert.HeaderClientCertChain, ":"+base64.StdEncoding.EncodeToString(inter.cert.Raw)+":")
	}
	if a := postForm(t, as.client(nil), as.publicURL+tokenPath, ccForm("billing"), h); a.status != http.StatusOK {
		t.Fatalf("leaf and chain from a trusted address: %d %s", a.status, a.body)
	}
}

func TestCertificateHeaderFromUntrustedOrMalformed(t *testing.T) {
	as := startAS(t, twoClients(), withCertHeader(clientcert.FormatRFC9440, "192.0.2.0/24"))
	billing := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
	header := func(v string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set(clientcert.HeaderClientCert, v) }
	}
	leafHeader := header(":" + base64.StdEncoding.EncodeToString(billing.Leaf.Raw) + ":")

	t.Run("from an untrusted address the header is ignored and counted", func(t *testing.T) {
		a := postForm(t, as.client(nil), as.publicURL+tokenPath, ccForm("billing"), leafHeader)
		if a.status != http.StatusUnauthorized {
			t.Fatalf("%d %s", a.status, a.body)
		}
		if got := counterValue(t, as.srv.Metrics(), "certbound_as_client_cert_header_ignored_total", "", ""); got != 1 {
			t.Fatalf("ignored headers counted %v, want 1", got)
		}
		// The connection's own certificate still counts.
		if a := postForm(t, as.client(&billing), as.mtlsURL+tokenPath, ccForm("billing"), header(":AAAA:")); a.status != http.StatusOK {
			t.Fatalf("mTLS with an ignored header: %d %s", a.status, a.body)
		}
	})

	trusted := startAS(t, twoClients(), withCertHeader(clientcert.FormatRFC9440, "127.0.0.0/8"))
	for name, c := range map[string]struct {
		mutate func(*http.Request)
		status int
	}{
		"a value that is not a byte sequence": {header("MIIB"), http.StatusUnauthorized},
		"base64 that is not a certificate":    {header(":aGVsbG8=:"), http.StatusUnauthorized},
		"a chain that does not parse": {func(r *http.Request) {
			leafHeader(r)
			r.Header.Set(clientcert.HeaderClientCertChain, ":bm9wZQ==:")
		}, http.StatusUnauthorized},
		"two Client-Cert lines": {func(r *http.Request) {
			leafHeader(r)
			r.Header.Add(clientcert.HeaderClientCert, ":AAAA:")
		}, http.StatusUnauthorized},
		"a header over the parser's limit": {header(":" + strings.Repeat("A", clientcert.MaxHeaderBytes) + ":"), http.StatusUnauthorized},
		"a header over the server's limit": {header(":" + strings.Repeat("A", 20<<10) + ":"), http.StatusRequestHeaderFieldsTooLarge},
	} {
		t.Run(name, func(t *testing.T) {
			// Presenting a good certificate over mTLS too: a trusted
			// proxy's bad header never falls back to the connection.
			a := postForm(t, trusted.client(&billing), trusted.mtlsURL+tokenPath, ccForm("billing"), c.mutate)
			if a.status != c.status {
				t.Fatalf("%d %s, want %d", a.status, a.body, c.status)
			}
		})
	}
	if got := counterValue(t, trusted.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", "malformed_certificate_header"); got != 5 {
		t.Fatalf("malformed header failures = %v, want 5", got)
	}
}

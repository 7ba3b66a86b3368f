package resourceproxy_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certbound/certbound/asruntime/clientcert"
	"github.com/certbound/certbound/asruntime/clientcert/clientcertflag"
	"github.com/certbound/certbound/asruntime/resourceproxy"
	"github.com/certbound/certbound/asruntime/resourceserver"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
)

// rfc9440 is a certificate as a Client-Cert value.
func rfc9440(c *x509.Certificate) string {
	return ":" + base64.StdEncoding.EncodeToString(c.Raw) + ":"
}

// frontProxy is a TLS-terminating proxy on loopback in front of target: it
// asks its clients for a certificate, forwards the one it got in
// Client-Cert, and connects to target with its own client certificate.
func frontProxy(t *testing.T, target string, targetCA *rstest.CA, own tls.Certificate) (string, *x509.CertPool) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			if pr.In.TLS != nil && len(pr.In.TLS.PeerCertificates) > 0 {
				pr.Out.Header.Set(clientcert.HeaderClientCert, rfc9440(pr.In.TLS.PeerCertificates[0]))
			}
		},
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: targetCA.Pool(), Certificates: []tls.Certificate{own}}},
	}
	srv := httptest.NewUnstartedServer(rp)
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	return srv.URL, roots
}

// TestADirectConnectionCannotClaimAnotherClientsCertificate: with the
// trusted proxy network a pod network (127.0.0.0/8 here), any pod could
// connect directly and put a victim's public certificate in Client-Cert,
// making a leaked token of the victim's usable. With the proxy identity
// required, only the proxy's own certificate makes the header count.
func TestADirectConnectionCannotClaimAnotherClientsCertificate(t *testing.T) {
	as := rstest.NewAuthority(t)
	up := newUpstream(t)
	clientCA, proxyIdentityCA := rstest.NewCA(t, "client CA"), rstest.NewCA(t, "proxy identity CA")
	victim := clientCA.ClientCertificate(t, "victim")
	attacker := clientCA.ClientCertificate(t, "attacker")
	ingress := proxyIdentityCA.ClientCertificate(t, "ingress")
	impostor := proxyIdentityCA.ClientCertificate(t, "not-ingress")
	leaked := as.Token(t, "victim", audience, &victim)
	caFile := filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxyIdentityCA.Cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name     string
		identity bool
		// direct: the attacker's own TLS certificate, Client-Cert set to the
		// victim's; impostor: the same from a certificate of the proxy CA
		// with another name; proxied: the victim through the real proxy.
		direct, impostor, proxied int
	}{
		{"the address alone is trusted", false, http.StatusOK, http.StatusOK, http.StatusOK},
		{"the proxy identity is required", true, http.StatusUnauthorized, http.StatusUnauthorized, http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			flags := clientcertflag.Flags{Header: "rfc9440", Proxies: "127.0.0.0/8"}
			if c.identity {
				flags.ProxyCAFile, flags.ProxySubject = caFile, "dn:CN=ingress"
			}
			var ignored atomic.Int32
			src, err := flags.Source(func(*http.Request) { ignored.Add(1) }, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			verifier, err := resourceserver.New(resourceserver.Config{Issuer: as.Issuer, Audience: audience, RootCAs: as.CA.Pool(), ClientCertificates: src})
			if err != nil {
				t.Fatal(err)
			}
			proxyURL, servingCA := startProxy(t, resourceproxy.Config{Upstream: up.url, Verifier: verifier, ClientCertificates: src, Metrics: prometheus.NewRegistry()})
			front, frontRoots := frontProxy(t, proxyURL, servingCA, ingress)

			send := func(base string, c *http.Client, claimed *x509.Certificate) int {
				t.Helper()
				req := authorized(t, base+"/orders", leaked)
				if claimed != nil {
					req.Header.Set(clientcert.HeaderClientCert, rfc9440(claimed))
				}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp.StatusCode
			}
			if got := send(proxyURL, client(servingCA, &attacker), victim.Leaf); got != c.direct {
				t.Errorf("direct connection claiming the victim's certificate: %d, want %d", got, c.direct)
			}
			if got := send(proxyURL, client(servingCA, &impostor), victim.Leaf); got != c.impostor {
				t.Errorf("another certificate of the proxy CA claiming the victim's certificate: %d, want %d", got, c.impostor)
			}
			viaFront := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: frontRoots, Certificates: []tls.Certificate{victim}}}, Timeout: 10 * time.Second}
			if got := send(front, viaFront, nil); got != c.proxied {
				t.Errorf("the victim through the proxy: %d, want %d", got, c.proxied)
			}
			var wantIgnored int32
			if c.identity {
				wantIgnored = 2
			}
			if got := ignored.Load(); got != wantIgnored {
				t.Errorf("%d ignored headers reported, want %d", got, wantIgnored)
			}
		})
	}
}

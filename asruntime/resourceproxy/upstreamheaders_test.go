package resourceproxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/certbound/certbound/asruntime/resourceproxy"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
)

func TestUpstreamSeesNoCertificateOrIdentityHeaderTheClientSent(t *testing.T) {
	var (
		mu              sync.Mutex
		header, trailer http.Header
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // trailers arrive after the body
		mu.Lock()
		header, trailer = r.Header.Clone(), r.Trailer.Clone()
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	up, _ := url.Parse(srv.URL)

	as := rstest.NewAuthority(t)
	proxyURL, proxyCA := startProxy(t, resourceproxy.Config{Upstream: up, Verifier: newVerifier(t, as)})
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "orders-worker")
	token := as.Token(t, "orders", audience, &cert)

	const spoof = ":c3Bvb2ZlZA==:"
	spoofed := []string{
		"Client-Cert", "Client-Cert-Chain", "X-Forwarded-Client-Cert", "X-SSL-Client-Cert",
		"X-Client-Cert", "Ssl-Client-Cert", "X-ARR-ClientCert",
		"client-cert", "x-forwarded-client-cert", "X_SSL_Client_Cert", "x-arr-clientcert",
		"X-Certbound-Client-Id", "x-certbound-scope",
	}
	req, err := http.NewRequest(http.MethodPost, proxyURL+"/orders", io.NopCloser(strings.NewReader("order")))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("X-Request-Id", "r-1")
	req.Trailer = http.Header{}
	for _, name := range spoofed {
		req.Header[name] = []string{spoof} // as given, so non-canonical names reach the proxy
		req.Trailer[name] = []string{spoof}
	}
	resp, err := client(proxyCA, &cert).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d, want 200", resp.StatusCode)
	}

	mu.Lock()
	defer mu.Unlock()
	if header == nil {
		t.Fatal("the request did not reach upstream")
	}
	for _, seen := range []struct {
		what string
		h    http.Header
	}{{"header", header}, {"trailer", trailer}} {
		for name, values := range seen.h {
			for _, v := range values {
				if v == spoof {
					t.Errorf("upstream received the client's %s %s", seen.what, name)
				}
			}
		}
	}
	for name, want := range map[string]string{
		resourceproxy.HeaderClientID: "orders",
		resourceproxy.HeaderScope:    "read write",
		"X-Request-Id":               "r-1",
	} {
		if got := header.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("upstream header %s = %q, want [%q]", name, got, want)
		}
	}
}

package resourceserver_test

import (
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/certbound/certbound/asruntime/clientcert"
	"github.com/certbound/certbound/asruntime/resourceserver"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
)

func TestVerifyTakesTheForwardedCertificateFromTrustedProxiesOnly(t *testing.T) {
	as := rstest.NewAuthority(t)
	clientCA := rstest.NewCA(t, "client CA")
	cert := clientCA.ClientCertificate(t, "billing")
	token := as.Token(t, "billing", "https://api.example", &cert)
	header := ":" + base64.StdEncoding.EncodeToString(cert.Leaf.Raw) + ":"

	for _, c := range []struct {
		name, trusted, header string
		want                  int
		ignored               int
	}{
		{"a trusted proxy's header proves the binding", "127.0.0.0/8", header, http.StatusOK, 0},
		{"an untrusted peer's header is ignored", "192.0.2.0/24", header, http.StatusUnauthorized, 1},
		{"a trusted proxy's malformed header is a bad request", "127.0.0.0/8", ":nope:", http.StatusBadRequest, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ignored := 0
			src, err := clientcert.New(clientcert.Config{Format: clientcert.FormatRFC9440,
				TrustedProxies: []netip.Prefix{netip.MustParsePrefix(c.trusted)}, OnIgnored: func(*http.Request) { ignored++ }})
			if err != nil {
				t.Fatal(err)
			}
			v, err := resourceserver.New(resourceserver.Config{Issuer: as.Issuer, Audience: "https://api.example",
				RootCAs: as.CA.Pool(), ClientCertificates: src})
			if err != nil {
				t.Fatal(err)
			}
			// Plain HTTP behind the (simulated) TLS-terminating proxy.
			srv := httptest.NewServer(v.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set(clientcert.HeaderClientCert, c.header)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want || ignored != c.ignored {
				t.Fatalf("HTTP %d (ignored %d), want %d (ignored %d)", resp.StatusCode, ignored, c.want, c.ignored)
			}
		})
	}
}

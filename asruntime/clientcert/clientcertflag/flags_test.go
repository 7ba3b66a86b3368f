package clientcertflag

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certbound/certbound/asruntime/clientcert"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
)

func writeCAFile(t *testing.T, cas ...*rstest.CA) string {
	t.Helper()
	var b []byte
	for _, ca := range cas {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})...)
	}
	path := filepath.Join(t.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestFlags(t *testing.T) {
	caFile := writeCAFile(t, rstest.NewCA(t, "proxy CA"))
	empty := filepath.Join(t.TempDir(), "empty.pem")
	if err := os.WriteFile(empty, []byte("no PEM here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name                  string
		header, proxies       string
		proxyCA, proxySubject string
		want                  string
	}{
		{"no header and no proxies is TLS only", "", "", "", "", ""},
		{"proxies without a header are refused", "", "10.0.0.0/8", "", "", "needs --client-cert-header"},
		{"a proxy identity without a header is refused", "", "", caFile, "dns:ingress.example", "need --client-cert-header"},
		{"a header without proxies is refused", "xfcc", "", "", "", "needs --trusted-proxy-cidrs"},
		{"an unknown format is refused", "haproxy", "10.0.0.0/8", "", "", "format"},
		{"a bad CIDR is refused", "xfcc", "10.0.0.0/33", "", "", "--trusted-proxy-cidrs"},
		{"a renamed pem-urlencoded header is accepted", "pem-urlencoded=X-Client-Cert", "10.0.0.0/8, 192.0.2.7", "", "", ""},
		{"a proxy identity is accepted", "xfcc", "10.0.0.0/8", caFile, "uri:spiffe://cluster.local/ns/ingress/sa/envoy", ""},
		{"a CA without a subject is refused", "xfcc", "10.0.0.0/8", caFile, "", "go together"},
		{"a subject without a CA is refused", "xfcc", "10.0.0.0/8", "", "dns:ingress.example", "go together"},
		{"a subject of an unknown kind is refused", "xfcc", "10.0.0.0/8", caFile, "ip:10.0.0.1", "want uri:URI, dns:NAME or dn:"},
		{"a subject without a kind is refused", "xfcc", "10.0.0.0/8", caFile, "ingress.example", "want uri:URI"},
		{"a malformed DN is refused", "xfcc", "10.0.0.0/8", caFile, "dn:CN", "--trusted-proxy-subject: dn:"},
		{"a relative URI is refused", "xfcc", "10.0.0.0/8", caFile, "uri:ingress", "not an absolute URI"},
		{"a missing CA file is refused", "xfcc", "10.0.0.0/8", filepath.Join(t.TempDir(), "missing.pem"), "dns:a.example", "--trusted-proxy-ca-file"},
		{"a CA file without certificates is refused", "xfcc", "10.0.0.0/8", empty, "dns:a.example", "no PEM certificates"},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := Flags{Header: c.header, Proxies: c.proxies, ProxyCAFile: c.proxyCA, ProxySubject: c.proxySubject}
			_, err := f.Source(nil, discard())
			if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
		})
	}
}

func TestWideNetworks(t *testing.T) {
	for cidrs, want := range map[string]string{
		"10.0.0.0/24, 192.0.2.7, 2001:db8::/120, 2001:db8::1": "",
		"10.244.0.0/16":                    "10.244.0.0/16",
		"10.244.1.0/23, 10.244.2.0/24":     "10.244.0.0/23",
		"0.0.0.0/0":                        "0.0.0.0/0",
		"::/0, fd00:10:244::/64":           "::/0 fd00:10:244::/64",
		"2001:db8::/119":                   "2001:db8::/119",
		"::ffff:10.0.0.0/104, 10.1.0.0/25": "10.0.0.0/8",
	} {
		p, err := clientcert.ParseCIDRs(cidrs)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, w := range WideNetworks(p) {
			got = append(got, w.String())
		}
		if strings.Join(got, " ") != want {
			t.Errorf("WideNetworks(%s) = %v, want %s", cidrs, got, want)
		}
	}
}

func TestWideTrustedProxyNetworksAreLoggedAtStartUp(t *testing.T) {
	caFile := writeCAFile(t, rstest.NewCA(t, "proxy CA"))
	for _, c := range []struct {
		name, proxies string
		identity      bool
		want          []string // substrings of the one warning; none: no log line
	}{
		{"a /24 and a host", "10.0.0.0/24,192.0.2.7", false, nil},
		{"a pod network without a proxy identity", "127.0.0.0/8", false, []string{"level=WARN", "any host in them can connect directly", `networks=127.0.0.0/8`, "every_address=false", "proxy_identity=false"}},
		{"every address", "0.0.0.0/0,::/0", false, []string{"level=WARN", `networks=0.0.0.0/0,::/0`, "every_address=true"}},
		{"an IPv6 pod range", "fd00::/64", false, []string{"level=WARN", "networks=fd00::/64"}},
		{"a pod network with a proxy identity", "10.244.0.0/16", true, []string{"level=WARN", "still honoured only on connections that present the --trusted-proxy-subject certificate", "proxy_identity=true"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			f := Flags{Header: "rfc9440", Proxies: c.proxies}
			if c.identity {
				f.ProxyCAFile, f.ProxySubject = caFile, "dns:ingress.example"
			}
			if _, err := f.Source(nil, slog.New(slog.NewTextHandler(&out, nil))); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if c.want == nil {
				if out.Len() != 0 {
					t.Fatalf("unexpected log: %s", out.String())
				}
				return
			}
			if len(lines) != 1 {
				t.Fatalf("%d log lines, want 1: %s", len(lines), out.String())
			}
			for _, w := range c.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("log %q lacks %q", lines[0], w)
				}
			}
		})
	}
}

// TestProxyIdentityIsMatchedWithTheRegistrationModel: the proxy's
// certificate must chain to the proxy roots, be valid for client
// authentication and carry the configured subject, matched as a client's
// registered subject is (DN attribute type case does not matter).
func TestProxyIdentityIsMatchedWithTheRegistrationModel(t *testing.T) {
	proxyCA, otherCA := rstest.NewCA(t, "proxy CA"), rstest.NewCA(t, "other CA")
	caFile := writeCAFile(t, proxyCA)
	client := rstest.NewCA(t, "client CA").ClientCertificate(t, "victim")
	for _, c := range []struct {
		name      string
		subject   string
		peer      *tls.Certificate
		forwarded bool
	}{
		{"the proxy's certificate", "dn:cn=Ingress", ptr(proxyCA.ClientCertificate(t, "Ingress")), true},
		{"no TLS client certificate", "dn:cn=Ingress", nil, false},
		{"another workload of the proxy CA", "dn:cn=Ingress", ptr(proxyCA.ClientCertificate(t, "attacker")), false},
		{"the proxy's name under another CA", "dn:cn=Ingress", ptr(otherCA.ClientCertificate(t, "Ingress")), false},
		{"a certificate not valid for client authentication", "dns:localhost", ptr(proxyCA.ServingCertificate(t)), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ignored := 0
			f := Flags{Header: "rfc9440", Proxies: "127.0.0.0/8", ProxyCAFile: caFile, ProxySubject: c.subject}
			src, err := f.Source(func(*http.Request) { ignored++ }, discard())
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = "127.0.0.1:4444"
			r.TLS = &tls.ConnectionState{}
			if c.peer != nil {
				r.TLS.PeerCertificates = []*x509.Certificate{c.peer.Leaf}
			}
			r.Header.Set(clientcert.HeaderClientCert, ":"+base64.StdEncoding.EncodeToString(client.Leaf.Raw)+":")
			certs, forwarded, err := src.Certificates(r)
			if err != nil {
				t.Fatal(err)
			}
			if forwarded != c.forwarded {
				t.Fatalf("forwarded = %v, want %v", forwarded, c.forwarded)
			}
			switch {
			case forwarded && (len(certs) != 1 || !certs[0].Equal(client.Leaf)):
				t.Fatal("the header's certificate was not taken")
			case !forwarded && ignored != 1:
				t.Fatal("the ignored header was not reported")
			case !forwarded && len(certs) > 0 && certs[0].Equal(client.Leaf):
				t.Fatal("the header's certificate was taken")
			}
		})
	}
}

// TestAProvenProxyIsRememberedByItsCertificateOnly: once the proxy's
// certificate proved the identity, its later requests skip the chain
// verification, and no other certificate benefits.
func TestAProvenProxyIsRememberedByItsCertificateOnly(t *testing.T) {
	proxyCA := rstest.NewCA(t, "proxy CA")
	f := Flags{Header: "rfc9440", Proxies: "127.0.0.0/8", ProxyCAFile: writeCAFile(t, proxyCA), ProxySubject: "dn:CN=ingress"}
	src, err := f.Source(nil, discard())
	if err != nil {
		t.Fatal(err)
	}
	victim := rstest.NewCA(t, "client CA").ClientCertificate(t, "victim")
	forwarded := func(peer *x509.Certificate) bool {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "127.0.0.1:4444"
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer}}
		r.Header.Set(clientcert.HeaderClientCert, ":"+base64.StdEncoding.EncodeToString(victim.Leaf.Raw)+":")
		_, fwd, err := src.Certificates(r)
		if err != nil {
			t.Fatal(err)
		}
		return fwd
	}
	ingress := proxyCA.ClientCertificate(t, "ingress").Leaf
	for i, c := range []struct {
		peer *x509.Certificate
		want bool
	}{
		{ingress, true},
		{ingress, true},
		{proxyCA.ClientCertificate(t, "attacker").Leaf, false},
		{rstest.NewCA(t, "other CA").ClientCertificate(t, "ingress").Leaf, false},
		{ingress, true},
	} {
		if got := forwarded(c.peer); got != c.want {
			t.Fatalf("request %d: forwarded = %v, want %v", i, got, c.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

// BenchmarkForwardedHeaderWithProxyIdentity is the cost of one request's
// header when the proxy identity is checked: a chain verification, the
// subject match and the header's parse.
func BenchmarkForwardedHeaderWithProxyIdentity(b *testing.B) {
	proxyCA := rstest.NewCA(b, "proxy CA")
	path := filepath.Join(b.TempDir(), "proxy-ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: proxyCA.Cert.Raw}), 0o600); err != nil {
		b.Fatal(err)
	}
	for _, withIdentity := range []bool{false, true} {
		f := Flags{Header: "rfc9440", Proxies: "127.0.0.0/8"}
		if withIdentity {
			f.ProxyCAFile, f.ProxySubject = path, "dn:CN=ingress"
		}
		src, err := f.Source(nil, discard())
		if err != nil {
			b.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = "127.0.0.1:4444"
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{proxyCA.ClientCertificate(b, "ingress").Leaf}}
		r.Header.Set(clientcert.HeaderClientCert, ":"+base64.StdEncoding.EncodeToString(rstest.NewCA(b, "client CA").ClientCertificate(b, "victim").Leaf.Raw)+":")
		b.Run(map[bool]string{false: "address only", true: "proxy identity"}[withIdentity], func(b *testing.B) {
			for b.Loop() {
				if _, forwarded, err := src.Certificates(r); err != nil || !forwarded {
					b.Fatal(forwarded, err)
				}
			}
		})
	}
}

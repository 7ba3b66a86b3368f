package clientcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func testCert(t testing.TB, cn string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sf(c *x509.Certificate) string { return ":" + base64.StdEncoding.EncodeToString(c.Raw) + ":" }

func pemOf(certs ...*x509.Certificate) string {
	var b strings.Builder
	for _, c := range certs {
		b.Write(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	return b.String()
}

// escaped is what nginx's $ssl_client_escaped_cert and Envoy produce:
// every reserved character, "+" and "/" included, percent-encoded.
func escaped(certs ...*x509.Certificate) string {
	return strings.ReplaceAll(url.QueryEscape(pemOf(certs...)), "+", "%20")
}

func names(certs []*x509.Certificate) string {
	var n []string
	for _, c := range certs {
		n = append(n, c.Subject.CommonName)
	}
	return strings.Join(n, ",")
}

func TestParsers(t *testing.T) {
	leaf, inter, other := testCert(t, "leaf"), testCert(t, "inter"), testCert(t, "other")
	big := ":" + strings.Repeat("A", 2*MaxHeaderBytes) + ":"
	type parse func() ([]*x509.Certificate, error)
	for _, c := range []struct {
		name  string
		parse parse
		want  string // names of the certificates; "" with err
		err   bool
	}{
		{"an rfc9440 leaf is parsed", func() ([]*x509.Certificate, error) { return ParseRFC9440(sf(leaf), "") }, "leaf", false},
		{"an rfc9440 leaf with white space around it is parsed", func() ([]*x509.Certificate, error) { return ParseRFC9440(" "+sf(leaf)+"\t", "") }, "leaf", false},
		{"an rfc9440 leaf without base64 padding is parsed", func() ([]*x509.Certificate, error) {
			return ParseRFC9440(":"+base64.RawStdEncoding.EncodeToString(leaf.Raw)+":", "")
		}, "leaf", false},
		{"an rfc9440 chain follows the leaf", func() ([]*x509.Certificate, error) { return ParseRFC9440(sf(leaf), sf(inter)+", "+sf(other)) }, "leaf,inter,other", false},
		{"an rfc9440 value without colons is refused", func() ([]*x509.Certificate, error) {
			return ParseRFC9440(base64.StdEncoding.EncodeToString(leaf.Raw), "")
		}, "", true},
		{"an rfc9440 empty byte sequence is refused", func() ([]*x509.Certificate, error) { return ParseRFC9440("::", "") }, "", true},
		{"rfc9440 bad base64 is refused", func() ([]*x509.Certificate, error) { return ParseRFC9440(":*not base64*:", "") }, "", true},
		{"rfc9440 base64 of a non-certificate is refused", func() ([]*x509.Certificate, error) { return ParseRFC9440(":aGVsbG8=:", "") }, "", true},
		{"an rfc9440 chain that does not parse is refused", func() ([]*x509.Certificate, error) { return ParseRFC9440(sf(leaf), sf(inter)+",:aGVsbG8=:") }, "", true},
		{"an rfc9440 chain too long is refused", func() ([]*x509.Certificate, error) {
			return ParseRFC9440(sf(leaf), strings.Repeat(sf(inter)+",", MaxChainCertificates)+sf(inter))
		}, "", true},
		{"an oversized rfc9440 value is refused", func() ([]*x509.Certificate, error) { return ParseRFC9440(big, "") }, "", true},

		{"an xfcc Cert is parsed", func() ([]*x509.Certificate, error) {
			return ParseXFCC(`By=spiffe://as;Hash=abc;Cert="` + escaped(leaf) + `";Subject="CN=leaf,O=x";URI=spiffe://c;DNS=a;DNS=b`)
		}, "leaf", false},
		{"the last xfcc element is the nearest proxy's", func() ([]*x509.Certificate, error) {
			return ParseXFCC(`Cert="` + escaped(other) + `";By=x,Cert="` + escaped(leaf) + `"`)
		}, "leaf", false},
		{"an xfcc Chain adds the intermediates, not the leaf twice", func() ([]*x509.Certificate, error) {
			return ParseXFCC(`Cert="` + escaped(leaf) + `";Chain="` + escaped(leaf, inter) + `"`)
		}, "leaf,inter", false},
		{"an xfcc Chain without Cert starts with the leaf", func() ([]*x509.Certificate, error) {
			return ParseXFCC(`Chain="` + escaped(leaf, inter) + `"`)
		}, "leaf,inter", false},
		{"an unquoted xfcc Cert is parsed", func() ([]*x509.Certificate, error) { return ParseXFCC(`Cert=` + escaped(leaf)) }, "leaf", false},
		{"quoted commas and escaped quotes do not split xfcc", func() ([]*x509.Certificate, error) {
			return ParseXFCC(`Subject="CN=a, O=\"b;c\"";Cert="` + escaped(leaf) + `"`)
		}, "leaf", false},
		{"an xfcc element without Cert is no certificate", func() ([]*x509.Certificate, error) { return ParseXFCC(`By=spiffe://x;Hash=abc`) }, "", false},
		{"an unterminated xfcc quote is refused", func() ([]*x509.Certificate, error) { return ParseXFCC(`Cert="` + escaped(leaf)) }, "", true},
		{"a repeated xfcc Cert is refused", func() ([]*x509.Certificate, error) {
			return ParseXFCC(`Cert="` + escaped(leaf) + `";Cert="` + escaped(other) + `"`)
		}, "", true},
		{"an xfcc key without a value is refused", func() ([]*x509.Certificate, error) { return ParseXFCC(`Cert`) }, "", true},
		{"an xfcc Cert of two certificates is refused", func() ([]*x509.Certificate, error) { return ParseXFCC(`Cert="` + escaped(leaf, other) + `"`) }, "", true},
		{"a bad xfcc percent-encoding is refused", func() ([]*x509.Certificate, error) { return ParseXFCC(`Cert="%zz"`) }, "", true},
		{"an empty xfcc value is refused", func() ([]*x509.Certificate, error) { return ParseXFCC(` , `) }, "", true},

		{"a url-encoded PEM leaf is parsed", func() ([]*x509.Certificate, error) { return ParsePEMURLEncoded(escaped(leaf)) }, "leaf", false},
		{"a literal + in the encoding stays a + (base64, not a space)", func() ([]*x509.Certificate, error) {
			return ParsePEMURLEncoded(strings.ReplaceAll(escaped(leaf), "%2B", "+"))
		}, "leaf", false},
		{"a PEM private key is refused", func() ([]*x509.Certificate, error) {
			return ParsePEMURLEncoded(url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}))))
		}, "", true},
		{"trailing garbage after the PEM is refused", func() ([]*x509.Certificate, error) { return ParsePEMURLEncoded(escaped(leaf) + "junk") }, "", true},
		{"no PEM at all is refused", func() ([]*x509.Certificate, error) { return ParsePEMURLEncoded("hello") }, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.parse()
			if c.err {
				if err == nil || !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v, want one wrapping ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != c.want {
				t.Fatalf("certificates %q, want %q", names(got), c.want)
			}
		})
	}
}

func TestSourceHonoursTheHeaderOnlyFromTrustedProxies(t *testing.T) {
	leaf, tlsPeer := testCert(t, "leaf"), testCert(t, "tls peer")
	ignored := 0
	src, err := New(Config{Format: FormatRFC9440, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		OnIgnored: func(*http.Request) { ignored++ }})
	if err != nil {
		t.Fatal(err)
	}
	req := func(remote string, header string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = remote
		r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{tlsPeer}}
		if header != "" {
			r.Header.Set(HeaderClientCert, header)
		}
		return r
	}
	for _, c := range []struct {
		name, remote, header string
		want                 string
		forwarded, err       bool
		ignoredAfter         int
	}{
		{"a trusted proxy's header is the client's certificate", "10.1.2.3:5555", sf(leaf), "leaf", true, false, 0},
		{"a trusted proxy over IPv4-in-IPv6 is trusted", "[::ffff:10.1.2.3]:5555", sf(leaf), "leaf", true, false, 0},
		{"a trusted proxy without the header means no certificate, not the proxy's own", "10.1.2.3:5555", "", "", true, false, 0},
		{"a trusted proxy's malformed header is an error", "10.1.2.3:5555", ":bad:", "", true, true, 0},
		{"an untrusted peer's header is ignored and counted", "192.0.2.1:5555", sf(leaf), "tls peer", false, false, 1},
		{"an untrusted peer without the header uses TLS", "192.0.2.1:5555", "", "tls peer", false, false, 1},
		{"an unparsable remote address is untrusted", "garbage", sf(leaf), "tls peer", false, false, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, fwd, err := src.Certificates(req(c.remote, c.header))
			if (err != nil) != c.err || fwd != c.forwarded || names(got) != c.want || ignored != c.ignoredAfter {
				t.Fatalf("got %q forwarded=%v err=%v ignored=%d", names(got), fwd, err, ignored)
			}
		})
	}
	var nilSource *Source
	if got, fwd, err := nilSource.Certificates(req("10.1.2.3:1", sf(leaf))); names(got) != "tls peer" || fwd || err != nil {
		t.Fatalf("a nil source must use TLS only: %q %v %v", names(got), fwd, err)
	}
}

func TestOversizedHeaderIsMalformed(t *testing.T) {
	src, err := New(Config{Format: FormatPEMURLEncoded, Header: "X-Client", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "127.0.0.1:1"
	r.Header.Set("X-Client", strings.Repeat("a", MaxHeaderBytes))
	if _, _, err := src.Certificates(r); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "larger") {
		t.Fatalf("error %v, want a size error", err)
	}
}

func TestParseCIDRs(t *testing.T) {
	p, err := ParseCIDRs("192.0.2.7, ::ffff:10.0.0.0/104")
	if err != nil || len(p) != 2 || p[0].String() != "192.0.2.7/32" || p[1].String() != "10.0.0.0/8" {
		t.Fatalf("ParseCIDRs = %v, %v", p, err)
	}
}

// FuzzHeaderParsers feeds arbitrary header values to the three parsers:
// they may refuse them, but must never panic, and what they accept is
// bounded.
func FuzzHeaderParsers(f *testing.F) {
	leaf := testCert(f, "leaf")
	f.Add(sf(leaf), "")
	f.Add(sf(leaf), sf(leaf)+","+sf(leaf))
	f.Add(`By=x;Cert="`+escaped(leaf)+`";Chain="`+escaped(leaf)+`"`, "")
	f.Add(escaped(leaf), "")
	f.Add(`a="\"`, `::,:`)
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, got := range [][]*x509.Certificate{
			must(ParseRFC9440(a, b)), must(ParseXFCC(a)), must(ParsePEMURLEncoded(a)),
		} {
			if len(got) > MaxChainCertificates {
				t.Fatalf("%d certificates accepted", len(got))
			}
		}
	})
}

func must(c []*x509.Certificate, err error) []*x509.Certificate {
	if err != nil && !errors.Is(err, ErrMalformed) {
		panic(err)
	}
	return c
}

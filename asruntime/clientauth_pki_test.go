package asruntime

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/certbound/certbound/asruntime/certbinding"
)

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestTLSClientAuthSubjectKinds covers each RFC 8705 §2.1.2 subject member
// with a certificate that matches and one that nearly does.
func TestTLSClientAuthSubjectKinds(t *testing.T) {
	type tc struct {
		member, registered string
		match, nearMiss    x509.Certificate
	}
	cases := map[string]tc{
		"subject DN": {
			member: "tls_client_auth_subject_dn", registered: "CN=billing,OU=payments,O=Acme,C=DE",
			match:    x509.Certificate{Subject: pkix.Name{CommonName: "billing", OrganizationalUnit: []string{"payments"}, Organization: []string{"Acme"}, Country: []string{"DE"}}},
			nearMiss: x509.Certificate{Subject: pkix.Name{CommonName: "billing", OrganizationalUnit: []string{"payment"}, Organization: []string{"Acme"}, Country: []string{"DE"}}},
		},
		"SAN DNS name": {
			member: "tls_client_auth_san_dns", registered: "billing.acme.example",
			match:    x509.Certificate{Subject: pkix.Name{CommonName: "x"}, DNSNames: []string{"other.example", "Billing.Acme.Example"}},
			nearMiss: x509.Certificate{Subject: pkix.Name{CommonName: "billing.acme.example"}, DNSNames: []string{"billing.acme.example.org"}},
		},
		"SAN URI": {
			member: "tls_client_auth_san_uri", registered: "spiffe://acme.example/ns/pay/sa/billing",
			match:    x509.Certificate{URIs: []*url.URL{mustURL(t, "spiffe://acme.example/ns/pay/sa/billing")}},
			nearMiss: x509.Certificate{URIs: []*url.URL{mustURL(t, "spiffe://acme.example/ns/pay/sa/billing2")}},
		},
		"SAN IP, compared in binary": {
			member: "tls_client_auth_san_ip", registered: "0:0:0:0:0:0:0:1",
			match:    x509.Certificate{IPAddresses: []net.IP{net.ParseIP("::1")}},
			nearMiss: x509.Certificate{IPAddresses: []net.IP{net.ParseIP("::2")}},
		},
		"SAN email": {
			member: "tls_client_auth_san_email", registered: "billing@ACME.example",
			match:    x509.Certificate{EmailAddresses: []string{"billing@acme.example"}},
			nearMiss: x509.Certificate{EmailAddresses: []string{"Billing@acme.example"}},
		},
	}
	docs := map[string]map[string]any{}
	for name, c := range cases {
		docs[name+".json"] = pkiClient(name, c.member, c.registered)
	}
	as := startAS(t, docs)
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			good := as.clientCA.leaf(t, c.match)
			resp := as.post(t, as.client(&good), as.mtlsURL, ccForm(name))
			if resp.status != http.StatusOK {
				t.Fatalf("matching certificate: %d %s", resp.status, resp.raw)
			}
			claims := as.claims(t, resp.body["access_token"].(string))
			cnf, _ := claims["cnf"].(map[string]any)
			if cnf["x5t#S256"] != certbinding.Thumbprint(good.Certificate[0]) {
				t.Fatalf("cnf = %v, want the thumbprint of the client certificate", claims["cnf"])
			}
			bad := as.clientCA.leaf(t, c.nearMiss)
			resp = as.post(t, as.client(&bad), as.mtlsURL, ccForm(name))
			if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
				t.Fatalf("near-miss certificate: %d %s", resp.status, resp.raw)
			}
		})
	}
}

func TestTLSClientAuthDNNormalisationAndOrder(t *testing.T) {
	as := startAS(t, map[string]map[string]any{
		"billing.json": pkiClient("billing", "tls_client_auth_subject_dn", "cn=billing worker,  o=ACME"),
	})
	matching := as.clientCA.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "Billing Worker", Organization: []string{"Acme"}}})
	if resp := as.post(t, as.client(&matching), as.mtlsURL, ccForm("billing")); resp.status != http.StatusOK {
		t.Fatalf("case and spacing differences must not matter: %d %s", resp.status, resp.raw)
	}
	// The same two RDNs in the other order: CN first in the certificate's
	// ASN.1 sequence makes "O=Acme,CN=Billing Worker" in RFC 4514.
	reversed := as.clientCA.leaf(t, x509.Certificate{RawSubject: rawSubject(t, pkix.RDNSequence{
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "Billing Worker"}},
		{{Type: asn1.ObjectIdentifier{2, 5, 4, 10}, Value: "Acme"}},
	})})
	if resp := as.post(t, as.client(&reversed), as.mtlsURL, ccForm("billing")); resp.status != http.StatusUnauthorized {
		t.Fatalf("RDN order must matter: %d %s", resp.status, resp.raw)
	}
}

func rawSubject(t testing.TB, seq pkix.RDNSequence) []byte {
	t.Helper()
	b, err := asn1.Marshal(seq)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTLSClientAuthChainRules(t *testing.T) {
	const dn = "CN=billing,O=Acme"
	subject := pkix.Name{CommonName: "billing", Organization: []string{"Acme"}}
	as := startAS(t, map[string]map[string]any{"billing.json": pkiClient("billing", "tls_client_auth_subject_dn", dn)})

	inter := as.clientCA.intermediate(t, "issuing CA")
	viaIntermediate := inter.leaf(t, x509.Certificate{Subject: subject}, inter.cert)
	if resp := as.post(t, as.client(&viaIntermediate), as.mtlsURL, ccForm("billing")); resp.status != http.StatusOK {
		t.Fatalf("a chain through a presented intermediate: %d %s", resp.status, resp.raw)
	}

	rogue := newCA(t, "client CA")
	spoofed := rogue.leaf(t, x509.Certificate{Subject: subject})
	expired := as.clientCA.leaf(t, x509.Certificate{Subject: subject, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	serverOnly := as.clientCA.leaf(t, x509.Certificate{Subject: subject, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	leafOnly := inter.leaf(t, x509.Certificate{Subject: subject})
	selfSignedDN, _ := selfSigned(t, "billing")

	for name, c := range map[string]struct {
		cert   tls.Certificate
		reason authFailure
	}{
		"a certificate from an untrusted CA with the right DN (RFC 8705 §7.4)": {spoofed, failUntrustedChain},
		"an expired certificate":                                   {expired, failExpiredChain},
		"a certificate without the client-auth usage":              {serverOnly, failWrongKeyUsage},
		"a leaf whose intermediate is neither sent nor configured": {leafOnly, failUntrustedChain},
		"a self-signed certificate with the right DN":              {selfSignedDN, failUntrustedChain},
	} {
		t.Run(name, func(t *testing.T) {
			before := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(c.reason))
			resp := as.post(t, as.client(&c.cert), as.mtlsURL, ccForm("billing"))
			if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
				t.Fatalf("%d %s", resp.status, resp.raw)
			}
			if after := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(c.reason)); after != before+1 {
				t.Fatalf("failure reason %s counted %v times, want 1", c.reason, after-before)
			}
		})
	}
}

// TestTLSClientAuthChecksTimeOnEveryRequest moves the clock past the leaf's
// expiry on a kept-alive connection whose chain was verified before.
func TestTLSClientAuthChecksTimeOnEveryRequest(t *testing.T) {
	as := startAS(t, map[string]map[string]any{"billing.json": pkiClient("billing", "tls_client_auth_san_dns", "billing.example")})
	cert := as.clientCA.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}, NotAfter: time.Now().Add(time.Hour)})
	c := as.client(&cert)
	if resp := as.post(t, c, as.mtlsURL, ccForm("billing")); resp.status != http.StatusOK {
		t.Fatalf("%d %s", resp.status, resp.raw)
	}
	as.clock.advance(2 * time.Hour)
	if resp := as.post(t, c, as.mtlsURL, ccForm("billing")); resp.status != http.StatusUnauthorized {
		t.Fatalf("after expiry on the same connection: %d %s", resp.status, resp.raw)
	}
}

func TestTLSClientAuthIntermediatesFromConfig(t *testing.T) {
	var inter *testCA
	as := startAS(t, map[string]map[string]any{"billing.json": pkiClient("billing", "tls_client_auth_san_dns", "billing.example")},
		func(as *testAS, c *Config) {
			inter = as.clientCA.intermediate(t, "issuing CA")
			c.Intermediates = []*x509.Certificate{inter.cert}
		})
	leafOnly := inter.leaf(t, x509.Certificate{DNSNames: []string{"billing.example"}})
	if resp := as.post(t, as.client(&leafOnly), as.mtlsURL, ccForm("billing")); resp.status != http.StatusOK {
		t.Fatalf("a leaf completed by a configured intermediate: %d %s", resp.status, resp.raw)
	}
}

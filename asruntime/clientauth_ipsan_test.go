package asruntime

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"net"
	"net/http"
	"testing"
)

// ipSANExtension is a subjectAltName of iPAddress entries (GeneralName [7]
// OCTET STRING) with exactly the given bytes. crypto/x509 writes an
// IPv4-mapped IPv6 address of a template as 4 bytes, so a certificate that
// carries the 16-byte form needs the extension built by hand.
func ipSANExtension(t testing.TB, ips ...[]byte) pkix.Extension {
	t.Helper()
	var names []asn1.RawValue
	for _, ip := range ips {
		names = append(names, asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 7, Bytes: ip})
	}
	der, err := asn1.Marshal(names)
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 17}, Value: der}
}

// TestTLSClientAuthSANIPIsBinary: RFC 8705 §2.1.2 compares iPAddress SANs
// as octets. A sub-CA whose name constraints exclude 10.0.0.0/8 can still
// issue a certificate for the 16-byte IPv4-mapped ::ffff:10.0.0.5, because
// crypto/x509 applies a 4-byte IP constraint only to 4-byte addresses. Were
// the SAN compared as an address (net.IP.Equal) rather than as bytes, that
// certificate would authenticate the client registered as "10.0.0.5" and
// the CA's name constraint would be bypassed.
func TestTLSClientAuthSANIPIsBinary(t *testing.T) {
	as := startAS(t, map[string]map[string]any{
		"ip.json": pkiClient("ip", "tls_client_auth_san_ip", "10.0.0.5"),
	})
	_, tenNet, err := net.ParseCIDR("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	key := newKey(t)
	constrained := &testCA{key: key, cert: createCert(t, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "constrained CA"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
		ExcludedIPRanges:      []*net.IPNet{tenNet},
	}, as.clientCA.cert, key.Public(), as.clientCA.key)}

	mapped := net.ParseIP("::ffff:10.0.0.5").To16()
	evading := constrained.leaf(t, x509.Certificate{
		Subject:         pkix.Name{CommonName: "evading"},
		ExtraExtensions: []pkix.Extension{ipSANExtension(t, mapped)},
	}, constrained.cert)
	if got := evading.Leaf.IPAddresses; len(got) != 1 || len(got[0]) != net.IPv6len {
		t.Fatalf("the mapped certificate carries %v, want one 16-byte address", got)
	}

	// The premise: the chain of the 16-byte certificate is valid despite
	// the exclusion, while the same address in 4 bytes is refused by it.
	// Only the subject comparison stands between it and a token.
	intermediates := x509.NewCertPool()
	intermediates.AddCert(constrained.cert)
	opts := x509.VerifyOptions{Roots: as.clientCA.pool(), Intermediates: intermediates, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if _, err := evading.Leaf.Verify(opts); err != nil {
		t.Fatalf("premise: crypto/x509 refuses the 16-byte certificate (%v); this test no longer exercises the SAN comparison", err)
	}
	excluded := constrained.leaf(t, x509.Certificate{IPAddresses: []net.IP{net.IPv4(10, 0, 0, 5).To4()}}, constrained.cert)
	if _, err := excluded.Leaf.Verify(opts); err == nil {
		t.Fatal("premise: the name constraint does not exclude 10.0.0.5")
	}

	t.Run("the IPv4-mapped form from a CA excluding 10.0.0.0/8 is invalid_client", func(t *testing.T) {
		before := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failSubjectMismatch))
		resp := as.post(t, as.client(&evading), as.mtlsURL, ccForm("ip"))
		if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
			t.Fatalf("%d %s, want 401 invalid_client", resp.status, resp.raw)
		}
		// The chain was accepted; the SAN comparison refused it.
		if after := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failSubjectMismatch)); after != before+1 {
			t.Fatalf("subject_mismatch counted %v times, want 1", after-before)
		}
	})
	t.Run("the 4-byte form from the constrained CA is refused by its chain", func(t *testing.T) {
		before := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failSubjectMismatch))
		resp := as.post(t, as.client(&excluded), as.mtlsURL, ccForm("ip"))
		if resp.status != http.StatusUnauthorized || resp.errorCode() != "invalid_client" {
			t.Fatalf("%d %s, want 401 invalid_client", resp.status, resp.raw)
		}
		if after := counterValue(t, as.srv.Metrics(), "certbound_as_client_auth_failures_total", "reason", string(failSubjectMismatch)); after != before {
			t.Fatal("refused by the SAN comparison, want by the chain's name constraint")
		}
	})
	t.Run("the 4-byte form from an unconstrained CA gets a token", func(t *testing.T) {
		good := as.clientCA.leaf(t, x509.Certificate{IPAddresses: []net.IP{net.IPv4(10, 0, 0, 5).To4()}})
		if len(good.Leaf.IPAddresses[0]) != net.IPv4len {
			t.Fatalf("the certificate carries %d bytes, want 4", len(good.Leaf.IPAddresses[0]))
		}
		resp := as.post(t, as.client(&good), as.mtlsURL, ccForm("ip"))
		if resp.status != http.StatusOK {
			t.Fatalf("%d %s, want a token", resp.status, resp.raw)
		}
		if _, ok := as.claims(t, resp.body["access_token"].(string))["cnf"]; !ok {
			t.Fatal("the token is not bound to the certificate")
		}
	})
}

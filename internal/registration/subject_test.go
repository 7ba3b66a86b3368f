package registration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// certificate is a self-signed certificate built from change, parsed back
// the way the authorization server sees a client's certificate.
func certificate(t testing.TB, change func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "placeholder"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	change(tmpl)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// ipSANs is a subjectAltName extension with iPAddress entries of exactly
// the given bytes. crypto/x509 writes every IPv4-mapped IPv6 address of a
// template as 4 bytes, so a certificate carrying the 16-byte form needs the
// extension by hand.
func ipSANs(t testing.TB, ips ...[]byte) pkix.Extension {
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

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestKeyAndMatchAgree is the contract of Subject: two spellings have the
// same Key exactly when the same certificates match them. Each spelling
// belongs to a group of equivalent spellings; each certificate carries one
// group's value in some spelling of its own. Every spelling must match
// exactly the certificates of its group, and have the key of exactly the
// spellings of its group; together that is the agreement, which is also
// checked pair by pair.
func TestKeyAndMatchAgree(t *testing.T) {
	utf8CN := func(v string) pkix.AttributeTypeAndValue {
		return atv(oidCN, asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagUTF8String, Bytes: []byte(v)})
	}
	dnCert := func(rdns ...pkix.RelativeDistinguishedNameSET) func(*x509.Certificate) {
		return func(c *x509.Certificate) { c.RawSubject = subjectOf(t, rdns...) }
	}
	type spelling struct {
		kind  SubjectKind
		value string
		group string
	}
	spellings := []spelling{
		// DN: attribute names in any case, short names or OIDs, spaces
		// around separators, multi-valued RDNs in any order, and
		// case-ignoring values are one subject.
		{SubjectDN, "CN=foo,O=Acme", "dn-foo"},
		{SubjectDN, "cn=foo,o=Acme", "dn-foo"},
		{SubjectDN, "Cn = foo ,  O = Acme", "dn-foo"},
		{SubjectDN, "2.5.4.3=foo,2.5.4.10=Acme", "dn-foo"},
		{SubjectDN, "commonName=FOO,organizationName=acme", "dn-foo"},
		{SubjectDN, "CN=bar,O=Acme", "dn-bar"},
		{SubjectDN, "O=Acme,CN=foo", "dn-reversed"},
		{SubjectDN, "CN=foo", "dn-foo-alone"},
		{SubjectDN, "OU=foo,O=Acme", "dn-ou"},
		{SubjectDN, "CN=a+O=b", "dn-multi"},
		{SubjectDN, "O=b+CN=a", "dn-multi"},
		{SubjectDN, "o=B + cn=A", "dn-multi"},
		{SubjectDN, "CN=a,O=b", "dn-split"},
		{SubjectDN, "1.3.6.1.4.1.99999.1=Case", "dn-exact-upper"},
		{SubjectDN, "1.3.6.1.4.1.99999.1=case", "dn-exact-lower"},

		// DNS names compare without case or trailing dot.
		{SubjectSANDNS, "worker.example.com", "dns-worker"},
		{SubjectSANDNS, "Worker.EXAMPLE.com", "dns-worker"},
		{SubjectSANDNS, "worker.example.com.", "dns-worker"},
		{SubjectSANDNS, "worker2.example.com", "dns-worker2"},
		{SubjectSANDNS, "worker.example.co", "dns-worker-co"},

		// URIs compare exactly, in the form Go prints them (which lower-cases
		// the scheme and nothing else).
		{SubjectSANURI, "spiffe://cluster.local/ns/a/sa/x", "uri-x"},
		{SubjectSANURI, "SPIFFE://cluster.local/ns/a/sa/x", "uri-x"},
		{SubjectSANURI, "spiffe://Cluster.Local/ns/a/sa/x", "uri-host-case"},
		{SubjectSANURI, "spiffe://cluster.local/ns/a/sa/X", "uri-path-case"},
		{SubjectSANURI, "spiffe://cluster.local/ns/a/sa/%78", "uri-escaped"},
		{SubjectSANURI, "spiffe://cluster.local/ns/a/sa/x/", "uri-slash"},

		// IP addresses compare in binary: an IPv4 address (4 bytes) and its
		// IPv4-mapped IPv6 form (16 bytes) are different subjects.
		{SubjectSANIP, "10.0.0.1", "ip-v4"},
		{SubjectSANIP, "::ffff:10.0.0.1", "ip-mapped"},
		{SubjectSANIP, "::FFFF:a00:1", "ip-mapped"},
		{SubjectSANIP, "0:0:0:0:0:ffff:0a00:0001", "ip-mapped"},
		{SubjectSANIP, "10.0.0.2", "ip-v4-other"},
		{SubjectSANIP, "2001:db8::1", "ip-v6"},
		{SubjectSANIP, "2001:DB8:0::1", "ip-v6"},

		// Email: the domain without case, the local part exactly.
		{SubjectSANEmail, "worker@example.com", "email-worker"},
		{SubjectSANEmail, "worker@Example.COM", "email-worker"},
		{SubjectSANEmail, "Worker@example.com", "email-Worker"},
		{SubjectSANEmail, "worker@example.org", "email-org"},
	}
	certs := []struct {
		group string
		cert  *x509.Certificate
	}{
		{"dn-foo", certificate(t, dnCert(rdn(atv(oidO, "Acme")), rdn(atv(oidCN, "foo"))))},
		{"dn-foo", certificate(t, dnCert(rdn(atv(oidO, "ACME")), rdn(utf8CN("Foo"))))},
		{"dn-bar", certificate(t, dnCert(rdn(atv(oidO, "Acme")), rdn(atv(oidCN, "bar"))))},
		{"dn-reversed", certificate(t, dnCert(rdn(atv(oidCN, "foo")), rdn(atv(oidO, "Acme"))))},
		{"dn-foo-alone", certificate(t, dnCert(rdn(atv(oidCN, "foo"))))},
		{"dn-ou", certificate(t, dnCert(rdn(atv(oidO, "Acme")), rdn(atv(oidOU, "foo"))))},
		{"dn-multi", certificate(t, dnCert(rdn(atv(oidCN, "a"), atv(oidO, "b"))))},
		{"dn-multi", certificate(t, dnCert(rdn(atv(oidO, "b"), atv(oidCN, "a"))))},
		{"dn-split", certificate(t, dnCert(rdn(atv(oidO, "b")), rdn(atv(oidCN, "a"))))},
		{"dn-exact-upper", certificate(t, dnCert(rdn(atv(oidOther, "Case"))))},
		{"dn-exact-lower", certificate(t, dnCert(rdn(atv(oidOther, "case"))))},

		{"dns-worker", certificate(t, func(c *x509.Certificate) { c.DNSNames = []string{"worker.example.com"} })},
		{"dns-worker", certificate(t, func(c *x509.Certificate) { c.DNSNames = []string{"other.example.com", "WORKER.example.COM"} })},
		{"dns-worker2", certificate(t, func(c *x509.Certificate) { c.DNSNames = []string{"worker2.example.com"} })},
		{"dns-worker-co", certificate(t, func(c *x509.Certificate) { c.DNSNames = []string{"worker.example.co"} })},

		{"uri-x", certificate(t, func(c *x509.Certificate) {
			c.URIs = []*url.URL{mustURL(t, "spiffe://cluster.local/ns/a/sa/x")}
		})},
		{"uri-host-case", certificate(t, func(c *x509.Certificate) {
			c.URIs = []*url.URL{mustURL(t, "spiffe://Cluster.Local/ns/a/sa/x")}
		})},
		{"uri-path-case", certificate(t, func(c *x509.Certificate) {
			c.URIs = []*url.URL{mustURL(t, "spiffe://cluster.local/ns/a/sa/X")}
		})},
		{"uri-escaped", certificate(t, func(c *x509.Certificate) {
			c.URIs = []*url.URL{mustURL(t, "spiffe://cluster.local/ns/a/sa/%78")}
		})},
		{"uri-slash", certificate(t, func(c *x509.Certificate) {
			c.URIs = []*url.URL{mustURL(t, "spiffe://cluster.local/ns/a/sa/x/")}
		})},

		{"ip-v4", certificate(t, func(c *x509.Certificate) { c.IPAddresses = []net.IP{{10, 0, 0, 1}} })},
		{"ip-v4", certificate(t, func(c *x509.Certificate) { c.ExtraExtensions = []pkix.Extension{ipSANs(t, []byte{10, 0, 0, 1})} })},
		{"ip-mapped", certificate(t, func(c *x509.Certificate) {
			c.ExtraExtensions = []pkix.Extension{ipSANs(t, net.ParseIP("::ffff:10.0.0.1").To16())}
		})},
		{"ip-v4-other", certificate(t, func(c *x509.Certificate) { c.IPAddresses = []net.IP{{10, 0, 0, 2}} })},
		{"ip-v6", certificate(t, func(c *x509.Certificate) { c.IPAddresses = []net.IP{net.ParseIP("2001:db8::1")} })},

		{"email-worker", certificate(t, func(c *x509.Certificate) { c.EmailAddresses = []string{"worker@example.com"} })},
		{"email-worker", certificate(t, func(c *x509.Certificate) { c.EmailAddresses = []string{"worker@EXAMPLE.com"} })},
		{"email-Worker", certificate(t, func(c *x509.Certificate) { c.EmailAddresses = []string{"Worker@example.com"} })},
		{"email-org", certificate(t, func(c *x509.Certificate) { c.EmailAddresses = []string{"worker@example.org"} })},
	}

	// The 16-byte certificate really carries 16 bytes, or the IP rows
	// prove nothing.
	for _, c := range certs {
		if c.group == "ip-mapped" && len(c.cert.IPAddresses[0]) != net.IPv6len {
			t.Fatalf("the IPv4-mapped certificate carries %d bytes", len(c.cert.IPAddresses[0]))
		}
	}

	parsed := make([]Subject, len(spellings))
	matches := make([][]bool, len(spellings))
	for i, sp := range spellings {
		s, err := ParseSubject(sp.kind, sp.value)
		if err != nil {
			t.Fatalf("%s %q: %v", sp.kind, sp.value, err)
		}
		parsed[i] = s
		for _, c := range certs {
			cert := c.cert
			m := s.Matches(cert, func() (DistinguishedName, error) { return CertificateSubjectDN(cert.RawSubject) })
			matches[i] = append(matches[i], m)
			// Only the certificates of the group carry the subject (certs
			// of other kinds carry a placeholder CN, which no DN above is).
			if want := c.group == sp.group; m != want {
				t.Errorf("%s %q matches the certificate of %s = %v, want %v", sp.kind, sp.value, c.group, m, want)
			}
		}
	}
	for i := range spellings {
		for j := range spellings {
			a, b := spellings[i], spellings[j]
			if a.kind != b.kind {
				continue
			}
			sameKey := parsed[i].Key() == parsed[j].Key()
			if want := a.group == b.group; sameKey != want {
				t.Errorf("Key(%q) == Key(%q) is %v, want %v (keys %q, %q)", a.value, b.value, sameKey, want, parsed[i].Key(), parsed[j].Key())
			}
			sameMatches := true
			for k := range certs {
				sameMatches = sameMatches && matches[i][k] == matches[j][k]
			}
			if sameKey != sameMatches {
				t.Errorf("%q and %q: equal keys %v but matched by the same certificates %v", a.value, b.value, sameKey, sameMatches)
			}
		}
	}
}

// TestCarriedExactly: the operator accepts an issued certificate only when
// it carries the subject and no other value of its kind.
func TestCarriedExactly(t *testing.T) {
	s, err := ParseSubject(SubjectSANDNS, "worker.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if !s.CarriedExactly(certificate(t, func(c *x509.Certificate) { c.DNSNames = []string{"Worker.example.com"} })) {
		t.Error("a certificate with just the name is refused")
	}
	if s.CarriedExactly(certificate(t, func(c *x509.Certificate) { c.DNSNames = []string{"worker.example.com", "other.example.com"} })) {
		t.Error("a certificate with another name besides is accepted")
	}
	ip, err := ParseSubject(SubjectSANIP, "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if ip.CarriedExactly(certificate(t, func(c *x509.Certificate) {
		c.ExtraExtensions = []pkix.Extension{ipSANs(t, net.ParseIP("::ffff:10.0.0.1").To16())}
	})) {
		t.Error("an IPv4 subject is carried by a certificate with the IPv4-mapped IPv6 address")
	}
}

func TestParseSubjectRejects(t *testing.T) {
	for _, c := range []struct {
		kind  SubjectKind
		value string
	}{
		{SubjectDN, ""},
		{SubjectDN, "CN="},
		{SubjectDN, "not a dn"},
		{SubjectSANDNS, ""},
		{SubjectSANDNS, "."},
		{SubjectSANDNS, "*.example.com"},
		{SubjectSANDNS, "a b.example.com"},
		{SubjectSANURI, "no-scheme/path"},
		{SubjectSANURI, "%zz://x"},
		{SubjectSANIP, "10.0.0.256"},
		{SubjectSANIP, "fe80::1%eth0"},
		{SubjectSANIP, "example.com"},
		{SubjectSANEmail, "worker"},
		{SubjectSANEmail, "@example.com"},
		{SubjectSANEmail, "worker@"},
		{SubjectSANEmail, "a@b@example.com"},
		{"tls_client_auth_san_other", "x"},
	} {
		if s, err := ParseSubject(c.kind, c.value); err == nil {
			t.Errorf("%s %q parsed as %v", c.kind, c.value, s)
		}
	}
}

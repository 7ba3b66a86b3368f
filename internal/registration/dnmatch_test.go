package registration

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

var (
	oidCN    = asn1.ObjectIdentifier{2, 5, 4, 3}
	oidO     = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU    = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidC     = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidDC    = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	oidUID   = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
	oidEmail = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
	oidOther = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}
)

// subjectOf encodes an RDNSequence in ASN.1 order (least specific first).
func subjectOf(t testing.TB, rdns ...pkix.RelativeDistinguishedNameSET) []byte {
	t.Helper()
	b, err := asn1.Marshal(pkix.RDNSequence(rdns))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func atv(oid asn1.ObjectIdentifier, v any) pkix.AttributeTypeAndValue {
	return pkix.AttributeTypeAndValue{Type: oid, Value: v}
}

func rdn(atvs ...pkix.AttributeTypeAndValue) pkix.RelativeDistinguishedNameSET {
	return atvs
}

func TestDistinguishedNameMatch(t *testing.T) {
	billing := subjectOf(t, rdn(atv(oidO, "Acme")), rdn(atv(oidCN, "Billing Worker")))
	multi := subjectOf(t, rdn(atv(oidC, "DE")), rdn(atv(oidO, "Acme")), rdn(atv(oidOU, "pay"), atv(oidCN, "w1")))
	dcs := subjectOf(t, rdn(atv(oidDC, "com")), rdn(atv(oidDC, "example")), rdn(atv(oidUID, "jdoe")))
	email := subjectOf(t, rdn(atv(oidCN, "x")), rdn(atv(oidEmail, "Ops@Example.com")))
	other := subjectOf(t, rdn(atv(oidOther, "Case Matters")))
	special := subjectOf(t, rdn(atv(oidCN, `a,b+c"d\e<f>g;h#`)))
	intValue := subjectOf(t, rdn(atv(oidOther, 5)))
	for name, c := range map[string]struct {
		registered string
		subject    []byte
		match      bool
	}{
		"the RFC 4514 rendering itself":                         {"CN=Billing Worker,O=Acme", billing, true},
		"case and insignificant spaces differ":                  {"cn=billing worker,  o=ACME", billing, true},
		"spaces around '=' and inner runs of spaces":            {" CN = Billing   Worker , O = Acme ", billing, true},
		"long attribute names":                                  {"commonName=Billing Worker,organizationName=Acme", billing, true},
		"dotted OIDs":                                           {"2.5.4.3=Billing Worker,2.5.4.10=Acme", billing, true},
		"a #hex UTF8String value":                               {"CN=#0C0E42696C6C696E6720576F726B6572,O=Acme", billing, true},
		"escaped characters in hex":                             {`CN=Billing\20Worker,O=\41cme`, billing, true},
		"the RDNs in ASN.1 order instead":                       {"O=Acme,CN=Billing Worker", billing, false},
		"one RDN missing":                                       {"CN=Billing Worker", billing, false},
		"one RDN too many":                                      {"CN=Billing Worker,O=Acme,C=DE", billing, false},
		"a different value":                                     {"CN=Billing Workers,O=Acme", billing, false},
		"a different attribute type":                            {"OU=Billing Worker,O=Acme", billing, false},
		"a space inside a word":                                 {"CN=Bill ing Worker,O=Acme", billing, false},
		"a multi-valued RDN in either order":                    {"OU=pay+CN=w1,O=Acme,C=DE", multi, true},
		"a multi-valued RDN in the other order":                 {"CN=w1+OU=pay,O=Acme,C=DE", multi, true},
		"a multi-valued RDN split in two":                       {"CN=w1,OU=pay,O=Acme,C=DE", multi, false},
		"a multi-valued RDN with one value missing":             {"CN=w1,O=Acme,C=DE", multi, false},
		"DC and UID":                                            {"UID=JDoe,DC=Example,DC=COM", dcs, true},
		"emailAddress ignores case":                             {"E=ops@example.com,CN=x", email, true},
		"an unknown type compares case-exact":                   {"1.3.6.1.4.1.99999.1=case matters", other, false},
		"an unknown type with the exact value":                  {"1.3.6.1.4.1.99999.1=Case  Matters", other, true},
		"escaped specials":                                      {`CN=a\,b\+c\"d\\e\<f\>g\;h\#`, special, true},
		"a non-string value by #hex":                            {"1.3.6.1.4.1.99999.1=#020105", intValue, true},
		"a non-string value by a string":                        {"1.3.6.1.4.1.99999.1=5", intValue, false},
		"a string value against a non-string value in hex form": {"1.3.6.1.4.1.99999.1=\\#020105", intValue, false},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := ParseDistinguishedName(c.registered)
			if err != nil {
				t.Fatalf("parse %q: %v", c.registered, err)
			}
			got, err := CertificateSubjectDN(c.subject)
			if err != nil {
				t.Fatal(err)
			}
			if want.Equal(got) != c.match {
				t.Fatalf("%q vs %q: match = %v, want %v", c.registered, got, !c.match, c.match)
			}
		})
	}
}

func TestParseDistinguishedNameRejects(t *testing.T) {
	for name, s := range map[string]string{
		"an empty string":              "",
		"only spaces":                  "   ",
		"an unknown short name":        "XX=a",
		"a missing '='":                "CN",
		"an empty attribute type":      "=a",
		"an OID with a leading zero":   "2.05.4.3=a",
		"an OID with one arc":          "2=a",
		"an OID with an empty arc":     "2..4=a",
		"a dangling escape":            `CN=a\`,
		"a bad hex escape":             `CN=a\zz`,
		"an unescaped quote":           `CN=a"b`,
		"an unescaped semicolon":       "CN=a;O=b",
		"invalid UTF-8 from escapes":   `CN=\ff`,
		"a trailing comma":             "CN=a,",
		"an odd #hexstring":            "CN=#0c0",
		"a #hexstring that is not DER": "CN=#ffff",
		"a #hexstring with extra data": "CN=#0c016100",
		"garbage after a value":        "CN=#0c0161 x",
	} {
		t.Run(name, func(t *testing.T) {
			if dn, err := ParseDistinguishedName(s); err == nil {
				t.Fatalf("parsed %q as %v", s, dn)
			}
		})
	}
}

func TestCertificateSubjectDNRejectsGarbage(t *testing.T) {
	for name, b := range map[string][]byte{
		"not DER":          []byte("garbage"),
		"trailing data":    append(subjectOf(t, rdn(atv(oidCN, "a"))), 0),
		"a non-SEQUENCE":   {0x0c, 0x01, 'a'},
		"truncated length": {0x30, 0x05, 0x31},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := CertificateSubjectDN(b); err == nil {
				t.Fatal("parsed")
			}
		})
	}
}

func TestDistinguishedNameStringRoundTrips(t *testing.T) {
	for _, s := range []string{
		"CN=Billing Worker,O=Acme",
		`CN=a\,b\+c\"d\\e\<f\>g\;h\#,O=x`,
		"CN=w1+OU=pay,O=Acme",
		"1.3.6.1.4.1.99999.1=#020105",
		`CN=\ lead and trail\ `,
	} {
		dn, err := ParseDistinguishedName(s)
		if err != nil {
			t.Fatalf("parse %q: %v", s, err)
		}
		again, err := ParseDistinguishedName(dn.String())
		if err != nil || !again.Equal(dn) {
			t.Fatalf("%q → %q does not parse back to the same name (%v)", s, dn.String(), err)
		}
	}
}

// FuzzDistinguishedNameMatch checks that parsing never panics, that a
// parsed name survives its own String form, and that matching a random
// certificate subject never panics.
func FuzzDistinguishedNameMatch(f *testing.F) {
	f.Add("CN=Billing Worker,O=Acme", []byte{})
	f.Add("cn=billing worker,  o=ACME", subjectOf(f, rdn(atv(oidO, "Acme")), rdn(atv(oidCN, "Billing Worker"))))
	f.Add(`CN=a\,b\+c\"d\\e,OU=x+CN=y`, subjectOf(f, rdn(atv(oidOU, "x"), atv(oidCN, "y"))))
	f.Add("1.3.6.1.4.1.99999.1=#020105", subjectOf(f, rdn(atv(oidOther, 5))))
	f.Add(`CN=\c3\a9,DC=example`, []byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, registered string, subject []byte) {
		dn, err := ParseDistinguishedName(registered)
		if err == nil {
			again, err := ParseDistinguishedName(dn.String())
			if err != nil {
				t.Fatalf("%q renders as %q, which does not parse: %v", registered, dn.String(), err)
			}
			if !again.Equal(dn) {
				t.Fatalf("%q renders as %q, which parses to a different name", registered, dn.String())
			}
		}
		got, err := CertificateSubjectDN(subject)
		if err == nil && dn != nil {
			_ = dn.Equal(got)
		}
	})
}

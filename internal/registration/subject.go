package registration

// RFC 8705 §2.1.2: a tls_client_auth client registers exactly one subject
// value. This file is the one model of that value. The webhook validates
// with ParseSubject, the operator keeps subjects unique by Key, and the
// authorization server authenticates with Matches; Key and Matches are
// defined together so that two subjects with the same key are matched by
// exactly the same certificates (TestKeyAndMatchAgree).

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/certbound/certbound/api/v1alpha1"
)

// SubjectKind is the RFC 8705 §2.1.2 client metadata member a subject
// value is registered under.
type SubjectKind string

const (
	SubjectDN       SubjectKind = "tls_client_auth_subject_dn"
	SubjectSANDNS   SubjectKind = "tls_client_auth_san_dns"
	SubjectSANURI   SubjectKind = "tls_client_auth_san_uri"
	SubjectSANIP    SubjectKind = "tls_client_auth_san_ip"
	SubjectSANEmail SubjectKind = "tls_client_auth_san_email"
)

// apiField is the OAuthClient spec.subject field of each kind, for messages.
var apiField = map[SubjectKind]string{
	SubjectDN: "dn", SubjectSANDNS: "dnsName", SubjectSANURI: "uri", SubjectSANIP: "ip", SubjectSANEmail: "email",
}

// Subject is one parsed, registered subject value.
type Subject struct {
	Kind SubjectKind
	// Value is the value as registered.
	Value string

	dn  DistinguishedName // SubjectDN
	ip  []byte            // SubjectSANIP: 4 or 16 bytes, exactly as written
	key string
}

// ParseSubject parses and checks one subject value of the given kind. The
// errors say what is wrong in terms a user can act on.
func ParseSubject(kind SubjectKind, value string) (Subject, error) {
	s := Subject{Kind: kind, Value: value}
	switch kind {
	case SubjectDN:
		dn, err := ParseDistinguishedName(value)
		if err != nil {
			return Subject{}, fmt.Errorf("not an RFC 4514 distinguished name: %w", err)
		}
		if len(dn) == 0 {
			return Subject{}, errors.New("the distinguished name is empty")
		}
		for _, rdn := range dn {
			for _, av := range rdn {
				if !av.Binary && av.Value == "" {
					return Subject{}, fmt.Errorf("attribute %s has an empty value", av.Type)
				}
			}
		}
		s.dn = dn
		s.key = "dn:" + dn.String()
	case SubjectSANDNS:
		name := strings.TrimSuffix(value, ".")
		if name == "" || strings.ContainsAny(name, " \t/@*") {
			return Subject{}, fmt.Errorf("%q is not a DNS name", value)
		}
		s.key = "dns:" + strings.ToLower(name)
	case SubjectSANURI:
		u, err := url.Parse(value)
		if err != nil || u.Scheme == "" {
			return Subject{}, fmt.Errorf("%q is not an absolute URI", value)
		}
		s.key = "uri:" + u.String()
	case SubjectSANIP:
		addr, err := netip.ParseAddr(value)
		if err != nil || addr.Zone() != "" {
			return Subject{}, fmt.Errorf("%q is not an IPv4 or IPv6 address", value)
		}
		// RFC 8705 §2.1.2 compares the SAN's octets: an IPv4 address is 4
		// bytes and its IPv4-mapped IPv6 form is a different, 16-byte value.
		s.ip = addr.AsSlice()
		s.key = "ip:" + hex.EncodeToString(s.ip)
	case SubjectSANEmail:
		local, domain, ok := strings.Cut(value, "@")
		if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
			return Subject{}, fmt.Errorf("%q is not an email address", value)
		}
		s.key = "email:" + local + "@" + strings.ToLower(domain)
	default:
		return Subject{}, fmt.Errorf("unknown subject kind %q", kind)
	}
	return s, nil
}

// SubjectFromAPI returns the one subject value of an OAuthClient's
// spec.subject.
func SubjectFromAPI(s *v1alpha1.ClientSubject) (Subject, error) {
	if s == nil {
		return Subject{}, errors.New("a tls_client_auth client registers exactly one subject value (RFC 8705 §2.1.2): set one of dn, dnsName, uri, ip or email")
	}
	var set []SubjectKind
	var value string
	for kind, v := range map[SubjectKind]string{SubjectDN: s.DN, SubjectSANDNS: s.DNSName, SubjectSANURI: s.URI, SubjectSANIP: s.IP, SubjectSANEmail: s.Email} {
		if v != "" {
			set = append(set, kind)
			value = v
		}
	}
	if len(set) != 1 {
		return Subject{}, fmt.Errorf("set exactly one of dn, dnsName, uri, ip or email (RFC 8705 §2.1.2), found %d", len(set))
	}
	sub, err := ParseSubject(set[0], value)
	if err != nil {
		return Subject{}, fmt.Errorf("%s: %w", apiField[set[0]], err)
	}
	return sub, nil
}

// SubjectFromMetadata returns the registered subject of a client document,
// or nil when it has none. More than one is an error (RFC 8705 §2.1.2).
func SubjectFromMetadata(md *v1alpha1.ClientMetadata) (*Subject, error) {
	var found []Subject
	for _, m := range []struct {
		kind  SubjectKind
		value *string
	}{
		{SubjectDN, md.TLSClientAuthSubjectDN},
		{SubjectSANDNS, md.TLSClientAuthSANDNS},
		{SubjectSANURI, md.TLSClientAuthSANURI},
		{SubjectSANIP, md.TLSClientAuthSANIP},
		{SubjectSANEmail, md.TLSClientAuthSANEmail},
	} {
		if m.value == nil {
			continue
		}
		s, err := ParseSubject(m.kind, *m.value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", m.kind, err)
		}
		found = append(found, s)
	}
	switch len(found) {
	case 0:
		return nil, nil
	case 1:
		return &found[0], nil
	default:
		return nil, fmt.Errorf("%d tls_client_auth_* subject values are registered, RFC 8705 §2.1.2 allows exactly one", len(found))
	}
}

// SetOn writes the subject into a client document's one matching member.
func (s Subject) SetOn(md *v1alpha1.ClientMetadata) {
	v := s.Value
	switch s.Kind {
	case SubjectDN:
		md.TLSClientAuthSubjectDN = &v
	case SubjectSANDNS:
		md.TLSClientAuthSANDNS = &v
	case SubjectSANURI:
		md.TLSClientAuthSANURI = &v
	case SubjectSANIP:
		md.TLSClientAuthSANIP = &v
	case SubjectSANEmail:
		md.TLSClientAuthSANEmail = &v
	}
}

// Key is the canonical form of the subject: two subjects have equal keys
// exactly when the same certificates match them. The operator keeps keys
// unique across the cluster.
func (s Subject) Key() string { return s.key }

// IsZero reports whether s is the zero Subject (nothing parsed).
func (s Subject) IsZero() bool { return s.key == "" }

// DN returns the normalised distinguished name of a SubjectDN value.
func (s Subject) DN() DistinguishedName { return s.dn }

// String names the subject for messages: member and value.
func (s Subject) String() string { return fmt.Sprintf("%s %q", s.Kind, s.Value) }

// Matches reports whether the certificate carries the subject value. certDN
// returns the certificate's subject DN and is called only for a SubjectDN
// value (the authorization server computes it once per connection).
func (s Subject) Matches(cert *x509.Certificate, certDN func() (DistinguishedName, error)) bool {
	return s.count(cert, certDN) > 0
}

// CarriedExactly reports whether the certificate carries the subject value
// and no other value of the same kind: what the operator requires of the
// certificates it has issued.
func (s Subject) CarriedExactly(cert *x509.Certificate) bool {
	var values int
	switch s.Kind {
	case SubjectDN:
		values = 1
	case SubjectSANDNS:
		values = len(cert.DNSNames)
	case SubjectSANURI:
		values = len(cert.URIs)
	case SubjectSANIP:
		values = len(cert.IPAddresses)
	case SubjectSANEmail:
		values = len(cert.EmailAddresses)
	}
	return values == 1 && s.count(cert, func() (DistinguishedName, error) { return CertificateSubjectDN(cert.RawSubject) }) == 1
}

// count is the number of the certificate's values of s's kind that match s.
func (s Subject) count(cert *x509.Certificate, certDN func() (DistinguishedName, error)) int {
	n := 0
	switch s.Kind {
	case SubjectDN:
		if dn, err := certDN(); err == nil && s.dn.Equal(dn) {
			n++
		}
	case SubjectSANDNS:
		for _, name := range cert.DNSNames {
			if "dns:"+strings.ToLower(strings.TrimSuffix(name, ".")) == s.key {
				n++
			}
		}
	case SubjectSANURI:
		for _, u := range cert.URIs {
			if "uri:"+u.String() == s.key {
				n++
			}
		}
	case SubjectSANIP:
		for _, ip := range cert.IPAddresses {
			if bytes.Equal(ip, s.ip) {
				n++
			}
		}
	case SubjectSANEmail:
		for _, e := range cert.EmailAddresses {
			local, domain, ok := strings.Cut(e, "@")
			if ok && "email:"+local+"@"+strings.ToLower(domain) == s.key {
				n++
			}
		}
	}
	return n
}

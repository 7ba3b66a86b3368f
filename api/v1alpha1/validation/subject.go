package validation

// RFC 8705 §2.1.2 registers exactly one subject value for a tls_client_auth
// client. This file checks each kind of value twice over: that it is
// well-formed for the RFC that defines it, and that it survives the two
// programs that use it — cert-manager, which must put it into a certificate,
// and the authorization server (asruntime), which must match it against
// that certificate. A value that fails either would be accepted today and
// never authenticate anyone.

import (
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/cert-manager/cert-manager/pkg/util/pki"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/registration"
)

// certManagerDNTypes are the attribute type names cert-manager's
// literalSubject understands, spelled exactly as it requires (upper case).
// Any other type must be written as a dotted OID. The list is only quoted in
// messages; TestCertManagerDNTypesAreTheOnesCertManagerKnows keeps it true.
var certManagerDNTypes = []string{"CN", "O", "OU", "C", "L", "ST", "STREET", "SERIALNUMBER", "DC", "UID"}

// validateSubject checks spec.subject of a tls_client_auth client.
func validateSubject(s *v1alpha1.ClientSubject, path *field.Path) field.ErrorList {
	if s == nil {
		return field.ErrorList{field.Required(path, "a tls_client_auth client registers exactly one subject value (RFC 8705 §2.1.2): set one of dn, dnsName, uri, ip or email")}
	}
	var set []string
	var errs field.ErrorList
	if s.DN != "" {
		set = append(set, "dn")
		errs = append(errs, validateSubjectDN(s.DN, path.Child("dn"))...)
	}
	if s.DNSName != "" {
		set = append(set, "dnsName")
		errs = append(errs, validateSubjectDNSName(s.DNSName, path.Child("dnsName"))...)
	}
	if s.URI != "" {
		set = append(set, "uri")
		errs = append(errs, validateSubjectURI(s.URI, path.Child("uri"))...)
	}
	if s.IP != "" {
		set = append(set, "ip")
		errs = append(errs, validateSubjectIP(s.IP, path.Child("ip"))...)
	}
	if s.Email != "" {
		set = append(set, "email")
		errs = append(errs, validateSubjectEmail(s.Email, path.Child("email"))...)
	}
	switch len(set) {
	case 0:
		errs = append(errs, field.Required(path, "set exactly one of dn, dnsName, uri, ip or email (RFC 8705 §2.1.2)"))
	case 1:
	default:
		errs = append(errs, field.Invalid(path, strings.Join(set, ", "), "set exactly one of dn, dnsName, uri, ip or email: the authorization server matches one registered value (RFC 8705 §2.1.2); remove the others"))
	}
	return errs
}

// validateSubjectDN requires an RFC 4514 string that both asruntime (which
// compares it with the certificate's subject) and cert-manager's
// literalSubject (which writes it into the certificate) read the same way.
func validateSubjectDN(dn string, path *field.Path) field.ErrorList {
	parsed, err := registration.ParseDistinguishedName(dn)
	if err != nil {
		return field.ErrorList{field.Invalid(path, dn, fmt.Sprintf("not an RFC 4514 distinguished name: %v; write it as comma-separated TYPE=value pairs, most specific first, e.g. CN=billing-worker,OU=billing,O=Acme, with unknown types as dotted OIDs (2.5.4.4=Smith) and special characters escaped with a backslash", err))}
	}
	for _, rdn := range parsed {
		for _, av := range rdn {
			if strings.TrimSpace(av.Value) == "" {
				return field.ErrorList{field.Invalid(path, dn, fmt.Sprintf("attribute %s has an empty value; give every attribute a value or remove it", av.Type))}
			}
		}
	}
	rdns, err := pki.UnmarshalSubjectStringToRDNSequence(dn)
	if err != nil {
		return field.ErrorList{field.Invalid(path, dn, fmt.Sprintf("cert-manager cannot read this distinguished name: %v; simplify the escaping (backslash-escape only , + \" \\ < > ; and a leading # or space)", err))}
	}
	for _, rdn := range rdns {
		for _, atv := range rdn {
			if atv.Type == nil {
				return field.ErrorList{field.Invalid(path, dn, fmt.Sprintf("the attribute with value %q has a type cert-manager cannot put into a certificate; it knows only %s (upper case), so write any other type as its dotted OID, e.g. 2.5.4.4=Smith instead of SN=Smith", fmt.Sprint(atv.Value), strings.Join(certManagerDNTypes, ", ")))}
			}
		}
	}
	return nil
}

// validateSubjectDNSName requires a host name in the RFC 1034 preferred
// syntax that RFC 5280 §4.2.1.6 demands of a dNSName. Case is accepted (the
// authorization server compares without regard to case); a wildcard is not:
// the server compares a client certificate's names literally, so
// "*.example.com" would match only a certificate that carries that exact
// string, never a name it seems to cover.
func validateSubjectDNSName(name string, path *field.Path) field.ErrorList {
	if strings.Contains(name, "*") {
		return field.ErrorList{field.Invalid(path, name, "wildcards are not matched for client authentication: register the exact DNS name the client certificate carries")}
	}
	if strings.HasSuffix(name, ".") {
		return field.ErrorList{field.Invalid(path, name, fmt.Sprintf("remove the trailing dot: write %q", strings.TrimSuffix(name, ".")))}
	}
	if msgs := validation.IsDNS1123Subdomain(strings.ToLower(name)); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(path, name, "not a DNS name: "+strings.Join(msgs, "; "))}
	}
	return nil
}

// validateSubjectURI requires what RFC 5280 §4.2.1.6 requires of a
// uniformResourceIdentifier (absolute, with a scheme-specific part, and a
// host when it has an authority) and that the string is already in the form
// Go prints a parsed URI in, because that is what the authorization server
// compares with.
func validateSubjectURI(s string, path *field.Path) field.ErrorList {
	u, err := url.Parse(s)
	if err != nil {
		return field.ErrorList{field.Invalid(path, s, fmt.Sprintf("not a URI: %v; write an absolute URI such as spiffe://cluster.local/ns/team/sa/worker", unwrapURLError(err)))}
	}
	if u.Scheme == "" {
		return field.ErrorList{field.Invalid(path, s, "not an absolute URI (RFC 5280 §4.2.1.6): add a scheme, e.g. spiffe://cluster.local/ns/team/sa/worker")}
	}
	if u.Opaque == "" && u.Host == "" && u.Path == "" {
		return field.ErrorList{field.Invalid(path, s, "the URI has a scheme but nothing after it: give the full identifier, e.g. spiffe://cluster.local/ns/team/sa/worker")}
	}
	if strings.HasPrefix(s[len(u.Scheme)+1:], "//") && u.Hostname() == "" {
		return field.ErrorList{field.Invalid(path, s, "a URI with an authority must name a host (RFC 5280 §4.2.1.6): put a domain name or IP address after //")}
	}
	if canonical := u.String(); canonical != s {
		return field.ErrorList{field.Invalid(path, s, fmt.Sprintf("the authorization server compares URIs in their normalised form: write %q", canonical))}
	}
	return nil
}

// unwrapURLError drops the "parse <input>:" prefix, which repeats the value
// the field error already shows.
func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// validateSubjectIP requires an IPv4 or IPv6 address without a zone: an
// iPAddress SAN is the bare 4 or 16 bytes (RFC 5280 §4.2.1.6).
func validateSubjectIP(s string, path *field.Path) field.ErrorList {
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return field.ErrorList{field.Invalid(path, s, "not an IP address: write an IPv4 (192.0.2.10) or IPv6 (2001:db8::10) address")}
	}
	if addr.Zone() != "" {
		return field.ErrorList{field.Invalid(path, s, fmt.Sprintf("a certificate's IP address has no zone: write %q", addr.WithZone("").String()))}
	}
	return nil
}

// validateSubjectEmail requires a bare RFC 5322 addr-spec in ASCII: an
// rfc822Name is an IA5String (RFC 5280 §4.2.1.6), so cert-manager could not
// encode anything else.
func validateSubjectEmail(s string, path *field.Path) field.ErrorList {
	for _, r := range s {
		if r >= utf8.RuneSelf {
			return field.ErrorList{field.Invalid(path, s, "a certificate's email address is ASCII (an IA5String, RFC 5280 §4.2.1.6): use the ASCII (punycode) form of the domain and an ASCII local part")}
		}
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return field.ErrorList{field.Invalid(path, s, "not a bare email address (RFC 5322 addr-spec): write only local-part@domain, e.g. billing-worker@example.com, without a display name or angle brackets")}
	}
	return nil
}

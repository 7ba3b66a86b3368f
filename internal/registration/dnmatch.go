package registration

// RFC 8705 §2.1.2 compares tls_client_auth_subject_dn with the certificate's
// subject using RFC 4517 distinguishedNameMatch. This file parses the
// registered RFC 4514 string and the certificate's DER subject into one
// normalised form so that the comparison is a plain equality check.

import (
	"bytes"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DistinguishedName is a parsed, normalised distinguished name in RFC 4514
// order: the most specific RDN first.
type DistinguishedName []RDN

// RDN is one relative distinguished name; a multi-valued RDN is a set, so its
// attributes are kept sorted and compared as a whole.
type RDN []AttributeValue

// AttributeValue is one attribute of an RDN: its type as a dotted OID and
// its value after RFC 4518 string preparation for the type's matching rule,
// or, for values that are not character strings (Binary), the lower-case
// hex of their DER encoding.
type AttributeValue struct {
	Type   string
	Value  string
	Binary bool
}

// attributeTypes maps the short names of RFC 4514 §3, RFC 4519 and the
// PKCS #9 emailAddress, upper-cased, to their OIDs.
var attributeTypes = map[string]string{
	"CN":                     "2.5.4.3",
	"COMMONNAME":             "2.5.4.3",
	"SN":                     "2.5.4.4",
	"SURNAME":                "2.5.4.4",
	"SERIALNUMBER":           "2.5.4.5",
	"C":                      "2.5.4.6",
	"COUNTRYNAME":            "2.5.4.6",
	"L":                      "2.5.4.7",
	"LOCALITYNAME":           "2.5.4.7",
	"ST":                     "2.5.4.8",
	"STATEORPROVINCENAME":    "2.5.4.8",
	"STREET":                 "2.5.4.9",
	"STREETADDRESS":          "2.5.4.9",
	"O":                      "2.5.4.10",
	"ORGANIZATIONNAME":       "2.5.4.10",
	"OU":                     "2.5.4.11",
	"ORGANIZATIONALUNITNAME": "2.5.4.11",
	"TITLE":                  "2.5.4.12",
	"POSTALCODE":             "2.5.4.17",
	"NAME":                   "2.5.4.41",
	"GIVENNAME":              "2.5.4.42",
	"GN":                     "2.5.4.42",
	"INITIALS":               "2.5.4.43",
	"GENERATIONQUALIFIER":    "2.5.4.44",
	"DNQUALIFIER":            "2.5.4.46",
	"PSEUDONYM":              "2.5.4.65",
	"ORGANIZATIONIDENTIFIER": "2.5.4.97",
	"DC":                     "0.9.2342.19200300.100.1.25",
	"DOMAINCOMPONENT":        "0.9.2342.19200300.100.1.25",
	"UID":                    "0.9.2342.19200300.100.1.1",
	"USERID":                 "0.9.2342.19200300.100.1.1",
	"EMAILADDRESS":           "1.2.840.113549.1.9.1",
	"E":                      "1.2.840.113549.1.9.1",
}

// caseIgnoreTypes are the attribute types above whose equality rule is
// caseIgnoreMatch or caseIgnoreIA5Match. Values of any other type are
// compared with caseExactMatch: a DN matcher that does not know a type's
// rule must not be more lenient than the rule could be.
var caseIgnoreTypes = func() map[string]bool {
	m := make(map[string]bool, len(attributeTypes))
	for _, oid := range attributeTypes {
		m[oid] = true
	}
	return m
}()

// ParseDistinguishedName parses an RFC 4514 string into its normalised form.
// Spaces around the separators and around '=' are accepted (they are not
// significant to distinguishedNameMatch), an empty string is an error.
func ParseDistinguishedName(s string) (DistinguishedName, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("empty distinguished name")
	}
	p := dnParser{s: s}
	var dn DistinguishedName
	var rdn RDN
	for {
		av, err := p.attribute()
		if err != nil {
			return nil, err
		}
		rdn = append(rdn, av)
		p.skipSpaces()
		if p.done() {
			dn = append(dn, sortRDN(rdn))
			return dn, nil
		}
		switch p.s[p.i] {
		case '+':
			p.i++
		case ',':
			p.i++
			dn = append(dn, sortRDN(rdn))
			rdn = nil
		default:
			return nil, fmt.Errorf("unexpected %q at offset %d", p.s[p.i], p.i)
		}
	}
}

type dnParser struct {
	s string
	i int
}

func (p *dnParser) done() bool { return p.i >= len(p.s) }

func (p *dnParser) skipSpaces() {
	for p.i < len(p.s) && p.s[p.i] == ' ' {
		p.i++
	}
}

// attribute parses `type = value`.
func (p *dnParser) attribute() (AttributeValue, error) {
	p.skipSpaces()
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != '=' && p.s[p.i] != ' ' {
		p.i++
	}
	oid, err := attributeOID(p.s[start:p.i])
	if err != nil {
		return AttributeValue{}, err
	}
	p.skipSpaces()
	if p.done() || p.s[p.i] != '=' {
		return AttributeValue{}, fmt.Errorf("attribute %q has no '='", p.s[start:p.i])
	}
	p.i++
	p.skipSpaces()
	if !p.done() && p.s[p.i] == '#' {
		return p.hexValue(oid)
	}
	raw, err := p.stringValue()
	if err != nil {
		return AttributeValue{}, err
	}
	return AttributeValue{Type: oid, Value: prepareString(oid, raw)}, nil
}

// attributeOID resolves a descriptor (short name) or a numericoid.
func attributeOID(t string) (string, error) {
	if t == "" {
		return "", errors.New("empty attribute type")
	}
	if t[0] >= '0' && t[0] <= '9' {
		for _, arc := range strings.Split(t, ".") {
			if arc == "" || (len(arc) > 1 && arc[0] == '0') {
				return "", fmt.Errorf("malformed OID %q", t)
			}
			if _, err := strconv.ParseUint(arc, 10, 31); err != nil {
				return "", fmt.Errorf("malformed OID %q", t)
			}
		}
		if !strings.Contains(t, ".") {
			return "", fmt.Errorf("malformed OID %q", t)
		}
		return t, nil
	}
	if oid, ok := attributeTypes[strings.ToUpper(t)]; ok {
		return oid, nil
	}
	return "", fmt.Errorf("unknown attribute type %q", t)
}

// stringValue reads an RFC 4514 string up to an unescaped ',' or '+',
// resolving '\' escapes (a special character or two hex digits, which may
// form a multi-byte UTF-8 sequence together with their neighbours).
func (p *dnParser) stringValue() (string, error) {
	var b []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch c {
		case ',', '+':
			goto end
		case '\\':
			if p.i+1 >= len(p.s) {
				return "", errors.New("dangling escape at end of value")
			}
			n := p.s[p.i+1]
			if strings.IndexByte(" \"#+,;<=>\\", n) >= 0 {
				b = append(b, n)
				p.i += 2
				continue
			}
			if p.i+2 >= len(p.s) {
				return "", fmt.Errorf("bad escape at offset %d", p.i)
			}
			v, err := hex.DecodeString(p.s[p.i+1 : p.i+3])
			if err != nil {
				return "", fmt.Errorf("bad escape at offset %d", p.i)
			}
			b = append(b, v[0])
			p.i += 3
		case '"', ';', '<', '>', 0:
			return "", fmt.Errorf("unescaped %q at offset %d", c, p.i)
		default:
			b = append(b, c)
			p.i++
		}
	}
end:
	if !utf8.Valid(b) {
		return "", errors.New("value is not valid UTF-8")
	}
	return string(b), nil
}

// hexValue reads `#` hexstring: the BER/DER encoding of the value.
func (p *dnParser) hexValue(oid string) (AttributeValue, error) {
	p.i++
	start := p.i
	for p.i < len(p.s) && p.s[p.i] != ',' && p.s[p.i] != '+' && p.s[p.i] != ' ' {
		p.i++
	}
	der, err := hex.DecodeString(p.s[start:p.i])
	if err != nil || len(der) == 0 {
		return AttributeValue{}, fmt.Errorf("malformed #hexstring at offset %d", start)
	}
	var v asn1.RawValue
	rest, err := asn1.Unmarshal(der, &v)
	if err != nil || len(rest) != 0 {
		return AttributeValue{}, fmt.Errorf("#hexstring at offset %d is not one DER value", start)
	}
	return prepareDER(oid, v), nil
}

// prepareString applies the RFC 4518 insignificant-space handling (leading
// and trailing spaces removed, inner runs collapsed to one) and, for
// case-ignoring types, case folding.
func prepareString(oid, s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if caseIgnoreTypes[oid] {
		s = strings.ToLower(s)
	}
	return s
}

// prepareDER normalises one DER attribute value: character strings compare
// as strings whatever their ASN.1 string type (distinguishedNameMatch
// ignores the encoding), anything else compares byte for byte.
func prepareDER(oid string, v asn1.RawValue) AttributeValue {
	if s, ok := decodeDirectoryString(v); ok {
		return AttributeValue{Type: oid, Value: prepareString(oid, s)}
	}
	return AttributeValue{Type: oid, Value: hex.EncodeToString(v.FullBytes), Binary: true}
}

// decodeDirectoryString decodes the universal string types certificates use.
func decodeDirectoryString(v asn1.RawValue) (string, bool) {
	if v.Class != asn1.ClassUniversal || v.IsCompound {
		return "", false
	}
	switch v.Tag {
	case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String,
		asn1.TagT61String, asn1.TagNumericString, 26 /* VisibleString */ :
		if !utf8.Valid(v.Bytes) {
			return "", false
		}
		return string(v.Bytes), true
	case asn1.TagBMPString:
		if len(v.Bytes)%2 != 0 {
			return "", false
		}
		var b strings.Builder
		for i := 0; i < len(v.Bytes); i += 2 {
			b.WriteRune(rune(v.Bytes[i])<<8 | rune(v.Bytes[i+1]))
		}
		return b.String(), true
	}
	return "", false
}

// rawAttribute and rawRDNSET mirror pkix.AttributeTypeAndValue and
// pkix.RelativeDistinguishedNameSET but keep each value as an
// asn1.RawValue: pkix decodes values into Go strings and loses the
// distinction between a string and other encodings that the #hexstring form
// needs. The "SET" suffix makes encoding/asn1 decode a SET OF.
type rawAttribute struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

type rawRDNSET []rawAttribute

// CertificateSubjectDN converts a certificate's DER subject (RawSubject,
// ASN.1 order: least specific first) into RFC 4514 order.
func CertificateSubjectDN(rawSubject []byte) (DistinguishedName, error) {
	var seq []rawRDNSET
	rest, err := asn1.Unmarshal(rawSubject, &seq)
	if err != nil {
		return nil, fmt.Errorf("parse certificate subject: %w", err)
	}
	if len(rest) != 0 {
		return nil, errors.New("parse certificate subject: trailing data")
	}
	dn := make(DistinguishedName, 0, len(seq))
	for i := len(seq) - 1; i >= 0; i-- {
		rdn := make(RDN, 0, len(seq[i]))
		for _, a := range seq[i] {
			oid := a.Type.String()
			rdn = append(rdn, prepareDER(oid, a.Value))
		}
		dn = append(dn, sortRDN(rdn))
	}
	return dn, nil
}

func sortRDN(rdn RDN) RDN {
	slices.SortFunc(rdn, func(a, b AttributeValue) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		if c := strings.Compare(a.Value, b.Value); c != 0 {
			return c
		}
		if a.Binary == b.Binary {
			return 0
		}
		if a.Binary {
			return 1
		}
		return -1
	})
	return rdn
}

// Equal is distinguishedNameMatch on two normalised names: the same number
// of RDNs, pairwise equal as sets, in order.
func (dn DistinguishedName) Equal(other DistinguishedName) bool {
	return slices.EqualFunc(dn, other, func(a, b RDN) bool {
		return slices.Equal(a, b)
	})
}

// String renders the normalised name in RFC 4514 syntax with dotted OIDs;
// it is used for logs and for detecting two clients with the same subject.
func (dn DistinguishedName) String() string {
	var b bytes.Buffer
	for i, rdn := range dn {
		if i > 0 {
			b.WriteByte(',')
		}
		for j, av := range rdn {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(av.Type)
			b.WriteByte('=')
			if av.Binary {
				b.WriteByte('#')
				b.WriteString(av.Value)
				continue
			}
			for k := 0; k < len(av.Value); k++ {
				c := av.Value[k]
				switch {
				case c < 0x20 || c == 0x7f:
					b.WriteByte('\\')
					b.WriteString(hex.EncodeToString([]byte{c}))
					continue
				case strings.IndexByte("\"#+,;<=>\\", c) >= 0 || (c == ' ' && (k == 0 || k == len(av.Value)-1)):
					b.WriteByte('\\')
				}
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}

package registration

// Subject patterns are an AuthorizationServer's rule for which subject
// values a client may claim (spec.clientPolicy.subjects). {namespace} and
// {name} stand for the claiming client's own namespace and name; * matches
// exactly one component — a DNS label, a URI authority or path segment, an
// RDN attribute value, an email local part — and never a separator, so a
// pattern like spiffe://*/ns/{namespace}/sa/* cannot be satisfied by an
// identity under another namespace.

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/certbound/certbound/api/v1alpha1"
)

const (
	placeholderNamespace = "{namespace}"
	placeholderName      = "{name}"
	wildcard             = "*"
)

// Pattern is one parsed subject pattern.
type Pattern struct {
	Kind SubjectKind
	Text string
}

// String shows the pattern as a user wrote it, for messages.
func (p Pattern) String() string { return fmt.Sprintf("%s %q", apiField[p.Kind], p.Text) }

var unknownPlaceholder = regexp.MustCompile(`\{[^}]*\}`)

// PatternFromAPI checks one spec.clientPolicy.subjects entry.
func PatternFromAPI(sp v1alpha1.SubjectPattern) (Pattern, error) {
	var found []Pattern
	for kind, text := range map[SubjectKind]string{SubjectDN: sp.DN, SubjectSANDNS: sp.DNSName, SubjectSANURI: sp.URI, SubjectSANEmail: sp.Email} {
		if text != "" {
			found = append(found, Pattern{Kind: kind, Text: text})
		}
	}
	if len(found) != 1 {
		return Pattern{}, fmt.Errorf("set exactly one of dn, dnsName, uri or email, found %d", len(found))
	}
	p := found[0]
	for _, ph := range unknownPlaceholder.FindAllString(p.Text, -1) {
		if ph != placeholderNamespace && ph != placeholderName {
			return Pattern{}, fmt.Errorf("%s: unknown placeholder %s; only {namespace} and {name} are known", p, ph)
		}
	}
	components, err := p.components(placeholderNamespace, placeholderName)
	if err != nil {
		return Pattern{}, fmt.Errorf("%s: %w", p, err)
	}
	for _, c := range components {
		if strings.Contains(c, wildcard) && c != wildcard {
			return Pattern{}, fmt.Errorf("%s: * must stand alone for a whole label, segment or value, not inside %q", p, c)
		}
	}
	return p, nil
}

// DefaultPatterns is the subject policy of a server that lists none.
func DefaultPatterns() []Pattern {
	return []Pattern{{Kind: SubjectSANURI, Text: v1alpha1.DefaultSubjectPattern}}
}

// BindsNamespace reports whether every subject the pattern admits names the
// claiming client's namespace as a whole component, so that no namespace
// can claim another's identities through it.
func (p Pattern) BindsNamespace() bool {
	components, err := p.components(placeholderNamespace, placeholderName)
	if err != nil {
		return false
	}
	for _, c := range components {
		if c == placeholderNamespace {
			return true
		}
	}
	return false
}

// Match reports whether the subject is one the pattern admits for a client
// named name in namespace.
func (p Pattern) Match(s Subject, namespace, name string) bool {
	if s.Kind != p.Kind {
		return false
	}
	if p.Kind == SubjectDN {
		return p.matchDN(s, namespace, name)
	}
	want, err := p.components(namespace, name)
	if err != nil {
		return false
	}
	// The subject is split as written: {namespace} in a subject value is
	// literal text, never the claiming client's namespace.
	got, err := splitComponents(s.Kind, s.Value)
	if err != nil || len(got) != len(want) {
		return false
	}
	for i := range want {
		if want[i] == wildcard {
			if got[i] == "" {
				return false
			}
			continue
		}
		if want[i] != got[i] {
			return false
		}
	}
	return true
}

// components splits the pattern, with placeholders substituted, into the
// units * may stand for. DNS names and email domains compare without case.
func (p Pattern) components(namespace, name string) ([]string, error) {
	return splitComponents(p.Kind, strings.NewReplacer(placeholderNamespace, namespace, placeholderName, name).Replace(p.Text))
}

// splitComponents splits a pattern or subject value of the kind into the
// units * may stand for.
func splitComponents(kind SubjectKind, text string) ([]string, error) {
	switch kind {
	case SubjectSANDNS:
		return strings.Split(strings.ToLower(strings.TrimSuffix(text, ".")), "."), nil
	case SubjectSANEmail:
		local, domain, ok := strings.Cut(text, "@")
		if !ok || strings.Contains(domain, "@") {
			return nil, errors.New("not an email address pattern (local@domain)")
		}
		return append([]string{local}, strings.Split(strings.ToLower(domain), ".")...), nil
	case SubjectSANURI:
		scheme, rest, ok := strings.Cut(text, "://")
		if !ok || scheme == "" {
			return nil, errors.New("a URI pattern is scheme://authority/path, e.g. spiffe://cluster.local/ns/{namespace}/sa/*")
		}
		if strings.ContainsAny(rest, "?#") {
			return nil, errors.New("a URI pattern has no query or fragment")
		}
		return append([]string{strings.ToLower(scheme)}, strings.Split(rest, "/")...), nil
	case SubjectDN:
		dn, err := ParseDistinguishedName(text)
		if err != nil {
			return nil, fmt.Errorf("not an RFC 4514 distinguished name pattern: %w", err)
		}
		var out []string
		for _, rdn := range dn {
			for _, av := range rdn {
				out = append(out, av.Value)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("subject kind %s has no patterns", kind)
}

// matchDN compares RDN by RDN: the same attribute types in the same places,
// each value equal under distinguishedNameMatch or admitted by a *.
func (p Pattern) matchDN(s Subject, namespace, name string) bool {
	text := strings.NewReplacer(placeholderNamespace, namespace, placeholderName, name).Replace(p.Text)
	want, err := ParseDistinguishedName(text)
	if err != nil || len(want) != len(s.dn) {
		return false
	}
	for i, rdn := range want {
		got := s.dn[i]
		if len(rdn) != len(got) {
			return false
		}
		for j, av := range rdn {
			g := got[j]
			if av.Type != g.Type {
				return false
			}
			if !av.Binary && av.Value == wildcard {
				if g.Value == "" {
					return false
				}
				continue
			}
			if av != g {
				return false
			}
		}
	}
	return true
}

// SubjectAllowed is the policy check: the subject must match one of the
// patterns for the claiming client. It returns the patterns in a form for a
// message when it does not.
func SubjectAllowed(s Subject, patterns []Pattern, namespace, name string) (bool, string) {
	var shown []string
	for _, p := range patterns {
		if p.Match(s, namespace, name) {
			return true, ""
		}
		text := strings.NewReplacer(placeholderNamespace, namespace, placeholderName, name).Replace(p.Text)
		shown = append(shown, fmt.Sprintf("%s %q", apiField[p.Kind], text))
	}
	return false, strings.Join(shown, ", ")
}

package validation

// spec.clientPolicy of an AuthorizationServer and spec.audiences of an
// OAuthClient: the well-formedness of the rules. Whether a given client
// satisfies them is CheckClientAgainstPolicy (policy.go).

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/registration"
)

// Bounds of the policy lists and values; the CRD schema states the same.
const (
	maxScopeLength    = 128
	maxAudienceLength = 2048
	maxClientAudience = 32
	maxClientScopes   = 64
	maxPolicySubjects = 32
	maxPolicyScopes   = 256
	maxPolicyAudience = 256
)

// scopeToken is an RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E.
var scopeToken = regexp.MustCompile(`^[\x21\x23-\x5B\x5D-\x7E]+$`)

// validateClientPolicy checks spec.clientPolicy. A subject pattern must bind
// the client's namespace unless allowUnboundSubjects says otherwise, and
// then every unbound pattern is warned about: it lets any allowed
// namespace claim identities that may belong to another team.
func validateClientPolicy(p v1alpha1.ClientPolicy, path *field.Path) (warnings []string, errs field.ErrorList) {
	subjects := path.Child("subjects")
	if len(p.Subjects) > maxPolicySubjects {
		errs = append(errs, field.TooMany(subjects, len(p.Subjects), maxPolicySubjects))
	}
	for i, sp := range p.Subjects {
		pattern, err := registration.PatternFromAPI(sp)
		if err != nil {
			errs = append(errs, field.Invalid(subjects.Index(i), subjectPatternText(sp), err.Error()))
			continue
		}
		if pattern.BindsNamespace() {
			continue
		}
		if !p.AllowUnboundSubjects {
			errs = append(errs, field.Invalid(subjects.Index(i), pattern.Text, fmt.Sprintf("the pattern %s does not name {namespace}; set allowUnboundSubjects to allow subjects not bound to the client's namespace, or put {namespace} in the pattern as a whole label, segment or value", pattern)))
			continue
		}
		warnings = append(warnings, fmt.Sprintf("%s: the pattern %s does not name {namespace} and allowUnboundSubjects is true: clients of any allowed namespace may claim the subjects it admits, including identities another team uses", subjects.Index(i), pattern))
	}

	scopeNames := make([]string, len(p.Scopes))
	scopeSelectors := make([]*metav1.LabelSelector, len(p.Scopes))
	for i, sp := range p.Scopes {
		scopeNames[i], scopeSelectors[i] = sp.Name, sp.Namespaces
	}
	errs = append(errs, validateGrants(scopeNames, scopeSelectors, maxPolicyScopes, path.Child("scopes"), "name", validateScopeToken)...)
	audienceURIs := make([]string, len(p.Audiences))
	audienceSelectors := make([]*metav1.LabelSelector, len(p.Audiences))
	for i, ap := range p.Audiences {
		audienceURIs[i], audienceSelectors[i] = ap.URI, ap.Namespaces
	}
	errs = append(errs, validateGrants(audienceURIs, audienceSelectors, maxPolicyAudience, path.Child("audiences"), "uri", validateAudienceURI)...)
	for i, ap := range p.Audiences {
		if ap.ResourceServerNamespaces != nil {
			errs = append(errs, metav1validation.ValidateLabelSelector(ap.ResourceServerNamespaces, metav1validation.LabelSelectorValidationOptions{}, path.Child("audiences").Index(i).Child("resourceServerNamespaces"))...)
		}
	}
	return warnings, errs
}

// subjectPatternText shows a subject pattern entry for a field error.
func subjectPatternText(sp v1alpha1.SubjectPattern) string {
	var set []string
	for _, m := range []struct{ name, value string }{{"dn", sp.DN}, {"dnsName", sp.DNSName}, {"uri", sp.URI}, {"email", sp.Email}} {
		if m.value != "" {
			set = append(set, fmt.Sprintf("%s: %q", m.name, m.value))
		}
	}
	return "{" + strings.Join(set, ", ") + "}"
}

// validateScopeToken applies RFC 6749 §3.3: printable ASCII without space,
// double quote or backslash.
func validateScopeToken(s string, path *field.Path) field.ErrorList {
	switch {
	case s == "":
		return field.ErrorList{field.Required(path, "name the scope value")}
	case len(s) > maxScopeLength:
		return field.ErrorList{field.TooLong(path, s, maxScopeLength)}
	case !scopeToken.MatchString(s):
		return field.ErrorList{field.Invalid(path, s, "a scope value is one RFC 6749 §3.3 scope-token: printable ASCII without space, double quote or backslash; list several scopes as separate entries")}
	}
	return nil
}

// validateAudienceURI requires an RFC 8707 resource indicator as the
// authorization server accepts it: an absolute https or http URL with a
// host, or a urn:, without a fragment (RFC 8707 §2).
func validateAudienceURI(s string, path *field.Path) field.ErrorList {
	if s == "" {
		return field.ErrorList{field.Required(path, "give the resource indicator, an absolute URI such as https://api.example.com")}
	}
	if len(s) > maxAudienceLength {
		return field.ErrorList{field.TooLong(path, s, maxAudienceLength)}
	}
	u, err := url.Parse(s)
	if err != nil {
		return field.ErrorList{field.Invalid(path, s, fmt.Sprintf("not a URI: %v; write an absolute URI such as https://api.example.com", unwrapURLError(err)))}
	}
	if strings.Contains(s, "#") {
		return field.ErrorList{field.Invalid(path, s, "a resource indicator has no fragment (RFC 8707 §2): remove the part after #")}
	}
	switch strings.ToLower(u.Scheme) {
	case "https", "http":
		if u.Hostname() == "" {
			return field.ErrorList{field.Invalid(path, s, "an http(s) resource indicator names a host: write e.g. https://api.example.com")}
		}
		if u.User != nil {
			return field.ErrorList{field.Invalid(path, s, "remove the user information before @: a resource indicator is published in every token")}
		}
	case "urn":
		nid, nss, ok := strings.Cut(u.Opaque, ":")
		if !ok || nid == "" || nss == "" {
			return field.ErrorList{field.Invalid(path, s, "a URN is urn:<namespace-id>:<specific-string>, e.g. urn:example:payments-api")}
		}
	case "":
		return field.ErrorList{field.Invalid(path, s, "not an absolute URI (RFC 8707 §2): write e.g. https://api.example.com or urn:example:payments-api")}
	default:
		return field.ErrorList{field.Invalid(path, s, fmt.Sprintf("the scheme %q is not a resource indicator the server issues tokens for: use https, http or urn", u.Scheme))}
	}
	return nil
}

// validateGrants checks the scopes or audiences of a client policy: at
// most max entries, each key (under member) valid by validateKey and listed
// once, each namespaces selector valid.
func validateGrants(keys []string, selectors []*metav1.LabelSelector, max int, path *field.Path, member string, validateKey func(string, *field.Path) field.ErrorList) field.ErrorList {
	var errs field.ErrorList
	if len(keys) > max {
		errs = append(errs, field.TooMany(path, len(keys), max))
	}
	seen := make(map[string]bool, len(keys))
	for i, key := range keys {
		errs = append(errs, validateKey(key, path.Index(i).Child(member))...)
		if seen[key] {
			errs = append(errs, field.Duplicate(path.Index(i).Child(member), key))
		}
		seen[key] = true
		if selectors[i] != nil {
			errs = append(errs, metav1validation.ValidateLabelSelector(selectors[i], metav1validation.LabelSelectorValidationOptions{}, path.Index(i).Child("namespaces"))...)
		}
	}
	return errs
}

// validateClientScopes checks spec.scopes of an OAuthClient: RFC 6749 §3.3
// scope tokens, each once.
func validateClientScopes(scopes []string, path *field.Path) field.ErrorList {
	return validateDistinct(scopes, maxClientScopes, path, validateScopeToken)
}

// validateClientAudiences checks spec.audiences of an OAuthClient.
func validateClientAudiences(audiences []string, path *field.Path) field.ErrorList {
	return validateDistinct(audiences, maxClientAudience, path, validateAudienceURI)
}

// validateDistinct checks a list of at most max values, each valid by
// validateOne and listed once.
func validateDistinct(values []string, max int, path *field.Path, validateOne func(string, *field.Path) field.ErrorList) field.ErrorList {
	var errs field.ErrorList
	if len(values) > max {
		errs = append(errs, field.TooMany(path, len(values), max))
	}
	seen := make(map[string]bool, len(values))
	for i, v := range values {
		errs = append(errs, validateOne(v, path.Index(i))...)
		if seen[v] {
			errs = append(errs, field.Duplicate(path.Index(i), v))
		}
		seen[v] = true
	}
	return errs
}

// validateIssuerNamespace refuses an issuer whose host is a cluster Service
// DNS name (<service>.<namespace>.svc, optionally followed by the cluster
// domain) in a namespace other than the server's own: such a server would
// issue tokens in the name of another team's Service, and its serving
// certificate would be requested for that name (a confused deputy). A host
// that is not a Service name is not judged here.
func validateIssuerNamespace(issuer, namespace string, path *field.Path) field.ErrorList {
	if namespace == "" {
		return nil
	}
	u, err := url.Parse(issuer)
	if err != nil {
		return nil // validateIssuerURL reports it
	}
	for _, ns := range serviceNamespaces(u.Hostname()) {
		if ns == namespace {
			continue
		}
		return field.ErrorList{field.Forbidden(path, fmt.Sprintf("the issuer host %s names a Service in namespace %s; an AuthorizationServer may only use Service names of its own namespace %s: use https://<service>.%s.svc or a name outside the cluster domain", u.Hostname(), ns, namespace, namespace))}
	}
	return nil
}

// serviceNamespaces returns the namespaces a cluster-internal host name
// names: each label before a "svc" label that has at least a service and a
// namespace label in front of it (<service>.<namespace>.svc[.<domain>], and
// <host>.<service>.<namespace>.svc[...] of a headless Service's pods).
func serviceNamespaces(host string) []string {
	labels := strings.Split(strings.ToLower(strings.TrimSuffix(host, ".")), ".")
	var out []string
	for i := 2; i < len(labels); i++ {
		if labels[i] == "svc" {
			out = append(out, labels[i-1])
		}
	}
	return out
}

package validation

// The client policy of an AuthorizationServer applied to one OAuthClient:
// which subject the client may claim, and which scopes and audiences it
// may be granted. Pure, so that the OAuthClient controller (the authority)
// and the validating webhook (early feedback) decide the same way.

import (
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/registration"
)

// Reasons of policy violations; each is also the reason of the
// OAuthClient's Accepted condition when the controller refuses the client.
const (
	// ReasonSubjectNotAllowed: spec.subject matches none of the server's
	// clientPolicy.subjects patterns for the client's namespace and name.
	ReasonSubjectNotAllowed = "SubjectNotAllowed"
	// ReasonScopeNotAllowed: a scope of spec.scopes is not granted to
	// clients of the client's namespace.
	ReasonScopeNotAllowed = "ScopeNotAllowed"
	// ReasonAudienceNotAllowed: an audience of spec.audiences is not
	// granted to clients of the client's namespace.
	ReasonAudienceNotAllowed = "AudienceNotAllowed"
	// ReasonIntrospectionAudienceNotAllowed: an audience of
	// spec.introspectionAudiences is not one whose resource server clients
	// of the client's namespace may be.
	ReasonIntrospectionAudienceNotAllowed = "IntrospectionAudienceNotAllowed"
)

// PolicyViolation is one way an OAuthClient breaks its AuthorizationServer's
// client policy.
type PolicyViolation struct {
	// Reason is ReasonSubjectNotAllowed, ReasonScopeNotAllowed,
	// ReasonAudienceNotAllowed or ReasonIntrospectionAudienceNotAllowed.
	Reason string
	// Message says what is refused and what the client may do instead. It
	// names the client's own values and the server, never other tenants'
	// objects.
	Message string
	// Field is the OAuthClient field at fault (spec.subject,
	// spec.scopes[i], spec.audiences[i], spec.introspectionAudiences[i]).
	Field *field.Path
}

// CheckClientAgainstPolicy applies as.Spec.ClientPolicy to client, whose
// namespace carries namespaceLabels. It fails closed: a subject or a rule
// that does not parse admits nothing (ValidateOAuthClient and
// ValidateAuthorizationServer say why). It does not check that the server
// allows the client's namespace at all, nor that client refers to as.
//
//   - A tls_client_auth subject must match one pattern of
//     clientPolicy.subjects (DefaultPatterns when empty) for the client's
//     namespace and name. A pattern that does not bind {namespace} counts
//     only when allowUnboundSubjects is true.
//   - An ip subject matches no pattern (there is no ip pattern kind): it is
//     allowed exactly when allowUnboundSubjects is true. Every other subject
//     that matches no pattern is refused, allowUnboundSubjects or not.
//   - Each scope must be listed in clientPolicy.scopes with a namespaces
//     selector that matches namespaceLabels (nil selects every namespace);
//     the same for each audience and clientPolicy.audiences.
//   - Each introspection audience must be listed in clientPolicy.audiences
//     with a resourceServerNamespaces selector that matches
//     namespaceLabels; nil selects no namespace, so being granted an
//     audience never makes a client its resource server.
func CheckClientAgainstPolicy(client *v1alpha1.OAuthClient, as *v1alpha1.AuthorizationServer, namespaceLabels map[string]string) []PolicyViolation {
	if client == nil || as == nil {
		return nil
	}
	var out []PolicyViolation
	policy := as.Spec.ClientPolicy
	server := fmt.Sprintf("AuthorizationServer %s/%s", as.Namespace, as.Name)
	spec := field.NewPath("spec")

	if effectiveMethod(client.Spec.AuthenticationMethod) == v1alpha1.TLSClientAuth {
		if v, ok := subjectViolation(client, policy, server, spec.Child("subject")); !ok {
			out = append(out, v)
		}
	}

	scopes := make(map[string]*metav1.LabelSelector, len(policy.Scopes))
	for _, sp := range policy.Scopes {
		scopes[sp.Name] = sp.Namespaces
	}
	for _, i := range ungranted(client.Spec.Scopes, scopes, namespaceLabels) {
		scope := client.Spec.Scopes[i]
		out = append(out, PolicyViolation{
			Reason:  ReasonScopeNotAllowed,
			Message: fmt.Sprintf("scope %q is not among the scopes %s grants to clients in namespace %s: remove it from spec.scopes, or ask the server's owner to list it in spec.clientPolicy.scopes for this namespace", scope, server, client.Namespace),
			Field:   spec.Child("scopes").Index(i),
		})
	}
	audiences := make(map[string]*metav1.LabelSelector, len(policy.Audiences))
	for _, ap := range policy.Audiences {
		audiences[ap.URI] = ap.Namespaces
	}
	for _, i := range ungranted(client.Spec.Audiences, audiences, namespaceLabels) {
		aud := client.Spec.Audiences[i]
		out = append(out, PolicyViolation{
			Reason:  ReasonAudienceNotAllowed,
			Message: fmt.Sprintf("audience %q is not among the audiences %s issues tokens for to clients in namespace %s: remove it from spec.audiences, or ask the server's owner to list it in spec.clientPolicy.audiences for this namespace", aud, server, client.Namespace),
			Field:   spec.Child("audiences").Index(i),
		})
	}
	resourceServers := make(map[string]*metav1.LabelSelector, len(policy.Audiences))
	for _, ap := range policy.Audiences {
		if ap.ResourceServerNamespaces != nil {
			resourceServers[ap.URI] = ap.ResourceServerNamespaces
		}
	}
	for _, i := range ungranted(client.Spec.IntrospectionAudiences, resourceServers, namespaceLabels) {
		aud := client.Spec.IntrospectionAudiences[i]
		out = append(out, PolicyViolation{
			Reason:  ReasonIntrospectionAudienceNotAllowed,
			Message: fmt.Sprintf("%s does not let clients in namespace %s act as resource server for audience %q (introspect other clients' tokens issued for it): remove it from spec.introspectionAudiences, or ask the server's owner to select this namespace in resourceServerNamespaces of that audience in spec.clientPolicy.audiences", server, client.Namespace, aud),
			Field:   spec.Child("introspectionAudiences").Index(i),
		})
	}
	return out
}

// ungranted returns the indexes, in order, of the requested values that
// granted does not list with a namespaces selector matching
// namespaceLabels.
func ungranted(requested []string, granted map[string]*metav1.LabelSelector, namespaceLabels map[string]string) []int {
	var out []int
	for i, v := range requested {
		if sel, listed := granted[v]; !listed || !selects(sel, namespaceLabels) {
			out = append(out, i)
		}
	}
	return out
}

// subjectViolation decides the subject rule; ok is true when the subject
// is allowed.
func subjectViolation(client *v1alpha1.OAuthClient, policy v1alpha1.ClientPolicy, server string, path *field.Path) (PolicyViolation, bool) {
	refuse := func(format string, args ...any) (PolicyViolation, bool) {
		return PolicyViolation{Reason: ReasonSubjectNotAllowed, Message: fmt.Sprintf(format, args...), Field: path}, false
	}
	subject, err := registration.SubjectFromAPI(client.Spec.Subject)
	if err != nil {
		return refuse("spec.subject cannot be checked against the subject policy of %s: %v", server, err)
	}
	if subject.Kind == registration.SubjectSANIP {
		if policy.AllowUnboundSubjects {
			return PolicyViolation{}, true
		}
		return refuse("%s: an ip subject cannot be bound to a namespace, so %s admits it only with spec.clientPolicy.allowUnboundSubjects; use a subject its policy admits, e.g. a SPIFFE ID under namespace %s", subject, server, client.Namespace)
	}
	patterns := effectivePatterns(policy)
	if len(patterns) == 0 {
		return refuse("%s admits no subject: none of its spec.clientPolicy.subjects patterns is valid and bound to the client's namespace", server)
	}
	allowed, shown := registration.SubjectAllowed(subject, patterns, client.Namespace, client.Name)
	if allowed {
		return PolicyViolation{}, true
	}
	return refuse("%s is not admitted by the subject policy of %s for client %s/%s, which admits %s", subject, server, client.Namespace, client.Name, shown)
}

// effectivePatterns are the subject patterns that count: the listed ones
// that parse and, unless allowUnboundSubjects, bind the namespace; the
// default when none is listed.
func effectivePatterns(policy v1alpha1.ClientPolicy) []registration.Pattern {
	if len(policy.Subjects) == 0 {
		return registration.DefaultPatterns()
	}
	var out []registration.Pattern
	for _, sp := range policy.Subjects {
		p, err := registration.PatternFromAPI(sp)
		if err != nil || (!p.BindsNamespace() && !policy.AllowUnboundSubjects) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// selects reports whether the selector (nil: every namespace) matches the
// namespace's labels. A selector that does not parse selects nothing.
func selects(sel *metav1.LabelSelector, namespaceLabels map[string]string) bool {
	if sel == nil {
		return true
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(namespaceLabels))
}

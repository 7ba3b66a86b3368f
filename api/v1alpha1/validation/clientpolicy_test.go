package validation

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certbound/certbound/api/v1alpha1"
)

func withPolicy(p v1alpha1.ClientPolicy) *v1alpha1.AuthorizationServer {
	return authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.ClientPolicy = p })
}

func TestValidateClientPolicy(t *testing.T) {
	team := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}
	badSelector := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Like", Values: []string{"x"}}}}
	for name, tc := range map[string]struct {
		policy   v1alpha1.ClientPolicy
		errs     []refusal
		warnings []string
	}{
		"the empty policy is accepted": {},
		"bound patterns of every kind are accepted": {policy: v1alpha1.ClientPolicy{Subjects: []v1alpha1.SubjectPattern{
			{URI: "spiffe://cluster.local/ns/{namespace}/sa/*"},
			{DNSName: "*.{namespace}.svc"},
			{DN: "CN=*,OU={namespace},O=Acme"},
			{Email: "*@{namespace}.example.com"},
		}}},
		"two members in one pattern are refused": {
			policy: v1alpha1.ClientPolicy{Subjects: []v1alpha1.SubjectPattern{{URI: "spiffe://*/ns/{namespace}/sa/*", DNSName: "*.{namespace}.svc"}}},
			errs:   []refusal{{"spec.clientPolicy.subjects[0]", "set exactly one of dn, dnsName, uri or email"}},
		},
		"an unknown placeholder is refused": {
			policy: v1alpha1.ClientPolicy{Subjects: []v1alpha1.SubjectPattern{{URI: "spiffe://*/ns/{namespace}/sa/{serviceaccount}"}}},
			errs:   []refusal{{"spec.clientPolicy.subjects[0]", "unknown placeholder {serviceaccount}"}},
		},
		"a wildcard inside a component is refused": {
			policy: v1alpha1.ClientPolicy{Subjects: []v1alpha1.SubjectPattern{{DNSName: "worker-*.{namespace}.svc"}}},
			errs:   []refusal{{"spec.clientPolicy.subjects[0]", "* must stand alone"}},
		},
		"an unbound pattern is refused without allowUnboundSubjects": {
			policy: v1alpha1.ClientPolicy{Subjects: []v1alpha1.SubjectPattern{{URI: "spiffe://*/ns/{namespace}/sa/*"}, {DN: "CN=*,O=Acme"}}},
			errs:   []refusal{{"spec.clientPolicy.subjects[1]", "does not name {namespace}; set allowUnboundSubjects to allow subjects not bound to the client's namespace"}},
		},
		"{namespace} inside a component does not bind": {
			policy: v1alpha1.ClientPolicy{Subjects: []v1alpha1.SubjectPattern{{URI: "spiffe://*/ns/team-{namespace}/sa/*"}}},
			errs:   []refusal{{"spec.clientPolicy.subjects[0]", "does not name {namespace}"}},
		},
		"an unbound pattern is warned about with allowUnboundSubjects": {
			policy:   v1alpha1.ClientPolicy{AllowUnboundSubjects: true, Subjects: []v1alpha1.SubjectPattern{{DN: "CN=*,O=Acme"}}},
			warnings: []string{"clients of any allowed namespace may claim the subjects it admits"},
		},
		"allowUnboundSubjects with bound patterns only is not warned about": {
			policy: v1alpha1.ClientPolicy{AllowUnboundSubjects: true, Subjects: []v1alpha1.SubjectPattern{{URI: "spiffe://*/ns/{namespace}/sa/*"}}},
		},
		"scopes and audiences with selectors are accepted": {policy: v1alpha1.ClientPolicy{
			Scopes:    []v1alpha1.ScopePolicy{{Name: "payments.read"}, {Name: "payments:write", Namespaces: team}},
			Audiences: []v1alpha1.AudiencePolicy{{URI: "https://api.example.com/payments"}, {URI: "http://ledger.payments.svc:8080", Namespaces: team}, {URI: "urn:example:ledger"}},
		}},
		"a scope with a space is refused": {
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: "payments.read payments.write"}}},
			errs:   []refusal{{"spec.clientPolicy.scopes[0].name", "RFC 6749 §3.3 scope-token"}},
		},
		"a scope with a double quote or backslash is refused": {
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: `a"b`}, {Name: `a\b`}}},
			errs:   []refusal{{"spec.clientPolicy.scopes[0].name", "scope-token"}, {"spec.clientPolicy.scopes[1].name", "scope-token"}},
		},
		"a non-ASCII scope is refused": {
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: "zahlungen.lesen→"}}},
			errs:   []refusal{{"spec.clientPolicy.scopes[0].name", "scope-token"}},
		},
		"an empty or overlong scope is refused": {
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: ""}, {Name: strings.Repeat("s", 129)}}},
			errs:   []refusal{{"spec.clientPolicy.scopes[0].name", "Required"}, {"spec.clientPolicy.scopes[1].name", "may not be more than 128"}},
		},
		"a duplicate scope is refused": {
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: "read"}, {Name: "read", Namespaces: team}}},
			errs:   []refusal{{"spec.clientPolicy.scopes[1].name", "Duplicate value"}},
		},
		"a malformed scope selector is refused": {
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: "read", Namespaces: badSelector}}},
			errs:   []refusal{{"spec.clientPolicy.scopes[0].namespaces.matchExpressions[0].operator", "not a valid selector operator"}},
		},
		"a relative audience is refused": {
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "/payments"}}},
			errs:   []refusal{{"spec.clientPolicy.audiences[0].uri", "not an absolute URI"}},
		},
		"an audience with a fragment is refused": {
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "https://api.example.com/#x"}}},
			errs:   []refusal{{"spec.clientPolicy.audiences[0].uri", "no fragment"}},
		},
		"an audience of another scheme is refused": {
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "ftp://files.example.com"}}},
			errs:   []refusal{{"spec.clientPolicy.audiences[0].uri", "use https, http or urn"}},
		},
		"an https audience without a host is refused": {
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "https:///payments"}}},
			errs:   []refusal{{"spec.clientPolicy.audiences[0].uri", "names a host"}},
		},
		"a malformed URN is refused": {
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "urn:ledger"}}},
			errs:   []refusal{{"spec.clientPolicy.audiences[0].uri", "urn:<namespace-id>:<specific-string>"}},
		},
		"a duplicate audience is refused": {
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "urn:example:a"}, {URI: "urn:example:a"}}},
			errs:   []refusal{{"spec.clientPolicy.audiences[1].uri", "Duplicate value"}},
		},
		"a malformed audience selector is refused": {
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "urn:example:a", Namespaces: badSelector}}},
			errs:   []refusal{{"spec.clientPolicy.audiences[0].namespaces.matchExpressions[0].operator", "not a valid selector operator"}},
		},
		"a malformed resource server selector is refused": {
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "urn:example:a", ResourceServerNamespaces: badSelector}}},
			errs:   []refusal{{"spec.clientPolicy.audiences[0].resourceServerNamespaces.matchExpressions[0].operator", "not a valid selector operator"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			warnings, errs := ValidateAuthorizationServer(withPolicy(tc.policy), nil)
			assertRefusals(t, errs, tc.errs)
			assertWarnings(t, warnings, tc.warnings)
		})
	}
}

// TestAnIssuerMayNameOnlyServicesOfItsOwnNamespace: a server in namespace
// auth must not sign as another namespace's Service (a confused deputy).
func TestAnIssuerMayNameOnlyServicesOfItsOwnNamespace(t *testing.T) {
	for issuer, refusedNamespace := range map[string]string{
		"https://payments.auth.svc":                     "",
		"https://payments.auth.svc.cluster.local":       "",
		"https://payments.auth.svc.cluster.local.:8443": "",
		"https://auth.example.com":                      "",
		"https://svc.example.com":                       "",
		"https://auth.svc":                              "",
		"https://payments.billing.svc":                  "billing",
		"https://PAYMENTS.Billing.SVC":                  "billing",
		"https://payments.billing.svc.cluster.local":    "billing",
		"https://payments.billing.svc.cluster.local.":   "billing",
		"https://pod-0.payments.billing.svc":            "billing",
		"https://x.billing.svc.y.auth.svc":              "billing",
	} {
		t.Run(issuer, func(t *testing.T) {
			_, errs := ValidateAuthorizationServer(authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Issuer = issuer }), nil)
			if refusedNamespace == "" {
				assertRefusals(t, errs, nil)
				return
			}
			assertRefusals(t, errs, []refusal{{"spec.issuer", "names a Service in namespace " + refusedNamespace + "; an AuthorizationServer may only use Service names of its own namespace auth"}})
		})
	}
}

func TestValidateOAuthClientAudiences(t *testing.T) {
	many := make([]string, 33)
	for i := range many {
		many[i] = "urn:example:a" + strings.Repeat("x", i)
	}
	for name, tc := range map[string]struct {
		audiences []string
		errs      []refusal
	}{
		"absolute URIs are accepted": {audiences: []string{"https://api.example.com/payments", "http://ledger.payments.svc:8080", "urn:example:ledger"}},
		"a relative URI is refused":  {audiences: []string{"payments"}, errs: []refusal{{"spec.audiences[0]", "not an absolute URI"}}},
		"a fragment is refused":      {audiences: []string{"urn:example:a", "https://api.example.com#x"}, errs: []refusal{{"spec.audiences[1]", "no fragment"}}},
		"a duplicate is refused":     {audiences: []string{"urn:example:a", "urn:example:a"}, errs: []refusal{{"spec.audiences[1]", "Duplicate value"}}},
		"an overlong URI is refused": {audiences: []string{"https://api.example.com/" + strings.Repeat("p", 2048)}, errs: []refusal{{"spec.audiences[0]", "may not be more than 2048"}}},
		"more than 32 are refused":   {audiences: many, errs: []refusal{{"spec.audiences", "must have at most 32 items"}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, errs := ValidateOAuthClient(with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.Audiences = tc.audiences }), nil)
			assertRefusals(t, errs, tc.errs)
		})
		// spec.introspectionAudiences follows the same rules.
		t.Run("introspectionAudiences: "+name, func(t *testing.T) {
			_, errs := ValidateOAuthClient(with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.IntrospectionAudiences = tc.audiences }), nil)
			want := make([]refusal, len(tc.errs))
			for i, r := range tc.errs {
				want[i] = r
				want[i].path = strings.Replace(r.path, "spec.audiences", "spec.introspectionAudiences", 1)
			}
			assertRefusals(t, errs, want)
		})
	}
}

func TestValidateOAuthClientScopes(t *testing.T) {
	many := make([]string, 65)
	for i := range many {
		many[i] = "s" + strings.Repeat("x", i)
	}
	for name, tc := range map[string]struct {
		scopes []string
		errs   []refusal
	}{
		"scope tokens are accepted": {scopes: []string{"payments.read", "payments:write", "a/b"}},
		"a space is refused":        {scopes: []string{"read write"}, errs: []refusal{{"spec.scopes[0]", "scope-token"}}},
		"a duplicate is refused":    {scopes: []string{"read", "read"}, errs: []refusal{{"spec.scopes[1]", "Duplicate value"}}},
		"an empty scope is refused": {scopes: []string{""}, errs: []refusal{{"spec.scopes[0]", "Required"}}},
		"more than 64 are refused":  {scopes: many, errs: []refusal{{"spec.scopes", "must have at most 64 items"}}},
	} {
		t.Run(name, func(t *testing.T) {
			_, errs := ValidateOAuthClient(with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = tc.scopes }), nil)
			assertRefusals(t, errs, tc.errs)
		})
	}
}

func TestValidateClientPolicyBounds(t *testing.T) {
	var p v1alpha1.ClientPolicy
	for i := 0; i < 33; i++ {
		p.Subjects = append(p.Subjects, v1alpha1.SubjectPattern{URI: "spiffe://td" + strings.Repeat("x", i) + "/ns/{namespace}/sa/*"})
	}
	for i := 0; i < 257; i++ {
		p.Scopes = append(p.Scopes, v1alpha1.ScopePolicy{Name: "s" + strings.Repeat("x", i%100) + strings.Repeat("y", i/100)})
		p.Audiences = append(p.Audiences, v1alpha1.AudiencePolicy{URI: "urn:example:a" + strings.Repeat("x", i)})
	}
	_, errs := ValidateAuthorizationServer(withPolicy(p), nil)
	assertRefusals(t, errs, []refusal{
		{"spec.clientPolicy.subjects", "must have at most 32 items"},
		{"spec.clientPolicy.scopes", "must have at most 256 items"},
		{"spec.clientPolicy.audiences", "must have at most 256 items"},
	})
}

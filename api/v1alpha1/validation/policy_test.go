package validation

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certbound/certbound/api/v1alpha1"
)

// policyClient is a client named worker in namespace billing.
func policyClient(subject v1alpha1.ClientSubject, change func(*v1alpha1.OAuthClient)) *v1alpha1.OAuthClient {
	c := pkiClient(subject)
	c.Name, c.Namespace = "worker", "billing"
	c.Spec.AuthorizationServerRef = v1alpha1.AuthorizationServerReference{Name: "payments", Namespace: "auth"}
	if change != nil {
		change(c)
	}
	return c
}

// violation is one expected PolicyViolation: its reason, field and a
// phrase of its message.
type violation struct{ reason, field, message string }

func TestCheckClientAgainstPolicy(t *testing.T) {
	spiffe := v1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/billing/sa/worker"}
	payments := &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}
	billingLabels := map[string]string{"team": "billing", "kubernetes.io/metadata.name": "billing"}
	for name, tc := range map[string]struct {
		client *v1alpha1.OAuthClient
		policy v1alpha1.ClientPolicy
		labels map[string]string
		want   []violation
	}{
		// Subjects under the default policy, spiffe://*/ns/{namespace}/sa/*.
		"the default policy admits a SPIFFE ID of the client's namespace": {
			client: policyClient(spiffe, nil),
		},
		"the default policy admits any trust domain": {
			client: policyClient(v1alpha1.ClientSubject{URI: "spiffe://prod.example.com/ns/billing/sa/other"}, nil),
		},
		"the default policy refuses a SPIFFE ID of another namespace": {
			client: policyClient(v1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/payments/sa/worker"}, nil),
			want:   []violation{{ReasonSubjectNotAllowed, "spec.subject", `which admits uri "spiffe://*/ns/billing/sa/*"`}},
		},
		"the default policy refuses a deeper path": {
			client: policyClient(v1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/billing/sa/worker/x"}, nil),
			want:   []violation{{ReasonSubjectNotAllowed, "spec.subject", "not admitted"}},
		},
		"the default policy refuses a DN": {
			client: policyClient(v1alpha1.ClientSubject{DN: "CN=worker,OU=billing"}, nil),
			want:   []violation{{ReasonSubjectNotAllowed, "spec.subject", "not admitted"}},
		},
		"a self-signed client has no subject to check": {
			client: policyClient(v1alpha1.ClientSubject{}, func(c *v1alpha1.OAuthClient) {
				c.Spec.AuthenticationMethod = v1alpha1.SelfSignedTLSClientAuth
				c.Spec.Subject = nil
			}),
		},
		"a subject that does not parse fails closed": {
			client: policyClient(v1alpha1.ClientSubject{DN: "not a dn"}, nil),
			want:   []violation{{ReasonSubjectNotAllowed, "spec.subject", "cannot be checked"}},
		},
		"a missing subject fails closed": {
			client: policyClient(v1alpha1.ClientSubject{}, func(c *v1alpha1.OAuthClient) { c.Spec.Subject = nil }),
			want:   []violation{{ReasonSubjectNotAllowed, "spec.subject", "cannot be checked"}},
		},

		// Listed patterns.
		"a listed DN pattern admits the client's namespace": {
			client: policyClient(v1alpha1.ClientSubject{DN: "CN=worker,OU=billing,O=Acme"}, nil),
			policy: v1alpha1.ClientPolicy{Subjects: []v1alpha1.SubjectPattern{{DN: "CN=*,OU={namespace},O=Acme"}}},
		},
		"a {name} pattern admits only the client's own name": {
			client: policyClient(v1alpha1.ClientSubject{DNSName: "other.billing.svc"}, nil),
			policy: v1alpha1.ClientPolicy{Subjects: []v1alpha1.SubjectPattern{{DNSName: "{name}.{namespace}.svc"}}},
			want:   []violation{{ReasonSubjectNotAllowed, "spec.subject", `dnsName "worker.billing.svc"`}},
		},
		"listed patterns replace the default": {
			client: policyClient(spiffe, nil),
			policy: v1alpha1.ClientPolicy{Subjects: []v1alpha1.SubjectPattern{{DNSName: "*.{namespace}.svc"}}},
			want:   []violation{{ReasonSubjectNotAllowed, "spec.subject", "not admitted"}},
		},
		"an unbound pattern admits nothing without allowUnboundSubjects": {
			client: policyClient(v1alpha1.ClientSubject{DN: "CN=worker,O=Acme"}, nil),
			policy: v1alpha1.ClientPolicy{Subjects: []v1alpha1.SubjectPattern{{DN: "CN=*,O=Acme"}}},
			want:   []violation{{ReasonSubjectNotAllowed, "spec.subject", "admits no subject"}},
		},
		"an unbound pattern admits with allowUnboundSubjects": {
			client: policyClient(v1alpha1.ClientSubject{DN: "CN=worker,O=Acme"}, nil),
			policy: v1alpha1.ClientPolicy{AllowUnboundSubjects: true, Subjects: []v1alpha1.SubjectPattern{{DN: "CN=*,O=Acme"}}},
		},
		"an invalid pattern admits nothing": {
			client: policyClient(spiffe, nil),
			policy: v1alpha1.ClientPolicy{Subjects: []v1alpha1.SubjectPattern{{URI: "spiffe://*/ns/{namespace}/sa/{sa}"}}},
			want:   []violation{{ReasonSubjectNotAllowed, "spec.subject", "admits no subject"}},
		},

		// allowUnboundSubjects admits ip subjects, and nothing else that
		// matches no pattern.
		"an ip subject is refused by default": {
			client: policyClient(v1alpha1.ClientSubject{IP: "10.0.0.1"}, nil),
			want:   []violation{{ReasonSubjectNotAllowed, "spec.subject", "only with spec.clientPolicy.allowUnboundSubjects"}},
		},
		"an ip subject is allowed with allowUnboundSubjects": {
			client: policyClient(v1alpha1.ClientSubject{IP: "10.0.0.1"}, nil),
			policy: v1alpha1.ClientPolicy{AllowUnboundSubjects: true},
		},
		"allowUnboundSubjects still refuses another subject matching no pattern": {
			client: policyClient(v1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/payments/sa/worker"}, nil),
			policy: v1alpha1.ClientPolicy{AllowUnboundSubjects: true},
			want:   []violation{{ReasonSubjectNotAllowed, "spec.subject", "not admitted"}},
		},
		"allowUnboundSubjects still refuses a DN matching no listed pattern": {
			client: policyClient(v1alpha1.ClientSubject{DN: "CN=worker,O=Other"}, nil),
			policy: v1alpha1.ClientPolicy{AllowUnboundSubjects: true, Subjects: []v1alpha1.SubjectPattern{{DN: "CN=*,O=Acme"}}},
			want:   []violation{{ReasonSubjectNotAllowed, "spec.subject", "not admitted"}},
		},

		// Scopes.
		"a listed scope for every namespace is granted": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"read"} }),
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: "read"}}},
		},
		"an unlisted scope is refused": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"read", "admin"} }),
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: "read"}}},
			want:   []violation{{ReasonScopeNotAllowed, "spec.scopes[1]", `scope "admin" is not among the scopes AuthorizationServer auth/payments grants to clients in namespace billing`}},
		},
		"no scope is granted by the empty policy": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"read"} }),
			want:   []violation{{ReasonScopeNotAllowed, "spec.scopes[0]", `scope "read"`}},
		},
		"a scope for selected namespaces is granted to them": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"pay"} }),
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: "pay", Namespaces: payments}}},
			labels: map[string]string{"team": "payments"},
		},
		"a scope for selected namespaces is refused to others": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"pay"} }),
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: "pay", Namespaces: payments}}},
			labels: billingLabels,
			want:   []violation{{ReasonScopeNotAllowed, "spec.scopes[0]", `scope "pay"`}},
		},
		"a scope with an empty selector is granted to every namespace": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"pay"} }),
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: "pay", Namespaces: &metav1.LabelSelector{}}}},
		},
		"a scope with a broken selector fails closed": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"pay"} }),
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: "pay", Namespaces: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Like"}}}}}},
			labels: map[string]string{"team": "payments"},
			want:   []violation{{ReasonScopeNotAllowed, "spec.scopes[0]", `scope "pay"`}},
		},
		"scopes compare exactly": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"Read"} }),
			policy: v1alpha1.ClientPolicy{Scopes: []v1alpha1.ScopePolicy{{Name: "read"}}},
			want:   []violation{{ReasonScopeNotAllowed, "spec.scopes[0]", `scope "Read"`}},
		},

		// Audiences.
		"a listed audience is granted": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.Audiences = []string{"https://ledger.example.com"} }),
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "https://ledger.example.com"}}},
		},
		"an unlisted audience is refused": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) {
				c.Spec.Audiences = []string{"https://ledger.example.com", "https://ledger.example.com/"}
			}),
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "https://ledger.example.com"}}},
			want:   []violation{{ReasonAudienceNotAllowed, "spec.audiences[1]", `audience "https://ledger.example.com/" is not among the audiences AuthorizationServer auth/payments issues tokens for to clients in namespace billing`}},
		},
		"an audience for selected namespaces is refused to others": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.Audiences = []string{"urn:example:ledger"} }),
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "urn:example:ledger", Namespaces: payments}}},
			labels: billingLabels,
			want:   []violation{{ReasonAudienceNotAllowed, "spec.audiences[0]", `audience "urn:example:ledger"`}},
		},
		"an audience for selected namespaces is granted to them": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.Audiences = []string{"urn:example:ledger"} }),
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "urn:example:ledger", Namespaces: payments}}},
			labels: map[string]string{"team": "payments"},
		},

		// Introspection audiences (resource servers).
		"a granted audience does not make its client a resource server": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) {
				c.Spec.Audiences = []string{"urn:example:ledger"}
				c.Spec.IntrospectionAudiences = []string{"urn:example:ledger"}
			}),
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "urn:example:ledger"}}},
			want:   []violation{{ReasonIntrospectionAudienceNotAllowed, "spec.introspectionAudiences[0]", `clients in namespace billing act as resource server for audience "urn:example:ledger"`}},
		},
		"an unlisted introspection audience is refused": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.IntrospectionAudiences = []string{"urn:example:other"} }),
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "urn:example:ledger", ResourceServerNamespaces: &metav1.LabelSelector{}}}},
			want:   []violation{{ReasonIntrospectionAudienceNotAllowed, "spec.introspectionAudiences[0]", `"urn:example:other"`}},
		},
		"a resource server namespace may introspect for the audience": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.IntrospectionAudiences = []string{"urn:example:ledger"} }),
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "urn:example:ledger", Namespaces: payments, ResourceServerNamespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "billing"}}}}},
			labels: billingLabels,
		},
		"another namespace may not introspect for the audience": {
			client: policyClient(spiffe, func(c *v1alpha1.OAuthClient) { c.Spec.IntrospectionAudiences = []string{"urn:example:ledger"} }),
			policy: v1alpha1.ClientPolicy{Audiences: []v1alpha1.AudiencePolicy{{URI: "urn:example:ledger", ResourceServerNamespaces: payments}}},
			labels: billingLabels,
			want:   []violation{{ReasonIntrospectionAudienceNotAllowed, "spec.introspectionAudiences[0]", "resourceServerNamespaces"}},
		},

		"every violation is reported, subject first": {
			client: policyClient(v1alpha1.ClientSubject{IP: "10.0.0.1"}, func(c *v1alpha1.OAuthClient) {
				c.Spec.Scopes = []string{"admin"}
				c.Spec.Audiences = []string{"urn:example:x"}
			}),
			want: []violation{
				{ReasonSubjectNotAllowed, "spec.subject", "ip"},
				{ReasonScopeNotAllowed, "spec.scopes[0]", "admin"},
				{ReasonAudienceNotAllowed, "spec.audiences[0]", "urn:example:x"},
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			as := withPolicy(tc.policy)
			got := CheckClientAgainstPolicy(tc.client, as, tc.labels)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d violations, want %d: %+v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				if got[i].Reason != w.reason {
					t.Errorf("violation %d reason = %s, want %s", i, got[i].Reason, w.reason)
				}
				if got[i].Field.String() != w.field {
					t.Errorf("violation %d field = %s, want %s", i, got[i].Field, w.field)
				}
				if !strings.Contains(got[i].Message, w.message) {
					t.Errorf("violation %d = %q, want it to say %q", i, got[i].Message, w.message)
				}
			}
		})
	}
}

// TestPolicyMessagesNameNoOtherTenant: a refusal names the client's own
// values and the server, never what other namespaces are granted.
func TestPolicyMessagesNameNoOtherTenant(t *testing.T) {
	as := withPolicy(v1alpha1.ClientPolicy{
		Scopes:    []v1alpha1.ScopePolicy{{Name: "pay", Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "secret-team"}}}},
		Audiences: []v1alpha1.AudiencePolicy{{URI: "urn:example:secret-api", Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "secret-team"}}}},
	})
	client := policyClient(v1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/billing/sa/worker"}, func(c *v1alpha1.OAuthClient) {
		c.Spec.Scopes = []string{"pay"}
		c.Spec.Audiences = []string{"urn:example:other"}
	})
	for _, v := range CheckClientAgainstPolicy(client, as, map[string]string{"team": "billing"}) {
		if strings.Contains(v.Message, "secret") {
			t.Errorf("%s message reveals another tenant's grant: %q", v.Reason, v.Message)
		}
	}
}

func TestCheckClientAgainstPolicyWithoutObjects(t *testing.T) {
	if got := CheckClientAgainstPolicy(nil, withPolicy(v1alpha1.ClientPolicy{}), nil); got != nil {
		t.Errorf("no client: %+v", got)
	}
	if got := CheckClientAgainstPolicy(policyClient(v1alpha1.ClientSubject{IP: "10.0.0.1"}, nil), nil, nil); got != nil {
		t.Errorf("no server: %+v", got)
	}
}

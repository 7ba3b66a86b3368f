package controllers

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/api/v1alpha1/validation"
	"github.com/certbound/certbound/internal/registration"
)

// publicClient is a public client (authenticationMethod none) bound to
// ServiceAccount billing-worker, as the API server would store it.
func publicClient(ns string, mutate func(*oauthv1alpha1.OAuthClient)) *oauthv1alpha1.OAuthClient {
	return oauthClient(ns, func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.AuthenticationMethod = oauthv1alpha1.PublicClient
		c.Spec.Subject = nil
		c.Spec.ServiceAccountName = "billing-worker"
		c.Spec.GrantTypes = []oauthv1alpha1.GrantType{oauthv1alpha1.GrantTypeTokenExchange, oauthv1alpha1.GrantTypeRefreshToken}
		if mutate != nil {
			mutate(c)
		}
	})
}

func TestPublicClientRegistrationDocument(t *testing.T) {
	c := publicClient("billing", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Scopes = []string{"payments.read"}
		c.Spec.Audiences = []string{"https://ledger.example"}
	})
	// A hold time is passed on purpose: it must not become
	// min_certificate_not_before, since no certificate is registered.
	doc := documentOf(t, c, nil, t0)
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"client_id":                  "billing.worker",
		"client_name":                "billing/worker",
		"token_endpoint_auth_method": registration.AuthMethodNone,
		"grant_types":                []any{registration.GrantTypeTokenExchange, registration.GrantTypeRefreshToken},
		"service_account":            "system:serviceaccount:billing:billing-worker",
		"tls_client_certificate_bound_access_tokens": true,
		"scope":     "payments.read",
		"resources": []any{"https://ledger.example"},
	}
	for k, v := range want {
		got, err1 := json.Marshal(m[k])
		exp, err2 := json.Marshal(v)
		if err1 != nil || err2 != nil || string(got) != string(exp) {
			t.Errorf("%s = %s, want %s", k, got, exp)
		}
	}
	for k := range m {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected member %s in %s", k, doc)
		}
	}
	md, err := desiredClientMetadata(c, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	reg := desiredRegistration(c, server(nil), md)
	got, err := registeredFrom(reg)
	if err != nil || got.SubjectKey != "" || len(got.Certificates) != 0 || got.Holder.String() != "billing/worker" {
		t.Errorf("registeredFrom %+v %v: a public client holds no subject and no certificate", got, err)
	}
	if keys := registrationSubjectIndex(reg); len(keys) != 0 {
		t.Errorf("a public client's registration is indexed by subject %v", keys)
	}
	if keys := clientSubjectIndex(c); len(keys) != 0 {
		t.Errorf("a public client claims subject %v", keys)
	}
}

func TestPublicClientWithoutServiceAccountIsNotRegistered(t *testing.T) {
	c := publicClient("billing", func(c *oauthv1alpha1.OAuthClient) { c.Spec.ServiceAccountName = "" })
	if _, err := desiredClientMetadata(c, nil, time.Time{}); err == nil {
		t.Fatal("a public client without a service account got a registration document")
	}
}

func TestPublicClientAccepted(t *testing.T) {
	policy := func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.AllowedClientNamespaces.From = oauthv1alpha1.NamespacesFromAll
		as.Spec.ClientPolicy.Scopes = []oauthv1alpha1.ScopePolicy{
			{Name: "payments.read"},
			{Name: "payments.refund", Namespaces: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "refunds"}}},
		}
		as.Spec.ClientPolicy.Audiences = []oauthv1alpha1.AudiencePolicy{{URI: "https://ledger.example"}}
	}
	cases := map[string]struct {
		client   *oauthv1alpha1.OAuthClient
		server   *oauthv1alpha1.AuthorizationServer
		nsLabels map[string]string
		status   metav1.ConditionStatus
		reason   string
	}{
		"a public client of an allowed namespace is accepted without any subject policy": {
			publicClient("billing", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Scopes = []string{"payments.read"} }), server(policy), nil, metav1.ConditionTrue, ReasonAccepted},
		"a public client of a namespace the server does not allow is refused": {
			publicClient("billing", nil), server(nil), nil, metav1.ConditionFalse, ReasonNamespaceNotAllowed},
		"a scope granted to other namespaces is refused to a public client": {
			publicClient("billing", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Scopes = []string{"payments.refund"} }), server(policy), map[string]string{"team": "other"}, metav1.ConditionFalse, validation.ReasonScopeNotAllowed},
		"an unlisted audience is refused to a public client": {
			publicClient("billing", func(c *oauthv1alpha1.OAuthClient) { c.Spec.Audiences = []string{"https://hr.example"} }), server(policy), nil, metav1.ConditionFalse, validation.ReasonAudienceNotAllowed},
		"a public client without a service account is not accepted": {
			publicClient("billing", func(c *oauthv1alpha1.OAuthClient) { c.Spec.ServiceAccountName = "" }), server(policy), nil, metav1.ConditionFalse, ReasonInvalidSpec},
		"a public client with bearer tokens is not accepted": {
			publicClient("billing", func(c *oauthv1alpha1.OAuthClient) { c.Spec.CertificateBoundAccessTokens = ptr.To(false) }), server(policy), nil, metav1.ConditionFalse, ReasonInvalidSpec},
		"a public client with client_credentials is not accepted": {
			publicClient("billing", func(c *oauthv1alpha1.OAuthClient) {
				c.Spec.GrantTypes = append(c.Spec.GrantTypes, oauthv1alpha1.GrantTypeClientCredentials)
			}), server(policy), nil, metav1.ConditionFalse, ReasonInvalidSpec},
		"an mTLS client naming a service account is not accepted": {
			oauthClient("billing", func(c *oauthv1alpha1.OAuthClient) {
				c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/billing/sa/w"}
				c.Spec.ServiceAccountName = "w"
			}), server(policy), nil, metav1.ConditionFalse, ReasonInvalidSpec},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := ClientAccepted(tc.client, tc.server, tc.nsLabels)
			if got.Status != tc.status || got.Reason != tc.reason {
				t.Errorf("got %s/%s (%s), want %s/%s", got.Status, got.Reason, got.Message, tc.status, tc.reason)
			}
		})
	}
}

func TestServiceAccountFound(t *testing.T) {
	c := publicClient("billing", nil)
	if got := ServiceAccountFound(c, true); got.Status != metav1.ConditionTrue || got.Reason != ReasonServiceAccountFound {
		t.Errorf("found: %+v", got)
	}
	got := ServiceAccountFound(c, false)
	if got.Status != metav1.ConditionFalse || got.Reason != ReasonServiceAccountNotFound ||
		!strings.Contains(got.Message, "kubectl create serviceaccount -n billing billing-worker") {
		t.Errorf("missing: %+v, want a message telling what to create", got)
	}
}

func TestServiceAccountIndex(t *testing.T) {
	if got := clientServiceAccount(publicClient("billing", nil)); got != "billing/billing-worker" {
		t.Errorf("public client indexed as %q", got)
	}
	if got := clientServiceAccount(oauthClient("billing", nil)); got != "" {
		t.Errorf("mTLS client indexed as %q", got)
	}
}

func TestRefreshTokenArgs(t *testing.T) {
	cases := map[string]struct {
		tokens oauthv1alpha1.TokenPolicy
		want   []string
	}{
		"defaults when the API server has not defaulted": {oauthv1alpha1.TokenPolicy{},
			[]string{"--refresh-token-ttl=1h0m0s", "--refresh-token-max-lifetime=24h0m0s", "--refresh-token-families-per-client=1000"}},
		"the spec's values": {oauthv1alpha1.TokenPolicy{
			RefreshTokenTTL:                  &metav1.Duration{Duration: time.Hour},
			RefreshTokenMaxLifetime:          &metav1.Duration{Duration: 48 * time.Hour},
			MaxRefreshTokenFamiliesPerClient: ptr.To(int32(7)),
		}, []string{"--refresh-token-ttl=1h0m0s", "--refresh-token-max-lifetime=48h0m0s", "--refresh-token-families-per-client=7"}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			as := server(func(as *oauthv1alpha1.AuthorizationServer) { as.Spec.Tokens = tc.tokens })
			args, err := authorizationServerArgs(as, "https://payments.auth.svc", false)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !slices.Contains(args, w) {
					t.Errorf("args %v lack %s", args, w)
				}
			}
		})
	}
}

func TestServerAccessForTokenExchange(t *testing.T) {
	as := server(nil)
	role := desiredRole(as)
	var configMapVerbs []string
	for _, r := range role.Rules {
		if slices.Contains(r.Resources, "configmaps") {
			configMapVerbs = r.Verbs
		}
		if slices.Contains(r.Resources, "secrets") {
			t.Errorf("the server's Role grants Secrets: %+v", r)
		}
	}
	if !slices.Contains(configMapVerbs, "update") {
		t.Errorf("configmap verbs %v: refresh rotation needs update", configMapVerbs)
	}

	cr := desiredTokenReviewClusterRole()
	if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].APIGroups, []string{"authentication.k8s.io"}) ||
		!slices.Equal(cr.Rules[0].Resources, []string{"tokenreviews"}) || !slices.Equal(cr.Rules[0].Verbs, []string{"create"}) ||
		len(cr.Rules[0].ResourceNames) != 0 || cr.AggregationRule != nil {
		t.Errorf("the TokenReview ClusterRole grants more than creating TokenReviews: %+v", cr)
	}
	b := desiredTokenReviewBinding(as)
	if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != cr.Name || len(b.Subjects) != 1 ||
		b.Subjects[0].Kind != "ServiceAccount" || b.Subjects[0].Namespace != "auth" || b.Subjects[0].Name != workloadName("payments") {
		t.Errorf("binding %+v", b)
	}
	if got := bindingToServer(t.Context(), b); len(got) != 1 || got[0].Namespace != "auth" || got[0].Name != "payments" {
		t.Errorf("binding maps to %v, want auth/payments", got)
	}
}

func TestTokenReviewBindingNamesDoNotCollide(t *testing.T) {
	// Server names may contain dots, namespaces may not: a/b.c and a.b/c
	// cannot both exist, but a/b.c and a/b-c and ab/c can.
	names := map[string]string{}
	for _, s := range [][2]string{{"a", "b.c"}, {"a", "b-c"}, {"ab", "c"}, {"a-b", "c"}, {"a", strings.Repeat("x", 253)}, {"a", strings.Repeat("x", 252) + "y"}} {
		n := tokenReviewBindingName(s[0], s[1])
		if len(n) > maxNameLength {
			t.Errorf("%s/%s: name %d long", s[0], s[1], len(n))
		}
		if prev, ok := names[n]; ok {
			t.Errorf("%s/%s and %s share binding %s", s[0], s[1], prev, n)
		}
		names[n] = s[0] + "/" + s[1]
	}
}

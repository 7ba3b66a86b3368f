package validation

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certbound/certbound/api/v1alpha1"
)

func authServer(change func(*v1alpha1.AuthorizationServer)) *v1alpha1.AuthorizationServer {
	as := &v1alpha1.AuthorizationServer{
		ObjectMeta: metav1.ObjectMeta{Name: "payments", Namespace: "auth"},
		Spec: v1alpha1.AuthorizationServerSpec{
			ServingCertificate:      v1alpha1.ServingCertificate{IssuerRef: v1alpha1.IssuerReference{Name: "serving-ca", Kind: v1alpha1.IssuerKindClusterIssuer}},
			ClientTrustAnchors:      []v1alpha1.TrustAnchor{{SecretRef: v1alpha1.SecretKeySelector{Name: "clients-ca", Key: "ca.crt"}}},
			ClientCertificateIssuer: &v1alpha1.IssuerReference{Name: "clients-ca", Kind: v1alpha1.IssuerKindIssuer},
			AllowedClientNamespaces: v1alpha1.AllowedNamespaces{From: v1alpha1.NamespacesFromSame},
			Tokens:                  v1alpha1.TokenPolicy{AccessTokenTTL: duration(10 * time.Minute), SigningAlgorithm: "ES256", KeyRotationPeriod: duration(720 * time.Hour)},
		},
	}
	if change != nil {
		change(as)
	}
	return as
}

func TestValidateAuthorizationServerOnCreate(t *testing.T) {
	for name, tc := range map[string]struct {
		obj      *v1alpha1.AuthorizationServer
		errs     []refusal
		warnings []string
	}{
		"the sample server is accepted":  {obj: authServer(nil)},
		"an issuer with a path and port": {obj: authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Issuer = "https://auth.example.com:8443/tenants/a" })},
		"a namespace selector is accepted": {obj: authServer(func(as *v1alpha1.AuthorizationServer) {
			as.Spec.AllowedClientNamespaces = v1alpha1.AllowedNamespaces{From: v1alpha1.NamespacesFromSelector, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "payments"}}}
		})},
		"a trust anchor with the default key is accepted": {obj: authServer(func(as *v1alpha1.AuthorizationServer) {
			as.Spec.ClientTrustAnchors = []v1alpha1.TrustAnchor{{SecretRef: v1alpha1.SecretKeySelector{Name: "clients-ca"}}}
		})},

		"an http issuer is refused": {
			obj:  authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Issuer = "http://auth.example.com" }),
			errs: []refusal{{"spec.issuer", "use the https scheme"}},
		},
		"an issuer with a query is refused": {
			obj:  authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Issuer = "https://auth.example.com/?tenant=a" }),
			errs: []refusal{{"spec.issuer", "remove the query"}},
		},
		"an issuer with an empty fragment is refused": {
			obj:  authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Issuer = "https://auth.example.com#" }),
			errs: []refusal{{"spec.issuer", "remove the fragment"}},
		},
		"an issuer with user information is refused": {
			obj:  authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Issuer = "https://admin:secret@auth.example.com" }),
			errs: []refusal{{"spec.issuer", "remove the user information"}},
		},
		"an issuer without a host is refused": {
			obj:  authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Issuer = "https:///path" }),
			errs: []refusal{{"spec.issuer", "name a host"}},
		},
		"an issuer that does not parse is refused": {
			obj:  authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Issuer = "https://auth.example.com:port" }),
			errs: []refusal{{"spec.issuer", "not a URL"}},
		},
		"a token TTL below the minimum is refused": {
			obj:  authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Tokens.AccessTokenTTL = duration(time.Second) }),
			errs: []refusal{{"spec.tokens.accessTokenTTL", "must be between 30s and 24h0m0s"}},
		},
		"a token TTL above the maximum is refused": {
			obj:  authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Tokens.AccessTokenTTL = duration(48 * time.Hour) }),
			errs: []refusal{{"spec.tokens.accessTokenTTL", "must be between 30s and 24h0m0s"}},
		},
		"an unsupported signing algorithm is refused": {
			obj:  authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Tokens.SigningAlgorithm = "HS256" }),
			errs: []refusal{{"spec.tokens.signingAlgorithm", `supported values: "ES256", "EdDSA", "RS256", "PS256"`}},
		},
		"a key rotation period below an hour is refused": {
			obj:  authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Tokens.KeyRotationPeriod = duration(time.Minute) }),
			errs: []refusal{{"spec.tokens.keyRotationPeriod", "must be at least 1h0m0s"}},
		},
		"a trust anchor Secret name that cannot exist is refused": {
			obj: authServer(func(as *v1alpha1.AuthorizationServer) {
				as.Spec.ClientTrustAnchors = []v1alpha1.TrustAnchor{{SecretRef: v1alpha1.SecretKeySelector{Name: "Clients_CA"}}}
			}),
			errs: []refusal{{"spec.clientTrustAnchors[0].secretRef.name", "not a Secret name"}},
		},
		"a trust anchor without a Secret name is refused": {
			obj: authServer(func(as *v1alpha1.AuthorizationServer) {
				as.Spec.ClientTrustAnchors = []v1alpha1.TrustAnchor{{SecretRef: v1alpha1.SecretKeySelector{Key: "ca.crt"}}}
			}),
			errs: []refusal{{"spec.clientTrustAnchors[0].secretRef.name", "name the Secret"}},
		},
		"a trust anchor key that cannot exist is refused": {
			obj: authServer(func(as *v1alpha1.AuthorizationServer) {
				as.Spec.ClientTrustAnchors = []v1alpha1.TrustAnchor{{SecretRef: v1alpha1.SecretKeySelector{Name: "clients-ca", Key: ".."}}}
			}),
			errs: []refusal{{"spec.clientTrustAnchors[0].secretRef.key", "not a Secret data key"}},
		},
		"the same trust anchor twice is refused": {
			obj: authServer(func(as *v1alpha1.AuthorizationServer) {
				as.Spec.ClientTrustAnchors = []v1alpha1.TrustAnchor{
					{SecretRef: v1alpha1.SecretKeySelector{Name: "clients-ca"}},
					{SecretRef: v1alpha1.SecretKeySelector{Name: "clients-ca", Key: "ca.crt"}},
				}
			}),
			errs: []refusal{{"spec.clientTrustAnchors[1].secretRef", "Duplicate value"}},
		},
		"a serving issuer without a name is refused": {
			obj:  authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.ServingCertificate.IssuerRef.Name = "" }),
			errs: []refusal{{"spec.servingCertificate.issuerRef.name", "name the cert-manager Issuer"}},
		},
		"an issuer group that is not a group is refused": {
			obj:  authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.ClientCertificateIssuer.Group = "Cert Manager" }),
			errs: []refusal{{"spec.clientCertificateIssuer.group", "not an API group"}},
		},
		"from: Selector without a selector is refused": {
			obj: authServer(func(as *v1alpha1.AuthorizationServer) {
				as.Spec.AllowedClientNamespaces.From = v1alpha1.NamespacesFromSelector
			}),
			errs: []refusal{{"spec.allowedClientNamespaces.selector", "needs a label selector"}},
		},
		"a selector with from: Same is refused": {
			obj: authServer(func(as *v1alpha1.AuthorizationServer) {
				as.Spec.AllowedClientNamespaces.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}
			}),
			errs: []refusal{{"spec.allowedClientNamespaces.selector", "set from: Selector"}},
		},
		"a malformed selector is refused": {
			obj: authServer(func(as *v1alpha1.AuthorizationServer) {
				as.Spec.AllowedClientNamespaces = v1alpha1.AllowedNamespaces{From: v1alpha1.NamespacesFromSelector, Selector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: "Like"}}}}
			}),
			errs: []refusal{{"spec.allowedClientNamespaces.selector.matchExpressions[0].operator", "not a valid selector operator"}},
		},

		"every namespace with a ClusterIssuer for client certificates is allowed with a warning": {
			obj: authServer(func(as *v1alpha1.AuthorizationServer) {
				as.Spec.AllowedClientNamespaces.From = v1alpha1.NamespacesFromAll
				as.Spec.ClientCertificateIssuer = &v1alpha1.IssuerReference{Name: "corp-ca", Kind: v1alpha1.IssuerKindClusterIssuer}
			}),
			warnings: []string{"RFC 8705 §7.4"},
		},
		"a selector that selects every namespace counts as all namespaces": {
			obj: authServer(func(as *v1alpha1.AuthorizationServer) {
				as.Spec.AllowedClientNamespaces = v1alpha1.AllowedNamespaces{From: v1alpha1.NamespacesFromSelector, Selector: &metav1.LabelSelector{}}
				as.Spec.ClientCertificateIssuer = &v1alpha1.IssuerReference{Name: "corp-ca", Kind: v1alpha1.IssuerKindClusterIssuer}
			}),
			warnings: []string{"ClusterIssuer corp-ca and every namespace may register clients"},
		},
		"a ClusterIssuer for clients of its own namespace only is not warned about": {
			obj: authServer(func(as *v1alpha1.AuthorizationServer) {
				as.Spec.ClientCertificateIssuer = &v1alpha1.IssuerReference{Name: "corp-ca", Kind: v1alpha1.IssuerKindClusterIssuer}
			}),
		},
		"no trust anchors is allowed with a warning": {
			obj:      authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.ClientTrustAnchors = nil }),
			warnings: []string{"tls_client_auth clients cannot authenticate"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			warnings, errs := ValidateAuthorizationServer(tc.obj, nil)
			assertRefusals(t, errs, tc.errs)
			assertWarnings(t, warnings, tc.warnings)
		})
	}
}

func TestEverySupportedSigningAlgorithmIsAccepted(t *testing.T) {
	for _, alg := range supportedSigningAlgorithms {
		as := authServer(func(as *v1alpha1.AuthorizationServer) {
			as.Spec.Tokens.SigningAlgorithm = v1alpha1.SigningAlgorithm(alg)
		})
		if _, errs := ValidateAuthorizationServer(as, nil); len(errs) > 0 {
			t.Errorf("%s refused: %v", alg, errs)
		}
	}
}

func TestValidateAuthorizationServerOnUpdate(t *testing.T) {
	pinned := func(issuer string) *v1alpha1.AuthorizationServer {
		return authServer(func(as *v1alpha1.AuthorizationServer) { as.Spec.Issuer = issuer })
	}
	for name, tc := range map[string]struct {
		old, obj *v1alpha1.AuthorizationServer
		errs     []refusal
	}{
		"setting an issuer for the first time is allowed": {old: authServer(nil), obj: pinned("https://auth.example.com")},
		"keeping the issuer is allowed":                   {old: pinned("https://auth.example.com"), obj: pinned("https://auth.example.com")},
		"changing the issuer is refused": {
			old:  pinned("https://auth.example.com"),
			obj:  pinned("https://login.example.com"),
			errs: []refusal{{"spec.issuer", `cannot change from "https://auth.example.com"`}},
		},
		"removing the issuer is refused": {
			old:  pinned("https://auth.example.com"),
			obj:  authServer(nil),
			errs: []refusal{{"spec.issuer", "create a new AuthorizationServer instead"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, errs := ValidateAuthorizationServer(tc.obj, tc.old)
			assertRefusals(t, errs, tc.errs)
		})
	}
}

func TestValidateAuthorizationServerWithoutAnObjectRefusesInsteadOfPanicking(t *testing.T) {
	if _, errs := ValidateAuthorizationServer(nil, nil); len(errs) != 1 {
		t.Fatalf("errs = %v, want one", errs)
	}
	if _, errs := ValidateAuthorizationServer(&v1alpha1.AuthorizationServer{}, &v1alpha1.AuthorizationServer{}); len(errs) == 0 {
		t.Fatal("an empty AuthorizationServer was accepted")
	}
}

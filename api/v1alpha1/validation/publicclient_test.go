package validation

import (
	"strings"
	"testing"

	"github.com/certbound/certbound/api/v1alpha1"
)

// publicClient is a valid public client (authenticationMethod none) bound
// to ServiceAccount billing-worker.
func publicClient() *v1alpha1.OAuthClient {
	c := pkiClient(v1alpha1.ClientSubject{})
	c.Spec.AuthenticationMethod = v1alpha1.PublicClient
	c.Spec.Subject = nil
	c.Spec.ServiceAccountName = "billing-worker"
	c.Spec.GrantTypes = []v1alpha1.GrantType{v1alpha1.GrantTypeTokenExchange, v1alpha1.GrantTypeRefreshToken}
	return c
}

func TestPublicClientValidation(t *testing.T) {
	bearer := false
	cases := map[string]struct {
		client *v1alpha1.OAuthClient
		want   []refusal
	}{
		"a public client with token exchange and refresh is valid": {publicClient(), nil},
		"a public client with token exchange alone is valid": {with(publicClient(), func(c *v1alpha1.OAuthClient) {
			c.Spec.GrantTypes = []v1alpha1.GrantType{v1alpha1.GrantTypeTokenExchange}
		}), nil},
		"a public client needs a service account": {with(publicClient(), func(c *v1alpha1.OAuthClient) { c.Spec.ServiceAccountName = "" }),
			[]refusal{{"spec.serviceAccountName", "name the ServiceAccount"}}},
		"a service account name must be a name": {with(publicClient(), func(c *v1alpha1.OAuthClient) { c.Spec.ServiceAccountName = "Billing_Worker" }),
			[]refusal{{"spec.serviceAccountName", "DNS-1123 subdomain"}}},
		"a public client has no subject": {with(publicClient(), func(c *v1alpha1.OAuthClient) { c.Spec.Subject = &v1alpha1.ClientSubject{DN: "CN=w"} }),
			[]refusal{{"spec.subject", "registered by its service account"}}},
		"a public client has no jwks": {with(publicClient(), func(c *v1alpha1.OAuthClient) { c.Spec.JWKSURI = "https://keys.example/jwks" }),
			[]refusal{{"spec.jwksURI", "registered by its service account"}}},
		"a public client must list token exchange (the CRD default client_credentials is refused too)": {with(publicClient(), func(c *v1alpha1.OAuthClient) {
			c.Spec.GrantTypes = []v1alpha1.GrantType{v1alpha1.GrantTypeClientCredentials}
		}), []refusal{{"spec.grantTypes", "a public client gets tokens only by exchanging"}, {"spec.grantTypes[0]", "remove client_credentials"}}},
		"a public client cannot use client_credentials": {with(publicClient(), func(c *v1alpha1.OAuthClient) {
			c.Spec.GrantTypes = append(c.Spec.GrantTypes, v1alpha1.GrantTypeClientCredentials)
		}), []refusal{{"spec.grantTypes[2]", "remove client_credentials"}}},
		"a public client's tokens are bound": {with(publicClient(), func(c *v1alpha1.OAuthClient) { c.Spec.CertificateBoundAccessTokens = &bearer }),
			[]refusal{{"spec.certificateBoundAccessTokens", "must be true for a public client"}}},
		"an mTLS client names no service account": {with(dnClient("CN=w,O=Acme"), func(c *v1alpha1.OAuthClient) { c.Spec.ServiceAccountName = "billing-worker" }),
			[]refusal{{"spec.serviceAccountName", "authenticates with its certificate"}}},
		"a self-signed client names no service account": {with(selfSignedClient(), func(c *v1alpha1.OAuthClient) { c.Spec.ServiceAccountName = "billing-worker" }),
			[]refusal{{"spec.serviceAccountName", "authenticates with its certificate"}}},
		"an mTLS client cannot exchange tokens": {with(dnClient("CN=w,O=Acme"), func(c *v1alpha1.OAuthClient) {
			c.Spec.GrantTypes = []v1alpha1.GrantType{v1alpha1.GrantTypeClientCredentials, v1alpha1.GrantTypeTokenExchange}
		}), []refusal{{"spec.grantTypes[1]", "remove urn:ietf:params:oauth:grant-type:token-exchange"}}},
		"refresh_token needs token exchange": {with(dnClient("CN=w,O=Acme"), func(c *v1alpha1.OAuthClient) {
			c.Spec.GrantTypes = []v1alpha1.GrantType{v1alpha1.GrantTypeClientCredentials, v1alpha1.GrantTypeRefreshToken}
		}), []refusal{{"spec.grantTypes[1]", "remove refresh_token"}, {"spec.grantTypes", "only allowed together with urn:ietf:params:oauth:grant-type:token-exchange"}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, errs := ValidateOAuthClient(tc.client, nil)
			assertRefusals(t, errs, tc.want)
		})
	}
}

func TestPublicClientWarnings(t *testing.T) {
	c := with(publicClient(), func(c *v1alpha1.OAuthClient) { c.Spec.Certificate.SecretName = "worker-mtls" })
	warnings, errs := ValidateOAuthClient(c, nil)
	if len(errs) > 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "spec.certificate is unused") {
		t.Errorf("warnings %q errors %v", warnings, errs)
	}
	renamed := with(publicClient(), func(c *v1alpha1.OAuthClient) { c.Spec.ServiceAccountName = "billing-worker-v2" })
	warnings, errs = ValidateOAuthClient(renamed, publicClient())
	if len(errs) > 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "tokens of billing-worker can no longer be exchanged") {
		t.Errorf("warnings %q errors %v", warnings, errs)
	}
	_, errs = ValidateOAuthClient(publicClient(), dnClient("CN=w,O=Acme"))
	assertRefusals(t, errs, []refusal{{"spec.authenticationMethod", "cannot change from tls_client_auth to none"}})
}

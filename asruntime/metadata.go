package asruntime

// RFC 8414 authorization server metadata, with the RFC 8705 members:
// tls_client_certificate_bound_access_tokens (§3.3) and
// mtls_endpoint_aliases (§5), which point clients that authenticate with a
// certificate at the listener that asks for one.

import (
	"encoding/json"
	"strings"

	"github.com/certbound/certbound/asruntime/oauthurl"
)

// The endpoint paths come from oauthurl, which the operator also uses to
// write the endpoints into the AuthorizationServer's status.
const (
	metadataPath      = oauthurl.WellKnownMetadata
	tokenPath         = oauthurl.TokenPath
	jwksPath          = oauthurl.JWKSPath
	introspectionPath = oauthurl.IntrospectionPath
	revocationPath    = oauthurl.RevocationPath
)

type serverMetadata struct {
	Issuer                            string            `json:"issuer"`
	TokenEndpoint                     string            `json:"token_endpoint"`
	JWKSURI                           string            `json:"jwks_uri"`
	ResponseTypesSupported            []string          `json:"response_types_supported"`
	GrantTypesSupported               []string          `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string          `json:"token_endpoint_auth_methods_supported"`
	IntrospectionEndpoint             string            `json:"introspection_endpoint"`
	IntrospectionAuthMethodsSupported []string          `json:"introspection_endpoint_auth_methods_supported"`
	RevocationEndpoint                string            `json:"revocation_endpoint"`
	RevocationAuthMethodsSupported    []string          `json:"revocation_endpoint_auth_methods_supported"`
	TLSClientCertificateBoundTokens   bool              `json:"tls_client_certificate_bound_access_tokens"`
	MTLSEndpointAliases               map[string]string `json:"mtls_endpoint_aliases"`
}

// buildMetadata renders the metadata document once; it never changes while
// the server runs. response_types_supported is required by RFC 8414 but
// this server has no authorization endpoint, hence the empty list.
// publicClients adds the public service-account clients' grants and their
// method none, offered only when the server can review service account
// tokens.
func buildMetadata(issuer, mtlsBaseURL string, publicClients bool) ([]byte, error) {
	base := strings.TrimSuffix(issuer, "/")
	mtls := strings.TrimSuffix(mtlsBaseURL, "/")
	// The same client authentication guards the three endpoints.
	methods := []string{
		AuthMethodTLSClientAuth, AuthMethodSelfSignedTLSClientAuth,
		AuthMethodClientSecretBasic, AuthMethodClientSecretPost,
	}
	grants := []string{GrantTypeClientCredentials}
	if publicClients {
		methods = append(methods, AuthMethodNone)
		grants = append(grants, GrantTypeTokenExchange, GrantTypeRefreshToken)
	}
	return json.Marshal(serverMetadata{
		Issuer:                            issuer,
		TokenEndpoint:                     base + tokenPath,
		JWKSURI:                           base + jwksPath,
		ResponseTypesSupported:            []string{},
		GrantTypesSupported:               grants,
		TokenEndpointAuthMethodsSupported: methods,
		IntrospectionEndpoint:             base + introspectionPath,
		IntrospectionAuthMethodsSupported: methods,
		RevocationEndpoint:                base + revocationPath,
		RevocationAuthMethodsSupported:    methods,
		TLSClientCertificateBoundTokens:   true,
		MTLSEndpointAliases: map[string]string{
			"token_endpoint":         mtls + tokenPath,
			"jwks_uri":               mtls + jwksPath,
			"introspection_endpoint": mtls + introspectionPath,
			"revocation_endpoint":    mtls + revocationPath,
		},
	})
}

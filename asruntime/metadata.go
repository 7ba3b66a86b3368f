package asruntime

// RFC 8414 authorization server metadata, with the RFC 8705 members:
// tls_client_certificate_bound_access_tokens (§3.3) and
// mtls_endpoint_aliases (§5), which point clients that authenticate with a
// certificate at the listener that asks for one.

import (
	"encoding/json"
	"strings"
)

const (
	metadataPath = "/.well-known/oauth-authorization-server"
	tokenPath    = "/token"
	jwksPath     = "/jwks"
)

type serverMetadata struct {
	Issuer                            string            `json:"issuer"`
	TokenEndpoint                     string            `json:"token_endpoint"`
	JWKSURI                           string            `json:"jwks_uri"`
	ResponseTypesSupported            []string          `json:"response_types_supported"`
	GrantTypesSupported               []string          `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string          `json:"token_endpoint_auth_methods_supported"`
	TLSClientCertificateBoundTokens   bool              `json:"tls_client_certificate_bound_access_tokens"`
	MTLSEndpointAliases               map[string]string `json:"mtls_endpoint_aliases"`
}

// buildMetadata renders the metadata document once; it never changes while
// the server runs. response_types_supported is required by RFC 8414 but
// this server has no authorization endpoint, hence the empty list.
func buildMetadata(issuer, mtlsBaseURL string) ([]byte, error) {
	base := strings.TrimSuffix(issuer, "/")
	mtls := strings.TrimSuffix(mtlsBaseURL, "/")
	return json.Marshal(serverMetadata{
		Issuer:                 issuer,
		TokenEndpoint:          base + tokenPath,
		JWKSURI:                base + jwksPath,
		ResponseTypesSupported: []string{},
		GrantTypesSupported:    []string{GrantTypeClientCredentials},
		TokenEndpointAuthMethodsSupported: []string{
			AuthMethodTLSClientAuth, AuthMethodSelfSignedTLSClientAuth,
			AuthMethodClientSecretBasic, AuthMethodClientSecretPost,
		},
		TLSClientCertificateBoundTokens: true,
		MTLSEndpointAliases: map[string]string{
			"token_endpoint": mtls + tokenPath,
			"jwks_uri":       mtls + jwksPath,
		},
	})
}

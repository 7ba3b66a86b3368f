// Package registration is the registration contract between the operator
// and the authorization server: the RFC 7591 client document
// (v1alpha1.ClientMetadata), the one model of a tls_client_auth subject
// (parsing, the canonical key and the matching rule, built on the RFC 4517
// distinguished name matcher), subject policy patterns, and the names,
// labels and keys both sides use. The webhook, the controllers and the
// authorization server all import it; it imports only the API types.
package registration

import (
	"crypto/sha256"
	"encoding/hex"
)

// Labels and data keys shared by the operator and the authorization server.
const (
	// LabelAuthorizationServer marks a ClientRegistration with the name of
	// the AuthorizationServer (in its namespace) that reads it, so the
	// server's informer can select its own.
	LabelAuthorizationServer = "oauth.certbound.io/authorization-server"
	// LabelClientNamespace and LabelClientName name the OAuthClient an
	// object belongs to.
	LabelClientNamespace = "oauth.certbound.io/client-namespace"
	LabelClientName      = "oauth.certbound.io/client-name"

	// LegacySecretKey is the data key of the registration Secrets that
	// earlier versions wrote; the operator migrates them to
	// ClientRegistrations.
	LegacySecretKey = "client.json"

	// Data keys of the client-config Secret a workload mounts.
	ConfigKeyClientID      = "client_id"
	ConfigKeyIssuer        = "issuer"
	ConfigKeyTokenEndpoint = "token_endpoint"
	ConfigKeyCA            = "ca.crt"
)

// Token endpoint authentication methods (RFC 7591 §2, RFC 8705 §2.1.1,
// §2.2.1, and none for the public clients of RFC 8705 §4) and the grants
// this server issues tokens for.
const (
	AuthMethodTLSClientAuth           = "tls_client_auth"
	AuthMethodSelfSignedTLSClientAuth = "self_signed_tls_client_auth"
	AuthMethodNone                    = "none"
	GrantTypeClientCredentials        = "client_credentials"
	GrantTypeTokenExchange            = "urn:ietf:params:oauth:grant-type:token-exchange"
	GrantTypeRefreshToken             = "refresh_token"
)

// ServiceAccountUsername is the Kubernetes user name of a service account
// (what a TokenReview reports for its tokens):
// system:serviceaccount:<namespace>:<name>.
func ServiceAccountUsername(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}

// maxObjectName is the longest name of a namespaced object (a DNS
// subdomain).
const maxObjectName = 253

// ClientID is the OAuth client_id of an OAuthClient: <namespace>.<name>.
// Namespaces cannot contain dots, so it is unique across the cluster.
func ClientID(namespace, name string) string { return namespace + "." + name }

// ObjectName is the name of an OAuthClient's ClientRegistration in the
// AuthorizationServer's namespace: its client_id, which no other client
// shares (namespaces have no dots), or, when that is longer than an object
// name may be, the hex SHA-256 of the client_id. A client_id always holds
// a dot and a hex digest never does, so the two forms cannot collide.
func ObjectName(namespace, name string) string {
	id := ClientID(namespace, name)
	if len(id) <= maxObjectName {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// ClientMetadata is the RFC 7591 client metadata document with the RFC 8705
// members: the one data model of a registration. Its JSON names are the
// RFC's own (snake_case, unlike the rest of this API) so that the same
// document is what a standalone authorization server reads from a file and
// what RFC 7591 dynamic registration sends. It carries no secret material.
type ClientMetadata struct {
	// client_id is the OAuth client identifier, <namespace>.<name> of the
	// OAuthClient.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=320
	ClientID string `json:"client_id"`

	// client_name is a human-readable name, <namespace>/<name>.
	// +optional
	// +kubebuilder:validation:MaxLength=320
	ClientName string `json:"client_name,omitempty"`

	// token_endpoint_auth_method is tls_client_auth or
	// self_signed_tls_client_auth (RFC 8705 §2.1.1, §2.2.1), or none for a
	// public client that proves who it is with a service account token
	// and binds its tokens to a certificate it made itself (RFC 8705 §4).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method"`

	// grant_types the client may use.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=256
	GrantTypes []string `json:"grant_types,omitempty"`

	// scope is the space-separated list of scope values the client may be
	// granted (RFC 6749 §3.3), already checked against the server's
	// clientPolicy.
	// +optional
	// +kubebuilder:validation:MaxLength=8192
	Scope string `json:"scope,omitempty"`

	// tls_client_auth_subject_dn is the registered subject DN (RFC 8705
	// §2.1.2); at most one tls_client_auth_* member is set.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	TLSClientAuthSubjectDN *string `json:"tls_client_auth_subject_dn,omitempty"`

	// tls_client_auth_san_dns is the registered dNSName SAN.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	TLSClientAuthSANDNS *string `json:"tls_client_auth_san_dns,omitempty"`

	// tls_client_auth_san_uri is the registered uniformResourceIdentifier SAN.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	TLSClientAuthSANURI *string `json:"tls_client_auth_san_uri,omitempty"`

	// tls_client_auth_san_ip is the registered iPAddress SAN.
	// +optional
	// +kubebuilder:validation:MaxLength=45
	TLSClientAuthSANIP *string `json:"tls_client_auth_san_ip,omitempty"`

	// tls_client_auth_san_email is the registered rfc822Name SAN.
	// +optional
	// +kubebuilder:validation:MaxLength=254
	TLSClientAuthSANEmail *string `json:"tls_client_auth_san_email,omitempty"`

	// jwks is the client's JWK Set (RFC 7517 §5) for
	// self_signed_tls_client_auth: each key carries its certificate in x5c.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	JWKS *runtime.RawExtension `json:"jwks,omitempty"`

	// jwks_uri is where the server fetches the client's JWK Set.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	JWKSURI string `json:"jwks_uri,omitempty"`

	// tls_client_certificate_bound_access_tokens binds every access token
	// of the client to its certificate (RFC 8705 §3.4).
	// +optional
	TLSClientCertificateBoundAccessTokens bool `json:"tls_client_certificate_bound_access_tokens,omitempty"`

	// resources are the RFC 8707 resource indicators the client may name as
	// token audience (a certbound extension member), already checked
	// against the server's clientPolicy. Without any, tokens name the
	// issuer alone.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=2048
	Resources []string `json:"resources,omitempty"`

	// introspection_resources (a certbound extension member) are the RFC
	// 8707 resource indicators the client serves as a resource server,
	// already checked against the server's clientPolicy: the client may
	// introspect (RFC 7662) every token whose aud names one of them. Any
	// client may introspect its own tokens; no other token is shown to it.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=2048
	IntrospectionResources []string `json:"introspection_resources,omitempty"`

	// min_certificate_not_before (a certbound extension member) is when the
	// client came to hold its tls_client_auth subject value: a certificate
	// whose notBefore is earlier never authenticates it, so a certificate
	// issued to an earlier holder of the same subject is worthless.
	// +optional
	MinCertificateNotBefore *metav1.Time `json:"min_certificate_not_before,omitempty"`
	// service_account (a certbound extension member) is the Kubernetes
	// user name, system:serviceaccount:<namespace>:<name>, whose tokens a
	// public (token_endpoint_auth_method none) client exchanges for access
	// tokens (RFC 8693); the namespace is always the client's own.
	// +optional
	// +kubebuilder:validation:MaxLength=340
	ServiceAccount string `json:"service_account,omitempty"`
}

// ClientHolder names the OAuthClient a registration belongs to.
type ClientHolder struct {
	// namespace of the OAuthClient.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`

	// name of the OAuthClient.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// uid of the OAuthClient: a registration whose holder was deleted and
	// recreated under the same name is an orphan and is removed.
	// +required
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	UID types.UID `json:"uid"`
}

// ClientRegistrationSpec is one client registered with one
// AuthorizationServer.
type ClientRegistrationSpec struct {
	// authorizationServerName is the AuthorizationServer (in this
	// namespace) that reads this registration.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	AuthorizationServerName string `json:"authorizationServerName"`

	// holder is the OAuthClient this registration belongs to.
	// +required
	Holder ClientHolder `json:"holder"`

	// client is the RFC 7591 client metadata document.
	// +required
	Client ClientMetadata `json:"client"`
}

// AuthenticationFailure is one reason for which the authorization server
// refused this client's authentication, aggregated.
type AuthenticationFailure struct {
	// reason is the failure's reason, the label value of the server's
	// certbound_client_authentication_failures_total metric (for example
	// subject_mismatch, untrusted_chain, certificate_revoked).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason"`

	// count is how many failures for this reason the server recorded
	// since firstSeen.
	// +required
	// +kubebuilder:validation:Minimum=1
	Count int64 `json:"count"`

	// firstSeen is when the first of these failures was recorded.
	// +required
	FirstSeen metav1.Time `json:"firstSeen"`

	// lastSeen is when the latest of these failures was recorded.
	// +required
	LastSeen metav1.Time `json:"lastSeen"`

	// observedBy is the authorization server pod that wrote the latest.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ObservedBy string `json:"observedBy,omitempty"`
}

// ClientRegistrationStatus is what the authorization server reports about
// the registered client.
type ClientRegistrationStatus struct {
	// authenticationFailures are the client's most recent failed
	// authentications by reason, the latest first: at most 5 reasons,
	// written by the authorization server at most every 30 seconds.
	// +optional
	// +listType=map
	// +listMapKey=reason
	// +kubebuilder:validation:MaxItems=5
	AuthenticationFailures []AuthenticationFailure `json:"authenticationFailures,omitempty"`
}

// ClientRegistration is the registration of one OAuthClient with one
// AuthorizationServer: RFC 7591 client metadata, without secret material,
// that the authorization server's pods read. Only the operator writes
// ClientRegistrations; no aggregated user role grants write access, so a
// namespace admin cannot forge one. The authorization server writes only
// the status: its recent authentication failures for the client.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=oacreg,categories=certbound
// +kubebuilder:printcolumn:name="Client ID",type=string,JSONPath=`.spec.client.client_id`
// +kubebuilder:printcolumn:name="Method",type=string,JSONPath=`.spec.client.token_endpoint_auth_method`
// +kubebuilder:printcolumn:name="AS",type=string,JSONPath=`.spec.authorizationServerName`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClientRegistration struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the registration.
	// +required
	Spec ClientRegistrationSpec `json:"spec"`

	// status is written by the authorization server.
	// +optional
	Status ClientRegistrationStatus `json:"status,omitempty"`
}

// ClientRegistrationList is a list of ClientRegistrations.
//
// +kubebuilder:object:root=true
type ClientRegistrationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClientRegistration `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ClientRegistration{}, &ClientRegistrationList{})
}

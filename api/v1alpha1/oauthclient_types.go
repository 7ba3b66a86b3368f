package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AuthenticationMethod is an RFC 8705 client authentication method, or
// none for a public client bound to a service account (RFC 8705 §4).
// +kubebuilder:validation:Enum=tls_client_auth;self_signed_tls_client_auth;none
type AuthenticationMethod string

const (
	// TLSClientAuth is the PKI method (RFC 8705 §2.1): the certificate
	// chains to a trust anchor and carries the registered subject.
	TLSClientAuth AuthenticationMethod = "tls_client_auth"
	// SelfSignedTLSClientAuth is the self-signed method (RFC 8705 §2.2): the
	// certificate itself is registered.
	SelfSignedTLSClientAuth AuthenticationMethod = "self_signed_tls_client_auth"
	// PublicClient is a public client (RFC 8705 §4) that does not
	// authenticate with a certificate: it proves who it is with a token of
	// its service account (RFC 8693 token exchange) and binds its tokens to
	// a certificate it made itself. No key is kept in any Secret.
	PublicClient AuthenticationMethod = "none"
)

// GrantType is an OAuth 2.0 grant type the client may use.
// +kubebuilder:validation:Enum=client_credentials;"urn:ietf:params:oauth:grant-type:token-exchange";refresh_token
type GrantType string

const (
	// GrantTypeClientCredentials is the RFC 6749 §4.4 grant of the mTLS
	// methods.
	GrantTypeClientCredentials GrantType = "client_credentials"
	// GrantTypeTokenExchange is the RFC 8693 grant a public client
	// (authenticationMethod none) exchanges its service account token with.
	GrantTypeTokenExchange GrantType = "urn:ietf:params:oauth:grant-type:token-exchange"
	// GrantTypeRefreshToken is the RFC 6749 §6 grant; only with token
	// exchange, and the refresh token is bound to the same certificate.
	GrantTypeRefreshToken GrantType = "refresh_token"
)

// OAuthClientSpec is the desired state of an OAuth client.
// +kubebuilder:validation:XValidation:rule="self.authenticationMethod == 'tls_client_auth' ? has(self.subject) : !has(self.subject)",message="subject is required for tls_client_auth and not allowed for the other methods (self_signed_tls_client_auth registers the certificate itself, none a service account)",reason=FieldValueRequired,fieldPath=.subject
// +kubebuilder:validation:XValidation:rule="self.authenticationMethod == 'none' ? has(self.serviceAccountName) : !has(self.serviceAccountName)",message="serviceAccountName is required for authenticationMethod none (the public client is that service account's) and not allowed for the mTLS methods, which authenticate with a certificate",reason=FieldValueRequired,fieldPath=.serviceAccountName
// +kubebuilder:validation:XValidation:rule="self.authenticationMethod != 'none' || (has(self.grantTypes) && 'urn:ietf:params:oauth:grant-type:token-exchange' in self.grantTypes)",message="authenticationMethod none needs grantTypes to list urn:ietf:params:oauth:grant-type:token-exchange (and optionally refresh_token): a public client gets tokens only by exchanging its service account token",reason=FieldValueRequired,fieldPath=.grantTypes
// +kubebuilder:validation:XValidation:rule="self.authenticationMethod != 'none' || !has(self.grantTypes) || !('client_credentials' in self.grantTypes)",message="client_credentials is not allowed with authenticationMethod none: the grant needs an authenticated client (RFC 6749 §4.4); a public client uses urn:ietf:params:oauth:grant-type:token-exchange",reason=FieldValueForbidden,fieldPath=.grantTypes
// +kubebuilder:validation:XValidation:rule="self.authenticationMethod == 'none' || !has(self.grantTypes) || !('urn:ietf:params:oauth:grant-type:token-exchange' in self.grantTypes)",message="urn:ietf:params:oauth:grant-type:token-exchange is only allowed with authenticationMethod none (a service account's public client); the mTLS methods use client_credentials",reason=FieldValueForbidden,fieldPath=.grantTypes
// +kubebuilder:validation:XValidation:rule="!has(self.grantTypes) || !('refresh_token' in self.grantTypes) || 'urn:ietf:params:oauth:grant-type:token-exchange' in self.grantTypes",message="refresh_token is only allowed together with urn:ietf:params:oauth:grant-type:token-exchange: client_credentials issues no refresh tokens (RFC 6749 §4.4.3)",reason=FieldValueForbidden,fieldPath=.grantTypes
// +kubebuilder:validation:XValidation:rule="self.authenticationMethod != 'none' || !has(self.certificateBoundAccessTokens) || self.certificateBoundAccessTokens",message="certificateBoundAccessTokens must be true for authenticationMethod none: a public client's tokens are bound to the certificate it presents (RFC 8705 §4), or they would be bearer tokens anyone holding a service account token could mint",reason=FieldValueInvalid,fieldPath=.certificateBoundAccessTokens
// +kubebuilder:validation:XValidation:rule="!(has(self.jwks) && has(self.jwksURI))",message="give at most one of jwks and jwksURI (RFC 7591 §2 allows one): remove the other",reason=FieldValueForbidden,fieldPath=.jwksURI
// +kubebuilder:validation:XValidation:rule="!has(self.jwks) || self.authenticationMethod == 'self_signed_tls_client_auth'",message="jwks is only allowed with authenticationMethod self_signed_tls_client_auth (tls_client_auth registers a subject, none a service account): remove jwks or change the method",reason=FieldValueForbidden,fieldPath=.jwks
// +kubebuilder:validation:XValidation:rule="!has(self.jwksURI) || self.authenticationMethod == 'self_signed_tls_client_auth'",message="jwksURI is only allowed with authenticationMethod self_signed_tls_client_auth (tls_client_auth registers a subject, none a service account): remove jwksURI or change the method",reason=FieldValueForbidden,fieldPath=.jwksURI
// +kubebuilder:validation:XValidation:rule="self.authenticationMethod == oldSelf.authenticationMethod",message="authenticationMethod cannot change; create a new OAuthClient instead",reason=FieldValueForbidden,fieldPath=.authenticationMethod
type OAuthClientSpec struct {
	// authorizationServerRef names the AuthorizationServer this client
	// registers with. It cannot change after creation.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="authorizationServerRef cannot change; delete and recreate the OAuthClient to move it",reason=FieldValueForbidden
	AuthorizationServerRef AuthorizationServerReference `json:"authorizationServerRef"`

	// authenticationMethod is tls_client_auth (PKI: the registered subject
	// must appear in a certificate from a trusted CA),
	// self_signed_tls_client_auth (the self-signed certificate itself is
	// registered) or none (a public client bound to spec.serviceAccountName:
	// its pods exchange their projected service account token for access
	// tokens bound to a certificate they make themselves, RFC 8705 §4; the
	// operator issues no certificate and no Secret holds a key).
	// +optional
	// +kubebuilder:default=tls_client_auth
	AuthenticationMethod AuthenticationMethod `json:"authenticationMethod,omitempty"`

	// subject is the one certificate subject value registered for a
	// tls_client_auth client (RFC 8705 §2.1.2). The operator requests a
	// certificate that carries exactly this value.
	// +optional
	Subject *ClientSubject `json:"subject,omitempty"`

	// serviceAccountName is the ServiceAccount, in the client's namespace,
	// whose tokens this public client exchanges for access tokens (RFC
	// 8693); it is registered as system:serviceaccount:<namespace>:<name>.
	// Required for authenticationMethod none and not allowed otherwise. The
	// ServiceAccount may be created after the OAuthClient; the
	// ServiceAccountFound condition says whether it exists.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// jwks is a JWK Set (RFC 7517 §5) JSON document registered as the
	// client's keys (RFC 7591 jwks) for a self_signed_tls_client_auth
	// client that manages its own certificates: every key carries x5c
	// whose first certificate is the self-signed certificate the workload
	// presents, with the key members matching that certificate's public key
	// (RFC 7517 §4.7). Only public keys. When jwks or jwksURI is given the
	// operator issues no certificate and spec.certificate is unused; list
	// the next certificate beside the current one before rotating.
	// Not allowed with jwksURI or with tls_client_auth.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=65536
	JWKS string `json:"jwks,omitempty"`

	// jwksURI is an https URL (RFC 7591 jwks_uri) where the authorization
	// server fetches the JWK Set of a self_signed_tls_client_auth client
	// that manages its own certificates; the keys carry x5c as for jwks.
	// The operator then issues no certificate. Not allowed with jwks or
	// with tls_client_auth.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	JWKSURI string `json:"jwksURI,omitempty"`

	// certificate configures the client certificate the operator requests
	// from cert-manager. Unused for authenticationMethod none.
	// +optional
	// +kubebuilder:default={}
	Certificate ClientCertificate `json:"certificate,omitempty"`

	// grantTypes are the grant types the client may use: client_credentials
	// for the mTLS methods; urn:ietf:params:oauth:grant-type:token-exchange
	// and optionally refresh_token for authenticationMethod none.
	// +optional
	// +listType=set
	// +kubebuilder:default={client_credentials}
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	GrantTypes []GrantType `json:"grantTypes,omitempty"`

	// scopes are the scope values the client may request (RFC 6749 §3.3);
	// each must be listed in the AuthorizationServer's clientPolicy.scopes
	// for this namespace.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^[\x21\x23-\x5B\x5D-\x7E]+$`
	Scopes []string `json:"scopes,omitempty"`

	// audiences are the RFC 8707 resource indicators (absolute URIs) the
	// client needs tokens for; each must be listed in the
	// AuthorizationServer's clientPolicy.audiences for this namespace. A
	// token request may narrow them with the resource parameter; without
	// any, tokens name the issuer alone.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=2048
	Audiences []string `json:"audiences,omitempty"`

	// introspectionAudiences are the RFC 8707 resource indicators (absolute
	// URIs) this client serves as a resource server: it may introspect (RFC
	// 7662) every token issued for one of them, whichever client holds it.
	// Each must be listed in the AuthorizationServer's
	// clientPolicy.audiences with a resourceServerNamespaces selector that
	// matches this namespace. Without any, the client may introspect its
	// own tokens only; for every other token it gets {"active":false}.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=2048
	IntrospectionAudiences []string `json:"introspectionAudiences,omitempty"`

	// certificateBoundAccessTokens makes every access token of this client
	// bound to its certificate (RFC 8705 §3), and refuses token requests
	// made without one. Must be true for authenticationMethod none.
	// +optional
	// +kubebuilder:default=true
	CertificateBoundAccessTokens *bool `json:"certificateBoundAccessTokens,omitempty"`
}

// AuthorizationServerReference names an AuthorizationServer.
type AuthorizationServerReference struct {
	// name of the AuthorizationServer.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// namespace of the AuthorizationServer; defaults to the OAuthClient's.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// ClientSubject is exactly one certificate subject value (RFC 8705 §2.1.2).
// +kubebuilder:validation:MinProperties=1
// +kubebuilder:validation:MaxProperties=1
type ClientSubject struct {
	// dn is the subject distinguished name as an RFC 4514 string, most
	// specific RDN first (e.g. "CN=billing-worker,OU=billing,O=Acme"). It is
	// registered as tls_client_auth_subject_dn and compared with RFC 4517
	// distinguishedNameMatch.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	DN string `json:"dn,omitempty"`

	// dnsName is a dNSName subject alternative name
	// (tls_client_auth_san_dns).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	DNSName string `json:"dnsName,omitempty"`

	// uri is a uniformResourceIdentifier subject alternative name, e.g. a
	// SPIFFE ID (tls_client_auth_san_uri).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self)",message="uri must be an absolute URI"
	URI string `json:"uri,omitempty"`

	// ip is an iPAddress subject alternative name, IPv4 or IPv6
	// (tls_client_auth_san_ip, compared in binary).
	// +optional
	// +kubebuilder:validation:MaxLength=45
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="ip must be an IPv4 or IPv6 address"
	IP string `json:"ip,omitempty"`

	// email is an rfc822Name subject alternative name
	// (tls_client_auth_san_email).
	// +optional
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s]+@[^@\s]+$`
	Email string `json:"email,omitempty"`
}

// PrivateKeyAlgorithm is the key algorithm of the client certificate.
// +kubebuilder:validation:Enum=ECDSA;RSA;Ed25519
type PrivateKeyAlgorithm string

// ClientCertificate configures the client certificate.
type ClientCertificate struct {
	// secretName is the Secret (in the client's namespace) that receives the
	// certificate and key (tls.crt, tls.key, ca.crt). Defaults to
	// <name>-mtls.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName,omitempty"`

	// duration is the requested certificate lifetime.
	// +optional
	// +kubebuilder:default="2160h"
	Duration *metav1.Duration `json:"duration,omitempty"`

	// renewBefore is how long before expiry the certificate is renewed.
	// +optional
	// +kubebuilder:default="360h"
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`

	// privateKey configures the certificate's key.
	// +optional
	// +kubebuilder:default={}
	PrivateKey PrivateKey `json:"privateKey,omitempty"`

	// issuerRef overrides the AuthorizationServer's clientCertificateIssuer
	// for a tls_client_auth client. Ignored for self-signed clients.
	// +optional
	IssuerRef *IssuerReference `json:"issuerRef,omitempty"`
}

// PrivateKey configures a certificate key.
type PrivateKey struct {
	// algorithm of the key.
	// +optional
	// +kubebuilder:default=ECDSA
	Algorithm PrivateKeyAlgorithm `json:"algorithm,omitempty"`

	// size of the key: bits for RSA (2048-8192), curve size for ECDSA (256,
	// 384, 521); ignored for Ed25519. Zero means the cert-manager default.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=8192
	Size int32 `json:"size,omitempty"`
}

// Condition types of an OAuthClient.
const (
	// ConditionAccepted: the AuthorizationServer exists and allows the
	// client's namespace.
	ConditionAccepted = "Accepted"
	// ConditionCertificateReady: the client certificate is issued and
	// current.
	ConditionCertificateReady = "CertificateReady"
	// ConditionRegistered: the registration is written and unique.
	ConditionRegistered = "Registered"
	// ConditionServiceAccountFound: the ServiceAccount a public client
	// (authenticationMethod none) is bound to exists. The client is
	// registered without it, but it is not Ready (reason
	// ServiceAccountNotFound) because no token can be exchanged until the
	// ServiceAccount is created.
	ConditionServiceAccountFound = "ServiceAccountFound"
)

// IssuedCertificate describes the client's current certificate.
type IssuedCertificate struct {
	// secretName is the Secret with tls.crt, tls.key and ca.crt.
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// thumbprint is the certificate's x5t#S256 (RFC 8705 §3.1).
	// +optional
	Thumbprint string `json:"thumbprint,omitempty"`
	// subject is the certificate's subject DN (RFC 4514).
	// +optional
	Subject string `json:"subject,omitempty"`
	// notAfter is when the certificate expires.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
}

// OAuthClientStatus is the observed state of an OAuthClient.
type OAuthClientStatus struct {
	// conditions: Accepted, CertificateReady, Registered and Ready, and
	// ServiceAccountFound for authenticationMethod none.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// clientID is the OAuth client_id, <namespace>.<name>.
	// +optional
	ClientID string `json:"clientID,omitempty"`

	// configSecretName is the Secret (in this namespace) with client_id,
	// issuer, token_endpoint and the server's CA bundle.
	// +optional
	ConfigSecretName string `json:"configSecretName,omitempty"`

	// certificate describes the current client certificate.
	// +optional
	Certificate *IssuedCertificate `json:"certificate,omitempty"`

	// registrationName is the ClientRegistration (in the
	// AuthorizationServer's namespace) that registers this client.
	// +optional
	RegistrationName string `json:"registrationName,omitempty"`

	// serviceAccount is the Kubernetes user name,
	// system:serviceaccount:<namespace>:<name>, whose tokens a public client
	// (authenticationMethod none) exchanges; it is registered as
	// service_account.
	// +optional
	ServiceAccount string `json:"serviceAccount,omitempty"`

	// subjectHeldSince is when this client came to hold its current
	// tls_client_auth subject value; certificates issued before it never
	// authenticate the client.
	// +optional
	SubjectHeldSince *metav1.Time `json:"subjectHeldSince,omitempty"`
}

// OAuthClient is an OAuth 2.0 client that authenticates to an
// AuthorizationServer with mutual TLS and gets certificate-bound access
// tokens (RFC 8705). The operator issues its certificate, registers it and
// writes a Secret for the workload to mount.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=oac,categories=certbound
// +kubebuilder:printcolumn:name="Method",type=string,JSONPath=`.spec.authenticationMethod`
// +kubebuilder:printcolumn:name="Subject",type=string,JSONPath=`.status.certificate.subject`
// +kubebuilder:printcolumn:name="ServiceAccount",type=string,JSONPath=`.spec.serviceAccountName`
// +kubebuilder:printcolumn:name="AS",type=string,JSONPath=`.spec.authorizationServerRef.name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type OAuthClient struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec OAuthClientSpec `json:"spec"`

	// status is the observed state.
	// +optional
	Status OAuthClientStatus `json:"status,omitempty"`
}

// OAuthClientList is a list of OAuthClients.
//
// +kubebuilder:object:root=true
type OAuthClientList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []OAuthClient `json:"items"`
}

func init() {
	SchemeBuilder.Register(&OAuthClient{}, &OAuthClientList{})
}

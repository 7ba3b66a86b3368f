package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AuthorizationServerSpec is the desired state of an in-cluster RFC 8705
// authorization server.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.issuer) || (has(self.issuer) && self.issuer == oldSelf.issuer)",message="issuer cannot change: tokens already issued name the old issuer; create a new AuthorizationServer instead",reason=FieldValueForbidden,fieldPath=.issuer
type AuthorizationServerSpec struct {
	// issuer is the issuer identifier (RFC 8414): an https URL without query
	// or fragment. Endpoints are the issuer plus conventional paths. Defaults
	// to https://<name>.<namespace>.svc, the Service the operator creates.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() == 'https' && !self.contains('?') && !self.contains('#')",message="issuer must be an https URL without query or fragment (RFC 8414 §2)"
	Issuer string `json:"issuer,omitempty"`

	// replicas is the number of authorization-server pods.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20
	Replicas *int32 `json:"replicas,omitempty"`

	// servingCertificate says where the TLS certificate of the server's
	// endpoints comes from.
	// +required
	ServingCertificate ServingCertificate `json:"servingCertificate"`

	// clientTrustAnchors are the CA certificates that tls_client_auth client
	// certificates must chain to. Only these are trusted, never the system
	// roots (RFC 8705 §7.4). Each is a key of a Secret in this namespace.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	ClientTrustAnchors []TrustAnchor `json:"clientTrustAnchors,omitempty"`

	// clientCertificateRevocation turns on revocation checking of
	// tls_client_auth client certificates against CRLs (RFC 5280). Absent:
	// no checking, and a revoked certificate authenticates until it
	// expires.
	// +optional
	ClientCertificateRevocation *ClientCertificateRevocation `json:"clientCertificateRevocation,omitempty"`

	// clientCertificateIssuer is the cert-manager issuer that OAuthClients of
	// this server get their tls_client_auth certificates from, unless they
	// name their own. An Issuer (kind Issuer) must be in each client's
	// namespace.
	// +optional
	ClientCertificateIssuer *IssuerReference `json:"clientCertificateIssuer,omitempty"`

	// allowedClientNamespaces says which namespaces may register
	// OAuthClients with this server.
	// +optional
	// +kubebuilder:default={from: Same}
	AllowedClientNamespaces AllowedNamespaces `json:"allowedClientNamespaces,omitempty"`

	// clientPolicy says which subjects a client of each allowed namespace
	// may claim, and which scopes and audiences it may be granted. The
	// default binds identities to the client's namespace and grants no
	// scope and no audience but the issuer.
	// +optional
	// +kubebuilder:default={}
	ClientPolicy ClientPolicy `json:"clientPolicy,omitempty"`

	// tokens configures the access and refresh tokens the server issues.
	// +optional
	// +kubebuilder:default={}
	Tokens TokenPolicy `json:"tokens,omitempty"`
}

// DefaultSubjectPattern is the subject policy of a server whose
// clientPolicy lists no subjects: a SPIFFE ID under the client's own
// namespace, in any trust domain.
const DefaultSubjectPattern = "spiffe://*/ns/{namespace}/sa/*"

// ClientPolicy is what clients may claim and be granted. Every rule is
// evaluated by the operator before anything is issued or registered.
type ClientPolicy struct {
	// subjects are the patterns a tls_client_auth client's subject must
	// match (one of them). In a pattern, {namespace} and {name} stand for
	// the client's namespace and name, and * matches one DNS label, one URI
	// path segment or authority, one RDN value, or an email local part,
	// never a separator. Each pattern must contain {namespace} as a whole
	// label, segment or value, so that an identity is bound to the
	// namespace that claims it, unless allowUnboundSubjects is true.
	// Empty means one URI pattern, spiffe://*/ns/{namespace}/sa/*.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Subjects []SubjectPattern `json:"subjects,omitempty"`

	// allowUnboundSubjects lets subject patterns omit {namespace}: any
	// allowed namespace may then claim identities that name another team.
	// Subjects stay unique across the cluster. The server reports the
	// choice in its ClientPolicy condition.
	// +optional
	AllowUnboundSubjects bool `json:"allowUnboundSubjects,omitempty"`

	// scopes are the scope values the server grants. A client may list only
	// scopes named here for its namespace; nothing is grantable unless
	// listed.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=256
	Scopes []ScopePolicy `json:"scopes,omitempty"`

	// audiences are the RFC 8707 resource indicators the server issues
	// tokens for. A client may name only audiences listed here for its
	// namespace; a client that names none gets tokens whose only audience
	// is the issuer.
	// +optional
	// +listType=map
	// +listMapKey=uri
	// +kubebuilder:validation:MaxItems=256
	Audiences []AudiencePolicy `json:"audiences,omitempty"`
}

// SubjectPattern is one pattern of allowed subject values; exactly one
// member is set.
// +kubebuilder:validation:MinProperties=1
// +kubebuilder:validation:MaxProperties=1
type SubjectPattern struct {
	// dn is an RFC 4514 DN pattern, e.g. "CN=*,OU={namespace},O=Acme": the
	// same RDNs and attribute types, with * matching any one value.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	DN string `json:"dn,omitempty"`

	// dnsName is a DNS name pattern, e.g. "*.{namespace}.svc".
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	DNSName string `json:"dnsName,omitempty"`

	// uri is a URI pattern, e.g. "spiffe://cluster.local/ns/{namespace}/sa/*".
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	URI string `json:"uri,omitempty"`

	// email is an email pattern, e.g. "*@{namespace}.example.com".
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=254
	Email string `json:"email,omitempty"`
}

// ScopePolicy is one grantable scope value.
type ScopePolicy struct {
	// name is the scope value (RFC 6749 §3.3).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[\x21\x23-\x5B\x5D-\x7E]+$`
	Name string `json:"name"`

	// namespaces selects, by label, the client namespaces that may be
	// granted the scope; absent means every namespace the server allows.
	// +optional
	Namespaces *metav1.LabelSelector `json:"namespaces,omitempty"`
}

// AudiencePolicy is one resource (RFC 8707) tokens may be issued for.
type AudiencePolicy struct {
	// uri is the resource indicator: an absolute URI without a fragment.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && !self.contains('#')",message="uri must be an absolute URI without a fragment (RFC 8707 §2)"
	URI string `json:"uri"`

	// namespaces selects, by label, the client namespaces that may name
	// this audience; absent means every namespace the server allows.
	// +optional
	Namespaces *metav1.LabelSelector `json:"namespaces,omitempty"`

	// resourceServerNamespaces selects, by label, the client namespaces
	// whose clients may act as resource server for this audience: list it
	// in spec.introspectionAudiences and introspect (RFC 7662) every token
	// issued for it, whichever client holds the token. Absent means none:
	// naming an audience in spec.audiences never lets a client see other
	// clients' tokens.
	// +optional
	ResourceServerNamespaces *metav1.LabelSelector `json:"resourceServerNamespaces,omitempty"`
}

// ServingCertificate names the issuer of the server's TLS certificate.
type ServingCertificate struct {
	// issuerRef is the cert-manager issuer of the serving certificate, which
	// covers the Service's DNS names and the issuer's host.
	// +required
	IssuerRef IssuerReference `json:"issuerRef"`
}

// TrustAnchor is one PEM bundle of CA certificates.
type TrustAnchor struct {
	// secretRef names the Secret key that holds the PEM bundle.
	// +required
	SecretRef SecretKeySelector `json:"secretRef"`
}

// ClientCertificateRevocation says where the CRLs of client certificate
// issuers come from, and what a certificate whose status cannot be
// established means.
// +kubebuilder:validation:XValidation:rule="(has(self.crls) && size(self.crls) > 0) || (has(self.distributionPoints) && self.distributionPoints)",message="name a CRL source: crls, distributionPoints or both",reason=FieldValueRequired,fieldPath=.crls
type ClientCertificateRevocation struct {
	// crls are CRLs (DER in binaryData or PEM in data), each a key of a
	// ConfigMap in this namespace. A certificate is checked against a
	// current CRL signed by its issuer: give one for every CA that issues
	// client certificates or intermediates, i.e. every CA of a chain but
	// its trust anchor. The CA certificate must carry the cRLSign key
	// usage (cert-manager: usages include "crl sign"). The pods mount the
	// ConfigMaps and reload a changed CRL without restarting (the kubelet
	// syncs mounted ConfigMaps within a minute or two).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	CRLs []CRLSource `json:"crls,omitempty"`

	// distributionPoints fetches CRLs from the http and https CRL
	// distribution points of client certificates whose issuer no crls
	// entry covers. Fetched CRLs are cached until their nextUpdate, at
	// most an hour, and refetched in the background.
	// +optional
	DistributionPoints bool `json:"distributionPoints,omitempty"`

	// failureMode decides a certificate whose status cannot be
	// established (no current CRL of its issuer, one not signed by its
	// issuer, or a failed fetch): Closed refuses the client
	// (invalid_client), Open accepts it. Both count and log it.
	// +optional
	// +kubebuilder:default=Closed
	FailureMode RevocationFailureMode `json:"failureMode,omitempty"`
}

// RevocationFailureMode is Closed or Open.
// +kubebuilder:validation:Enum=Closed;Open
type RevocationFailureMode string

const (
	// RevocationFailClosed refuses a certificate of unknown status.
	RevocationFailClosed RevocationFailureMode = "Closed"
	// RevocationFailOpen accepts a certificate of unknown status.
	RevocationFailOpen RevocationFailureMode = "Open"
)

// CRLSource is one CRL.
type CRLSource struct {
	// configMapRef names the ConfigMap key that holds the CRL.
	// +required
	ConfigMapRef ConfigMapKeySelector `json:"configMapRef"`
}

// ConfigMapKeySelector names one key of a ConfigMap in the same namespace.
type ConfigMapKeySelector struct {
	// name is the name of the ConfigMap.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key is the key (of data or binaryData) that holds the value.
	// +optional
	// +kubebuilder:default=ca.crl
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// NamespacesFrom selects which namespaces may register clients.
// +kubebuilder:validation:Enum=Same;All;Selector
type NamespacesFrom string

const (
	// NamespacesFromSame allows only the server's own namespace.
	NamespacesFromSame NamespacesFrom = "Same"
	// NamespacesFromAll allows every namespace.
	NamespacesFromAll NamespacesFrom = "All"
	// NamespacesFromSelector allows namespaces whose labels match a selector.
	NamespacesFromSelector NamespacesFrom = "Selector"
)

// AllowedNamespaces says which namespaces may register clients.
// +kubebuilder:validation:XValidation:rule="self.from == 'Selector' ? has(self.selector) : !has(self.selector)",message="selector is required when from is Selector and not allowed otherwise",reason=FieldValueInvalid,fieldPath=.selector
type AllowedNamespaces struct {
	// from is Same (only this namespace), All, or Selector (namespaces whose
	// labels match selector).
	// +optional
	// +kubebuilder:default=Same
	From NamespacesFrom `json:"from,omitempty"`

	// selector selects namespaces by label when from is Selector.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// SigningAlgorithm is a JWS algorithm for access tokens.
// +kubebuilder:validation:Enum=ES256;EdDSA;RS256;PS256
type SigningAlgorithm string

// TokenPolicy configures access and refresh tokens.
// +kubebuilder:validation:XValidation:rule="!has(self.refreshTokenTTL) || !has(self.refreshTokenMaxLifetime) || duration(self.refreshTokenTTL) <= duration(self.refreshTokenMaxLifetime)",message="refreshTokenTTL must not exceed refreshTokenMaxLifetime: a family ends at its maximum lifetime whatever the idle time left",reason=FieldValueInvalid,fieldPath=.refreshTokenTTL
type TokenPolicy struct {
	// accessTokenTTL is how long an access token is valid.
	// +optional
	// +kubebuilder:default="10m"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('30s') && duration(self) <= duration('24h')",message="accessTokenTTL must be between 30s and 24h"
	AccessTokenTTL *metav1.Duration `json:"accessTokenTTL,omitempty"`

	// signingAlgorithm is the JWS algorithm of access tokens.
	// +optional
	// +kubebuilder:default=ES256
	SigningAlgorithm SigningAlgorithm `json:"signingAlgorithm,omitempty"`

	// keyRotationPeriod is how often a new signing key is generated. The new
	// key is published before it signs; the old one stays published until
	// the tokens it signed have expired.
	// +optional
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h')",message="keyRotationPeriod must be at least 1h"
	KeyRotationPeriod *metav1.Duration `json:"keyRotationPeriod,omitempty"`

	// refreshTokenTTL is how long a refresh token stays usable without
	// being used (its idle lifetime). Refresh tokens are issued only to
	// public clients (authenticationMethod none) with the refresh_token
	// grant, bound to the client's certificate; every use rotates the
	// token, and a replayed one revokes its whole family.
	// +optional
	// +kubebuilder:default="1h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('2160h')",message="refreshTokenTTL must be between 1m and 2160h"
	RefreshTokenTTL *metav1.Duration `json:"refreshTokenTTL,omitempty"`

	// refreshTokenMaxLifetime is how long a refresh-token family lives
	// since the token exchange that began it, however often it is
	// refreshed; then the workload exchanges its service account token
	// again.
	// +optional
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1h') && duration(self) <= duration('8760h')",message="refreshTokenMaxLifetime must be between 1h and 8760h"
	RefreshTokenMaxLifetime *metav1.Duration `json:"refreshTokenMaxLifetime,omitempty"`

	// maxRefreshTokenFamiliesPerClient bounds the live refresh-token
	// families (one per token exchange) of one client, so that a client
	// exchanging in a loop cannot fill the server's store: an exchange
	// beyond it revokes the client's oldest family.
	// +optional
	// +kubebuilder:default=1000
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxRefreshTokenFamiliesPerClient *int32 `json:"maxRefreshTokenFamiliesPerClient,omitempty"`
}

// AuthorizationServerEndpoints are the URLs clients and resources use.
type AuthorizationServerEndpoints struct {
	// metadata is the RFC 8414 metadata document.
	// +optional
	Metadata string `json:"metadata,omitempty"`
	// token is the conventional token endpoint (no client certificate).
	// +optional
	Token string `json:"token,omitempty"`
	// mtlsToken is the mTLS alias of the token endpoint (RFC 8705 §5).
	// +optional
	MTLSToken string `json:"mtlsToken,omitempty"`
	// jwks is the JWK Set of the token-signing keys.
	// +optional
	JWKS string `json:"jwks,omitempty"`
}

// AuthorizationServerStatus is the observed state of an AuthorizationServer.
type AuthorizationServerStatus struct {
	// conditions: Ready, and the conditions it summarises.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// issuer is the effective issuer identifier.
	// +optional
	Issuer string `json:"issuer,omitempty"`

	// endpoints are the server's URLs.
	// +optional
	Endpoints AuthorizationServerEndpoints `json:"endpoints,omitempty"`

	// registeredClients is the number of OAuthClients registered.
	// +optional
	RegisteredClients int32 `json:"registeredClients,omitempty"`
}

// AuthorizationServer is an in-cluster OAuth 2.0 authorization server that
// authenticates clients with mutual TLS and issues certificate-bound access
// tokens (RFC 8705).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=authserver;oas,categories=certbound
// +kubebuilder:printcolumn:name="Issuer",type=string,JSONPath=`.status.issuer`
// +kubebuilder:printcolumn:name="Clients",type=integer,JSONPath=`.status.registeredClients`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type AuthorizationServer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state.
	// +required
	Spec AuthorizationServerSpec `json:"spec"`

	// status is the observed state.
	// +optional
	Status AuthorizationServerStatus `json:"status,omitempty"`
}

// AuthorizationServerList is a list of AuthorizationServers.
//
// +kubebuilder:object:root=true
type AuthorizationServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AuthorizationServer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&AuthorizationServer{}, &AuthorizationServerList{})
}

// Condition types of an AuthorizationServer; Ready summarises them.
const (
	// ConditionSigningKeyReady: a signing key is published and signs.
	ConditionSigningKeyReady = "SigningKeyReady"
	// ConditionServingCertificateReady: the serving certificate is issued.
	ConditionServingCertificateReady = "ServingCertificateReady"
	// ConditionTrustAnchorsReady: the client trust anchors are loaded.
	ConditionTrustAnchorsReady = "TrustAnchorsReady"
	// ConditionAvailable: the server's Deployment is available.
	ConditionAvailable = "Available"
	// ConditionClientCertificateRevocationReady: the CRLs named in
	// spec.clientCertificateRevocation exist; set only when the field is.
	ConditionClientCertificateRevocationReady = "ClientCertificateRevocationReady"
	// ConditionClientPolicyReady: spec.clientPolicy is valid; its reason
	// says whether subjects are bound to the client namespaces.
	ConditionClientPolicyReady = "ClientPolicyReady"
)

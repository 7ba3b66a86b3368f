package validation

import (
	"fmt"
	"slices"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	"github.com/cert-manager/cert-manager/pkg/util/pki"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/certbound/certbound/api/v1alpha1"
)

// grantTypesByMethod are the grant types each client authentication method
// can use. Both RFC 8705 methods authenticate a confidential client at the
// token endpoint, which is what client_credentials (RFC 6749 §4.4) needs; a
// public client (none) authenticates nothing at the token endpoint and gets
// tokens only by exchanging its service account token (RFC 8693), then
// refreshing them. A grant added to the API later must be entered here for
// the methods that can carry it, or it is refused.
var grantTypesByMethod = map[v1alpha1.AuthenticationMethod][]v1alpha1.GrantType{
	v1alpha1.TLSClientAuth:           {v1alpha1.GrantTypeClientCredentials},
	v1alpha1.SelfSignedTLSClientAuth: {v1alpha1.GrantTypeClientCredentials},
	v1alpha1.PublicClient:            {v1alpha1.GrantTypeTokenExchange, v1alpha1.GrantTypeRefreshToken},
}

// defaultCertificateDuration is the CRD default of spec.certificate.duration,
// which renewBefore is compared with when the field is absent.
const defaultCertificateDuration = 2160 * time.Hour

// ValidateOAuthClient checks an OAuthClient beyond its CRD schema. old is
// the stored object on update and nil otherwise; rules that forbid changes
// apply only when it is set. Warnings describe allowed-but-risky choices.
// The controllers call it too, so an object admitted while the webhook was
// off is still never acted on when it is invalid.
func ValidateOAuthClient(obj, old *v1alpha1.OAuthClient) (warnings []string, errs field.ErrorList) {
	if obj == nil {
		return nil, field.ErrorList{field.Required(field.NewPath("spec"), "no OAuthClient to validate")}
	}
	spec := field.NewPath("spec")
	method := effectiveMethod(obj.Spec.AuthenticationMethod)

	errs = append(errs, validateAuthorizationServerRef(obj.Spec.AuthorizationServerRef, spec.Child("authorizationServerRef"))...)

	switch method {
	case v1alpha1.TLSClientAuth:
		errs = append(errs, validateSubject(obj.Spec.Subject, spec.Child("subject"))...)
		if obj.Spec.JWKS != "" {
			errs = append(errs, field.Forbidden(spec.Child("jwks"), "a tls_client_auth client is registered by its subject, not keys: remove spec.jwks, or use authenticationMethod self_signed_tls_client_auth"))
		}
		if obj.Spec.JWKSURI != "" {
			errs = append(errs, field.Forbidden(spec.Child("jwksURI"), "a tls_client_auth client is registered by its subject, not keys: remove spec.jwksURI, or use authenticationMethod self_signed_tls_client_auth"))
		}
		errs = append(errs, forbidServiceAccount(obj, spec)...)
	case v1alpha1.SelfSignedTLSClientAuth:
		if obj.Spec.Subject != nil {
			errs = append(errs, field.Forbidden(spec.Child("subject"), "a self_signed_tls_client_auth client is registered by its certificate, not a subject (RFC 8705 §2.2): remove spec.subject, or use authenticationMethod tls_client_auth"))
		}
		if obj.Spec.Certificate.IssuerRef != nil {
			warnings = append(warnings, "spec.certificate.issuerRef is ignored for a self_signed_tls_client_auth client: the operator issues a self-signed certificate or none at all (with jwks or jwksURI); remove it or use tls_client_auth")
		}
		w, e := validateClientKeys(obj, spec)
		warnings = append(warnings, w...)
		errs = append(errs, e...)
		errs = append(errs, forbidServiceAccount(obj, spec)...)
	case v1alpha1.PublicClient:
		w, e := validatePublicClient(obj, spec)
		warnings = append(warnings, w...)
		errs = append(errs, e...)
	default:
		errs = append(errs, field.NotSupported(spec.Child("authenticationMethod"), string(obj.Spec.AuthenticationMethod), []string{string(v1alpha1.TLSClientAuth), string(v1alpha1.SelfSignedTLSClientAuth), string(v1alpha1.PublicClient)}))
	}

	errs = append(errs, validateClientCertificate(&obj.Spec.Certificate, spec.Child("certificate"))...)
	errs = append(errs, validateClientScopes(obj.Spec.Scopes, spec.Child("scopes"))...)
	errs = append(errs, validateClientAudiences(obj.Spec.Audiences, spec.Child("audiences"))...)
	errs = append(errs, validateClientAudiences(obj.Spec.IntrospectionAudiences, spec.Child("introspectionAudiences"))...)
	if allowed, ok := grantTypesByMethod[method]; ok {
		errs = append(errs, validateGrantTypes(obj.Spec.GrantTypes, method, allowed, spec.Child("grantTypes"))...)
	}
	if slices.Contains(obj.Spec.GrantTypes, v1alpha1.GrantTypeRefreshToken) && !slices.Contains(obj.Spec.GrantTypes, v1alpha1.GrantTypeTokenExchange) {
		errs = append(errs, field.Invalid(spec.Child("grantTypes"), grantTypeNames(obj.Spec.GrantTypes), fmt.Sprintf("%s is only allowed together with %s: client_credentials issues no refresh tokens (RFC 6749 §4.4.3); add the token exchange grant or remove %s", v1alpha1.GrantTypeRefreshToken, v1alpha1.GrantTypeTokenExchange, v1alpha1.GrantTypeRefreshToken)))
	}

	if cbat := obj.Spec.CertificateBoundAccessTokens; cbat != nil && !*cbat {
		warnings = append(warnings, "spec.certificateBoundAccessTokens is false: this client's access tokens are bearer tokens that anyone who obtains them can use (RFC 8705 §3 binds them to the certificate); set it to true unless a resource server cannot check the binding")
	}

	if old != nil {
		w, e := validateOAuthClientUpdate(obj, old)
		warnings = append(warnings, w...)
		errs = append(errs, e...)
	}
	return warnings, errs
}

// validatePublicClient checks a public client (authenticationMethod none):
// bound to a service account of its own namespace, exchanging its token
// for certificate-bound access tokens (RFC 8705 §4), registered without a
// subject or keys. spec.certificate is unused, as no certificate is issued.
func validatePublicClient(obj *v1alpha1.OAuthClient, spec *field.Path) (warnings []string, errs field.ErrorList) {
	const why = "a public client (authenticationMethod none) is registered by its service account"
	switch sa := obj.Spec.ServiceAccountName; {
	case sa == "":
		errs = append(errs, field.Required(spec.Child("serviceAccountName"), "name the ServiceAccount (in this namespace) whose tokens the client exchanges for access tokens"))
	default:
		if msgs := validation.IsDNS1123Subdomain(sa); len(msgs) > 0 {
			errs = append(errs, field.Invalid(spec.Child("serviceAccountName"), sa, "not a ServiceAccount name (a lower-case DNS-1123 subdomain): "+msgs[0]))
		}
	}
	if obj.Spec.Subject != nil {
		errs = append(errs, field.Forbidden(spec.Child("subject"), why+", not a subject: remove spec.subject, or use authenticationMethod tls_client_auth"))
	}
	if obj.Spec.JWKS != "" {
		errs = append(errs, field.Forbidden(spec.Child("jwks"), why+", not keys: remove spec.jwks, or use authenticationMethod self_signed_tls_client_auth"))
	}
	if obj.Spec.JWKSURI != "" {
		errs = append(errs, field.Forbidden(spec.Child("jwksURI"), why+", not keys: remove spec.jwksURI, or use authenticationMethod self_signed_tls_client_auth"))
	}
	if !slices.Contains(obj.Spec.GrantTypes, v1alpha1.GrantTypeTokenExchange) {
		errs = append(errs, field.Required(spec.Child("grantTypes"), fmt.Sprintf("a public client gets tokens only by exchanging its service account token: list %s (and optionally %s)", v1alpha1.GrantTypeTokenExchange, v1alpha1.GrantTypeRefreshToken)))
	}
	if cbat := obj.Spec.CertificateBoundAccessTokens; cbat != nil && !*cbat {
		errs = append(errs, field.Invalid(spec.Child("certificateBoundAccessTokens"), false, "must be true for a public client: its tokens are bound to the certificate it presents (RFC 8705 §4), or they would be bearer tokens anyone holding a service account token could mint"))
	}
	if c := obj.Spec.Certificate; c.IssuerRef != nil || c.SecretName != "" {
		warnings = append(warnings, "spec.certificate is unused for authenticationMethod none: the operator issues no certificate, the workload makes its own in memory; remove spec.certificate.issuerRef and spec.certificate.secretName")
	}
	return warnings, errs
}

// forbidServiceAccount refuses spec.serviceAccountName on an mTLS client,
// which authenticates with its certificate.
func forbidServiceAccount(obj *v1alpha1.OAuthClient, spec *field.Path) field.ErrorList {
	if obj.Spec.ServiceAccountName == "" {
		return nil
	}
	return field.ErrorList{field.Forbidden(spec.Child("serviceAccountName"), fmt.Sprintf("a %s client authenticates with its certificate, not a service account: remove spec.serviceAccountName, or create an OAuthClient with authenticationMethod none", effectiveMethod(obj.Spec.AuthenticationMethod)))}
}

func grantTypeNames(grants []v1alpha1.GrantType) string {
	names := make([]string, len(grants))
	for i, g := range grants {
		names[i] = string(g)
	}
	return strings.Join(names, ", ")
}

// validateClientKeys checks the keys a self-signed client manages itself:
// at most one of spec.jwks and spec.jwksURI, each well-formed. With either,
// the operator issues no certificate, so spec.certificate.issuerRef is moot
// (warned about above).
func validateClientKeys(obj *v1alpha1.OAuthClient, spec *field.Path) (warnings []string, errs field.ErrorList) {
	if obj.Spec.JWKS != "" && obj.Spec.JWKSURI != "" {
		return nil, field.ErrorList{field.Forbidden(spec.Child("jwksURI"), "give at most one of spec.jwks and spec.jwksURI (RFC 7591 §2 allows one): remove the other")}
	}
	if obj.Spec.JWKS != "" {
		_, warnings, errs = ParseClientJWKS(obj.Spec.JWKS, time.Now(), spec.Child("jwks"))
	}
	if obj.Spec.JWKSURI != "" {
		errs = append(errs, validateJWKSURI(obj.Spec.JWKSURI, spec.Child("jwksURI"))...)
	}
	return warnings, errs
}

// validateOAuthClientUpdate refuses changes to what identifies the client
// to its authorization server.
//
// The subject may change: the client keeps its client_id, the operator
// requests a certificate with the new value and re-registers it, which is
// how a typo in a DN is fixed without every consumer learning a new
// client_id. It is a warning because the certificate the workload holds
// stops authenticating the moment the registration changes.
func validateOAuthClientUpdate(obj, old *v1alpha1.OAuthClient) (warnings []string, errs field.ErrorList) {
	spec := field.NewPath("spec")
	if effectiveASRef(obj) != effectiveASRef(old) {
		errs = append(errs, field.Forbidden(spec.Child("authorizationServerRef"), fmt.Sprintf("cannot change from %s to %s: the client is registered with the first server and its client_id and certificate belong there; delete this OAuthClient and create a new one for the other server", effectiveASRef(old), effectiveASRef(obj))))
	}
	if effectiveMethod(obj.Spec.AuthenticationMethod) != effectiveMethod(old.Spec.AuthenticationMethod) {
		errs = append(errs, field.Forbidden(spec.Child("authenticationMethod"), fmt.Sprintf("cannot change from %s to %s: the registration and certificate of the two methods differ; create a new OAuthClient instead", effectiveMethod(old.Spec.AuthenticationMethod), effectiveMethod(obj.Spec.AuthenticationMethod))))
	}
	if old.Spec.ServiceAccountName != "" && obj.Spec.ServiceAccountName != "" && old.Spec.ServiceAccountName != obj.Spec.ServiceAccountName {
		warnings = append(warnings, fmt.Sprintf("spec.serviceAccountName changed from %s to %s: tokens of %s can no longer be exchanged once the new registration is written", old.Spec.ServiceAccountName, obj.Spec.ServiceAccountName, old.Spec.ServiceAccountName))
	}
	if old.Spec.Subject != nil && obj.Spec.Subject != nil && *old.Spec.Subject != *obj.Spec.Subject {
		warnings = append(warnings, "spec.subject changed: the client's current certificate stops authenticating when the new subject is registered; the workload must pick up the re-issued certificate from its Secret")
	}
	return warnings, errs
}

// effectiveMethod applies the CRD default, so that an object the API server
// has not defaulted (a controller's in-memory copy, a unit test) is judged
// the way the stored object would be.
func effectiveMethod(m v1alpha1.AuthenticationMethod) v1alpha1.AuthenticationMethod {
	if m == "" {
		return v1alpha1.TLSClientAuth
	}
	return m
}

// effectiveASRef is namespace/name of the AuthorizationServer, the
// namespace defaulting to the client's.
func effectiveASRef(c *v1alpha1.OAuthClient) string {
	ns := c.Spec.AuthorizationServerRef.Namespace
	if ns == "" {
		ns = c.Namespace
	}
	return ns + "/" + c.Spec.AuthorizationServerRef.Name
}

func validateAuthorizationServerRef(ref v1alpha1.AuthorizationServerReference, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if ref.Name == "" {
		errs = append(errs, field.Required(path.Child("name"), "name the AuthorizationServer this client registers with"))
	} else if msgs := validation.IsDNS1123Subdomain(ref.Name); len(msgs) > 0 {
		errs = append(errs, field.Invalid(path.Child("name"), ref.Name, "not the name of an AuthorizationServer (a lower-case DNS-1123 subdomain): "+msgs[0]))
	}
	if ref.Namespace != "" {
		if msgs := validation.IsDNS1123Label(ref.Namespace); len(msgs) > 0 {
			errs = append(errs, field.Invalid(path.Child("namespace"), ref.Namespace, "not a namespace name (a lower-case DNS-1123 label): "+msgs[0]+"; or leave it empty for the client's own namespace"))
		}
	}
	return errs
}

// validateClientCertificate refuses what cert-manager would refuse when the
// operator creates the Certificate: the user learns it now, not from a
// status condition after the fact.
func validateClientCertificate(c *v1alpha1.ClientCertificate, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.SecretName != "" {
		if msgs := validation.IsDNS1123Subdomain(c.SecretName); len(msgs) > 0 {
			errs = append(errs, field.Invalid(path.Child("secretName"), c.SecretName, "not a Secret name (a lower-case DNS-1123 subdomain): "+msgs[0]))
		}
	}
	duration := defaultCertificateDuration
	if c.Duration != nil {
		duration = c.Duration.Duration
		if duration < cmapi.MinimumCertificateDuration {
			errs = append(errs, field.Invalid(path.Child("duration"), duration.String(), fmt.Sprintf("cert-manager issues certificates for at least %s: raise duration", cmapi.MinimumCertificateDuration)))
		}
	}
	if c.RenewBefore != nil {
		rb := c.RenewBefore.Duration
		switch {
		case rb < cmapi.MinimumRenewBefore:
			errs = append(errs, field.Invalid(path.Child("renewBefore"), rb.String(), fmt.Sprintf("cert-manager renews at least %s before expiry: raise renewBefore", cmapi.MinimumRenewBefore)))
		case rb >= duration:
			errs = append(errs, field.Invalid(path.Child("renewBefore"), rb.String(), fmt.Sprintf("must be less than the certificate duration %s, or the certificate is renewed as soon as it is issued: lower renewBefore or raise duration", duration)))
		}
	}
	size := int(c.PrivateKey.Size)
	sizePath := path.Child("privateKey", "size")
	switch c.PrivateKey.Algorithm {
	case "", v1alpha1.PrivateKeyAlgorithm("ECDSA"):
		if size != 0 && size != pki.ECCurve256 && size != pki.ECCurve384 && size != pki.ECCurve521 {
			errs = append(errs, field.Invalid(sizePath, size, "an ECDSA key size is its curve: use 256, 384 or 521, or 0 for the cert-manager default"))
		}
	case v1alpha1.PrivateKeyAlgorithm("RSA"):
		if size != 0 && (size < pki.MinRSAKeySize || size > pki.MaxRSAKeySize) {
			errs = append(errs, field.Invalid(sizePath, size, fmt.Sprintf("an RSA key is %d to %d bits: pick a size in that range, or 0 for the cert-manager default", pki.MinRSAKeySize, pki.MaxRSAKeySize)))
		}
	case v1alpha1.PrivateKeyAlgorithm("Ed25519"):
	default:
		errs = append(errs, field.NotSupported(path.Child("privateKey", "algorithm"), string(c.PrivateKey.Algorithm), []string{"ECDSA", "RSA", "Ed25519"}))
	}
	if c.IssuerRef != nil {
		errs = append(errs, validateIssuerRef(*c.IssuerRef, path.Child("issuerRef"))...)
	}
	return errs
}

func validateGrantTypes(grants []v1alpha1.GrantType, method v1alpha1.AuthenticationMethod, allowed []v1alpha1.GrantType, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, g := range grants {
		ok := false
		for _, a := range allowed {
			ok = ok || g == a
		}
		if !ok {
			names := make([]string, len(allowed))
			for j, a := range allowed {
				names[j] = string(a)
			}
			errs = append(errs, field.Invalid(path.Index(i), string(g), fmt.Sprintf("a %s client can use only the grant types %s: remove %s", method, strings.Join(names, ", "), g)))
		}
	}
	return errs
}

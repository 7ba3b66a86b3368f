package validation

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/certbound/certbound/api/v1alpha1"
)

// Access-token lifetimes the authorization server accepts. Below the
// minimum, ordinary clock skew between the server and a resource server
// rejects fresh tokens; above the maximum, a leaked token outlives any
// reasonable revocation window.
const (
	minAccessTokenTTL    = 30 * time.Second
	maxAccessTokenTTL    = 24 * time.Hour
	minKeyRotationPeriod = time.Hour
)

// supportedSigningAlgorithms are the JWS algorithms the operator can
// generate keys for and asruntime can sign with.
var supportedSigningAlgorithms = []string{"ES256", "EdDSA", "RS256", "PS256"}

// ValidateAuthorizationServer checks an AuthorizationServer beyond its CRD
// schema. old is the stored object on update and nil otherwise. Warnings
// describe allowed-but-risky choices. The controllers call it too.
func ValidateAuthorizationServer(obj, old *v1alpha1.AuthorizationServer) (warnings []string, errs field.ErrorList) {
	if obj == nil {
		return nil, field.ErrorList{field.Required(field.NewPath("spec"), "no AuthorizationServer to validate")}
	}
	spec := field.NewPath("spec")
	if obj.Spec.Issuer != "" {
		errs = append(errs, validateIssuerURL(obj.Spec.Issuer, spec.Child("issuer"))...)
		errs = append(errs, validateIssuerNamespace(obj.Spec.Issuer, obj.Namespace, spec.Child("issuer"))...)
	}
	errs = append(errs, validateIssuerRef(obj.Spec.ServingCertificate.IssuerRef, spec.Child("servingCertificate", "issuerRef"))...)
	errs = append(errs, validateTrustAnchors(obj.Spec.ClientTrustAnchors, spec.Child("clientTrustAnchors"))...)
	if obj.Spec.ClientCertificateIssuer != nil {
		errs = append(errs, validateIssuerRef(*obj.Spec.ClientCertificateIssuer, spec.Child("clientCertificateIssuer"))...)
	}
	errs = append(errs, validateAllowedNamespaces(obj.Spec.AllowedClientNamespaces, spec.Child("allowedClientNamespaces"))...)
	errs = append(errs, validateTokenPolicy(obj.Spec.Tokens, spec.Child("tokens"))...)
	policyWarnings, policyErrs := validateClientPolicy(obj.Spec.ClientPolicy, spec.Child("clientPolicy"))
	errs = append(errs, policyErrs...)

	if len(obj.Spec.ClientTrustAnchors) == 0 {
		warnings = append(warnings, "spec.clientTrustAnchors is empty: tls_client_auth clients cannot authenticate until you name the CA that issues their certificates (self_signed_tls_client_auth clients can)")
	}
	if iss := obj.Spec.ClientCertificateIssuer; iss != nil && iss.Kind == v1alpha1.IssuerKindClusterIssuer && allowsEveryNamespace(obj.Spec.AllowedClientNamespaces) {
		warnings = append(warnings, fmt.Sprintf("spec.clientCertificateIssuer is the ClusterIssuer %s and every namespace may register clients: any namespace can get a certificate from that issuer carrying another client's subject and authenticate as that client (RFC 8705 §7.4); use a namespaced Issuer, or restrict allowedClientNamespaces", iss.Name))
	}
	warnings = append(warnings, policyWarnings...)

	if old != nil && old.Spec.Issuer != "" && obj.Spec.Issuer != old.Spec.Issuer {
		errs = append(errs, field.Forbidden(spec.Child("issuer"), fmt.Sprintf("cannot change from %q: tokens already issued and clients already configured name the old issuer; create a new AuthorizationServer instead", old.Spec.Issuer)))
	}
	return warnings, errs
}

// validateIssuerURL applies RFC 8414 §2: an https URL with a host and no
// query or fragment; userinfo is refused as well, since an issuer is
// compared as a string and credentials in it would be published in every
// token.
func validateIssuerURL(s string, path *field.Path) field.ErrorList {
	u, err := url.Parse(s)
	if err != nil {
		return field.ErrorList{field.Invalid(path, s, fmt.Sprintf("not a URL: %v; write an https URL such as https://auth.example.com", unwrapURLError(err)))}
	}
	var problems []string
	if u.Scheme != "https" {
		problems = append(problems, "use the https scheme")
	}
	if u.Host == "" || u.Hostname() == "" {
		problems = append(problems, "name a host after https://")
	}
	if u.User != nil {
		problems = append(problems, "remove the user information before @")
	}
	if strings.Contains(s, "?") {
		problems = append(problems, "remove the query (after ?)")
	}
	if strings.Contains(s, "#") {
		problems = append(problems, "remove the fragment (after #)")
	}
	if len(problems) > 0 {
		return field.ErrorList{field.Invalid(path, s, "an issuer is an https URL with a host and no query or fragment (RFC 8414 §2): "+strings.Join(problems, ", "))}
	}
	return nil
}

// validateIssuerRef checks a cert-manager issuer reference: names are
// object names, the group an API group.
func validateIssuerRef(ref v1alpha1.IssuerReference, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if ref.Name == "" {
		errs = append(errs, field.Required(path.Child("name"), "name the cert-manager Issuer or ClusterIssuer"))
	} else if msgs := validation.IsDNS1123Subdomain(ref.Name); len(msgs) > 0 {
		errs = append(errs, field.Invalid(path.Child("name"), ref.Name, "not the name of a cert-manager issuer (a lower-case DNS-1123 subdomain): "+msgs[0]))
	}
	switch ref.Kind {
	case "", v1alpha1.IssuerKindIssuer, v1alpha1.IssuerKindClusterIssuer:
	default:
		errs = append(errs, field.NotSupported(path.Child("kind"), string(ref.Kind), []string{string(v1alpha1.IssuerKindIssuer), string(v1alpha1.IssuerKindClusterIssuer)}))
	}
	if ref.Group != "" {
		if msgs := validation.IsDNS1123Subdomain(ref.Group); len(msgs) > 0 {
			errs = append(errs, field.Invalid(path.Child("group"), ref.Group, "not an API group (a lower-case DNS-1123 subdomain such as cert-manager.io): "+msgs[0]))
		}
	}
	return errs
}

// validateTrustAnchors checks that each entry names a Secret and a data key
// that can exist; two entries naming the same key are refused because the
// second adds nothing and usually means the other CA was forgotten.
func validateTrustAnchors(anchors []v1alpha1.TrustAnchor, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := make(map[v1alpha1.SecretKeySelector]bool, len(anchors))
	for i, a := range anchors {
		p := path.Index(i).Child("secretRef")
		ref := a.SecretRef
		if ref.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), "name the Secret (in this namespace) that holds the CA bundle"))
		} else if msgs := validation.IsDNS1123Subdomain(ref.Name); len(msgs) > 0 {
			errs = append(errs, field.Invalid(p.Child("name"), ref.Name, "not a Secret name (a lower-case DNS-1123 subdomain): "+msgs[0]))
		}
		if ref.Key != "" {
			if msgs := validation.IsConfigMapKey(ref.Key); len(msgs) > 0 {
				errs = append(errs, field.Invalid(p.Child("key"), ref.Key, "not a Secret data key: "+msgs[0]+"; the usual key is ca.crt"))
			}
		}
		if ref.Key == "" {
			ref.Key = "ca.crt"
		}
		if seen[ref] {
			errs = append(errs, field.Duplicate(p, fmt.Sprintf("%s/%s", ref.Name, ref.Key)))
		}
		seen[ref] = true
	}
	return errs
}

func validateAllowedNamespaces(a v1alpha1.AllowedNamespaces, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch a.From {
	case "", v1alpha1.NamespacesFromSame, v1alpha1.NamespacesFromAll:
		if a.Selector != nil {
			errs = append(errs, field.Forbidden(path.Child("selector"), "a selector applies only when from is Selector: remove it, or set from: Selector"))
		}
	case v1alpha1.NamespacesFromSelector:
		if a.Selector == nil {
			errs = append(errs, field.Required(path.Child("selector"), "from: Selector needs a label selector of the namespaces that may register clients"))
		} else {
			errs = append(errs, metav1validation.ValidateLabelSelector(a.Selector, metav1validation.LabelSelectorValidationOptions{}, path.Child("selector"))...)
		}
	default:
		errs = append(errs, field.NotSupported(path.Child("from"), string(a.From), []string{string(v1alpha1.NamespacesFromSame), string(v1alpha1.NamespacesFromAll), string(v1alpha1.NamespacesFromSelector)}))
	}
	return errs
}

// allowsEveryNamespace is from: All, or a selector that selects everything.
func allowsEveryNamespace(a v1alpha1.AllowedNamespaces) bool {
	switch a.From {
	case v1alpha1.NamespacesFromAll:
		return true
	case v1alpha1.NamespacesFromSelector:
		if a.Selector == nil {
			return false
		}
		sel, err := metav1.LabelSelectorAsSelector(a.Selector)
		return err == nil && sel.Empty()
	}
	return false
}

func validateTokenPolicy(t v1alpha1.TokenPolicy, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if t.AccessTokenTTL != nil {
		if ttl := t.AccessTokenTTL.Duration; ttl < minAccessTokenTTL || ttl > maxAccessTokenTTL {
			errs = append(errs, field.Invalid(path.Child("accessTokenTTL"), ttl.String(), fmt.Sprintf("must be between %s and %s: shorter tokens fail on ordinary clock skew, longer ones outlive revocation; 10m is a good start", minAccessTokenTTL, maxAccessTokenTTL)))
		}
	}
	if alg := string(t.SigningAlgorithm); alg != "" {
		ok := false
		for _, s := range supportedSigningAlgorithms {
			ok = ok || alg == s
		}
		if !ok {
			errs = append(errs, field.NotSupported(path.Child("signingAlgorithm"), alg, supportedSigningAlgorithms))
		}
	}
	if t.KeyRotationPeriod != nil && t.KeyRotationPeriod.Duration < minKeyRotationPeriod {
		errs = append(errs, field.Invalid(path.Child("keyRotationPeriod"), t.KeyRotationPeriod.Duration.String(), fmt.Sprintf("must be at least %s: every rotation publishes a new key that resource servers must fetch; 720h is a good start", minKeyRotationPeriod)))
	}
	return errs
}

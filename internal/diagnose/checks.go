// Package diagnose explains, in plain sentences, why an OAuthClient cannot
// get a token or will fail soon. Gather reads the objects a client depends
// on; Diagnose runs one pure check per concern over them.
package diagnose

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/api/v1alpha1/validation"
	"github.com/certbound/certbound/internal/registration"
)

// Severity ranks a finding; errors stop token requests now, warnings will
// soon.
type Severity string

const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
	SeverityOK      Severity = "ok"
)

// ExpiryWarning is how close to notAfter a certificate draws a warning.
const ExpiryWarning = 7 * 24 * time.Hour

// AuthFailureWindow is how recent an authentication failure the
// authorization server reported must be to count.
const AuthFailureWindow = time.Hour

// Finding is one sentence about the client and what to do about it.
type Finding struct {
	Severity Severity `json:"severity"`
	Check    string   `json:"check"`
	Message  string   `json:"message"`
	Action   string   `json:"action,omitempty"`
}

// Objects is everything the checks look at. A nil pointer means the object
// does not exist (or, for Server, could not be read).
type Objects struct {
	Client          *v1alpha1.OAuthClient
	Server          *v1alpha1.AuthorizationServer
	NamespaceLabels map[string]string
	Registration    *v1alpha1.ClientRegistration
	Certificate     *cmapi.Certificate
	// SecretName is the Secret the client certificate is expected in.
	SecretName string
	Secret     *corev1.Secret
	// Chain is the parsed tls.crt of Secret, leaf first.
	Chain          []*x509.Certificate
	ServiceAccount *corev1.ServiceAccount
	TrustAnchors   []*x509.Certificate
	// TrustAnchorProblems are trust anchor Secrets that are missing or do
	// not parse.
	TrustAnchorProblems []string
	Now                 time.Time
}

type check struct {
	name string
	run  func(*Objects) []Finding
}

var checks = []check{
	{"conditions", checkConditions},
	{"policy", checkPolicy},
	{"registration", checkRegistration},
	{"service-account", checkServiceAccount},
	{"certificate", checkCertificatePresent},
	{"subject", checkSubject},
	{"chain", checkChain},
	{"eku", checkEKU},
	{"expiry", checkExpiry},
	{"renewal", checkRenewal},
	{"not-before", checkNotBefore},
	{"auth-failures", checkAuthFailures},
}

// Diagnose runs every check, errors first, then warnings, then the checks
// that passed.
func Diagnose(o *Objects) []Finding {
	var out []Finding
	for _, c := range checks {
		fs := c.run(o)
		if fs == nil {
			continue
		}
		for i := range fs {
			fs[i].Check = c.name
		}
		if len(fs) == 0 {
			fs = []Finding{{Severity: SeverityOK, Check: c.name, Message: "no problem found"}}
		}
		out = append(out, fs...)
	}
	rank := map[Severity]int{SeverityError: 0, SeverityWarning: 1, SeverityOK: 2}
	slices.SortStableFunc(out, func(a, b Finding) int { return rank[a.Severity] - rank[b.Severity] })
	return out
}

// HasErrors reports whether any finding is an error.
func HasErrors(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Severity == SeverityError })
}

// none marks a check that ran and found nothing (nil means not applicable).
var none = []Finding{}

func method(c *v1alpha1.OAuthClient) v1alpha1.AuthenticationMethod {
	if c.Spec.AuthenticationMethod == "" {
		return v1alpha1.TLSClientAuth
	}
	return c.Spec.AuthenticationMethod
}

func usesCertificate(o *Objects) bool { return method(o.Client) != v1alpha1.PublicClient }

func leaf(o *Objects) *x509.Certificate {
	if len(o.Chain) == 0 {
		return nil
	}
	return o.Chain[0]
}

func checkConditions(o *Objects) []Finding {
	out := none
	c := o.Client
	if c.Status.ObservedGeneration < c.Generation {
		out = append(out, Finding{Severity: SeverityWarning,
			Message: fmt.Sprintf("the operator has not yet processed generation %d of the OAuthClient (status is for generation %d)", c.Generation, c.Status.ObservedGeneration),
			Action:  "check that the certbound manager is running and read its log"})
	}
	for _, cond := range c.Status.Conditions {
		switch {
		case cond.Type == v1alpha1.ConditionReconciling && cond.Status == metav1.ConditionTrue:
			out = append(out, Finding{Severity: SeverityWarning,
				Message: fmt.Sprintf("the operator is still working on the client (%s): %s", cond.Reason, cond.Message),
				Action:  "wait, then run the diagnosis again"})
		case cond.Type == v1alpha1.ConditionStalled && cond.Status == metav1.ConditionTrue:
			out = append(out, Finding{Severity: SeverityError,
				Message: fmt.Sprintf("the operator stopped trying until the client or its server changes (%s): %s", cond.Reason, cond.Message),
				Action:  "fix what the message names"})
		case cond.Type == v1alpha1.ConditionReconciling || cond.Type == v1alpha1.ConditionStalled:
		case cond.Status != metav1.ConditionTrue:
			out = append(out, Finding{Severity: SeverityError,
				Message: fmt.Sprintf("condition %s is %s (%s): %s", cond.Type, cond.Status, cond.Reason, cond.Message),
				Action:  "fix what the message names"})
		}
	}
	return out
}

func checkPolicy(o *Objects) []Finding {
	if o.Server == nil {
		ref := o.Client.Spec.AuthorizationServerRef
		return []Finding{{Severity: SeverityError,
			Message: fmt.Sprintf("AuthorizationServer %s/%s does not exist", serverNamespace(o.Client), ref.Name),
			Action:  "create it, or point spec.authorizationServerRef at an existing one"}}
	}
	out := none
	for _, v := range validation.CheckClientAgainstPolicy(o.Client, o.Server, o.NamespaceLabels) {
		// The policy's messages already say what to do.
		out = append(out, Finding{Severity: SeverityError, Message: v.Message})
	}
	return out
}

func serverNamespace(c *v1alpha1.OAuthClient) string {
	if ns := c.Spec.AuthorizationServerRef.Namespace; ns != "" {
		return ns
	}
	return c.Namespace
}

func checkRegistration(o *Objects) []Finding {
	if o.Registration == nil {
		return []Finding{{Severity: SeverityError,
			Message: fmt.Sprintf("the authorization server has no ClientRegistration %s/%s for this client, so it does not know the client", serverNamespace(o.Client), registration.ObjectName(o.Client.Namespace, o.Client.Name)),
			Action:  "see the Registered condition; the operator writes the registration once the client is accepted"}}
	}
	out := none
	spec, md := o.Client.Spec, o.Registration.Spec.Client
	mismatch := func(what, registered, want string) {
		out = append(out, Finding{Severity: SeverityError,
			Message: fmt.Sprintf("the registration's %s is %s but the OAuthClient asks for %s", what, registered, want),
			Action:  "wait for the operator to update the registration; if it does not, read the Registered condition and the manager's log"})
	}
	if md.TokenEndpointAuthMethod != string(method(o.Client)) {
		mismatch("token_endpoint_auth_method", quote(md.TokenEndpointAuthMethod), quote(string(method(o.Client))))
	}
	if spec.Subject != nil {
		want, err := registration.SubjectFromAPI(spec.Subject)
		got, gotErr := registration.SubjectFromMetadata(&md)
		switch {
		case err != nil:
			out = append(out, Finding{Severity: SeverityError, Message: fmt.Sprintf("spec.subject is invalid: %v", err), Action: "correct spec.subject"})
		case gotErr != nil || got == nil:
			mismatch("subject", "missing or invalid", want.String())
		case got.Key() != want.Key():
			mismatch("subject", got.String(), want.String())
		}
	}
	if !sameSet(strings.Fields(md.Scope), spec.Scopes) {
		mismatch("scope", quote(md.Scope), quote(strings.Join(spec.Scopes, " ")))
	}
	if !sameSet(md.Resources, spec.Audiences) {
		mismatch("resources (audiences)", fmt.Sprint(md.Resources), fmt.Sprint(spec.Audiences))
	}
	return out
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

func checkServiceAccount(o *Objects) []Finding {
	if method(o.Client) != v1alpha1.PublicClient {
		return nil
	}
	if o.ServiceAccount == nil {
		return []Finding{{Severity: SeverityError,
			Message: fmt.Sprintf("ServiceAccount %s/%s does not exist, so no pod can exchange its token for this public client", o.Client.Namespace, o.Client.Spec.ServiceAccountName),
			Action:  "create the ServiceAccount or correct spec.serviceAccountName"}}
	}
	return none
}

func checkCertificatePresent(o *Objects) []Finding {
	if !usesCertificate(o) {
		return nil
	}
	out := none
	if o.Certificate == nil {
		out = append(out, Finding{Severity: SeverityError,
			Message: fmt.Sprintf("cert-manager Certificate %s/%s does not exist", o.Client.Namespace, o.Client.Name),
			Action:  "see the CertificateReady condition; is cert-manager installed?"})
	} else if c := certificateCondition(o.Certificate, cmapi.CertificateConditionReady); c == nil || c.Status != cmmeta.ConditionTrue {
		msg := "cert-manager has not reported the Certificate Ready"
		if c != nil {
			msg = fmt.Sprintf("cert-manager reports the Certificate not Ready (%s): %s", c.Reason, c.Message)
		}
		out = append(out, Finding{Severity: SeverityError, Message: msg,
			Action: fmt.Sprintf("run `kubectl describe certificate -n %s %s` and check its issuer", o.Client.Namespace, o.Client.Name)})
	}
	switch {
	case o.Secret == nil:
		out = append(out, Finding{Severity: SeverityError,
			Message: fmt.Sprintf("certificate Secret %s/%s does not exist, so the workload has no client certificate", o.Client.Namespace, o.SecretName),
			Action:  "wait for cert-manager to issue the certificate"})
	case len(o.Chain) == 0:
		out = append(out, Finding{Severity: SeverityError,
			Message: fmt.Sprintf("certificate Secret %s/%s holds no parseable certificate in tls.crt", o.Client.Namespace, o.SecretName),
			Action:  "delete the Secret so cert-manager issues it again"})
	}
	return out
}

func certificateCondition(c *cmapi.Certificate, t cmapi.CertificateConditionType) *cmapi.CertificateCondition {
	for i := range c.Status.Conditions {
		if c.Status.Conditions[i].Type == t {
			return &c.Status.Conditions[i]
		}
	}
	return nil
}

// checkSubject compares the certificate with the subject the server has
// registered, the one it authenticates against.
func checkSubject(o *Objects) []Finding {
	cert := leaf(o)
	if method(o.Client) != v1alpha1.TLSClientAuth || cert == nil || o.Registration == nil {
		return nil
	}
	subject, err := registration.SubjectFromMetadata(&o.Registration.Spec.Client)
	if err != nil || subject == nil {
		return []Finding{{Severity: SeverityError,
			Message: "the registration names no valid tls_client_auth subject, so no certificate can authenticate",
			Action:  "read the Registered condition"}}
	}
	if !subject.Matches(cert, func() (registration.DistinguishedName, error) {
		return registration.CertificateSubjectDN(cert.RawSubject)
	}) {
		return []Finding{{Severity: SeverityError,
			Message: fmt.Sprintf("the certificate does not carry the registered subject %s (its subject is %q, DNS names %v, URIs %v)", subject, cert.Subject.String(), cert.DNSNames, cert.URIs),
			Action:  "make the certificate carry the subject, or change spec.subject"}}
	}
	return none
}

// checkChain verifies the certificate against the server's trust anchors,
// at a time inside the certificate's validity so that expiry is reported
// once, by checkExpiry.
func checkChain(o *Objects) []Finding {
	cert := leaf(o)
	if method(o.Client) != v1alpha1.TLSClientAuth || cert == nil || o.Server == nil {
		return nil
	}
	out := none
	for _, p := range o.TrustAnchorProblems {
		out = append(out, Finding{Severity: SeverityWarning, Message: p, Action: "fix spec.clientTrustAnchors of the AuthorizationServer"})
	}
	if len(o.TrustAnchors) == 0 {
		return append(out, Finding{Severity: SeverityError,
			Message: "the authorization server has no usable client trust anchors, so it trusts no tls_client_auth certificate",
			Action:  "set spec.clientTrustAnchors of the AuthorizationServer to the CA that issues client certificates"})
	}
	roots, intermediates := x509.NewCertPool(), x509.NewCertPool()
	for _, a := range o.TrustAnchors {
		roots.AddCert(a)
	}
	for _, c := range o.Chain[1:] {
		intermediates.AddCert(c)
	}
	at := o.Now
	if at.Before(cert.NotBefore) {
		at = cert.NotBefore
	}
	if at.After(cert.NotAfter) {
		at = cert.NotAfter
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: intermediates, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	var eku x509.CertificateInvalidError
	if err != nil && !(errors.As(err, &eku) && eku.Reason == x509.IncompatibleUsage && !hasClientAuth(cert)) {
		out = append(out, Finding{Severity: SeverityError,
			Message: fmt.Sprintf("the certificate (issuer %q) does not chain to the authorization server's trust anchors: %v", cert.Issuer.String(), err),
			Action:  "issue the certificate from a CA in spec.clientTrustAnchors, or add its CA there"})
	}
	return out
}

// hasClientAuth follows crypto/x509: no extended key usage means any.
func hasClientAuth(cert *x509.Certificate) bool {
	return len(cert.ExtKeyUsage) == 0 || slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) || slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageAny)
}

func checkEKU(o *Objects) []Finding {
	cert := leaf(o)
	if cert == nil {
		return nil
	}
	if !hasClientAuth(cert) {
		return []Finding{{Severity: SeverityError,
			Message: "the certificate lacks the clientAuth extended key usage, so TLS client authentication rejects it",
			Action:  "issue it with the client auth usage (the operator's Certificate asks for it; check the issuer does not drop it)"}}
	}
	return none
}

func checkExpiry(o *Objects) []Finding {
	cert := leaf(o)
	if cert == nil {
		return nil
	}
	switch {
	case o.Now.After(cert.NotAfter):
		return []Finding{{Severity: SeverityError,
			Message: fmt.Sprintf("the certificate expired at %s", cert.NotAfter.UTC().Format(time.RFC3339)),
			Action:  "find out why cert-manager did not renew it (kubectl describe certificate)"}}
	case o.Now.Before(cert.NotBefore):
		return []Finding{{Severity: SeverityError,
			Message: fmt.Sprintf("the certificate is not valid before %s", cert.NotBefore.UTC().Format(time.RFC3339)),
			Action:  "check the issuer's clock"}}
	case cert.NotAfter.Sub(o.Now) < ExpiryWarning:
		return []Finding{{Severity: SeverityWarning,
			Message: fmt.Sprintf("the certificate expires at %s, in less than 7 days", cert.NotAfter.UTC().Format(time.RFC3339)),
			Action:  "check that cert-manager renews it"}}
	}
	return none
}

func checkRenewal(o *Objects) []Finding {
	if o.Certificate == nil || o.Certificate.Status.RenewalTime == nil {
		return nil
	}
	if o.Now.After(o.Certificate.Status.RenewalTime.Time) {
		return []Finding{{Severity: SeverityWarning,
			Message: fmt.Sprintf("cert-manager should have renewed the certificate at %s and has not", o.Certificate.Status.RenewalTime.UTC().Format(time.RFC3339)),
			Action:  fmt.Sprintf("run `kubectl describe certificate -n %s %s` and check the issuer and CertificateRequests", o.Certificate.Namespace, o.Certificate.Name)}}
	}
	return none
}

// checkNotBefore reports a certificate older than the registration's
// min_certificate_not_before, which the server refuses.
func checkNotBefore(o *Objects) []Finding {
	cert := leaf(o)
	if cert == nil || o.Registration == nil || o.Registration.Spec.Client.MinCertificateNotBefore == nil {
		return nil
	}
	minimum := o.Registration.Spec.Client.MinCertificateNotBefore.Time
	if cert.NotBefore.Before(minimum) {
		return []Finding{{Severity: SeverityError,
			Message: fmt.Sprintf("the certificate was issued (notBefore %s) before the registration's min_certificate_not_before %s, so the server refuses it", cert.NotBefore.UTC().Format(time.RFC3339), minimum.UTC().Format(time.RFC3339)),
			Action:  "let cert-manager issue a new certificate (delete the certificate Secret, or `cmctl renew`)"}}
	}
	return none
}

// authFailureExplanations say, per reason the authorization server
// reports in the ClientRegistration status (its client authentication
// failure metric's reasons), what went wrong and what to do.
var authFailureExplanations = map[string][2]string{
	"method_mismatch": {"the client authenticated with another method than its registered token_endpoint_auth_method (for example a client secret alongside the certificate)",
		"send only client_id in the body and authenticate with the registered method"},
	"no_certificate": {"the client sent no certificate",
		"call the mTLS endpoint (mtls_endpoint_aliases.token_endpoint) and present the certificate from the client's Secret; a proxy in between must forward it"},
	"untrusted_chain": {"the certificate does not chain to the server's client trust anchors",
		"issue the certificate from a CA in the server's trust anchors, or add its CA to them"},
	"expired_chain": {"the certificate, or a CA in its chain, had expired or was not yet valid",
		"let cert-manager renew the certificate and make the workload reload it"},
	"wrong_key_usage": {"the certificate lacks the clientAuth extended key usage",
		"issue the certificate with usage client auth"},
	"invalid_chain": {"the certificate chain does not verify",
		"check the chain the workload presents (leaf first, then intermediates)"},
	"subject_mismatch": {"the certificate does not carry the registered subject",
		"present the certificate issued for this OAuthClient, or fix spec.subject"},
	"certificate_not_registered": {"the self-signed certificate is not in the client's registered JWK Set",
		"present the certificate the operator registered (the client's Secret), or wait for a renewed one to be registered"},
	"jwks_uri_unavailable": {"the server could not fetch the client's jwks_uri",
		"check that the jwks_uri is reachable from the server and allowed by its destination policy"},
	"secret_mismatch": {"the client secret is wrong",
		"use the secret of the client's current registration"},
	"certificate_before_registration": {"the certificate was issued before the client's current registration (min_certificate_not_before)",
		"present a certificate issued after the registration: let cert-manager issue a new one"},
	"certificate_revoked": {"the certificate is revoked by its issuer's CRL",
		"issue a new certificate (delete the certificate Secret, or `cmctl renew`)"},
	"certificate_revocation_unavailable": {"the server had no current CRL for the certificate's issuer and checks revocation fail-closed",
		"make the issuer's CRL reachable from the server"},
}

// checkAuthFailures reports the failed authentications the authorization
// server recorded for the client within AuthFailureWindow.
func checkAuthFailures(o *Objects) []Finding {
	if o.Registration == nil {
		return nil
	}
	out := none
	for _, f := range o.Registration.Status.AuthenticationFailures {
		if o.Now.Sub(f.LastSeen.Time) > AuthFailureWindow {
			continue
		}
		what, action := "the server refused the client's authentication", "read the authorization server's log for this client_id"
		if e, ok := authFailureExplanations[f.Reason]; ok {
			what, action = e[0], e[1]
		}
		out = append(out, Finding{Severity: SeverityError,
			Message: fmt.Sprintf("the authorization server refused %d authentication(s) of this client between %s and %s (%s): %s", f.Count,
				f.FirstSeen.UTC().Format(time.RFC3339), f.LastSeen.UTC().Format(time.RFC3339), f.Reason, what),
			Action: action})
	}
	return out
}

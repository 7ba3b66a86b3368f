package controllers

// Pure policy functions of the OAuthClient controller. Each takes observed
// inputs and returns a decision or a condition result; none touches a
// client, so each has a table test.

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	jose "github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/api/v1alpha1/validation"
	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/internal/registration"
)

// Reasons of the OAuthClient conditions.
const (
	ReasonAccepted                    = "Accepted"
	ReasonAuthorizationServerNotFound = "AuthorizationServerNotFound"
	ReasonNamespaceNotAllowed         = "NamespaceNotAllowed"
	ReasonInvalidSubject              = "InvalidSubject"
	// ReasonInvalidSpec: the object breaks a rule of the admission webhook,
	// which may be switched off; the controller applies the same rules.
	ReasonInvalidSpec = "InvalidSpec"
	ReasonNotAccepted = "NotAccepted"

	ReasonIssued                = "Issued"
	ReasonIssuing               = "Issuing"
	ReasonNoIssuerConfigured    = "NoIssuerConfigured"
	ReasonCertificateInvalid    = "CertificateInvalid"
	ReasonCertificateExpired    = "CertificateExpired"
	ReasonSubjectMismatch       = "SubjectMismatch"
	ReasonNotControlled         = "NotControlled"
	ReasonRegistered            = "Registered"
	ReasonSubjectConflict       = "SubjectConflict"
	ReasonWaitingForCertificate = "WaitingForCertificate"
	// ReasonCertificatePredatesRegistration: the certificate was issued
	// before the client's hold on its subject began (it could be a
	// certificate of an earlier holder); the operator has it reissued.
	ReasonCertificatePredatesRegistration = "CertificatePredatesRegistration"
	// ReasonClientManagedKeys: a self-signed client gives its keys in
	// spec.jwks or spec.jwksURI and brings its own certificate; the
	// operator issues none.
	ReasonClientManagedKeys = "ClientManagedKeys"
	ReasonServerCANotReady  = "ServerCANotReady"
	ReasonReady             = "Ready"
	// ReasonCertificateMadeByWorkload: a public client (authenticationMethod
	// none) makes its own certificate in memory; the operator issues none.
	ReasonCertificateMadeByWorkload = "CertificateMadeByWorkload"
	// Reasons of ServiceAccountFound.
	ReasonServiceAccountFound    = "ServiceAccountFound"
	ReasonServiceAccountNotFound = "ServiceAccountNotFound"
)

// ClientAccepted decides whether the AuthorizationServer takes the client:
// it must exist and allow the client's namespace, and a tls_client_auth
// subject must be a value the server can compare.
func ClientAccepted(client *oauthv1alpha1.OAuthClient, as *oauthv1alpha1.AuthorizationServer, namespaceLabels map[string]string) conditionResult {
	asNamespace := authorizationServerNamespace(client)
	if as == nil {
		return falseResult(ReasonAuthorizationServerNotFound, fmt.Sprintf("AuthorizationServer %s/%s does not exist", asNamespace, client.Spec.AuthorizationServerRef.Name))
	}
	allowed, err := namespaceAllowed(as, client.Namespace, namespaceLabels)
	if err != nil {
		return falseResult(ReasonNamespaceNotAllowed, fmt.Sprintf("AuthorizationServer %s/%s has an invalid namespace selector: %v", as.Namespace, as.Name, err))
	}
	if !allowed {
		return falseResult(ReasonNamespaceNotAllowed, fmt.Sprintf("AuthorizationServer %s/%s does not allow clients from namespace %s (allowedClientNamespaces.from: %s)", as.Namespace, as.Name, client.Namespace, allowedFrom(as)))
	}
	if methodOf(client) == oauthv1alpha1.TLSClientAuth {
		if _, err := registration.SubjectFromAPI(client.Spec.Subject); err != nil {
			return falseResult(ReasonInvalidSubject, "spec.subject: "+err.Error())
		}
	}
	if _, errs := validation.ValidateOAuthClient(client, nil); len(errs) > 0 {
		return falseResult(ReasonInvalidSpec, errs.ToAggregate().Error())
	}
	// The server's client policy: which subjects, scopes and audiences the
	// client's namespace may claim. Enforced here, not only at admission.
	if violations := validation.CheckClientAgainstPolicy(client, as, namespaceLabels); len(violations) > 0 {
		msgs := make([]string, 0, len(violations))
		for _, v := range violations {
			msgs = append(msgs, v.Message)
		}
		return falseResult(violations[0].Reason, strings.Join(msgs, "; "))
	}
	return trueResult(ReasonAccepted, fmt.Sprintf("AuthorizationServer %s/%s accepts the client", as.Namespace, as.Name))
}

func allowedFrom(as *oauthv1alpha1.AuthorizationServer) oauthv1alpha1.NamespacesFrom {
	if as.Spec.AllowedClientNamespaces.From == "" {
		return oauthv1alpha1.NamespacesFromSame
	}
	return as.Spec.AllowedClientNamespaces.From
}

// namespaceAllowed applies allowedClientNamespaces: Same (default), All, or
// Selector on the client namespace's labels.
func namespaceAllowed(as *oauthv1alpha1.AuthorizationServer, clientNamespace string, namespaceLabels map[string]string) (bool, error) {
	switch allowedFrom(as) {
	case oauthv1alpha1.NamespacesFromAll:
		return true, nil
	case oauthv1alpha1.NamespacesFromSelector:
		if as.Spec.AllowedClientNamespaces.Selector == nil {
			return false, nil
		}
		sel, err := metav1.LabelSelectorAsSelector(as.Spec.AllowedClientNamespaces.Selector)
		if err != nil {
			return false, err
		}
		return sel.Matches(labels.Set(namespaceLabels)), nil
	default:
		return clientNamespace == as.Namespace, nil
	}
}

func authorizationServerNamespace(c *oauthv1alpha1.OAuthClient) string {
	if c.Spec.AuthorizationServerRef.Namespace != "" {
		return c.Spec.AuthorizationServerRef.Namespace
	}
	return c.Namespace
}

func methodOf(c *oauthv1alpha1.OAuthClient) oauthv1alpha1.AuthenticationMethod {
	if c.Spec.AuthenticationMethod == "" {
		return oauthv1alpha1.TLSClientAuth
	}
	return c.Spec.AuthenticationMethod
}

// clientManagesKeys reports whether a self-signed client supplies its own
// keys (spec.jwks or spec.jwksURI): the operator then issues no
// certificate and registers the keys as given.
func clientManagesKeys(c *oauthv1alpha1.OAuthClient) bool {
	return methodOf(c) == oauthv1alpha1.SelfSignedTLSClientAuth && (c.Spec.JWKS != "" || c.Spec.JWKSURI != "")
}

// ClientKeysReady is the CertificateReady condition of a client that
// manages its own keys. The operator holds no certificate of it: the
// workload brings its own, and what it can check (the jwks parses and every
// key carries its certificate) the admission rules have checked.
func ClientKeysReady(c *oauthv1alpha1.OAuthClient) conditionResult {
	if c.Spec.JWKSURI != "" {
		return trueResult(ReasonClientManagedKeys, fmt.Sprintf("the client supplies its own certificate: the authorization server fetches its keys from spec.jwksURI %s; the operator issues none", c.Spec.JWKSURI))
	}
	set, err := clientKeySet(c)
	if err != nil {
		return falseResult(ReasonInvalidSpec, err.Error())
	}
	return trueResult(ReasonClientManagedKeys, fmt.Sprintf("the client supplies its own certificate: spec.jwks registers %d key(s); the operator issues none", len(set.Keys)))
}

// PublicClientCertificateReady is the CertificateReady condition of a
// public client: there is nothing for the operator to issue, since each pod
// makes its own key and self-signed certificate and proves the key in the
// TLS handshake (RFC 8705 §4).
func PublicClientCertificateReady() conditionResult {
	return trueResult(ReasonCertificateMadeByWorkload, "each pod makes its own key and self-signed certificate in memory and proves the key in the TLS handshake (RFC 8705 §4); the operator issues none and no Secret holds a key")
}

// ServiceAccountFound reports whether the ServiceAccount a public client is
// bound to exists. Its absence is not fatal: the client is registered
// anyway (GitOps may create the ServiceAccount later, in any order), but no
// pod can exchange a token for it until it exists.
func ServiceAccountFound(c *oauthv1alpha1.OAuthClient, found bool) conditionResult {
	if found {
		return trueResult(ReasonServiceAccountFound, fmt.Sprintf("pods running as ServiceAccount %s can exchange their projected token for access tokens", c.Spec.ServiceAccountName))
	}
	return falseResult(ReasonServiceAccountNotFound, fmt.Sprintf("ServiceAccount %s/%s does not exist: create it (kubectl create serviceaccount -n %s %s) and run the workload as it; the client is registered and works as soon as it exists",
		c.Namespace, c.Spec.ServiceAccountName, c.Namespace, c.Spec.ServiceAccountName))
}

// clientServiceAccount is the service account a public client is bound to,
// as <namespace>/<name>, or "" for an mTLS client.
func clientServiceAccount(c *oauthv1alpha1.OAuthClient) string {
	if methodOf(c) != oauthv1alpha1.PublicClient || c.Spec.ServiceAccountName == "" {
		return ""
	}
	return c.Namespace + "/" + c.Spec.ServiceAccountName
}

// clientKeySet parses spec.jwks with the admission rules. Expiry warnings
// are the webhook's to give, so no time is passed.
func clientKeySet(c *oauthv1alpha1.OAuthClient) (*jose.JSONWebKeySet, error) {
	set, _, errs := validation.ParseClientJWKS(c.Spec.JWKS, time.Time{}, field.NewPath("spec", "jwks"))
	if len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	return set, nil
}

// certificateIssuer picks the issuer of a client's certificate: the
// client's own issuerRef, else the server's clientCertificateIssuer for
// tls_client_auth; the operator's SelfSigned Issuer for self-signed clients.
func certificateIssuer(c *oauthv1alpha1.OAuthClient, as *oauthv1alpha1.AuthorizationServer) (cmmeta.IssuerReference, bool) {
	if methodOf(c) == oauthv1alpha1.SelfSignedTLSClientAuth {
		return cmmeta.IssuerReference{Name: SelfSignedIssuerName(c.Name), Kind: cmapi.IssuerKind, Group: "cert-manager.io"}, true
	}
	ref := c.Spec.Certificate.IssuerRef
	if ref == nil {
		ref = as.Spec.ClientCertificateIssuer
	}
	if ref == nil {
		return cmmeta.IssuerReference{}, false
	}
	kind := string(ref.Kind)
	if kind == "" {
		kind = cmapi.IssuerKind
	}
	group := ref.Group
	if group == "" {
		group = "cert-manager.io"
	}
	return cmmeta.IssuerReference{Name: ref.Name, Kind: kind, Group: group}, true
}

func clientLabels(c *oauthv1alpha1.OAuthClient) map[string]string {
	return map[string]string{
		labelManagedBy:       managedByValue,
		LabelClientNamespace: c.Namespace,
		LabelClientName:      boundedName(c.Name, 63),
	}
}

// desiredCertificate is the cert-manager Certificate of a client: exactly
// the registered subject value (literalSubject for a DN, else the one SAN),
// client-auth usage; self-signed clients get a CN of their client_id.
func desiredCertificate(c *oauthv1alpha1.OAuthClient, issuer cmmeta.IssuerReference) *cmapi.Certificate {
	spec := c.Spec.Certificate
	cert := &cmapi.Certificate{
		TypeMeta:   metav1.TypeMeta{APIVersion: cmapi.SchemeGroupVersion.String(), Kind: cmapi.CertificateKind},
		ObjectMeta: metav1.ObjectMeta{Name: c.Name, Namespace: c.Namespace, Labels: clientLabels(c)},
		Spec: cmapi.CertificateSpec{
			SecretName:     CertificateSecretName(c.Name, spec.SecretName),
			SecretTemplate: &cmapi.CertificateSecretTemplate{Labels: clientLabels(c)},
			Duration:       spec.Duration,
			RenewBefore:    spec.RenewBefore,
			Usages:         []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageClientAuth},
			IssuerRef:      issuer,
			PrivateKey: &cmapi.CertificatePrivateKey{
				Algorithm:      privateKeyAlgorithm(spec.PrivateKey.Algorithm),
				Size:           int(spec.PrivateKey.Size),
				RotationPolicy: cmapi.RotationPolicyAlways,
			},
		},
	}
	if methodOf(c) == oauthv1alpha1.SelfSignedTLSClientAuth {
		cert.Spec.CommonName = registration.ClientID(c.Namespace, c.Name)
		return cert
	}
	s := c.Spec.Subject
	switch {
	case s == nil:
	case s.DN != "":
		cert.Spec.LiteralSubject = s.DN
	case s.DNSName != "":
		cert.Spec.DNSNames = []string{s.DNSName}
	case s.URI != "":
		cert.Spec.URIs = []string{s.URI}
	case s.IP != "":
		cert.Spec.IPAddresses = []string{s.IP}
	case s.Email != "":
		cert.Spec.EmailAddresses = []string{s.Email}
	}
	return cert
}

func privateKeyAlgorithm(a oauthv1alpha1.PrivateKeyAlgorithm) cmapi.PrivateKeyAlgorithm {
	switch a {
	case "RSA":
		return cmapi.RSAKeyAlgorithm
	case "Ed25519":
		return cmapi.Ed25519KeyAlgorithm
	default:
		return cmapi.ECDSAKeyAlgorithm
	}
}

// desiredSelfSignedIssuer is the SelfSigned Issuer of a self-signed client.
func desiredSelfSignedIssuer(c *oauthv1alpha1.OAuthClient) *cmapi.Issuer {
	return &cmapi.Issuer{
		TypeMeta:   metav1.TypeMeta{APIVersion: cmapi.SchemeGroupVersion.String(), Kind: cmapi.IssuerKind},
		ObjectMeta: metav1.ObjectMeta{Name: SelfSignedIssuerName(c.Name), Namespace: c.Namespace, Labels: clientLabels(c)},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}},
	}
}

// CertificateReady evaluates the issued certificate: present, parseable,
// current, carrying exactly the registered subject value and issued no
// earlier than heldSince, when the client's hold on its subject began
// (zero: no such bound). It returns the parsed leaf when there is one.
func CertificateReady(c *oauthv1alpha1.OAuthClient, cert *cmapi.Certificate, secret *corev1.Secret, now, heldSince time.Time) (conditionResult, *x509.Certificate) {
	if cert == nil {
		return falseResult(ReasonIssuing, "the cert-manager Certificate has not been created yet"), nil
	}
	if secret == nil || len(secret.Data[corev1.TLSCertKey]) == 0 {
		msg := fmt.Sprintf("cert-manager has not issued Certificate %s yet", cert.Name)
		for _, cond := range cert.Status.Conditions {
			if cond.Type == cmapi.CertificateConditionReady && cond.Message != "" {
				msg += ": " + cond.Message
			}
		}
		return falseResult(ReasonIssuing, msg), nil
	}
	leaf, err := parseLeaf(secret.Data[corev1.TLSCertKey])
	if err != nil {
		return falseResult(ReasonCertificateInvalid, fmt.Sprintf("Secret %s: %v", secret.Name, err)), nil
	}
	if !now.Before(leaf.NotAfter) {
		return falseResult(ReasonCertificateExpired, fmt.Sprintf("the certificate in Secret %s expired at %s", secret.Name, leaf.NotAfter.UTC().Format(time.RFC3339))), leaf
	}
	if methodOf(c) == oauthv1alpha1.TLSClientAuth {
		subject, err := registration.SubjectFromAPI(c.Spec.Subject)
		if err != nil {
			return falseResult(ReasonInvalidSubject, err.Error()), leaf
		}
		if !subject.CarriedExactly(leaf) {
			return falseResult(ReasonSubjectMismatch, fmt.Sprintf("the issued certificate does not carry exactly %s (re-issuance pending?)", subject)), leaf
		}
		if leaf.NotBefore.Before(heldSince) {
			return falseResult(ReasonCertificatePredatesRegistration, fmt.Sprintf("the certificate in Secret %s was issued at %s, before the client's hold on its subject began at %s; the authorization server refuses it and it is being reissued",
				secret.Name, leaf.NotBefore.UTC().Format(time.RFC3339), heldSince.UTC().Format(time.RFC3339))), leaf
		}
	}
	return trueResult(ReasonIssued, fmt.Sprintf("certificate %s valid until %s", certbinding.Thumbprint(leaf.Raw), leaf.NotAfter.UTC().Format(time.RFC3339))), leaf
}

func parseLeaf(pemData []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(pemData)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("tls.crt holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse tls.crt: %w", err)
	}
	return cert, nil
}

// selfSignedKeySet is the certificates a self-signed client registers: the
// current one first, then every earlier one that has not expired, so that a
// workload still holding the previous certificate after a renewal is not
// locked out. Duplicates are dropped.
func selfSignedKeySet(current *x509.Certificate, previous []*x509.Certificate, now time.Time) []*x509.Certificate {
	out := []*x509.Certificate{current}
	for _, p := range previous {
		if !now.Before(p.NotAfter) {
			continue
		}
		if slices.ContainsFunc(out, func(c *x509.Certificate) bool { return bytes.Equal(c.Raw, p.Raw) }) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// desiredClientMetadata renders the RFC 7591 document of a client. certs
// are the self-signed certificates to register (ignored for
// tls_client_auth and for a client that manages its own keys, whose
// spec.jwks is registered re-serialised from the parsed set, or
// spec.jwksURI as jwks_uri). heldSince becomes min_certificate_not_before
// of a tls_client_auth client: the server refuses certificates issued
// before the client's hold on its subject began. A public client (none)
// registers its service account instead, always with bound tokens, and no
// subject, keys or certificate bound: the server does not validate its
// certificates, it binds tokens to whichever one the pod presents.
func desiredClientMetadata(c *oauthv1alpha1.OAuthClient, certs []*x509.Certificate, heldSince time.Time) (oauthv1alpha1.ClientMetadata, error) {
	md := oauthv1alpha1.ClientMetadata{
		ClientID:                              registration.ClientID(c.Namespace, c.Name),
		ClientName:                            c.Namespace + "/" + c.Name,
		TokenEndpointAuthMethod:               string(methodOf(c)),
		Scope:                                 strings.Join(c.Spec.Scopes, " "),
		TLSClientCertificateBoundAccessTokens: c.Spec.CertificateBoundAccessTokens == nil || *c.Spec.CertificateBoundAccessTokens,
		Resources:                             slices.Clone(c.Spec.Audiences),
		IntrospectionResources:                slices.Clone(c.Spec.IntrospectionAudiences),
	}
	for _, g := range c.Spec.GrantTypes {
		md.GrantTypes = append(md.GrantTypes, string(g))
	}
	if len(md.GrantTypes) == 0 {
		md.GrantTypes = []string{string(oauthv1alpha1.GrantTypeClientCredentials)}
	}
	switch methodOf(c) {
	case oauthv1alpha1.TLSClientAuth:
		s, err := registration.SubjectFromAPI(c.Spec.Subject)
		if err != nil {
			return md, err
		}
		s.SetOn(&md)
		if !heldSince.IsZero() {
			md.MinCertificateNotBefore = &metav1.Time{Time: heldSince.UTC()}
		}
	case oauthv1alpha1.SelfSignedTLSClientAuth:
		var set *jose.JSONWebKeySet
		switch {
		case c.Spec.JWKSURI != "":
			md.JWKSURI = c.Spec.JWKSURI
			return md, nil
		case c.Spec.JWKS != "":
			parsed, err := clientKeySet(c)
			if err != nil {
				return md, err
			}
			set = parsed
		case len(certs) == 0:
			return md, errors.New("a self-signed client needs a certificate to register")
		default:
			set = &jose.JSONWebKeySet{}
			for _, cert := range certs {
				set.Keys = append(set.Keys, jose.JSONWebKey{
					Key:          cert.PublicKey,
					KeyID:        certbinding.Thumbprint(cert.Raw),
					Use:          "sig",
					Certificates: []*x509.Certificate{cert},
				})
			}
		}
		raw, err := json.Marshal(set)
		if err != nil {
			return md, fmt.Errorf("encode jwks: %w", err)
		}
		md.JWKS = &runtime.RawExtension{Raw: raw}
	case oauthv1alpha1.PublicClient:
		if c.Spec.ServiceAccountName == "" {
			return md, errors.New("a public client needs spec.serviceAccountName")
		}
		md.ServiceAccount = registration.ServiceAccountUsername(c.Namespace, c.Spec.ServiceAccountName)
		md.TLSClientCertificateBoundAccessTokens = true
	}
	return md, nil
}

// desiredRegistration is the ClientRegistration of a client with its
// server: in the server's namespace, named collision-free after the
// client, labelled for the server's informer.
func desiredRegistration(c *oauthv1alpha1.OAuthClient, as *oauthv1alpha1.AuthorizationServer, md oauthv1alpha1.ClientMetadata) *oauthv1alpha1.ClientRegistration {
	labels := clientLabels(c)
	labels[LabelAuthorizationServer] = as.Name
	return &oauthv1alpha1.ClientRegistration{
		TypeMeta:   metav1.TypeMeta{APIVersion: oauthv1alpha1.GroupVersion.String(), Kind: "ClientRegistration"},
		ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: registration.ObjectName(c.Namespace, c.Name), Labels: labels},
		Spec: oauthv1alpha1.ClientRegistrationSpec{
			AuthorizationServerName: as.Name,
			Holder:                  oauthv1alpha1.ClientHolder{Namespace: c.Namespace, Name: c.Name, UID: c.UID},
			Client:                  md,
		},
	}
}

// registeredClient is what the operator needs to know of an existing
// registration.
type registeredClient struct {
	// Name is the ClientRegistration's namespace/name.
	Name string
	// Holder names the OAuthClient (namespace/name) the registration belongs to.
	Holder    types.NamespacedName
	HolderUID types.UID
	// SubjectKey is the canonical registered subject of a tls_client_auth
	// client, empty otherwise.
	SubjectKey string
	// HeldSince is when the holder's hold on the subject began: the
	// registration's min_certificate_not_before, else its creation.
	HeldSince time.Time
	// Certificates are the self-signed certificates registered in jwks.
	Certificates []*x509.Certificate
}

// registeredFrom reads a ClientRegistration.
func registeredFrom(reg *oauthv1alpha1.ClientRegistration) (registeredClient, error) {
	out := registeredClient{
		Name:      reg.Namespace + "/" + reg.Name,
		Holder:    types.NamespacedName{Namespace: reg.Spec.Holder.Namespace, Name: reg.Spec.Holder.Name},
		HolderUID: reg.Spec.Holder.UID,
		HeldSince: reg.CreationTimestamp.Time,
	}
	md := &reg.Spec.Client
	if md.MinCertificateNotBefore != nil {
		out.HeldSince = md.MinCertificateNotBefore.Time
	}
	subject, err := registration.SubjectFromMetadata(md)
	if err != nil {
		return out, err
	}
	if subject != nil {
		out.SubjectKey = subject.Key()
	}
	if md.JWKS != nil && len(md.JWKS.Raw) > 0 {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(md.JWKS.Raw, &set); err != nil {
			return out, fmt.Errorf("decode registration jwks: %w", err)
		}
		for _, k := range set.Keys {
			if len(k.Certificates) > 0 {
				out.Certificates = append(out.Certificates, k.Certificates[0])
			}
		}
	}
	return out, nil
}

// Field indexes: ClientRegistrations by the subject they hold, and
// OAuthClients by the subject they claim, both across the cluster, so a
// claim finds its rivals and a released subject wakes its claimants.
const (
	indexRegistrationSubject = "oauth.certbound.io/registered-subject"
	indexClientSubject       = "oauth.certbound.io/claimed-subject"
)

func registrationSubjectIndex(o client.Object) []string {
	reg, ok := o.(*oauthv1alpha1.ClientRegistration)
	if !ok {
		return nil
	}
	subject, err := registration.SubjectFromMetadata(&reg.Spec.Client)
	if err != nil || subject == nil {
		return nil
	}
	return []string{subject.Key()}
}

func clientSubjectIndex(o client.Object) []string {
	c, ok := o.(*oauthv1alpha1.OAuthClient)
	if !ok || methodOf(c) != oauthv1alpha1.TLSClientAuth {
		return nil
	}
	subject, err := registration.SubjectFromAPI(c.Spec.Subject)
	if err != nil {
		return nil
	}
	return []string{subject.Key()}
}

// subjectHeldSince is when a tls_client_auth client's hold on subjectKey
// began: kept from its own registration when that holds the same subject
// for the same OAuthClient (same UID), else from the registration Secret
// of an earlier version being migrated (legacyCreated), else now. A client
// that changes its subject, or is recreated under the same name, starts a
// new hold, so every certificate issued before it stops authenticating.
// Times are whole seconds, as certificate validity is.
// The hold is established when it was recorded before this reconcile.
func subjectHeldSince(own *registeredClient, holderUID types.UID, subjectKey string, legacyCreated, now time.Time) (heldSince time.Time, established bool) {
	if own != nil && own.HolderUID == holderUID && own.SubjectKey == subjectKey && !own.HeldSince.IsZero() {
		return own.HeldSince, true
	}
	if !legacyCreated.IsZero() {
		return legacyCreated.UTC().Truncate(time.Second), true
	}
	return now.UTC().Truncate(time.Second), false
}

// serverChangedForClients passes the AuthorizationServer events its clients
// depend on: creation, deletion, a spec change, or a new issuer or
// endpoints.
var serverChangedForClients = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		before, okBefore := e.ObjectOld.(*oauthv1alpha1.AuthorizationServer)
		after, okAfter := e.ObjectNew.(*oauthv1alpha1.AuthorizationServer)
		if !okBefore || !okAfter {
			return true
		}
		return before.Generation != after.Generation || before.Status.Issuer != after.Status.Issuer ||
			before.Status.Endpoints != after.Status.Endpoints
	},
}

// claim is one client's claim on a subject.
type claim struct {
	Holder     types.NamespacedName
	SubjectKey string
	HeldSince  time.Time
	// Name of the claim's ClientRegistration: breaks ties between holds
	// that began in the same second.
	Name string
	// Established: the hold is recorded (the client's own registration of
	// this subject, or a registration Secret being migrated). A claim not
	// yet recorded loses to every recorded hold, even one of the same
	// second.
	Established bool
}

// SubjectUnique refuses a claim on a subject another client holds,
// whichever AuthorizationServer either registers with. A new claim loses
// to every existing registration; between two registrations (a race) the
// earliest hold wins, then the lower name. The holder is named only when it is in the
// claimant's own namespace: other tenants' objects are not disclosed.
func SubjectUnique(ours claim, others []registeredClient) conditionResult {
	for _, o := range others {
		if o.Holder == ours.Holder || o.SubjectKey != ours.SubjectKey || ours.SubjectKey == "" {
			continue
		}
		if ours.Established && (ours.HeldSince.Before(o.HeldSince) || (ours.HeldSince.Equal(o.HeldSince) && ours.Name < o.Name)) {
			continue
		}
		holder := "an OAuthClient in another namespace"
		if o.Holder.Namespace == ours.Holder.Namespace {
			holder = "OAuthClient " + o.Holder.Name
		}
		return falseResult(ReasonSubjectConflict, fmt.Sprintf("the subject is already held by %s (since %s); a subject identifies one client across the cluster", holder, o.HeldSince.UTC().Format(time.RFC3339)))
	}
	return trueResult(ReasonRegistered, "")
}

// nextClientRequeue is when a client must be looked at again without any
// event: when the current certificate expires, or when the first previous
// self-signed certificate expires and must leave the registration.
func nextClientRequeue(now time.Time, leaf *x509.Certificate, registered []*x509.Certificate) time.Duration {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if leaf != nil {
		consider(leaf.NotAfter)
	}
	for _, c := range registered {
		consider(c.NotAfter)
	}
	if next.IsZero() {
		return 0
	}
	return next.Sub(now) + time.Second
}

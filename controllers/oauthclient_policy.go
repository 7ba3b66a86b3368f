package controllers

// Pure policy functions of the OAuthClient controller. Each takes observed
// inputs and returns a decision or a condition result; none touches a
// client, so each has a table test.

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/cert-manager/cert-manager/pkg/util/pki"
	jose "github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/webhook"
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
	ReasonClientIDConflict      = "ClientIDConflict"
	ReasonWaitingForCertificate = "WaitingForCertificate"
	// ReasonClientManagedKeys: a self-signed client gives its keys in
	// spec.jwks or spec.jwksURI and brings its own certificate; the
	// operator issues none.
	ReasonClientManagedKeys = "ClientManagedKeys"
	ReasonServerCANotReady  = "ServerCANotReady"
	ReasonReady             = "Ready"
)

// Registration member names of the subject values (RFC 8705 §2.1.2).
const (
	memberSubjectDN = "tls_client_auth_subject_dn"
	memberSANDNS    = "tls_client_auth_san_dns"
	memberSANURI    = "tls_client_auth_san_uri"
	memberSANIP     = "tls_client_auth_san_ip"
	memberSANEmail  = "tls_client_auth_san_email"
)

// clientSubject is the one registered subject value of a tls_client_auth
// client: the registration member it goes into and its value.
type clientSubject struct {
	Member string
	Value  string
}

// subjectOf returns the subject value of a tls_client_auth client, checked
// the way cert-manager and the authorization server will read it.
func subjectOf(s *oauthv1alpha1.ClientSubject) (clientSubject, error) {
	if s == nil {
		return clientSubject{}, errors.New("tls_client_auth needs a subject")
	}
	var found []clientSubject
	if s.DN != "" {
		found = append(found, clientSubject{memberSubjectDN, s.DN})
	}
	if s.DNSName != "" {
		found = append(found, clientSubject{memberSANDNS, s.DNSName})
	}
	if s.URI != "" {
		found = append(found, clientSubject{memberSANURI, s.URI})
	}
	if s.IP != "" {
		found = append(found, clientSubject{memberSANIP, s.IP})
	}
	if s.Email != "" {
		found = append(found, clientSubject{memberSANEmail, s.Email})
	}
	if len(found) != 1 {
		return clientSubject{}, fmt.Errorf("exactly one of dn, dnsName, uri, ip, email must be set, found %d", len(found))
	}
	if _, err := subjectKey(found[0]); err != nil {
		return clientSubject{}, err
	}
	return found[0], nil
}

// subjectKey is a canonical form of a subject value: two clients whose keys
// are equal would be authenticated by the same certificates.
func subjectKey(s clientSubject) (string, error) {
	switch s.Member {
	case memberSubjectDN:
		rdns, err := pki.UnmarshalSubjectStringToRDNSequence(s.Value)
		if err != nil {
			return "", fmt.Errorf("dn %q is not an RFC 4514 distinguished name: %w", s.Value, err)
		}
		if len(rdns) == 0 {
			return "", fmt.Errorf("dn %q is empty", s.Value)
		}
		key, err := rdnKey(rdns)
		if err != nil {
			return "", fmt.Errorf("dn %q: %w", s.Value, err)
		}
		return "dn:" + key, nil
	case memberSANDNS:
		name := strings.ToLower(strings.TrimSuffix(s.Value, "."))
		if name == "" || strings.ContainsAny(name, " \t/@") {
			return "", fmt.Errorf("dnsName %q is not a DNS name", s.Value)
		}
		return "dns:" + name, nil
	case memberSANURI:
		u, err := url.Parse(s.Value)
		if err != nil || u.Scheme == "" {
			return "", fmt.Errorf("uri %q is not an absolute URI", s.Value)
		}
		return "uri:" + u.String(), nil
	case memberSANIP:
		ip := net.ParseIP(s.Value)
		if ip == nil {
			return "", fmt.Errorf("ip %q is not an IP address", s.Value)
		}
		return "ip:" + ip.String(), nil
	case memberSANEmail:
		local, domain, ok := strings.Cut(s.Value, "@")
		if !ok || local == "" || domain == "" || strings.Contains(domain, "@") {
			return "", fmt.Errorf("email %q is not an email address", s.Value)
		}
		return "email:" + local + "@" + strings.ToLower(domain), nil
	}
	return "", fmt.Errorf("unknown subject member %q", s.Member)
}

// rdnKey renders an RDN sequence with OIDs and case-folded, trimmed values:
// a simplified RFC 4517 distinguishedNameMatch.
func rdnKey(rdns pkix.RDNSequence) (string, error) {
	var b strings.Builder
	for i, rdn := range rdns {
		if i > 0 {
			b.WriteByte(',')
		}
		parts := make([]string, 0, len(rdn))
		for _, atv := range rdn {
			if atv.Type == nil {
				return "", errors.New("unknown attribute type")
			}
			parts = append(parts, atv.Type.String()+"="+strings.ToLower(strings.Join(strings.Fields(fmt.Sprint(atv.Value)), " ")))
		}
		slices.Sort(parts)
		b.WriteString(strings.Join(parts, "+"))
	}
	return b.String(), nil
}

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
		if _, err := subjectOf(client.Spec.Subject); err != nil {
			return falseResult(ReasonInvalidSubject, "spec.subject: "+err.Error())
		}
	}
	if _, errs := webhook.ValidateOAuthClient(client, nil); len(errs) > 0 {
		return falseResult(ReasonInvalidSpec, errs.ToAggregate().Error())
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

// clientKeySet parses spec.jwks with the admission rules. Expiry warnings
// are the webhook's to give, so no time is passed.
func clientKeySet(c *oauthv1alpha1.OAuthClient) (*jose.JSONWebKeySet, error) {
	set, _, errs := webhook.ParseClientJWKS(c.Spec.JWKS, time.Time{}, field.NewPath("spec", "jwks"))
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
		cert.Spec.CommonName = ClientID(c.Namespace, c.Name)
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
// current and carrying exactly the registered subject value. It returns
// the parsed leaf when there is one.
func CertificateReady(c *oauthv1alpha1.OAuthClient, cert *cmapi.Certificate, secret *corev1.Secret, now time.Time) (conditionResult, *x509.Certificate) {
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
		subject, err := subjectOf(c.Spec.Subject)
		if err != nil {
			return falseResult(ReasonInvalidSubject, err.Error()), leaf
		}
		if reason, msg, ok := CertificateMatchesSubject(leaf, subject); !ok {
			return falseResult(reason, msg), leaf
		}
	}
	return trueResult(ReasonIssued, fmt.Sprintf("certificate %s valid until %s", certbinding.Thumbprint(leaf.Raw), leaf.NotAfter.UTC().Format(time.RFC3339))), leaf
}

// CertificateMatchesSubject checks that the certificate carries the
// registered subject value and no other value of the same kind.
func CertificateMatchesSubject(leaf *x509.Certificate, s clientSubject) (reason, message string, ok bool) {
	want, err := subjectKey(s)
	if err != nil {
		return ReasonInvalidSubject, err.Error(), false
	}
	var got []string
	switch s.Member {
	case memberSubjectDN:
		rdns, err := pki.UnmarshalRawDerBytesToRDNSequence(leaf.RawSubject)
		if err == nil {
			if k, err := rdnKey(rdns); err == nil {
				got = []string{"dn:" + k}
			}
		}
	case memberSANDNS:
		for _, n := range leaf.DNSNames {
			got = append(got, mustKey(clientSubject{memberSANDNS, n}))
		}
	case memberSANURI:
		for _, u := range leaf.URIs {
			got = append(got, mustKey(clientSubject{memberSANURI, u.String()}))
		}
	case memberSANIP:
		for _, ip := range leaf.IPAddresses {
			got = append(got, mustKey(clientSubject{memberSANIP, ip.String()}))
		}
	case memberSANEmail:
		for _, e := range leaf.EmailAddresses {
			got = append(got, mustKey(clientSubject{memberSANEmail, e}))
		}
	}
	if len(got) == 1 && got[0] == want {
		return "", "", true
	}
	return ReasonSubjectMismatch, fmt.Sprintf("the issued certificate does not carry exactly %s %q (re-issuance pending?)", s.Member, s.Value), false
}

func mustKey(s clientSubject) string {
	k, err := subjectKey(s)
	if err != nil {
		return "invalid:" + s.Value
	}
	return k
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

// registration is the RFC 7591 client metadata document with the RFC 8705
// members, as the authorization server reads it.
type registration struct {
	ClientID                string              `json:"client_id"`
	ClientName              string              `json:"client_name,omitempty"`
	TokenEndpointAuthMethod string              `json:"token_endpoint_auth_method"`
	GrantTypes              []string            `json:"grant_types"`
	Scope                   string              `json:"scope,omitempty"`
	SubjectDN               *string             `json:"tls_client_auth_subject_dn,omitempty"`
	SANDNS                  *string             `json:"tls_client_auth_san_dns,omitempty"`
	SANURI                  *string             `json:"tls_client_auth_san_uri,omitempty"`
	SANIP                   *string             `json:"tls_client_auth_san_ip,omitempty"`
	SANEmail                *string             `json:"tls_client_auth_san_email,omitempty"`
	JWKS                    *jose.JSONWebKeySet `json:"jwks,omitempty"`
	JWKSURI                 string              `json:"jwks_uri,omitempty"`
	BoundAccessTokens       bool                `json:"tls_client_certificate_bound_access_tokens"`
}

// registrationDocument renders the registration of a client. certs are the
// self-signed certificates to register (ignored for tls_client_auth and for
// a client that manages its own keys, whose spec.jwks is registered
// re-serialised from the parsed set, or spec.jwksURI as jwks_uri).
func registrationDocument(c *oauthv1alpha1.OAuthClient, certs []*x509.Certificate) ([]byte, error) {
	r := registration{
		ClientID:                ClientID(c.Namespace, c.Name),
		ClientName:              c.Namespace + "/" + c.Name,
		TokenEndpointAuthMethod: string(methodOf(c)),
		Scope:                   strings.Join(c.Spec.Scopes, " "),
		BoundAccessTokens:       c.Spec.CertificateBoundAccessTokens == nil || *c.Spec.CertificateBoundAccessTokens,
	}
	for _, g := range c.Spec.GrantTypes {
		r.GrantTypes = append(r.GrantTypes, string(g))
	}
	if len(r.GrantTypes) == 0 {
		r.GrantTypes = []string{string(oauthv1alpha1.GrantTypeClientCredentials)}
	}
	switch methodOf(c) {
	case oauthv1alpha1.TLSClientAuth:
		s, err := subjectOf(c.Spec.Subject)
		if err != nil {
			return nil, err
		}
		v := s.Value
		switch s.Member {
		case memberSubjectDN:
			r.SubjectDN = &v
		case memberSANDNS:
			r.SANDNS = &v
		case memberSANURI:
			r.SANURI = &v
		case memberSANIP:
			r.SANIP = &v
		case memberSANEmail:
			r.SANEmail = &v
		}
	case oauthv1alpha1.SelfSignedTLSClientAuth:
		if c.Spec.JWKSURI != "" {
			r.JWKSURI = c.Spec.JWKSURI
			break
		}
		if c.Spec.JWKS != "" {
			set, err := clientKeySet(c)
			if err != nil {
				return nil, err
			}
			r.JWKS = set
			break
		}
		if len(certs) == 0 {
			return nil, errors.New("a self-signed client needs a certificate to register")
		}
		set := &jose.JSONWebKeySet{}
		for _, cert := range certs {
			set.Keys = append(set.Keys, jose.JSONWebKey{
				Key:          cert.PublicKey,
				KeyID:        certbinding.Thumbprint(cert.Raw),
				Use:          "sig",
				Certificates: []*x509.Certificate{cert},
			})
		}
		r.JWKS = set
	}
	return json.Marshal(r)
}

// registeredClient is what the conflict check needs to know about an
// existing registration.
type registeredClient struct {
	// Holder names the OAuthClient (namespace/name) the registration belongs to.
	Holder     string
	ClientID   string
	SubjectKey string
	// Created orders registrations: the older one holds a value.
	Created time.Time
	// SecretName breaks ties between registrations created in the same second.
	SecretName string
	// Certificates are the self-signed certificates registered in jwks.
	Certificates []*x509.Certificate
}

// parseRegistration reads an existing registration document.
func parseRegistration(data []byte) (registeredClient, error) {
	var r struct {
		registration
		JWKS json.RawMessage `json:"jwks"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return registeredClient{}, fmt.Errorf("decode registration: %w", err)
	}
	out := registeredClient{ClientID: r.ClientID}
	for member, v := range map[string]*string{memberSubjectDN: r.SubjectDN, memberSANDNS: r.SANDNS, memberSANURI: r.SANURI, memberSANIP: r.SANIP, memberSANEmail: r.SANEmail} {
		if v != nil {
			if k, err := subjectKey(clientSubject{member, *v}); err == nil {
				out.SubjectKey = k
			}
		}
	}
	if len(r.JWKS) > 0 && string(r.JWKS) != "null" {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(r.JWKS, &set); err != nil {
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

// indexRegistrationValues indexes registration Secrets by the values that
// must be unique per server: "<server ns>/<server>|id|<client_id>" and
// "<server ns>/<server>|subject|<canonical subject>".
const indexRegistrationValues = "oauth.certbound.io/registration-values"

func registrationIndexValue(server, kind, value string) string {
	return server + "|" + kind + "|" + value
}

// registrationIndexValues computes the index entries of a registration
// Secret (none for any other Secret).
func registrationIndexValues(o client.Object) []string {
	sec, ok := o.(*corev1.Secret)
	if !ok || sec.Labels[LabelAuthorizationServer] == "" {
		return nil
	}
	reg, err := parseRegistration(sec.Data[RegistrationKey])
	if err != nil {
		return nil
	}
	server := sec.Namespace + "/" + sec.Labels[LabelAuthorizationServer]
	values := []string{registrationIndexValue(server, "id", reg.ClientID)}
	if reg.SubjectKey != "" {
		values = append(values, registrationIndexValue(server, "subject", reg.SubjectKey))
	}
	return values
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

// SubjectUnique refuses a client whose client_id or subject value another
// registration of the same server already holds. The first holder wins:
// when two registrations exist (a race), the older one keeps the value.
func SubjectUnique(ours registeredClient, others []registeredClient) conditionResult {
	for _, o := range others {
		if o.Holder == ours.Holder {
			continue
		}
		if !ours.Created.IsZero() && olderThan(ours, o) {
			continue
		}
		if o.ClientID == ours.ClientID {
			return falseResult(ReasonClientIDConflict, fmt.Sprintf("client_id %q is already registered by %s", ours.ClientID, o.Holder))
		}
		if ours.SubjectKey != "" && o.SubjectKey == ours.SubjectKey {
			return falseResult(ReasonSubjectConflict, fmt.Sprintf("the subject value is already registered by %s; each subject value identifies one client", o.Holder))
		}
	}
	return trueResult(ReasonRegistered, "")
}

func olderThan(a, b registeredClient) bool {
	if !a.Created.Equal(b.Created) {
		return a.Created.Before(b.Created)
	}
	return a.SecretName < b.SecretName
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

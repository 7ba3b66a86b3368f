package controllers

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/certbound/certbound/internal/registration"
)

// Labels the operator sets besides those of the registration contract.
const (
	// Labels that name the OAuthClient a registration, certificate or config
	// Secret belongs to, and the server a registration is read by.
	LabelAuthorizationServer = registration.LabelAuthorizationServer
	LabelClientNamespace     = registration.LabelClientNamespace
	LabelClientName          = registration.LabelClientName
	// LabelServingCertificateOf marks the serving certificate Secret of an
	// AuthorizationServer, whose ca.crt goes into the client-config Secrets.
	LabelServingCertificateOf = "oauth.certbound.io/serving-certificate-of"
	labelManagedBy            = "app.kubernetes.io/managed-by"
	labelName                 = "app.kubernetes.io/name"
	labelInstance             = "app.kubernetes.io/instance"
	labelComponent            = "app.kubernetes.io/component"
	managedByValue            = "certbound"

	// finalizerRegistration makes the registration outlive its OAuthClient
	// only until it is deleted.
	finalizerRegistration = "oauth.certbound.io/registration"
)

// maxNameLength is the longest name of most objects (a DNS subdomain).
const maxNameLength = 253

// boundedName returns name if it fits in max characters, else a prefix of
// it and a hash of the whole, so distinct long names stay distinct and the
// result is deterministic.
func boundedName(name string, max int) string {
	if len(name) <= max {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := hex.EncodeToString(sum[:])[:10]
	prefix := name[:max-len(suffix)-1]
	for len(prefix) > 0 && (prefix[len(prefix)-1] == '-' || prefix[len(prefix)-1] == '.') {
		prefix = prefix[:len(prefix)-1]
	}
	return prefix + "-" + suffix
}

// legacyRegistrationSecretName is the registration Secret earlier versions
// wrote in the AuthorizationServer's namespace; the operator migrates it to
// a ClientRegistration and deletes it.
func legacyRegistrationSecretName(clientNamespace, clientName string) string {
	return boundedName("oauthclient-"+clientNamespace+"-"+clientName, maxNameLength)
}

// ConfigSecretName is the client-config Secret in the client's namespace.
func ConfigSecretName(clientName string) string {
	return boundedName(clientName+"-oauth-config", maxNameLength)
}

// CertificateSecretName is the Secret cert-manager writes the client
// certificate to: spec.certificate.secretName or <name>-mtls.
func CertificateSecretName(clientName, specSecretName string) string {
	if specSecretName != "" {
		return specSecretName
	}
	return boundedName(clientName+"-mtls", maxNameLength)
}

// SelfSignedIssuerName is the SelfSigned Issuer of a self-signed client.
func SelfSignedIssuerName(clientName string) string {
	return boundedName(clientName+"-selfsigned", maxNameLength)
}

// Names of an AuthorizationServer's children. The Service has the server's
// own name so that the default issuer https://<name>.<namespace>.svc
// resolves to it.
func servingSecretName(asName string) string { return boundedName(asName+"-tls", maxNameLength) }
func signingSecretName(asName string) string {
	return boundedName(asName+"-signing-keys", maxNameLength)
}
func trustBundleName(asName string) string { return boundedName(asName+"-client-ca", maxNameLength) }
func workloadName(asName string) string    { return asName }

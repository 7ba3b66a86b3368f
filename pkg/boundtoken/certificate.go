package boundtoken

// The workload's own key and self-signed certificate (RFC 8705 §4): the
// authorization server does not validate it against any CA, it binds
// tokens to its SHA-256 thumbprint, and the handshake proves the key.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"math/big"
	"time"
)

// DefaultCertificateLifetime is how long a generated certificate is valid
// unless Options.CertificateLifetime says otherwise.
const DefaultCertificateLifetime = 24 * time.Hour

// clockSkewAllowance backdates a certificate's notBefore so that a server
// whose clock is slightly behind still sees it as valid.
const clockSkewAllowance = 5 * time.Minute

// identity is one key pair and the certificate made for it. Tokens are
// bound to one identity; a new identity starts over with a token exchange.
type identity struct {
	cert tls.Certificate
	// renewAt is when a new identity replaces this one, well before the
	// certificate expires.
	renewAt time.Time
	// thumbprint is the certificate's x5t#S256, safe to show.
	thumbprint string
}

// newIdentity generates an ECDSA P-256 key and a self-signed client
// certificate valid for lifetime from now. The key stays in memory.
func newIdentity(subject string, now time.Time, lifetime time.Duration) (*identity, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	notAfter := now.Add(lifetime)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: subject},
		NotBefore:             now.Add(-clockSkewAllowance),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse self-signed certificate: %w", err)
	}
	sum := sha256.Sum256(der)
	return &identity{
		cert:       tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		renewAt:    renewalTime(now, notAfter),
		thumbprint: base64.RawURLEncoding.EncodeToString(sum[:]),
	}, nil
}

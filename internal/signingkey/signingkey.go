// Package signingkey generates the private JWKs that sign access tokens,
// for the operator (which persists them in the signing-key Secret) and for
// the authorization server (which makes an ephemeral key when none is
// configured), so both make the same keys with the same kid.
package signingkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// Algorithms are the JWS algorithms Generate makes keys for: the values of
// the AuthorizationServer's spec.tokenPolicy.signingAlgorithm enum.
var Algorithms = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256}

// rsaBits is the RSA modulus size for RS256 and PS256: above the 2048 bits
// RFC 7518 §3.3 requires, as NIST SP 800-57 recommends beyond 2030.
const rsaBits = 3072

// Generate makes a private JWK for alg: ES256 on P-256, EdDSA on Ed25519,
// RS256 and PS256 on RSA-3072. alg and use ("sig") are set, and kid is the
// key's RFC 7638 thumbprint (KeyID).
func Generate(alg jose.SignatureAlgorithm) (jose.JSONWebKey, error) {
	var key any
	var err error
	switch alg {
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	case jose.RS256, jose.PS256:
		key, err = rsa.GenerateKey(rand.Reader, rsaBits)
	default:
		return jose.JSONWebKey{}, fmt.Errorf("unsupported signing algorithm %q", alg)
	}
	if err != nil {
		return jose.JSONWebKey{}, fmt.Errorf("generate %s key: %w", alg, err)
	}
	jwk := jose.JSONWebKey{Key: key, Algorithm: string(alg), Use: "sig"}
	if jwk.KeyID, err = KeyID(jwk); err != nil {
		return jose.JSONWebKey{}, err
	}
	return jwk, nil
}

// KeyID is the kid of a key: the base64url (unpadded) RFC 7638 SHA-256
// thumbprint of its public part, stable across restarts and the same for
// the private and the public key.
func KeyID(k jose.JSONWebKey) (string, error) {
	pub := k.Public()
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

package asruntime

// Token signing keys: a private JWK Set whose first key signs and whose
// public parts are all published at /jwks, so keys can be rotated by
// prepending a new key and keeping the old ones until their tokens expire.

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/certbound/certbound/internal/signingkey"
)

// SigningKeys signs access tokens and publishes the verification keys.
type SigningKeys struct {
	signer jose.Signer
	alg    jose.SignatureAlgorithm
	kid    string
	jwks   []byte
	// public and algs verify this server's own tokens at introspection
	// and revocation.
	public []jose.JSONWebKey
	algs   []jose.SignatureAlgorithm
}

// Algorithm is the JWS algorithm of the signing key.
func (k *SigningKeys) Algorithm() jose.SignatureAlgorithm { return k.alg }

// KeyID is the kid of the signing key.
func (k *SigningKeys) KeyID() string { return k.kid }

// PublicJWKS is the JSON JWK Set of all public keys.
func (k *SigningKeys) PublicJWKS() []byte { return k.jwks }

// LoadSigningKeys reads a private JWK Set from path.
func LoadSigningKeys(path string) (*SigningKeys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read signing keys: %w", err)
	}
	keys, err := ParseSigningKeys(data)
	if err != nil {
		return nil, fmt.Errorf("signing keys in %s: %w", path, err)
	}
	return keys, nil
}

// ParseSigningKeys parses a JWK Set whose first key is private.
func ParseSigningKeys(data []byte) (*SigningKeys, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("decode JWK Set: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("the JWK Set has no keys")
	}
	if set.Keys[0].IsPublic() {
		return nil, errors.New("the first key of the JWK Set, the signing key, has no private part")
	}
	return newSigningKeys(set.Keys)
}

// GenerateSigningKeys makes an ephemeral ES256 key: tokens it signs stop
// verifying when the process ends.
func GenerateSigningKeys() (*SigningKeys, error) {
	key, err := signingkey.Generate(jose.ES256)
	if err != nil {
		return nil, err
	}
	return newSigningKeys([]jose.JSONWebKey{key})
}

func newSigningKeys(keys []jose.JSONWebKey) (*SigningKeys, error) {
	public := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(keys))}
	for i := range keys {
		k := keys[i]
		alg, err := signatureAlgorithm(&k)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		k.Algorithm = string(alg)
		if k.KeyID == "" {
			// RFC 7638 thumbprint, as the operator's keys have: a
			// stable kid the resource servers can select the key by.
			if k.KeyID, err = signingkey.KeyID(k); err != nil {
				return nil, fmt.Errorf("key %d: %w", i, err)
			}
		}
		keys[i] = k
		pub := k.Public()
		pub.Use = "sig"
		public.Keys = append(public.Keys, pub)
	}
	signingKey := keys[0]
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.SignatureAlgorithm(signingKey.Algorithm), Key: signingKey},
		(&jose.SignerOptions{}).WithType("at+jwt"),
	)
	if err != nil {
		return nil, fmt.Errorf("signer: %w", err)
	}
	jwks, err := json.Marshal(public)
	if err != nil {
		return nil, fmt.Errorf("encode public JWK Set: %w", err)
	}
	algs := make([]jose.SignatureAlgorithm, 0, len(public.Keys))
	for _, k := range public.Keys {
		algs = append(algs, jose.SignatureAlgorithm(k.Algorithm))
	}
	return &SigningKeys{signer: signer, alg: jose.SignatureAlgorithm(signingKey.Algorithm), kid: signingKey.KeyID, jwks: jwks,
		public: public.Keys, algs: algs}, nil
}

// signatureAlgorithm takes the key's alg if it fits the key type, or the
// default for the type: ES256/384/512 by curve, EdDSA, RS256.
func signatureAlgorithm(k *jose.JSONWebKey) (jose.SignatureAlgorithm, error) {
	var allowed []jose.SignatureAlgorithm
	switch key := k.Key.(type) {
	case *ecdsa.PrivateKey:
		allowed = ecdsaAlgorithm(key.Curve)
	case *ecdsa.PublicKey:
		allowed = ecdsaAlgorithm(key.Curve)
	case ed25519.PrivateKey, ed25519.PublicKey:
		allowed = []jose.SignatureAlgorithm{jose.EdDSA}
	case *rsa.PrivateKey:
		allowed = rsaAlgorithm(key.N.BitLen())
	case *rsa.PublicKey:
		allowed = rsaAlgorithm(key.N.BitLen())
	default:
		return "", fmt.Errorf("key type %T cannot sign access tokens", k.Key)
	}
	if len(allowed) == 0 {
		return "", errors.New("unsupported curve or key size")
	}
	if k.Algorithm == "" {
		return allowed[0], nil
	}
	for _, a := range allowed {
		if string(a) == k.Algorithm {
			return a, nil
		}
	}
	return "", fmt.Errorf("alg %q does not fit the key type", k.Algorithm)
}

// rsaAlgorithm refuses keys below the 2048 bits RFC 7518 §3.3 requires.
func rsaAlgorithm(bits int) []jose.SignatureAlgorithm {
	if bits < 2048 {
		return nil
	}
	return []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.RS384, jose.PS384, jose.RS512, jose.PS512}
}

func ecdsaAlgorithm(c elliptic.Curve) []jose.SignatureAlgorithm {
	switch c {
	case elliptic.P256():
		return []jose.SignatureAlgorithm{jose.ES256}
	case elliptic.P384():
		return []jose.SignatureAlgorithm{jose.ES384}
	case elliptic.P521():
		return []jose.SignatureAlgorithm{jose.ES512}
	}
	return nil
}

// sign returns the compact JWS of claims.
func (k *SigningKeys) sign(claims []byte) (string, error) {
	jws, err := k.signer.Sign(claims)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// verify checks a compact JWS made by one of these keys — typ at+jwt, a
// known kid, the key's own algorithm — and returns its payload.
func (k *SigningKeys) verify(token string) ([]byte, bool) {
	jws, err := jose.ParseSigned(token, k.algs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, false
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "at+jwt" {
		return nil, false
	}
	for i := range k.public {
		key := &k.public[i]
		if key.KeyID != h.KeyID || key.Algorithm != h.Algorithm {
			continue
		}
		if payload, err := jws.Verify(key); err == nil {
			return payload, true
		}
	}
	return nil, false
}

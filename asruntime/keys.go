package asruntime

// Token signing keys: a private JWK Set whose first key signs and whose
// public parts are all published at /jwks, so keys can be rotated by
// prepending a new key and keeping the old ones until their tokens expire.

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/certbound/certbound/internal/signingkey"
)

// SigningKeys signs access tokens and publishes the verification keys.
type SigningKeys struct {
	// The compact JWS is assembled here rather than by go-jose: the
	// protected header is the same for every token, so it is encoded once
	// (jwsPrefix is its base64url and the dot), and a token costs one
	// signature and two base64 encodings.
	signer    crypto.Signer
	signOpts  crypto.SignerOpts
	ecdsaSize int // bytes of each of R and S for an ECDSA key, else 0
	jwsPrefix []byte
	alg       jose.SignatureAlgorithm
	kid       string
	jwks      []byte
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
	signer, ok := signingKey.Key.(crypto.Signer)
	if !ok {
		return nil, errors.New("the signing key has no private part")
	}
	alg := jose.SignatureAlgorithm(signingKey.Algorithm)
	opts, ecdsaSize, err := jwsSignerOpts(alg)
	if err != nil {
		return nil, err
	}
	header, err := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{signingKey.Algorithm, signingKey.KeyID, "at+jwt"})
	if err != nil {
		return nil, fmt.Errorf("encode JWS header: %w", err)
	}
	jwsPrefix := append(base64.RawURLEncoding.AppendEncode(nil, header), '.')
	jwks, err := json.Marshal(public)
	if err != nil {
		return nil, fmt.Errorf("encode public JWK Set: %w", err)
	}
	algs := make([]jose.SignatureAlgorithm, 0, len(public.Keys))
	for _, k := range public.Keys {
		algs = append(algs, jose.SignatureAlgorithm(k.Algorithm))
	}
	return &SigningKeys{signer: signer, signOpts: opts, ecdsaSize: ecdsaSize, jwsPrefix: jwsPrefix,
		alg: alg, kid: signingKey.KeyID, jwks: jwks, public: public.Keys, algs: algs}, nil
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

// jwsSignerOpts are the crypto.Signer options of a JWS algorithm (RFC 7518
// §3) and, for ECDSA, the size of each half of its R||S signature.
func jwsSignerOpts(alg jose.SignatureAlgorithm) (crypto.SignerOpts, int, error) {
	pss := func(h crypto.Hash) crypto.SignerOpts {
		return &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
	}
	switch alg {
	case jose.EdDSA:
		return crypto.Hash(0), 0, nil
	case jose.ES256:
		return crypto.SHA256, 32, nil
	case jose.ES384:
		return crypto.SHA384, 48, nil
	case jose.ES512:
		return crypto.SHA512, 66, nil
	case jose.RS256:
		return crypto.SHA256, 0, nil
	case jose.RS384:
		return crypto.SHA384, 0, nil
	case jose.RS512:
		return crypto.SHA512, 0, nil
	case jose.PS256:
		return pss(crypto.SHA256), 0, nil
	case jose.PS384:
		return pss(crypto.SHA384), 0, nil
	case jose.PS512:
		return pss(crypto.SHA512), 0, nil
	}
	return nil, 0, fmt.Errorf("alg %q cannot sign access tokens", alg)
}

// maxSignatureSize is an RSA-4096 signature, the largest usual one: the
// token's buffer is sized for it so that it is allocated once.
const maxSignatureSize = 512

// sign returns the compact JWS of claims.
func (k *SigningKeys) sign(claims []byte) (string, error) {
	enc := base64.RawURLEncoding
	b := make([]byte, 0, len(k.jwsPrefix)+enc.EncodedLen(len(claims))+1+enc.EncodedLen(maxSignatureSize))
	b = append(b, k.jwsPrefix...)
	b = enc.AppendEncode(b, claims)
	sig, err := k.signature(b)
	if err != nil {
		return "", err
	}
	b = append(b, '.')
	b = enc.AppendEncode(b, sig)
	return string(b), nil
}

// signature signs a JWS signing input.
func (k *SigningKeys) signature(input []byte) ([]byte, error) {
	hash := k.signOpts.HashFunc()
	if hash == 0 {
		return k.signer.Sign(rand.Reader, input, k.signOpts)
	}
	h := hash.New()
	h.Write(input)
	sig, err := k.signer.Sign(rand.Reader, h.Sum(nil), k.signOpts)
	if err != nil || k.ecdsaSize == 0 {
		return sig, err
	}
	return ecdsaJWSSignature(sig, k.ecdsaSize)
}

// ecdsaJWSSignature turns crypto/ecdsa's ASN.1 signature into the fixed-size
// R||S of RFC 7518 §3.4.
func ecdsaJWSSignature(der []byte, size int) ([]byte, error) {
	var seq, r, s cryptobyte.String
	in := cryptobyte.String(der)
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() ||
		!seq.ReadASN1(&r, cbasn1.INTEGER) || !seq.ReadASN1(&s, cbasn1.INTEGER) || !seq.Empty() {
		return nil, errors.New("malformed ECDSA signature")
	}
	out := make([]byte, 2*size)
	for i, n := range []cryptobyte.String{r, s} {
		for len(n) > 0 && n[0] == 0 {
			n = n[1:]
		}
		if len(n) > size {
			return nil, errors.New("malformed ECDSA signature")
		}
		copy(out[(i+1)*size-len(n):], n)
	}
	return out, nil
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

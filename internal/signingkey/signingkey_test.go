package signingkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

func TestGenerate(t *testing.T) {
	for _, alg := range Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			k, err := Generate(alg)
			if err != nil {
				t.Fatal(err)
			}
			if k.IsPublic() || k.Algorithm != string(alg) || k.Use != "sig" || !k.Valid() {
				t.Fatalf("key %+v", k)
			}
			switch key := k.Key.(type) {
			case *ecdsa.PrivateKey:
				if alg != jose.ES256 || key.Curve != elliptic.P256() {
					t.Errorf("%s: ECDSA key on %s", alg, key.Curve.Params().Name)
				}
			case ed25519.PrivateKey:
				if alg != jose.EdDSA {
					t.Errorf("%s: Ed25519 key", alg)
				}
			case *rsa.PrivateKey:
				if (alg != jose.RS256 && alg != jose.PS256) || key.N.BitLen() != rsaBits {
					t.Errorf("%s: RSA key of %d bits", alg, key.N.BitLen())
				}
			default:
				t.Fatalf("%s: key type %T", alg, k.Key)
			}

			// The kid is the RFC 7638 thumbprint of the public key: what a
			// resource server computes from the published JWK Set.
			pub := k.Public()
			tp, err := pub.Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if want := base64.RawURLEncoding.EncodeToString(tp); k.KeyID != want {
				t.Errorf("kid %q, want thumbprint %q", k.KeyID, want)
			}
			if kid, err := KeyID(pub); err != nil || kid != k.KeyID {
				t.Errorf("KeyID of the public key %q %v, want %q", kid, err, k.KeyID)
			}

			// The key survives JSON (the Secret) and signs what its public
			// part verifies.
			data, err := json.Marshal(k)
			if err != nil {
				t.Fatal(err)
			}
			var back jose.JSONWebKey
			if err := json.Unmarshal(data, &back); err != nil {
				t.Fatal(err)
			}
			if back.KeyID != k.KeyID || back.Algorithm != k.Algorithm || back.IsPublic() {
				t.Fatalf("decoded %+v", back)
			}
			signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: back}, nil)
			if err != nil {
				t.Fatal(err)
			}
			jws, err := signer.Sign([]byte("payload"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify(&pub); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestGenerateRefusesOtherAlgorithms(t *testing.T) {
	for _, alg := range []jose.SignatureAlgorithm{"", jose.HS256, jose.ES384, jose.RS512, "none"} {
		if _, err := Generate(alg); err == nil {
			t.Errorf("%q was accepted", alg)
		}
	}
}

func TestKeysAreDistinct(t *testing.T) {
	a, err := Generate(jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(jose.ES256)
	if err != nil {
		t.Fatal(err)
	}
	if a.KeyID == b.KeyID {
		t.Error("two keys share a kid")
	}
}

package asruntime

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/certbound/certbound/internal/signingkey"
)

func privateJWKS(t testing.TB, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	return mustJSON(t, jose.JSONWebKeySet{Keys: keys})
}

func TestSigningKeysByType(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		key  jose.JSONWebKey
		want jose.SignatureAlgorithm
	}{
		"a P-256 key signs ES256":               {jose.JSONWebKey{Key: newKey(t), KeyID: "ec"}, jose.ES256},
		"a P-384 key signs ES384":               {jose.JSONWebKey{Key: p384}, jose.ES384},
		"a P-521 key signs ES512":               {jose.JSONWebKey{Key: p521}, jose.ES512},
		"an Ed25519 key signs EdDSA":            {jose.JSONWebKey{Key: edKey}, jose.EdDSA},
		"an RSA key signs RS256 by default":     {jose.JSONWebKey{Key: rsaKey}, jose.RS256},
		"an RSA key with alg PS256 signs PS256": {jose.JSONWebKey{Key: rsaKey, Algorithm: "PS256"}, jose.PS256},
	} {
		t.Run(name, func(t *testing.T) {
			old := jose.JSONWebKey{Key: newKey(t).Public(), KeyID: "old"}
			keys, err := ParseSigningKeys(privateJWKS(t, c.key, old))
			if err != nil {
				t.Fatal(err)
			}
			if keys.Algorithm() != c.want {
				t.Fatalf("alg %s, want %s", keys.Algorithm(), c.want)
			}
			token, err := keys.sign([]byte(`{"sub":"x"}`))
			if err != nil {
				t.Fatal(err)
			}
			var published jose.JSONWebKeySet
			if err := json.Unmarshal(keys.PublicJWKS(), &published); err != nil {
				t.Fatal(err)
			}
			if len(published.Keys) != 2 || len(published.Key("old")) != 1 {
				t.Fatalf("published %s", keys.PublicJWKS())
			}
			for _, k := range published.Keys {
				if !k.IsPublic() {
					t.Fatal("a private key is published")
				}
			}
			jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{c.want})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := jws.Verify(published.Key(keys.KeyID())[0]); err != nil {
				t.Fatal(err)
			}
			h := jws.Signatures[0].Protected
			if h.KeyID != keys.KeyID() || h.Algorithm != string(c.want) || h.ExtraHeaders[jose.HeaderType] != "at+jwt" {
				t.Fatalf("protected header %+v", h)
			}
		})
	}
}

func TestSigningKeysRejects(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string]string{
		"a 1024-bit RSA key":            string(privateJWKS(t, jose.JSONWebKey{Key: small})),
		"not JSON":                      "{",
		"no keys":                       `{"keys":[]}`,
		"a public first key":            string(privateJWKS(t, jose.JSONWebKey{Key: newKey(t).Public()})),
		"a symmetric key":               string(privateJWKS(t, jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef")})),
		"an alg that does not fit":      string(privateJWKS(t, jose.JSONWebKey{Key: newKey(t), Algorithm: "RS256"})),
		"an EC key with a broken point": `{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseSigningKeys([]byte(doc)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := LoadSigningKeys(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file was accepted")
	}
}

// TestConfiguredSigningKey issues an EdDSA token from a key file.
func TestConfiguredSigningKey(t *testing.T) {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, privateJWKS(t, jose.JSONWebKey{Key: edKey, KeyID: "ed-1"}), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := LoadSigningKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	as := startAS(t, map[string]map[string]any{"post.json": secretClient("post", AuthMethodClientSecretPost, nil)},
		func(_ *testAS, c *Config) { c.SigningKeys = keys })
	resp := as.post(t, as.client(nil), as.publicURL, ccForm("post", "client_secret", "s3cret+/=-correct-horse-battery-staple"))
	if resp.status != http.StatusOK {
		t.Fatalf("%d %s", resp.status, resp.raw)
	}
	token := resp.body["access_token"].(string)
	header, _, _ := strings.Cut(token, ".")
	if !strings.HasPrefix(header, "eyJ") {
		t.Fatalf("token %q", token)
	}
	if claims := as.claims(t, token); claims["sub"] != "post" {
		t.Fatalf("claims %v", claims)
	}
}

// TestGeneratedKeysKeepTheirKid: keys the operator generates (and persists
// in the signing-key Secret) and the ephemeral key come from one generator;
// the server signs with each under the kid and alg the generator gave it,
// which is the RFC 7638 thumbprint it would compute itself.
func TestGeneratedKeysKeepTheirKid(t *testing.T) {
	for _, alg := range signingkey.Algorithms {
		t.Run(string(alg), func(t *testing.T) {
			k, err := signingkey.Generate(alg)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := ParseSigningKeys(privateJWKS(t, k))
			if err != nil {
				t.Fatal(err)
			}
			if keys.KeyID() != k.KeyID || keys.Algorithm() != alg {
				t.Errorf("kid %q alg %s, want %q %s", keys.KeyID(), keys.Algorithm(), k.KeyID, alg)
			}
			// Without a kid the server derives the same one.
			k.KeyID = ""
			derived, err := ParseSigningKeys(privateJWKS(t, k))
			if err != nil {
				t.Fatal(err)
			}
			if derived.KeyID() != keys.KeyID() {
				t.Errorf("derived kid %q, want %q", derived.KeyID(), keys.KeyID())
			}
		})
	}
	eph, err := GenerateSigningKeys()
	if err != nil {
		t.Fatal(err)
	}
	var published jose.JSONWebKeySet
	if err := json.Unmarshal(eph.PublicJWKS(), &published); err != nil {
		t.Fatal(err)
	}
	if len(published.Keys) != 1 || eph.Algorithm() != jose.ES256 {
		t.Fatalf("ephemeral key %s alg %s", eph.PublicJWKS(), eph.Algorithm())
	}
	if kid, err := signingkey.KeyID(published.Keys[0]); err != nil || kid != eph.KeyID() || published.Keys[0].KeyID != kid {
		t.Errorf("ephemeral kid %q published %q, thumbprint %q %v", eph.KeyID(), published.Keys[0].KeyID, kid, err)
	}
}

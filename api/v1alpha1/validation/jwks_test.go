package validation

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/certbound/certbound/api/v1alpha1"
)

var jwksNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// selfSignedKey is a P-256 key and a self-signed certificate for it valid
// from notBefore to notAfter.
func selfSignedKey(t *testing.T, notBefore, notAfter time.Time) (*ecdsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "billing-worker"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// jwkJSON renders one JWK of key, with x5c when cert is given.
func jwkJSON(t *testing.T, key crypto.PublicKey, cert *x509.Certificate) json.RawMessage {
	t.Helper()
	k := jose.JSONWebKey{Key: key, Use: "sig"}
	if cert != nil {
		k.Certificates = []*x509.Certificate{cert}
	}
	data, err := k.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func jwkSet(t *testing.T, keys ...json.RawMessage) string {
	t.Helper()
	data, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestParseClientJWKS(t *testing.T) {
	key, cert := selfSignedKey(t, jwksNow.Add(-time.Hour), jwksNow.Add(90*24*time.Hour))
	otherKey, otherCert := selfSignedKey(t, jwksNow.Add(-time.Hour), jwksNow.Add(90*24*time.Hour))
	_, expired := selfSignedKey(t, jwksNow.Add(-48*time.Hour), jwksNow.Add(-time.Hour))
	valid := jwkJSON(t, key.Public(), cert)

	// A JWK whose key members are another key than its certificate's.
	var mismatched map[string]any
	if err := json.Unmarshal(jwkJSON(t, otherKey.Public(), nil), &mismatched); err != nil {
		t.Fatal(err)
	}
	var withCert map[string]any
	if err := json.Unmarshal(valid, &withCert); err != nil {
		t.Fatal(err)
	}
	mismatched["x5c"] = withCert["x5c"]
	mismatchedJSON, _ := json.Marshal(mismatched)

	for name, tc := range map[string]struct {
		doc      string
		keys     int
		errs     []refusal
		warnings []string
	}{
		"a key with its self-signed certificate is accepted":      {doc: jwkSet(t, valid), keys: 1},
		"the next certificate beside the current one is accepted": {doc: jwkSet(t, valid, jwkJSON(t, otherKey.Public(), otherCert)), keys: 2},
		"an expired certificate is a warning, not a refusal": {
			doc:      jwkSet(t, valid, jwkJSON(t, expired.PublicKey, expired)),
			keys:     2,
			warnings: []string{"spec.jwks.keys[1].x5c[0] expired at"},
		},
		"a document that is not JSON is refused": {
			doc:  "keys: []",
			errs: []refusal{{"spec.jwks", `not a JSON JWK Set (RFC 7517 §5) of the form {"keys": [...]}`}},
		},
		"a set without keys is refused": {
			doc:  `{"keys": []}`,
			errs: []refusal{{"spec.jwks.keys", "the JWK Set has no keys"}},
		},
		"a key without x5c is refused": {
			doc:  jwkSet(t, valid, jwkJSON(t, otherKey.Public(), nil)),
			errs: []refusal{{"spec.jwks.keys[1].x5c", "add x5c with the base64 DER of the self-signed certificate"}},
		},
		"key members that do not match the certificate are refused": {
			doc:  jwkSet(t, mismatchedJSON),
			errs: []refusal{{"spec.jwks.keys[0]", "do not match the public key of the first x5c certificate (RFC 7517 §4.7)"}},
		},
		"a private key is refused": {
			doc:  jwkSet(t, jwkJSON(t, key, cert)),
			errs: []refusal{{"spec.jwks.keys[0]", "register only the public key"}},
		},
		"a symmetric key is refused": {
			doc:  `{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}`,
			errs: []refusal{{"spec.jwks.keys[0]", "register only the public key"}},
		},
		"an unknown key type is refused": {
			doc:  `{"keys": [{"kty": "XYZ"}]}`,
			errs: []refusal{{"spec.jwks.keys[0]", "unsupported key type"}},
		},
		"x5c that is not a certificate is refused": {
			doc:  jwkSet(t, json.RawMessage(strings.Replace(string(valid), `"x5c":["`, `"x5c":["AAAA`, 1))),
			errs: []refusal{{"spec.jwks.keys[0]", "not a valid JWK"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			set, warnings, errs := ParseClientJWKS(tc.doc, jwksNow, field.NewPath("spec", "jwks"))
			assertRefusals(t, errs, tc.errs)
			assertWarnings(t, warnings, tc.warnings)
			if len(tc.errs) > 0 {
				if set != nil {
					t.Errorf("a refused JWK Set is returned: %+v", set)
				}
				return
			}
			if set == nil || len(set.Keys) != tc.keys {
				t.Fatalf("got set %+v, want %d keys", set, tc.keys)
			}
			if !set.Keys[0].Certificates[0].Equal(cert) {
				t.Error("the first key does not carry the given certificate")
			}
		})
	}
}

func TestValidateOAuthClientKeys(t *testing.T) {
	key, cert := selfSignedKey(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	jwks := jwkSet(t, jwkJSON(t, key.Public(), cert))
	for name, tc := range map[string]struct {
		obj  *v1alpha1.OAuthClient
		errs []refusal
	}{
		"a self-signed client with jwks is accepted": {
			obj: with(selfSignedClient(), func(c *v1alpha1.OAuthClient) { c.Spec.JWKS = jwks }),
		},
		"a self-signed client with an https jwksURI is accepted": {
			obj: with(selfSignedClient(), func(c *v1alpha1.OAuthClient) { c.Spec.JWKSURI = "https://keys.example.com/billing/jwks.json" }),
		},
		"jwks and jwksURI together are refused": {
			obj: with(selfSignedClient(), func(c *v1alpha1.OAuthClient) {
				c.Spec.JWKS = jwks
				c.Spec.JWKSURI = "https://keys.example.com/jwks.json"
			}),
			errs: []refusal{{"spec.jwksURI", "give at most one of spec.jwks and spec.jwksURI"}},
		},
		"an invalid jwks is refused at its field": {
			obj:  with(selfSignedClient(), func(c *v1alpha1.OAuthClient) { c.Spec.JWKS = `{"keys": []}` }),
			errs: []refusal{{"spec.jwks.keys", "no keys"}},
		},
		"an http jwksURI is refused": {
			obj:  with(selfSignedClient(), func(c *v1alpha1.OAuthClient) { c.Spec.JWKSURI = "http://keys.example.com/jwks.json" }),
			errs: []refusal{{"spec.jwksURI", "must be an absolute https URL"}},
		},
		"a relative jwksURI is refused": {
			obj:  with(selfSignedClient(), func(c *v1alpha1.OAuthClient) { c.Spec.JWKSURI = "/jwks.json" }),
			errs: []refusal{{"spec.jwksURI", "must be an absolute https URL"}},
		},
		"a jwksURI with a fragment is refused": {
			obj:  with(selfSignedClient(), func(c *v1alpha1.OAuthClient) { c.Spec.JWKSURI = "https://keys.example.com/jwks.json#current" }),
			errs: []refusal{{"spec.jwksURI", "remove the #... part"}},
		},
		"jwks on a tls_client_auth client is refused": {
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.JWKS = jwks }),
			errs: []refusal{{"spec.jwks", "use authenticationMethod self_signed_tls_client_auth"}},
		},
		"jwksURI on a tls_client_auth client is refused": {
			obj:  with(dnClient("CN=a"), func(c *v1alpha1.OAuthClient) { c.Spec.JWKSURI = "https://keys.example.com/jwks.json" }),
			errs: []refusal{{"spec.jwksURI", "remove spec.jwksURI"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			warnings, errs := ValidateOAuthClient(tc.obj, nil)
			assertRefusals(t, errs, tc.errs)
			assertWarnings(t, warnings, nil)
		})
	}
}

package controllers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/signingkey"
)

// fakeKeys generates real keys with predictable kids k1, k2, ...
func fakeKeys() keyGenerator {
	n := 0
	return func(alg oauthv1alpha1.SigningAlgorithm) (jose.JSONWebKey, error) {
		k, err := generateSigningKey(alg)
		n++
		k.KeyID = fmt.Sprintf("k%d", n)
		return k, err
	}
}

func kids(keys []signingKey) string {
	var out []string
	for _, k := range keys {
		s := k.JWK.KeyID
		switch {
		case k.Times.Retired != nil:
			s += "(retired)"
		case k.Times.Activated == nil:
			s += "(published)"
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

// TestSigningKeyRotation walks one key set through its life with an
// injected clock: period 10h, token TTL 1h.
func TestSigningKeyRotation(t *testing.T) {
	p := rotationPolicy{Algorithm: "ES256", Period: 10 * time.Hour, TokenTTL: time.Hour}
	gen := fakeKeys()
	steps := []struct {
		at      time.Duration
		want    string
		changed bool
		next    time.Duration
	}{
		{0, "k1", true, 10 * time.Hour},                                            // first key signs at once
		{5 * time.Hour, "k1", false, 10 * time.Hour},                               // nothing to do
		{10 * time.Hour, "k1,k2(published)", true, 11 * time.Hour},                 // successor published, not signing
		{10*time.Hour + 30*time.Minute, "k1,k2(published)", false, 11 * time.Hour}, // still within one TTL
		{11 * time.Hour, "k2,k1(retired)", true, 12 * time.Hour},                   // promoted after one TTL
		{12 * time.Hour, "k2", true, 21 * time.Hour},                               // old key's tokens expired: dropped
		{21 * time.Hour, "k2,k3(published)", true, 22 * time.Hour},
	}
	var keys []signingKey
	for _, s := range steps {
		now := t0.Add(s.at)
		got, changed, next, err := planSigningKeys(now, keys, p, gen)
		if err != nil {
			t.Fatal(err)
		}
		if kids(got) != s.want || changed != s.changed || !next.Equal(t0.Add(s.next)) {
			t.Errorf("at +%s: keys %s changed=%v next=+%s, want %s changed=%v next=+%s", s.at, kids(got), changed, next.Sub(t0), s.want, s.changed, s.next)
		}
		// The set survives the trip through the Secret.
		jwks, schedule, err := encodeSigningKeys(got)
		if err != nil {
			t.Fatal(err)
		}
		if keys, err = decodeSigningKeys(jwks, schedule); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSigningKeyPolicyCases(t *testing.T) {
	p := rotationPolicy{Algorithm: "ES256", Period: 10 * time.Hour, TokenTTL: time.Hour}
	activated := t0
	es256, _ := generateSigningKey("ES256")
	es256.KeyID = "old"
	signer := signingKey{JWK: es256, Times: keyTimes{KeyID: "old", Published: t0, Activated: &activated}}
	cases := map[string]struct {
		keys   []signingKey
		policy rotationPolicy
		want   string
	}{
		"an empty set gets a signing key":               {nil, p, "k1"},
		"a set without a signer starts over":            {[]signingKey{{JWK: es256, Times: keyTimes{KeyID: "old", Published: t0}}}, p, "k1"},
		"a new algorithm publishes a successor at once": {[]signingKey{signer}, rotationPolicy{Algorithm: "EdDSA", Period: p.Period, TokenTTL: p.TokenTTL}, "old,k1(published)"},
		"a current signer is left alone":                {[]signingKey{signer}, p, "old"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, _, _, err := planSigningKeys(t0.Add(time.Minute), tc.keys, tc.policy, fakeKeys())
			if err != nil {
				t.Fatal(err)
			}
			if kids(got) != tc.want {
				t.Errorf("got %s, want %s", kids(got), tc.want)
			}
		})
	}
}

func TestGenerateSigningKeyPerAlgorithm(t *testing.T) {
	for _, alg := range []oauthv1alpha1.SigningAlgorithm{"ES256", "EdDSA", "RS256", "PS256"} {
		t.Run(string(alg), func(t *testing.T) {
			k, err := generateSigningKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			if k.IsPublic() || k.Algorithm != string(alg) || k.KeyID == "" || k.Use != "sig" {
				t.Errorf("key %+v", k)
			}
		})
	}
	if _, err := generateSigningKey("HS256"); err == nil {
		t.Error("HS256 was accepted")
	}
	// An unset algorithm is the API default.
	if k, err := generateSigningKey(""); err != nil || k.Algorithm != "ES256" {
		t.Errorf("default algorithm: %s %v", k.Algorithm, err)
	}
}

// TestPersistedSigningKeysDecode: a key set written before the generator
// moved to internal/signingkey still decodes, and keys generated now keep
// their kid (the RFC 7638 thumbprint the authorization server publishes)
// through the Secret.
func TestPersistedSigningKeysDecode(t *testing.T) {
	// Written by the generator this package had before (ES256, kid = RFC
	// 7638 thumbprint); a test-only key.
	const jwks = `{"keys":[{"use":"sig","kty":"EC","kid":"IVZj28nG-818H51P8cGq6nUKtC-oHWA723Uh3GjVGnQ","crv":"P-256","alg":"ES256",` +
		`"x":"idsMZTlP4YKLu_B8Do4_LfLCRj9_UPZfr9xHzw84C-c","y":"1-d1ZZ81Hh5Fqee1PLAmTRCdatczyIbXga_w7hRtHyE","d":"iYIK6dmlXooNawH8zb-GlLJPbPHeueiuW4ofIsWiRxE"}]}`
	const schedule = `[{"kid":"IVZj28nG-818H51P8cGq6nUKtC-oHWA723Uh3GjVGnQ","published":"2026-01-01T00:00:00Z","activated":"2026-01-01T00:00:00Z"}]`
	keys, err := decodeSigningKeys([]byte(jwks), schedule)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].Times.Activated == nil {
		t.Fatalf("decoded %+v", keys)
	}
	if kid, err := signingkey.KeyID(keys[0].JWK); err != nil || kid != keys[0].JWK.KeyID {
		t.Errorf("persisted kid %q, thumbprint %q %v", keys[0].JWK.KeyID, kid, err)
	}

	for _, alg := range []oauthv1alpha1.SigningAlgorithm{"ES256", "EdDSA", "RS256", "PS256"} {
		k, err := newSigningKey(t0, alg, generateSigningKey)
		if err != nil {
			t.Fatal(err)
		}
		data, sched, err := encodeSigningKeys([]signingKey{k})
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeSigningKeys(data, sched)
		if err != nil {
			t.Fatal(err)
		}
		kid, err := signingkey.KeyID(back[0].JWK)
		if err != nil || back[0].JWK.KeyID != kid || back[0].Times.KeyID != kid || back[0].JWK.Algorithm != string(alg) {
			t.Errorf("%s: kid %q schedule %q alg %s, thumbprint %q %v", alg, back[0].JWK.KeyID, back[0].Times.KeyID, back[0].JWK.Algorithm, kid, err)
		}
	}
}

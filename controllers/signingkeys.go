package controllers

// Token-signing key rotation, as pure functions of the current key set, the
// policy and the time. The authorization server signs with the first key of
// its private JWK Set and publishes all of them, so:
//
//  1. a new key is added second (published, not signing);
//  2. after one access-token TTL (every resource server that caches the
//     JWKS for at most that long has seen it) it moves to the front and
//     signs; the previous signer is marked retired;
//  3. a retired key stays published for one more token TTL, until every
//     token it signed has expired, and is then dropped.

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/signingkey"
)

// signingKeysDataKey is the data key of the signing-key Secret the
// authorization server reads with --signing-key-file.
const signingKeysDataKey = "keys.json"

// annotationSigningSchedule records when each key was published, started
// signing and was retired.
const annotationSigningSchedule = "oauth.certbound.io/signing-key-schedule"

// keyTimes is the rotation schedule of one key.
type keyTimes struct {
	KeyID     string     `json:"kid"`
	Published time.Time  `json:"published"`
	Activated *time.Time `json:"activated,omitempty"`
	Retired   *time.Time `json:"retired,omitempty"`
}

// signingKey is one key of the private JWK Set with its schedule.
type signingKey struct {
	JWK   jose.JSONWebKey
	Times keyTimes
}

// rotationPolicy are the inputs from the AuthorizationServer spec.
type rotationPolicy struct {
	Algorithm oauthv1alpha1.SigningAlgorithm
	Period    time.Duration
	TokenTTL  time.Duration
}

// keyGenerator makes a new private JWK for an algorithm.
type keyGenerator func(alg oauthv1alpha1.SigningAlgorithm) (jose.JSONWebKey, error)

// planSigningKeys returns the key set as it should be at now, whether it
// differs from keys, and when it must next be looked at. keys[0] is the
// signer. A key set with no signer (empty, or damaged) starts over with a
// new key that signs at once: there is nothing published to roll from.
func planSigningKeys(now time.Time, keys []signingKey, p rotationPolicy, generate keyGenerator) ([]signingKey, bool, time.Time, error) {
	if len(keys) == 0 || keys[0].Times.Activated == nil {
		k, err := newSigningKey(now, p.Algorithm, generate)
		if err != nil {
			return nil, false, time.Time{}, err
		}
		t := now
		k.Times.Activated = &t
		return []signingKey{k}, true, now.Add(p.Period), nil
	}
	out := make([]signingKey, 0, len(keys)+1)
	out = append(out, keys...)
	changed := false

	// 3. drop retired keys whose tokens have all expired.
	kept := out[:0]
	for _, k := range out {
		if k.Times.Retired != nil && !now.Before(k.Times.Retired.Add(p.TokenTTL)) {
			changed = true
			continue
		}
		kept = append(kept, k)
	}
	out = kept

	pending := -1
	for i, k := range out {
		if k.Times.Activated == nil {
			pending = i
			break
		}
	}
	active := out[0]
	due := !now.Before(active.Times.Activated.Add(p.Period)) || active.JWK.Algorithm != string(p.Algorithm)

	// 1. publish a successor when the signer is due.
	if due && pending < 0 {
		k, err := newSigningKey(now, p.Algorithm, generate)
		if err != nil {
			return nil, false, time.Time{}, err
		}
		out = append(out[:1], append([]signingKey{k}, out[1:]...)...)
		pending = 1
		changed = true
	}
	// 2. promote the successor once it has been published for a token TTL.
	if pending > 0 && !now.Before(out[pending].Times.Published.Add(p.TokenTTL)) {
		next := out[pending]
		t := now
		next.Times.Activated = &t
		prev := out[0]
		prev.Times.Retired = &t
		rest := append([]signingKey{}, out[1:pending]...)
		rest = append(rest, out[pending+1:]...)
		out = append([]signingKey{next, prev}, rest...)
		pending = -1
		changed = true
	}

	// When must this run again?
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	if pending < 0 {
		// A successor already published is promoted on its own schedule.
		consider(out[0].Times.Activated.Add(p.Period))
	}
	for _, k := range out {
		if k.Times.Activated == nil {
			consider(k.Times.Published.Add(p.TokenTTL))
		}
		if k.Times.Retired != nil {
			consider(k.Times.Retired.Add(p.TokenTTL))
		}
	}
	return out, changed, next, nil
}

// nextRotation is when planned keys next rotate: a published successor
// starts signing a token TTL after it was published; without one, the
// signer's period ends and a successor is published. keys is a plan, so
// keys[0] signs.
func nextRotation(keys []signingKey, p rotationPolicy) time.Time {
	for _, k := range keys {
		if k.Times.Activated == nil {
			return k.Times.Published.Add(p.TokenTTL)
		}
	}
	return keys[0].Times.Activated.Add(p.Period)
}

func newSigningKey(now time.Time, alg oauthv1alpha1.SigningAlgorithm, generate keyGenerator) (signingKey, error) {
	jwk, err := generate(alg)
	if err != nil {
		return signingKey{}, fmt.Errorf("generate %s signing key: %w", alg, err)
	}
	return signingKey{JWK: jwk, Times: keyTimes{KeyID: jwk.KeyID, Published: now}}, nil
}

// generateSigningKey makes a private JWK for alg with its RFC 7638
// thumbprint as kid, the same key the authorization server would make. An
// empty alg is the API default, ES256.
func generateSigningKey(alg oauthv1alpha1.SigningAlgorithm) (jose.JSONWebKey, error) {
	if alg == "" {
		alg = oauthv1alpha1.SigningAlgorithm(jose.ES256)
	}
	return signingkey.Generate(jose.SignatureAlgorithm(alg))
}

// encodeSigningKeys renders the private JWK Set and the schedule annotation.
func encodeSigningKeys(keys []signingKey) (jwks []byte, schedule string, err error) {
	set := jose.JSONWebKeySet{}
	times := make([]keyTimes, 0, len(keys))
	for _, k := range keys {
		set.Keys = append(set.Keys, k.JWK)
		times = append(times, k.Times)
	}
	if jwks, err = json.Marshal(set); err != nil {
		return nil, "", err
	}
	s, err := json.Marshal(times)
	return jwks, string(s), err
}

// decodeSigningKeys reads a key set back; keys without a schedule entry are
// treated as published now and never activated, so a damaged schedule
// cannot make a key sign early.
func decodeSigningKeys(jwks []byte, schedule string) ([]signingKey, error) {
	if len(jwks) == 0 {
		return nil, nil
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		return nil, fmt.Errorf("decode signing keys: %w", err)
	}
	var times []keyTimes
	if schedule != "" {
		if err := json.Unmarshal([]byte(schedule), &times); err != nil {
			return nil, fmt.Errorf("decode signing key schedule: %w", err)
		}
	}
	byID := map[string]keyTimes{}
	for _, t := range times {
		byID[t.KeyID] = t
	}
	out := make([]signingKey, 0, len(set.Keys))
	for _, k := range set.Keys {
		if k.IsPublic() {
			return nil, errors.New("a signing key has no private part")
		}
		t, ok := byID[k.KeyID]
		if !ok {
			return nil, fmt.Errorf("signing key %q has no schedule", k.KeyID)
		}
		out = append(out, signingKey{JWK: k, Times: t})
	}
	return out, nil
}

package controllers

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestNextRotation(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := t0.Add(d); return &t }
	p := rotationPolicy{Algorithm: "ES256", Period: 720 * time.Hour, TokenTTL: time.Hour}
	for _, tc := range []struct {
		name string
		keys []signingKey
		want time.Time
	}{
		{
			name: "signer alone: its period ends",
			keys: []signingKey{{Times: keyTimes{KeyID: "k1", Published: t0, Activated: at(0)}}},
			want: t0.Add(720 * time.Hour),
		},
		{
			name: "successor published: it signs a token TTL later",
			keys: []signingKey{
				{Times: keyTimes{KeyID: "k1", Published: t0, Activated: at(0)}},
				{Times: keyTimes{KeyID: "k2", Published: t0.Add(720 * time.Hour)}},
			},
			want: t0.Add(721 * time.Hour),
		},
		{
			name: "predecessor retired: the new signer's period, not the retirement",
			keys: []signingKey{
				{Times: keyTimes{KeyID: "k2", Published: t0.Add(720 * time.Hour), Activated: at(721 * time.Hour)}},
				{Times: keyTimes{KeyID: "k1", Published: t0, Activated: at(0), Retired: at(721 * time.Hour)}},
			},
			want: t0.Add(1441 * time.Hour),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextRotation(tc.keys, p); !got.Equal(tc.want) {
				t.Errorf("nextRotation = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestNextRotationOfPlans: a plan's next rotation is when planning again
// first changes the signer or publishes a successor.
func TestNextRotationOfPlans(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p := rotationPolicy{Algorithm: "ES256", Period: 48 * time.Hour, TokenTTL: time.Hour}
	gen := fakeKeys()
	keys, _, _, err := planSigningKeys(t0, nil, p, gen)
	if err != nil {
		t.Fatal(err)
	}
	for step := range 4 {
		at := nextRotation(keys, p)
		before, _, _, err := planSigningKeys(at.Add(-time.Second), keys, p, gen)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := rotationState(before), rotationState(keys); got != want {
			t.Fatalf("step %d: rotated a second before %v: %s, was %s", step, at, got, want)
		}
		after, _, _, err := planSigningKeys(at, before, p, gen)
		if err != nil {
			t.Fatal(err)
		}
		if rotationState(after) == rotationState(before) {
			t.Fatalf("step %d: no rotation at %v: %s", step, at, rotationState(after))
		}
		keys = after
	}
}

// rotationState names the signer and its published successor, if any.
func rotationState(keys []signingKey) string {
	state := "signer " + keys[0].JWK.KeyID
	for _, k := range keys {
		if k.Times.Activated == nil {
			state += ", successor " + k.JWK.KeyID
		}
	}
	return state
}

func TestSigningKeyNextRotationSeries(t *testing.T) {
	const ns, name = "metrics-unit", "as"
	at := time.Date(2026, 3, 1, 12, 0, 0, 500_000_000, time.UTC)
	recordNextRotation(ns, name, at)
	if got, want := testutil.ToFloat64(signingKeyNextRotation.WithLabelValues(ns, name)), 1772366400.5; got != want {
		t.Errorf("gauge = %v, want %v", got, want)
	}
	before := testutil.CollectAndCount(signingKeyNextRotation)
	forgetServerMetrics(ns, name)
	if got := testutil.CollectAndCount(signingKeyNextRotation); got != before-1 {
		t.Errorf("%d series after forgetting, want %d", got, before-1)
	}
}

package boundtoken

import (
	"testing"
	"time"
)

func TestRefreshTime(t *testing.T) {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		jitter   float64
		want     time.Duration
	}{
		{"a token is refreshed at 80% of its life with median jitter", 10 * time.Minute, 0.5, 8 * time.Minute},
		{"the lowest jitter refreshes at 75%", 10 * time.Minute, 0, 7*time.Minute + 30*time.Second},
		{"the highest jitter refreshes just before 85%", 10 * time.Minute, 0.999999, 8*time.Minute + 30*time.Second - 60*time.Microsecond},
		{"an hour-long token is refreshed after 48 minutes", time.Hour, 0.5, 48 * time.Minute},
		{"a token that is already expired is due at once", -time.Minute, 0.5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := refreshTime(issued, issued.Add(tc.lifetime), tc.jitter).Sub(issued)
			if diff := got - tc.want; diff < -time.Millisecond || diff > time.Millisecond {
				t.Errorf("refresh after %s, want %s", got, tc.want)
			}
		})
	}
}

func TestUsableUntil(t *testing.T) {
	issued := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		lifetime time.Duration
		want     time.Duration
	}{
		{"a token is handed out until ten seconds before it expires", 10 * time.Minute, 10*time.Minute - 10*time.Second},
		{"a token living less than twice the margin is handed out for half its life", 12 * time.Second, 6 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := usableUntil(issued, issued.Add(tc.lifetime)).Sub(issued); got != tc.want {
				t.Errorf("usable for %s, want %s", got, tc.want)
			}
		})
	}
}

func TestRenewalTimeReplacesACertificateAt80PercentOfItsLife(t *testing.T) {
	made := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := renewalTime(made, made.Add(24*time.Hour)).Sub(made); got != 19*time.Hour+12*time.Minute {
		t.Errorf("renewed after %s, want 19h12m", got)
	}
}

func TestRetryDelayDoublesUpToAMinute(t *testing.T) {
	for n, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 6: 32 * time.Second, 7: time.Minute, 50: time.Minute} {
		if got := retryDelay(n); got != want {
			t.Errorf("retryDelay(%d) = %s, want %s", n, got, want)
		}
	}
}

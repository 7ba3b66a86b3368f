// Package poll is how every test waits for something to become true: one
// loop, one interval, a failure that says what was awaited and what was
// last seen. Tests poll with a deadline; they never sleep and then assert.
package poll

import (
	"context"
	"testing"
	"time"
)

// Interval is the pause between two checks.
const Interval = 20 * time.Millisecond

// Until calls cond until it reports true, failing t when timeout passes
// with what and cond's last description of the state.
func Until(t testing.TB, timeout time.Duration, what string, cond func() (done bool, state string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	UntilContext(ctx, t, what, cond)
}

// UntilContext is Until bounded by ctx instead of a timeout.
func UntilContext(ctx context.Context, t testing.TB, what string, cond func() (done bool, state string)) {
	t.Helper()
	ticker := time.NewTicker(Interval)
	defer ticker.Stop()
	for {
		done, state := cond()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			if state == "" {
				t.Fatalf("timed out waiting until %s", what)
			}
			t.Fatalf("timed out waiting until %s (last: %s)", what, state)
		case <-ticker.C:
		}
	}
}

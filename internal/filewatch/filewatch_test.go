package filewatch

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbound/certbound/internal/poll"
)

// TestRunReloadsAtStartAndOnChange: the first reload comes as soon as the
// watch is in place (closing the gap after the caller's own load), the
// next one on a change, long before the rescan interval.
func TestRunReloadsAtStartAndOnChange(t *testing.T) {
	dir := t.TempDir()
	var reloads atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, []string{dir}, Options{Rescan: time.Hour, Debounce: 10 * time.Millisecond, What: "test files", Log: slog.Default()},
			func() { reloads.Add(1) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	poll.Until(t, 30*time.Second, "the reload at start", func() (bool, string) {
		return reloads.Load() >= 1, ""
	})
	before := reloads.Load()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "a reload after the change", func() (bool, string) {
		return reloads.Load() > before, ""
	})
}

// TestRunWithoutNotificationsStillRescans: a directory that cannot be
// watched leaves the periodic rescan.
func TestRunWithoutNotificationsStillRescans(t *testing.T) {
	var reloads atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, []string{filepath.Join(t.TempDir(), "missing")}, Options{Rescan: 20 * time.Millisecond, Debounce: time.Hour, What: "test files", Log: slog.Default()},
			func() { reloads.Add(1) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	poll.Until(t, 30*time.Second, "rescans", func() (bool, string) {
		return reloads.Load() >= 2, ""
	})
}

package poll

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf ends the calling goroutine, as
// testing.T's does, and keeps the message.
type recorder struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.msg = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	panic(r)
}

func run(f func(t testing.TB)) (failure string) {
	r := &recorder{}
	func() {
		defer func() {
			if p := recover(); p != nil && p != r {
				panic(p)
			}
		}()
		f(r)
	}()
	return r.msg
}

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	msg := run(func(tb testing.TB) {
		Until(tb, time.Second, "three calls", func() (bool, string) { calls++; return calls == 3, "" })
	})
	if msg != "" || calls != 3 {
		t.Fatalf("failure %q after %d calls, want none after 3", msg, calls)
	}
}

func TestUntilFailsWithWhatAndTheLastState(t *testing.T) {
	msg := run(func(tb testing.TB) {
		Until(tb, 50*time.Millisecond, "the moon turns blue", func() (bool, string) { return false, "still grey" })
	})
	if !strings.Contains(msg, "the moon turns blue") || !strings.Contains(msg, "still grey") {
		t.Fatalf("failure %q does not say what was awaited and what was seen", msg)
	}
}

func TestUntilContextEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	msg := run(func(tb testing.TB) {
		UntilContext(ctx, tb, "never", func() (bool, string) { return false, "" })
	})
	if !strings.Contains(msg, "never") {
		t.Fatalf("a cancelled context did not end the wait: %q", msg)
	}
}

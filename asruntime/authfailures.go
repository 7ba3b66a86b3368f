package asruntime

// Per-client authentication failures, reported back into the client's
// ClientRegistration status so that `certbound diagnose` can tell an
// operator why a client is refused without reading the server's logs. The
// caller of a failed request still learns nothing (clientauth.go); the
// status is readable only by whoever may read the ClientRegistration.
//
// Failures are aggregated in memory and written from a background
// goroutine, never on the request path: per client at most once every
// authFailureFlushInterval, at most authFailureFlushMaxClients clients per
// flush. Only registered clients are recorded, so an unknown client_id
// never causes a write and the aggregate is bounded by the registry's size
// times the bounded reason vocabulary.

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certbound/certbound/api/v1alpha1"
)

const (
	// authFailureFlushInterval is the least time between two status
	// writes for one client.
	authFailureFlushInterval = 30 * time.Second
	// authFailureFlushMaxClients bounds the status writes of one flush;
	// clients left over are written at the next.
	authFailureFlushMaxClients = 20
	// authFailureMaxReasons is how many reasons a status keeps, the most
	// recent first (the CRD's MaxItems).
	authFailureMaxReasons = 5
)

// authFailureRecorder is implemented by a registry that reports a
// registered client's failed authentications back to where it is
// registered.
type authFailureRecorder interface {
	recordAuthFailure(clientID string, f authFailure)
}

// failureTally is the aggregate of one client's failures for one reason.
type failureTally struct {
	count       int64
	first, last time.Time
}

// authFailureAggregator collects failures per client and hands out the
// clients whose report is due.
type authFailureAggregator struct {
	mu      sync.Mutex
	pending map[string]map[authFailure]failureTally
	// written is when each client's failures were last handed out.
	written map[string]time.Time
}

func newAuthFailureAggregator() *authFailureAggregator {
	return &authFailureAggregator{pending: map[string]map[authFailure]failureTally{}, written: map[string]time.Time{}}
}

// record counts one failure of clientID at now.
func (a *authFailureAggregator) record(clientID string, f authFailure, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.add(clientID, f, failureTally{count: 1, first: now, last: now})
}

func (a *authFailureAggregator) add(clientID string, f authFailure, t failureTally) {
	byReason := a.pending[clientID]
	if byReason == nil {
		byReason = map[authFailure]failureTally{}
		a.pending[clientID] = byReason
	}
	byReason[f] = mergeTally(byReason[f], t)
}

// due hands out, and forgets, the failures of at most max clients whose
// last report is at least authFailureFlushInterval old, in client_id
// order so that the choice is deterministic.
func (a *authFailureAggregator) due(now time.Time, max int) map[string]map[authFailure]failureTally {
	a.mu.Lock()
	defer a.mu.Unlock()
	for id, at := range a.written {
		if now.Sub(at) >= authFailureFlushInterval {
			delete(a.written, id)
		}
	}
	out := map[string]map[authFailure]failureTally{}
	for _, id := range slices.Sorted(maps.Keys(a.pending)) {
		if len(out) == max {
			break
		}
		if _, recent := a.written[id]; recent {
			continue
		}
		out[id] = a.pending[id]
		delete(a.pending, id)
		a.written[id] = now
	}
	return out
}

// requeue gives back failures whose write did not happen, for the next
// report.
func (a *authFailureAggregator) requeue(clientID string, tallies map[authFailure]failureTally) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for f, t := range tallies {
		a.add(clientID, f, t)
	}
}

func mergeTally(a, b failureTally) failureTally {
	if a.count == 0 {
		return b
	}
	out := failureTally{count: a.count + b.count, first: a.first, last: a.last}
	if b.first.Before(out.first) {
		out.first = b.first
	}
	if b.last.After(out.last) {
		out.last = b.last
	}
	return out
}

// mergeAuthFailures adds tallies to a status's failures (those another
// replica may have written): counts add up per reason, the most recent
// authFailureMaxReasons reasons are kept, the latest first.
func mergeAuthFailures(existing []v1alpha1.AuthenticationFailure, tallies map[authFailure]failureTally, observedBy string) []v1alpha1.AuthenticationFailure {
	byReason := map[string]v1alpha1.AuthenticationFailure{}
	for _, e := range existing {
		byReason[e.Reason] = e
	}
	for f, t := range tallies {
		merged := v1alpha1.AuthenticationFailure{Reason: string(f), Count: t.count,
			FirstSeen: metav1.NewTime(t.first.UTC().Truncate(time.Second)), LastSeen: metav1.NewTime(t.last.UTC().Truncate(time.Second)), ObservedBy: observedBy}
		if e, ok := byReason[string(f)]; ok {
			merged.Count += e.Count
			if e.FirstSeen.Before(&merged.FirstSeen) {
				merged.FirstSeen = e.FirstSeen
			}
			if merged.LastSeen.Before(&e.LastSeen) {
				merged.LastSeen, merged.ObservedBy = e.LastSeen, e.ObservedBy
			}
		}
		byReason[string(f)] = merged
	}
	out := slices.Collect(maps.Values(byReason))
	slices.SortFunc(out, func(a, b v1alpha1.AuthenticationFailure) int {
		if c := b.LastSeen.Compare(a.LastSeen.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Reason, b.Reason)
	})
	if len(out) > authFailureMaxReasons {
		out = out[:authFailureMaxReasons]
	}
	return out
}

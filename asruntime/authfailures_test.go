package asruntime

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certbound/certbound/api/v1alpha1"
)

// TestAuthFailureAggregatorLimitsWrites feeds failures in and takes the
// due reports out on a made-up timeline: each client is reported at most
// once per authFailureFlushInterval, at most max clients per flush, and
// what was not due stays for later.
func TestAuthFailureAggregatorLimitsWrites(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	a := newAuthFailureAggregator()
	a.record("a", failSubjectMismatch, t0)
	a.record("a", failSubjectMismatch, t0.Add(time.Second))
	a.record("a", failUntrustedChain, t0.Add(2*time.Second))
	a.record("b", failCertRevoked, t0)

	got := a.due(t0.Add(3*time.Second), 10)
	want := map[string]map[authFailure]failureTally{
		"a": {
			failSubjectMismatch: {count: 2, first: t0, last: t0.Add(time.Second)},
			failUntrustedChain:  {count: 1, first: t0.Add(2 * time.Second), last: t0.Add(2 * time.Second)},
		},
		"b": {failCertRevoked: {count: 1, first: t0, last: t0}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("first flush:\n got %v\nwant %v", got, want)
	}
	if got := a.due(t0.Add(4*time.Second), 10); len(got) != 0 {
		t.Fatalf("nothing new, yet reported %v", got)
	}

	// A new failure of a just-reported client waits out the interval.
	a.record("a", failSubjectMismatch, t0.Add(5*time.Second))
	if got := a.due(t0.Add(10*time.Second), 10); len(got) != 0 {
		t.Fatalf("reported again within the interval: %v", got)
	}
	got = a.due(t0.Add(3*time.Second+authFailureFlushInterval), 10)
	if len(got) != 1 || got["a"][failSubjectMismatch].count != 1 {
		t.Fatalf("after the interval: got %v, want a's one failure", got)
	}

	// At most max clients per flush; the rest come next.
	for _, id := range []string{"c", "d", "e"} {
		a.record(id, failNoCertificate, t0)
	}
	first := a.due(t0.Add(time.Hour), 2)
	second := a.due(t0.Add(time.Hour), 2)
	if len(first) != 2 || len(second) != 1 {
		t.Fatalf("flushes of at most 2: got %d then %d clients", len(first), len(second))
	}

	// A write that lost a race is given back and reported with what came
	// since, once the interval is over.
	a.requeue("c", first["c"])
	a.record("c", failNoCertificate, t0.Add(time.Hour))
	if got := a.due(t0.Add(time.Hour+time.Second), 10); len(got) != 0 {
		t.Fatalf("a requeued report skipped the interval: %v", got)
	}
	got = a.due(t0.Add(time.Hour+authFailureFlushInterval), 10)
	if c := got["c"][failNoCertificate]; c.count != 2 || !c.first.Equal(t0) {
		t.Fatalf("requeued report: got %+v, want 2 failures since t0", c)
	}
}

func TestMergeAuthFailures(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) metav1.Time { return metav1.NewTime(t0.Add(time.Duration(s) * time.Second)) }
	tally := func(n int64, first, last int) failureTally {
		return failureTally{count: n, first: at(first).Time, last: at(last).Time}
	}
	tests := []struct {
		name     string
		existing []v1alpha1.AuthenticationFailure
		tallies  map[authFailure]failureTally
		want     []v1alpha1.AuthenticationFailure
	}{{
		name:    "first report",
		tallies: map[authFailure]failureTally{failSubjectMismatch: tally(3, 1, 5)},
		want:    []v1alpha1.AuthenticationFailure{{Reason: "subject_mismatch", Count: 3, FirstSeen: at(1), LastSeen: at(5), ObservedBy: "as-0"}},
	}, {
		name:     "another replica's counts add up",
		existing: []v1alpha1.AuthenticationFailure{{Reason: "subject_mismatch", Count: 2, FirstSeen: at(0), LastSeen: at(9), ObservedBy: "as-1"}},
		tallies:  map[authFailure]failureTally{failSubjectMismatch: tally(3, 1, 5)},
		want:     []v1alpha1.AuthenticationFailure{{Reason: "subject_mismatch", Count: 5, FirstSeen: at(0), LastSeen: at(9), ObservedBy: "as-1"}},
	}, {
		name: "the five latest reasons are kept, latest first",
		existing: []v1alpha1.AuthenticationFailure{
			{Reason: "untrusted_chain", Count: 1, FirstSeen: at(1), LastSeen: at(1)},
			{Reason: "expired_chain", Count: 1, FirstSeen: at(2), LastSeen: at(2)},
			{Reason: "wrong_key_usage", Count: 1, FirstSeen: at(3), LastSeen: at(3)},
			{Reason: "invalid_chain", Count: 1, FirstSeen: at(4), LastSeen: at(4)},
			{Reason: "no_certificate", Count: 1, FirstSeen: at(5), LastSeen: at(5)},
		},
		tallies: map[authFailure]failureTally{failCertRevoked: tally(1, 6, 6)},
		want: []v1alpha1.AuthenticationFailure{
			{Reason: "certificate_revoked", Count: 1, FirstSeen: at(6), LastSeen: at(6), ObservedBy: "as-0"},
			{Reason: "no_certificate", Count: 1, FirstSeen: at(5), LastSeen: at(5)},
			{Reason: "invalid_chain", Count: 1, FirstSeen: at(4), LastSeen: at(4)},
			{Reason: "wrong_key_usage", Count: 1, FirstSeen: at(3), LastSeen: at(3)},
			{Reason: "expired_chain", Count: 1, FirstSeen: at(2), LastSeen: at(2)},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeAuthFailures(tc.existing, tc.tallies, "as-0")
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

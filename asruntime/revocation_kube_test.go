package asruntime_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/certbound/certbound/asruntime"
	"github.com/certbound/certbound/internal/poll"
	"github.com/certbound/certbound/test/testenv"
)

// startAPIServer starts a control plane without cert-manager, with
// namespace ns, for a test of an in-cluster store; stop takes the API
// server away mid-test (and is otherwise called at the end).
func startAPIServer(t *testing.T, timeout time.Duration) (env *testenv.Environment, ctx context.Context, stop func()) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	env, err := testenv.Start(testenv.Options{WithoutCertManager: true})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() { once.Do(func() { _ = env.Stop() }) }
	t.Cleanup(stop)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	if err := env.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	return env, ctx, stop
}

// ns is the namespace of the in-cluster stores under test.
const ns = "auth"

// TestKubeRevocationStoreSharesRevocations runs the in-cluster revocation
// store against a real API server, with several stores standing for the
// replicas of one authorization server.
func TestKubeRevocationStoreSharesRevocations(t *testing.T) {
	env, ctx, stopAPIServer := startAPIServer(t, 90*time.Second)
	kube := kubernetes.NewForConfigOrDie(env.Config)
	configMaps := kube.CoreV1().ConfigMaps(ns)
	newStoreWithQuota := func(asName string, max, maxPerClient int) *asruntime.KubeRevocationStore {
		t.Helper()
		s, err := asruntime.NewKubeRevocationStore(kube, ns, asName, max, maxPerClient, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	newStore := func(asName string, max int) *asruntime.KubeRevocationStore {
		t.Helper()
		return newStoreWithQuota(asName, max, 0)
	}
	run := func(s *asruntime.KubeRevocationStore) context.CancelFunc {
		t.Helper()
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = s.Run(runCtx)
		}()
		waitUntil(t, ctx, "the store has synced", func() bool { return s.Check() == nil })
		return func() { stop(); <-done }
	}
	isRevoked := func(s *asruntime.KubeRevocationStore, jti string) bool {
		t.Helper()
		revoked, err := s.IsRevoked(ctx, jti, time.Time{})
		if err != nil {
			t.Fatalf("IsRevoked(%s): %v", jti, err)
		}
		return revoked
	}
	live := time.Now().Add(10 * time.Minute)

	// Not yet synced: every operation fails closed.
	replicaA := newStore("payments", 0)
	if _, err := replicaA.IsRevoked(ctx, "jti-one", live); err == nil {
		t.Fatal("IsRevoked answered before the first list")
	}
	if err := replicaA.Check(); err == nil {
		t.Fatal("Check passed before the first list")
	}
	if err := replicaA.Revoke(ctx, "billing", "jti-one", live); err == nil {
		t.Fatal("Revoke succeeded before the first list")
	}

	stopA := run(replicaA)
	defer stopA()
	replicaB := newStore("payments", 0)
	stopB := run(replicaB)

	// Revoked at one replica, revoked at the other within the watch
	// latency.
	start := time.Now()
	if err := replicaA.Revoke(ctx, "billing", "jti-one", live); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "the other replica sees the revocation", func() bool { return isRevoked(replicaB, "jti-one") })
	t.Logf("revocation propagated to the other replica in %s", time.Since(start))
	if isRevoked(replicaB, "jti-two") {
		t.Fatal("a token never revoked is revoked")
	}
	otherServer := newStore("ledger", 0)
	defer run(otherServer)()
	if isRevoked(otherServer, "jti-one") {
		t.Fatal("another authorization server's store sees this server's revocation")
	}
	if _, err := replicaA.IsRevoked(ctx, "not a jti/", live); err != nil {
		t.Fatalf("a malformed jti made IsRevoked fail: %v", err)
	}
	if err := replicaA.Revoke(ctx, "billing", "not a jti/", live); err == nil {
		t.Fatal("a malformed jti was recorded")
	}

	// Concurrent revocations of one token, at both replicas, all succeed
	// and make one object.
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		replica := replicaA
		if i%2 == 1 {
			replica = replicaB
		}
		wg.Go(func() { errs <- replica.Revoke(ctx, "billing", "jti-two", live) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a concurrent revocation failed: %v", err)
		}
	}
	list, err := configMaps.List(ctx, metav1.ListOptions{LabelSelector: asruntime.RevocationOfLabel + "=payments"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 {
		t.Fatalf("%d revocation objects, want 2 (one per token)", len(list.Items))
	}

	// A restarted replica sees what was revoked before.
	stopB()
	restarted := newStore("payments", 0)
	defer run(restarted)()
	if !isRevoked(restarted, "jti-one") || !isRevoked(restarted, "jti-two") {
		t.Fatal("a restarted replica forgot revocations")
	}

	// Expired entries are pruned, and the prune is seen everywhere.
	if err := replicaA.Revoke(ctx, "billing", "jti-expired", time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, ctx, "the expired entry is cached", func() bool { return isRevoked(replicaA, "jti-expired") })
	if n, err := replicaA.Prune(time.Now()); err != nil || n != 2 {
		t.Fatalf("Prune: %d entries left, %v; want 2", n, err)
	}
	// Gone from the API server at once, even when the replica's own copy
	// had not shown the new entry yet when it pruned.
	left, err := configMaps.List(ctx, metav1.ListOptions{LabelSelector: asruntime.RevocationOfLabel + "=payments"})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range left.Items {
		if cm.Data[asruntime.RevocationJTIKey] == "jti-expired" {
			t.Fatalf("Prune left the expired entry %s in the API server", cm.Name)
		}
	}
	waitUntil(t, ctx, "the other replica sees the prune", func() bool { return !isRevoked(restarted, "jti-expired") })
	if n, err := restarted.Prune(time.Now()); err != nil || n != 2 {
		t.Fatalf("a second replica's Prune: %d entries left, %v; want 2", n, err)
	}
	if !isRevoked(restarted, "jti-one") {
		t.Fatal("Prune dropped an unexpired revocation")
	}

	// A full store refuses new revocations but still acknowledges the ones
	// it holds.
	small := newStore("payments", 2)
	defer run(small)()
	if err := small.Revoke(ctx, "billing", "jti-three", live); !errors.Is(err, asruntime.ErrRevocationStoreFull) {
		t.Fatalf("a revocation beyond the limit: %v, want ErrRevocationStoreFull", err)
	}
	if err := small.Revoke(ctx, "billing", "jti-one", live); err != nil {
		t.Fatalf("revoking a revoked token in a full store: %v", err)
	}

	// One client's quota: billing holds jti-one and jti-two, so with a
	// quota of two its next revocation is refused, while another client's
	// is recorded. Each object names its revoking client.
	quota := newStoreWithQuota("payments", 0, 2)
	defer run(quota)()
	if err := quota.Revoke(ctx, "billing", "jti-five", live); !errors.Is(err, asruntime.ErrRevocationQuotaExceeded) {
		t.Fatalf("a revocation beyond the client's quota: %v, want ErrRevocationQuotaExceeded", err)
	}
	if err := quota.Revoke(ctx, "billing", "jti-one", live); err != nil {
		t.Fatalf("re-revoking a recorded token at the quota: %v", err)
	}
	if err := quota.Revoke(ctx, "payroll", "jti-six", live); err != nil {
		t.Fatalf("another client's revocation was refused: %v", err)
	}
	if isRevoked(quota, "jti-five") {
		t.Fatal("a refused revocation was recorded")
	}
	list, err = configMaps.List(ctx, metav1.ListOptions{LabelSelector: asruntime.RevocationOfLabel + "=payments"})
	if err != nil {
		t.Fatal(err)
	}
	revokers := map[string]int{}
	for _, cm := range list.Items {
		revokers[cm.Labels[asruntime.RevokedByLabel]]++
	}
	if len(revokers) != 2 || revokers[""] != 0 {
		t.Fatalf("revocations by revoker label %v, want two clients' keys", revokers)
	}

	// The API server goes away: revocations already known are still
	// answered, new ones fail closed.
	stopAPIServer()
	if !isRevoked(replicaA, "jti-one") {
		t.Fatal("the store forgot its revocations when the API server went away")
	}
	if err := replicaA.Check(); err != nil {
		t.Fatalf("the store became not ready when the API server went away: %v", err)
	}
	revokeCtx, cancelRevoke := context.WithTimeout(ctx, 5*time.Second)
	defer cancelRevoke()
	if err := replicaA.Revoke(revokeCtx, "billing", "jti-four", live); err == nil {
		t.Fatal("a revocation was acknowledged without an API server")
	}
}

func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	poll.UntilContext(ctx, t, what, func() (bool, string) { return cond(), "" })
}

func TestKubeRevocationStoreNeedsNamespaceAndServer(t *testing.T) {
	if _, err := asruntime.NewKubeRevocationStore(nil, "", "payments", 0, 0, nil); err == nil {
		t.Fatal("a store without a namespace was accepted")
	}
	if _, err := asruntime.NewKubeRevocationStore(nil, "auth", "", 0, 0, nil); err == nil {
		t.Fatal("a store without an authorization server name was accepted")
	}
}

package controllers_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
)

// TestQuietClusterGetsNoWrites: with nothing changing, the controllers
// write nothing, even when every client in the cluster (whatever earlier
// tests left, Ready or refused) is reconciled again. It first waits until
// no write has happened for 3 s, so it holds wherever it runs in the order.
func TestQuietClusterGetsNoWrites(t *testing.T) {
	ensureBillingClients(t)
	for _, n := range []string{"worker", "reporter", "selfie"} {
		waitForClientCondition(t, billingNS, n, oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	}
	// Settle: wait until no write has happened for 3s.
	deadline := time.Now().Add(testTimeout)
	last, lastChange := writes.Load(), time.Now()
	for time.Since(lastChange) < 3*time.Second {
		if time.Now().After(deadline) {
			t.Fatal("the controllers never stopped writing")
		}
		time.Sleep(pollInterval)
		if w := writes.Load(); w != last {
			last, lastChange = w, time.Now()
		}
	}
	// Poke every object without changing it: a resync-like reconcile of
	// everything must write nothing either.
	var clients oauthv1alpha1.OAuthClientList
	if err := env.Client.List(context.Background(), &clients); err != nil {
		t.Fatal(err)
	}
	before := writes.Load()
	for i := range clients.Items {
		c := &clients.Items[i]
		patch := client.MergeFrom(c.DeepCopy())
		if c.Annotations == nil {
			c.Annotations = map[string]string{}
		}
		c.Annotations["test.certbound.io/poke"] = "1"
		if err := env.Client.Patch(context.Background(), c, patch); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Second) // the quiet period being measured, not a wait for a result
	if w := writes.Load() - before; w != 0 {
		t.Errorf("the controllers made %d writes over a quiet period", w)
	}
}

package controllers_test

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
)

// TestABurstOfRegistrationsCostsItsServerFewStatusWrites: clients created
// together register together, and their server's registeredClients reaches
// their number in a few status writes, not one per registration. The
// server's writes are counted from a watch of it, which delivers every
// change in order, up to the one that shows the final count.
func TestABurstOfRegistrationsCostsItsServerFewStatusWrites(t *testing.T) {
	const ns, server, clients = "burst", "burst", 20
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	createNamespace(t, ns, false)
	mustCreate(t, newServer(ns, server, func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.ClientTrustAnchors = nil
	}))
	// The server's own progress is done before the clients come.
	waitForServerCondition(t, ns, server, oauthv1alpha1.ConditionServingCertificateReady, metav1.ConditionTrue, "")

	watcher, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	w, err := watcher.Watch(ctx, &oauthv1alpha1.AuthorizationServerList{}, client.InNamespace(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()

	for i := range clients {
		name := fmt.Sprintf("client-%02d", i)
		mustCreate(t, newClient(ns, name, func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.AuthorizationServerRef = oauthv1alpha1.AuthorizationServerReference{Name: server, Namespace: ns}
			c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/" + name}
		}))
	}

	statusWrites, count := 0, int32(0)
	for count != clients {
		select {
		case e, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("the watch ended at registeredClients %d after %d writes", count, statusWrites)
			}
			as, isServer := e.Object.(*oauthv1alpha1.AuthorizationServer)
			if !isServer || as.Name != server {
				continue
			}
			if e.Type == watch.Modified {
				statusWrites++
			}
			count = as.Status.RegisteredClients
		case <-ctx.Done():
			t.Fatalf("registeredClients %d after %d writes, want %d within %s", count, statusWrites, clients, testTimeout)
		}
	}
	// One write per registration is what batching removes; a few remain,
	// one per batch window the burst spans.
	if statusWrites > clients/4 {
		t.Errorf("%d status writes of the server for %d registrations, want at most %d", statusWrites, clients, clients/4)
	}
	t.Logf("%d registrations, %d status writes of their server", clients, statusWrites)
}

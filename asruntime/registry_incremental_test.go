package asruntime

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// runRegistry runs a ClientRegistration registry of the server payments in
// namespace auth until the test ends and returns it once it is synced.
func runRegistry(t *testing.T, client dynamic.Interface) *ClientRegistrationRegistry {
	t.Helper()
	reg, err := NewClientRegistrationRegistry(client, "auth", "payments", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "the first load", reg.Synced)
	return reg
}

// TestRegistryLoadsChangesDuringAStreamOfChanges: a registration created
// while other registrations keep changing, with no pause between the
// changes, is loaded without waiting for the changes to stop (a delay
// restarted by every change would never load it).
func TestRegistryLoadsChangesDuringAStreamOfChanges(t *testing.T) {
	created := time.Now().Add(-time.Hour).Truncate(time.Second)
	busy := pkiClient("auth.busy", "tls_client_auth_san_dns", "busy")
	client := newFakeDynamic(clientRegistration(t, "auth", "busy", "payments", "payments", created, busy))
	reg := runRegistry(t, client)
	regs := client.Resource(ClientRegistrationResource).Namespace("auth")

	stop := make(chan struct{})
	streaming := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				streaming <- nil
				return
			default:
			}
			scope := []string{"read", "write"}[i%2]
			busy["scope"] = scope
			if _, err := regs.Update(context.Background(), clientRegistration(t, "auth", "busy", "payments", "payments", created, busy), metav1.UpdateOptions{}); err != nil {
				streaming <- err
				return
			}
			// The fake's watch holds 100 events: the next change follows
			// as soon as the informer has this one.
			for informerScope(reg, "auth/busy") != scope {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	if _, err := regs.Create(context.Background(), clientRegistration(t, "auth", "late", "payments", "payments", created,
		pkiClient("auth.late", "tls_client_auth_san_dns", "late")), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "auth.late to be loaded while auth.busy keeps changing", func() bool {
		_, ok := reg.Clients().Lookup("auth.late")
		return ok
	})
	close(stop)
	if err := <-streaming; err != nil {
		t.Fatalf("updating auth.busy: %v", err)
	}
}

// informerScope is the scope of the registration key in the registry's
// informer.
func informerScope(reg *ClientRegistrationRegistry, key string) string {
	obj, ok, err := reg.informer.GetStore().GetByKey(key)
	if err != nil || !ok {
		return ""
	}
	scope, _, _ := unstructured.NestedString(obj.(*unstructured.Unstructured).Object, "spec", "client", "scope")
	return scope
}

// TestRegistryReparsesOnlyChangedRegistrations: a rebuild keeps the parsed
// client of every registration that did not change (the same *Client) and
// parses the changed one again; the informer's copy holds no
// managedFields.
func TestRegistryReparsesOnlyChangedRegistrations(t *testing.T) {
	created := time.Now().Add(-time.Hour).Truncate(time.Second)
	withManagedFields := func(u *unstructured.Unstructured) *unstructured.Unstructured {
		u.SetManagedFields(operatorManagedFields(created))
		return u
	}
	worker := selfSignedClient("auth.worker", map[string]any{"jwks": ownCertificateJWKS(t, newKey(t), "worker")})
	billing := pkiClient("auth.billing", "tls_client_auth_san_dns", "billing")
	client := newFakeDynamic(
		withManagedFields(clientRegistration(t, "auth", "worker", "payments", "payments", created, worker)),
		withManagedFields(clientRegistration(t, "auth", "billing", "payments", "payments", created, billing)),
	)
	reg := runRegistry(t, client)
	lookup := func(id string) *Client {
		c, _ := reg.Clients().Lookup(id)
		return c
	}
	workerBefore, billingBefore := lookup("auth.worker"), lookup("auth.billing")
	if workerBefore == nil || billingBefore == nil {
		t.Fatalf("loaded %d clients, want auth.worker and auth.billing", reg.Clients().Len())
	}
	for _, obj := range reg.informer.GetStore().List() {
		if u := obj.(*unstructured.Unstructured); len(u.GetManagedFields()) > 0 {
			t.Errorf("the informer keeps the managedFields of %s", u.GetName())
		}
	}

	billing["tls_client_auth_san_dns"] = "billing-v2"
	if _, err := client.Resource(ClientRegistrationResource).Namespace("auth").Update(context.Background(),
		clientRegistration(t, "auth", "billing", "payments", "payments", created, billing), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "billing's new subject", func() bool { return lookup("auth.billing").subject.Value == "billing-v2" })
	if lookup("auth.worker") != workerBefore {
		t.Fatal("the unchanged auth.worker was parsed again")
	}
	if lookup("auth.billing") == billingBefore {
		t.Fatal("the changed auth.billing kept its old client")
	}
}

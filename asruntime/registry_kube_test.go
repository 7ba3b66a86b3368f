package asruntime

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/registration"
)

// clientRegistration is a ClientRegistration as the API server would hold
// it; client is spec.client (any JSON value, so that malformed ones can be
// written too).
func clientRegistration(t testing.TB, namespace, name, label, specServer string, created time.Time, client any) *unstructured.Unstructured {
	t.Helper()
	b, err := json.Marshal(client)
	if err != nil {
		t.Fatal(err)
	}
	var c any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	metadata := map[string]any{
		"namespace":         namespace,
		"name":              name,
		"creationTimestamp": created.UTC().Format(time.RFC3339),
	}
	if label != "" {
		metadata["labels"] = map[string]any{registration.LabelAuthorizationServer: label}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(),
		"kind":       "ClientRegistration",
		"metadata":   metadata,
		"spec": map[string]any{
			"authorizationServerName": specServer,
			"holder":                  map[string]any{"namespace": "team", "name": name, "uid": "uid-" + name},
			"client":                  c,
		},
	}}
}

func newFakeDynamic(objects ...runtime.Object) *dynamicfake.FakeDynamicClient {
	return dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
		map[schema.GroupVersionResource]string{ClientRegistrationResource: "ClientRegistrationList"}, objects...)
}

// TestClientRegistrationRegistry follows ClientRegistrations through
// creates, updates and deletes; loads only this server's, in its
// namespace; skips (and counts) what it cannot use while the others keep
// working; and keeps the first holder of a client_id.
func TestClientRegistrationRegistry(t *testing.T) {
	const ns, as = "auth", "payments"
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	_, jwk := selfSigned(t, "worker")
	var jwks any
	if err := json.Unmarshal(jwksJSON(t, jwk), &jwks); err != nil {
		t.Fatal(err)
	}
	billing := pkiClient("auth.billing", "tls_client_auth_subject_dn", "CN=billing")
	billing["min_certificate_not_before"] = t0.UTC().Format(time.RFC3339)
	billing["resources"] = []string{"https://api.example/orders"}
	client := newFakeDynamic(
		clientRegistration(t, ns, "billing", as, as, t0, billing),
		clientRegistration(t, ns, "worker", as, as, t0, selfSignedClient("auth.worker", map[string]any{"jwks": jwks})),
		// Another server's, and ours in another namespace: not loaded, not errors.
		clientRegistration(t, ns, "ledger", "ledger", "ledger", t0, pkiClient("auth.ledger", "tls_client_auth_san_dns", "ledger")),
		clientRegistration(t, "elsewhere", "billing", as, as, t0, pkiClient("elsewhere.billing", "tls_client_auth_san_dns", "x")),
		// Ours by label only, no subject, and not client metadata at all:
		// skipped and counted.
		clientRegistration(t, ns, "confused", as, "ledger", t0, pkiClient("auth.confused", "tls_client_auth_san_dns", "confused")),
		clientRegistration(t, ns, "no-subject", as, as, t0, map[string]any{"client_id": "auth.nosubject", "token_endpoint_auth_method": "tls_client_auth"}),
		clientRegistration(t, ns, "garbled", as, as, t0, "not an object"),
	)
	metrics := NewMetrics()
	reg, err := NewClientRegistrationRegistry(client, ns, as, nil, metrics)
	if err != nil {
		t.Fatal(err)
	}
	if reg.Synced() {
		t.Fatal("synced before it ran")
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

	lookup := func(id string) *Client {
		c, _ := reg.Clients().Lookup(id)
		return c
	}
	if n := reg.Clients().Len(); n != 2 {
		t.Fatalf("%d clients loaded, want billing and worker", n)
	}
	b := lookup("auth.billing")
	if b == nil || b.subject == nil || b.subject.Value != "CN=billing" || !b.minCertNotBefore.Equal(t0) || len(b.resources) != 1 {
		t.Fatalf("auth.billing = %+v", b)
	}
	if w := lookup("auth.worker"); w == nil || len(w.selfSignedCerts) != 1 {
		t.Fatalf("auth.worker = %+v, want its inline jwks certificate", w)
	}
	if errs := counterValue(t, metrics, "certbound_as_registry_load_errors_total", "", ""); errs != 3 {
		t.Fatalf("registry_load_errors_total = %v, want 3 (confused, no-subject, garbled)", errs)
	}

	regs := client.Resource(ClientRegistrationResource).Namespace(ns)
	create := func(u *unstructured.Unstructured) {
		t.Helper()
		if _, err := regs.Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// A later registration of the same client_id never displaces the first;
	// one for another server arriving through the watch is not loaded.
	create(clientRegistration(t, ns, "billing-impostor", as, as, t0.Add(time.Minute), pkiClient("auth.billing", "tls_client_auth_subject_dn", "CN=impostor")))
	create(clientRegistration(t, ns, "late-ledger", "ledger", "ledger", t0, pkiClient("auth.late", "tls_client_auth_san_dns", "late")))
	create(clientRegistration(t, ns, "reporting", as, as, t0.Add(time.Minute), pkiClient("auth.reporting", "tls_client_auth_san_uri", "spiffe://cluster.local/reporting")))
	waitFor(t, "reporting is registered", func() bool { return lookup("auth.reporting") != nil })
	if b := lookup("auth.billing"); b.subject.Value != "CN=billing" {
		t.Fatalf("auth.billing taken over: subject %s", b.subject)
	}
	if lookup("auth.late") != nil {
		t.Fatal("another server's registration was loaded")
	}

	// An update takes effect: billing's certificate subject changes.
	billing["tls_client_auth_subject_dn"] = "CN=billing-v2"
	if _, err := regs.Update(ctx, clientRegistration(t, ns, "billing", as, as, t0, billing), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "billing's new subject", func() bool { return lookup("auth.billing").subject.Value == "CN=billing-v2" })

	// An update that breaks a registration drops that client only.
	if _, err := regs.Update(ctx, clientRegistration(t, ns, "reporting", as, as, t0.Add(time.Minute),
		map[string]any{"client_id": "auth.reporting", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_uri": "relative"}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the broken reporting to be dropped", func() bool { return lookup("auth.reporting") == nil })
	if lookup("auth.billing") == nil || lookup("auth.worker") == nil {
		t.Fatal("a broken registration took others with it")
	}

	// Deletes: the client goes; the next holder of a client_id takes over
	// only once the first is gone.
	if err := regs.Delete(ctx, "worker", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "worker is gone", func() bool { return lookup("auth.worker") == nil })
	if err := regs.Delete(ctx, "billing", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the impostor's registration to be the one", func() bool {
		b := lookup("auth.billing")
		return b != nil && b.subject.Value == "CN=impostor"
	})
	if n := counterValue(t, metrics, "certbound_as_clients_loaded", "", ""); n != 1 {
		t.Fatalf("clients_loaded = %v, want 1", n)
	}
}

func TestClientRegistrationRegistryNeedsNamespaceAndServer(t *testing.T) {
	if _, err := NewClientRegistrationRegistry(newFakeDynamic(), "", "payments", nil, nil); err == nil {
		t.Fatal("a registry without a namespace was accepted")
	}
	if _, err := NewClientRegistrationRegistry(newFakeDynamic(), "auth", "", nil, nil); err == nil {
		t.Fatal("a registry without an authorization server name was accepted")
	}
}

// TestClientRegistrationRegistryRunEndsWithoutAList: a registry that never
// completes its first list reports so when its context ends, and is never
// synced.
func TestClientRegistrationRegistryRunEndsWithoutAList(t *testing.T) {
	client := newFakeDynamic()
	client.PrependReactor("list", "clientregistrations", func(action k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("the API server is away")
	})
	reg, err := NewClientRegistrationRegistry(client, "auth", "payments", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := reg.Run(ctx); err == nil {
		t.Fatal("Run returned nil without ever listing")
	}
	if reg.Synced() || reg.Clients().Len() != 0 {
		t.Fatal("synced without a list")
	}
}

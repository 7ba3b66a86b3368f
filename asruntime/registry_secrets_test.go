package asruntime_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/certbound/certbound/asruntime"
	"github.com/certbound/certbound/test/testenv"
)

func registrationSecret(name, asName, doc string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{asruntime.AuthorizationServerLabel: asName}},
		Data:       map[string][]byte{asruntime.RegistrationKey: []byte(doc)},
	}
}

// TestSecretRegistryFollowsRegistrationSecrets runs the in-cluster registry
// against a real API server: it follows creates and deletes, skips what it
// cannot use, keeps the first holder of a client_id, and keeps serving the
// last known clients when the API server goes away.
func TestSecretRegistryFollowsRegistrationSecrets(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	env, err := testenv.Start(testenv.Options{WithoutCertManager: true})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = env.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const ns = "auth"
	if err := env.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(env.Config)
	secrets := kube.CoreV1().Secrets(ns)
	create := func(s *corev1.Secret) {
		t.Helper()
		if _, err := secrets.Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const billing = `{"client_id":"auth.billing","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN=billing","grant_types":["client_credentials"],"tls_client_certificate_bound_access_tokens":true}`
	create(registrationSecret("billing", "payments", billing))
	create(registrationSecret("not-json", "payments", `{"client_id":`))
	create(registrationSecret("other-server", "ledger", `{"client_id":"auth.ledger","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_dns":"ledger","grant_types":["client_credentials"]}`))

	metrics := asruntime.NewMetrics()
	reg, err := asruntime.NewSecretRegistry(kube, ns, "payments", nil, metrics)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopRegistry := context.WithCancel(ctx)
	defer stopRegistry()
	go func() { _ = reg.Run(runCtx) }()

	waitFor := func(what string, cond func(*asruntime.ClientSet) bool) {
		t.Helper()
		for !cond(reg.Clients()) {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("billing is registered", func(s *asruntime.ClientSet) bool { _, ok := s.Lookup("auth.billing"); return ok })
	if _, ok := reg.Clients().Lookup("auth.ledger"); ok {
		t.Error("a client of another authorization server was loaded")
	}
	if n := reg.Clients().Len(); n != 1 {
		t.Errorf("%d clients loaded, want 1 (the bad document skipped)", n)
	}

	// A later Secret claiming the same client_id never displaces the first.
	create(registrationSecret("billing-impostor", "payments",
		`{"client_id":"auth.billing","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_subject_dn":"CN=impostor","grant_types":["client_credentials"]}`))
	create(registrationSecret("reporting", "payments",
		`{"client_id":"auth.reporting","token_endpoint_auth_method":"tls_client_auth","tls_client_auth_san_uri":"spiffe://cluster.local/reporting","grant_types":["client_credentials"]}`))
	waitFor("reporting is registered", func(s *asruntime.ClientSet) bool { _, ok := s.Lookup("auth.reporting"); return ok })
	if c, _ := reg.Clients().Lookup("auth.billing"); c == nil || c.AuthMethod != "tls_client_auth" {
		t.Fatal("auth.billing lost its registration")
	}

	if err := secrets.Delete(ctx, "reporting", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("reporting is gone", func(s *asruntime.ClientSet) bool { _, ok := s.Lookup("auth.reporting"); return !ok })

	// The API server goes away (killed if it does not stop in time, which
	// Stop reports): the registry keeps what it knew.
	_ = env.Stop()
	stopped = true
	time.Sleep(300 * time.Millisecond)
	if _, ok := reg.Clients().Lookup("auth.billing"); !ok {
		t.Fatal("the registry forgot its clients when the API server went away")
	}
}

func TestSecretRegistryNeedsNamespaceAndServer(t *testing.T) {
	if _, err := asruntime.NewSecretRegistry(nil, "", "payments", nil, nil); err == nil {
		t.Fatal("a registry without a namespace was accepted")
	}
	if _, err := asruntime.NewSecretRegistry(nil, "auth", "", nil, nil); err == nil {
		t.Fatal("a registry without an authorization server name was accepted")
	}
}

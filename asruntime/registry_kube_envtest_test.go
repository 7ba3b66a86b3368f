package asruntime_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/asruntime"
	"github.com/certbound/certbound/internal/registration"
)

func registrationObject(t *testing.T, name, asName string, md v1alpha1.ClientMetadata) *unstructured.Unstructured {
	t.Helper()
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&v1alpha1.ClientRegistration{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ClientRegistration"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{registration.LabelAuthorizationServer: asName}},
		Spec: v1alpha1.ClientRegistrationSpec{
			AuthorizationServerName: asName,
			Holder:                  v1alpha1.ClientHolder{Namespace: "team", Name: name, UID: "0b5c3a2e-0000-4000-8000-000000000001"},
			Client:                  md,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &unstructured.Unstructured{Object: obj}
}

func pkiMetadata(id string, subject func(*v1alpha1.ClientMetadata)) v1alpha1.ClientMetadata {
	md := v1alpha1.ClientMetadata{
		ClientID:                              id,
		TokenEndpointAuthMethod:               registration.AuthMethodTLSClientAuth,
		GrantTypes:                            []string{registration.GrantTypeClientCredentials},
		TLSClientCertificateBoundAccessTokens: true,
	}
	subject(&md)
	return md
}

func dn(v string) func(*v1alpha1.ClientMetadata) {
	return func(md *v1alpha1.ClientMetadata) { md.TLSClientAuthSubjectDN = &v }
}

// TestClientRegistrationRegistryAgainstAnAPIServer runs the in-cluster
// registry against a real API server with the ClientRegistration CRD: it
// follows creates and deletes, loads only its server's registrations, and
// keeps serving the last known clients when the API server goes away.
func TestClientRegistrationRegistryAgainstAnAPIServer(t *testing.T) {
	env, ctx, stopAPIServer := startAPIServer(t, 60*time.Second)
	dyn := dynamic.NewForConfigOrDie(env.Config)
	regs := dyn.Resource(asruntime.ClientRegistrationResource).Namespace(ns)
	create := func(u *unstructured.Unstructured) {
		t.Helper()
		if _, err := regs.Create(ctx, u, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create(registrationObject(t, "billing", "payments", pkiMetadata("auth.billing", dn("CN=billing"))))
	create(registrationObject(t, "ledger", "ledger", pkiMetadata("auth.ledger", dn("CN=ledger"))))

	reg, err := asruntime.NewClientRegistrationRegistry(dyn, ns, "payments", nil, asruntime.NewMetrics())
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

	create(registrationObject(t, "reporting", "payments", pkiMetadata("auth.reporting", dn("CN=reporting"))))
	waitFor("reporting is registered", func(s *asruntime.ClientSet) bool { _, ok := s.Lookup("auth.reporting"); return ok })
	if err := regs.Delete(ctx, "reporting", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor("reporting is gone", func(s *asruntime.ClientSet) bool { _, ok := s.Lookup("auth.reporting"); return !ok })

	// The API server goes away (killed if it does not stop in time, which
	// Stop reports): the registry keeps what it knew.
	stopAPIServer()
	time.Sleep(300 * time.Millisecond)
	if _, ok := reg.Clients().Lookup("auth.billing"); !ok {
		t.Fatal("the registry forgot its clients when the API server went away")
	}
}

package asruntime

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/poll"
	"github.com/certbound/certbound/internal/registration"
)

// TestAuthFailuresReachTheClientRegistrationStatus sends real mTLS token
// requests to a server whose registry is a real API server's
// ClientRegistrations: a registered client presenting the wrong
// certificate ends up in its registration's status, with the reason; an
// unknown client_id is never recorded; the operator's server-side apply
// of the spec leaves the status alone.
func TestAuthFailuresReachTheClientRegistrationStatus(t *testing.T) {
	env, ctx := startControlPlane(t, 2*time.Minute)
	const namespace, asName = "auth", "payments"
	if err := env.CreateNamespace(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(env.Config)
	regs := dyn.Resource(ClientRegistrationResource).Namespace(namespace)
	registrationOf := func(name, clientID, subjectDN string) *unstructured.Unstructured {
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&v1alpha1.ClientRegistration{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ClientRegistration"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{registration.LabelAuthorizationServer: asName}},
			Spec: v1alpha1.ClientRegistrationSpec{
				AuthorizationServerName: asName,
				Holder:                  v1alpha1.ClientHolder{Namespace: "team", Name: name, UID: "0b5c3a2e-0000-4000-8000-000000000001"},
				Client: v1alpha1.ClientMetadata{
					ClientID: clientID, TokenEndpointAuthMethod: AuthMethodTLSClientAuth,
					GrantTypes: []string{GrantTypeClientCredentials}, TLSClientAuthSubjectDN: &subjectDN,
					TLSClientCertificateBoundAccessTokens: true,
				},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		delete(obj, "status")
		return &unstructured.Unstructured{Object: obj}
	}
	for _, r := range []*unstructured.Unstructured{
		registrationOf("billing", "team.billing", "CN=billing"),
		registrationOf("ledger", "team.ledger", "CN=ledger"),
	} {
		if _, err := regs.Create(ctx, r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	reg, err := NewClientRegistrationRegistry(dyn, namespace, asName, nil, NewMetrics())
	if err != nil {
		t.Fatal(err)
	}
	reg.failureTick = 100 * time.Millisecond
	runCtx, stop := context.WithCancel(ctx)
	t.Cleanup(stop)
	go func() { _ = reg.Run(runCtx) }()
	poll.UntilContext(ctx, t, "the registry is loaded", func() (bool, string) { return reg.Synced(), "" })

	as := startAS(t, nil, func(_ *testAS, cfg *Config) { cfg.Registry = reg })
	intruder := as.clientCA.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "intruder"}})
	c := as.client(&intruder)
	for _, id := range []string{"team.billing", "team.billing", "team.unknown"} {
		if resp := as.post(t, c, as.mtlsURL, ccForm(id)); resp.status != http.StatusUnauthorized {
			t.Fatalf("%s with the wrong certificate: %d %s", id, resp.status, resp.raw)
		}
	}

	var status v1alpha1.ClientRegistrationStatus
	readStatus := func(name string) v1alpha1.ClientRegistrationStatus {
		u, err := regs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var got v1alpha1.ClientRegistration
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &got); err != nil {
			t.Fatal(err)
		}
		return got.Status
	}
	poll.UntilContext(ctx, t, "billing's failures are in its status", func() (bool, string) {
		status = readStatus("billing")
		return len(status.AuthenticationFailures) == 1 && status.AuthenticationFailures[0].Count == 2, fmt.Sprint(status)
	})
	if f := status.AuthenticationFailures[0]; f.Reason != string(failSubjectMismatch) || f.LastSeen.IsZero() || f.FirstSeen.After(f.LastSeen.Time) {
		t.Errorf("billing's failure: %+v", f)
	}
	if s := readStatus("ledger"); len(s.AuthenticationFailures) != 0 {
		t.Errorf("a client that never failed has failures: %+v", s)
	}
	reg.failures.mu.Lock()
	_, unknownPending := reg.failures.pending["team.unknown"]
	_, unknownWritten := reg.failures.written["team.unknown"]
	reg.failures.mu.Unlock()
	if unknownPending || unknownWritten {
		t.Error("a failure of an unknown client_id was recorded")
	}

	// The operator server-side applies the spec; the status subresource
	// keeps what the server wrote.
	apply := registrationOf("billing", "team.billing", "CN=billing")
	apply.SetAnnotations(map[string]string{"reapplied": "yes"})
	body, err := apply.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	force := true
	if _, err := regs.Patch(ctx, "billing", types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "certbound-operator", Force: &force}); err != nil {
		t.Fatal(err)
	}
	if s := readStatus("billing"); len(s.AuthenticationFailures) != 1 {
		t.Errorf("the spec apply changed the status: %+v", s)
	}
}

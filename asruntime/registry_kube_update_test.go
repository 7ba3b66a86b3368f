package asruntime

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/registration"
)

// TestRegistryIgnoresStatusOnlyUpdates: the updates a real API server makes
// of a ClientRegistration are told apart. A status write (the servers'
// authentication-failure reports) and a resync do not make the registry
// rebuild its client set; a spec or label change does.
func TestRegistryIgnoresStatusOnlyUpdates(t *testing.T) {
	env, ctx := startControlPlane(t, time.Minute)
	const namespace, asName = "auth", "payments"
	if err := env.CreateNamespace(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	regs := dynamic.NewForConfigOrDie(env.Config).Resource(ClientRegistrationResource).Namespace(namespace)
	subjectDN := "CN=billing"
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&v1alpha1.ClientRegistration{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ClientRegistration"},
		ObjectMeta: metav1.ObjectMeta{Name: "billing", Namespace: namespace, Labels: map[string]string{registration.LabelAuthorizationServer: asName}},
		Spec: v1alpha1.ClientRegistrationSpec{
			AuthorizationServerName: asName,
			Holder:                  v1alpha1.ClientHolder{Namespace: "team", Name: "billing", UID: "0b5c3a2e-0000-4000-8000-000000000001"},
			Client: v1alpha1.ClientMetadata{
				ClientID: "team.billing", TokenEndpointAuthMethod: AuthMethodTLSClientAuth,
				GrantTypes: []string{GrantTypeClientCredentials}, TLSClientAuthSubjectDN: &subjectDN,
				TLSClientCertificateBoundAccessTokens: true,
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	delete(obj, "status")
	created, err := regs.Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	withFailures := created.DeepCopy()
	now := metav1.Now()
	failures := []any{map[string]any{"reason": "subject_mismatch", "count": int64(3), "firstSeen": now.UTC().Format(time.RFC3339), "lastSeen": now.UTC().Format(time.RFC3339)}}
	if err := unstructured.SetNestedSlice(withFailures.Object, failures, "status", "authenticationFailures"); err != nil {
		t.Fatal(err)
	}
	statusWritten, err := regs.UpdateStatus(ctx, withFailures, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if statusWritten.GetResourceVersion() == created.GetResourceVersion() {
		t.Fatal("the status write changed nothing on the API server")
	}

	relabelled := statusWritten.DeepCopy()
	relabelled.SetLabels(map[string]string{registration.LabelAuthorizationServer: "ledger"})
	relabelled, err = regs.Update(ctx, relabelled, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	respecified := relabelled.DeepCopy()
	if err := unstructured.SetNestedField(respecified.Object, "CN=ledger", "spec", "client", "tls_client_auth_subject_dn"); err != nil {
		t.Fatal(err)
	}
	respecified, err = regs.Update(ctx, respecified, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]struct {
		old, updated *unstructured.Unstructured
		want         bool
	}{
		"status written":  {created, statusWritten, false},
		"resync":          {statusWritten, statusWritten, false},
		"label changed":   {statusWritten, relabelled, true},
		"spec changed":    {relabelled, respecified, true},
		"spec and status": {created, respecified, true},
	} {
		if got := registrationReadChanged(tc.old, tc.updated); got != tc.want {
			t.Errorf("%s: registrationReadChanged = %v, want %v", name, got, tc.want)
		}
	}
}

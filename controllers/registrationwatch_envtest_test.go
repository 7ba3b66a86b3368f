package controllers_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/controllers"
	"github.com/certbound/certbound/internal/registration"
)

// TestStatusOnlyRegistrationUpdateDoesNotReconcileTheClient: the server's
// authentication-failure report in a ClientRegistration's status does not
// reconcile the client. A registration of a client that does not exist,
// created after the report, is the barrier: the operator deletes it in a
// reconcile queued after whatever the report queued.
func TestStatusOnlyRegistrationUpdateDoesNotReconcileTheClient(t *testing.T) {
	ctx := context.Background()
	const ns, name = "status-reports", "reported"
	createNamespace(t, ns, true)
	mustCreate(t, newClient(ns, name, func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/" + name}
	}))
	waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionRegistered, metav1.ConditionTrue, "")
	waitUntilNoWrites(t)
	key := client.ObjectKey{Namespace: ns, Name: name}
	before := readsOfClient(key)

	reg := getRegistration(t, ns, name)
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	reg.Status.AuthenticationFailures = []oauthv1alpha1.AuthenticationFailure{{Reason: "subject_mismatch", Count: 1, FirstSeen: now, LastSeen: now}}
	if err := env.Client.Status().Update(ctx, reg); err != nil {
		t.Fatal(err)
	}

	const ghost = "gone"
	barrier := &oauthv1alpha1.ClientRegistration{
		ObjectMeta: metav1.ObjectMeta{Namespace: authNS, Name: registration.ObjectName(ns, ghost), Labels: map[string]string{
			controllers.LabelAuthorizationServer: serverName, controllers.LabelClientNamespace: ns, controllers.LabelClientName: ghost,
		}},
		Spec: oauthv1alpha1.ClientRegistrationSpec{
			AuthorizationServerName: serverName,
			Holder:                  oauthv1alpha1.ClientHolder{Namespace: ns, Name: ghost, UID: "0b5c3a2e-0000-4000-8000-000000000002"},
			Client: oauthv1alpha1.ClientMetadata{
				ClientID: registration.ClientID(ns, ghost), TokenEndpointAuthMethod: registration.AuthMethodSelfSignedTLSClientAuth,
				GrantTypes: []string{registration.GrantTypeClientCredentials}, TLSClientCertificateBoundAccessTokens: true,
			},
		},
	}
	mustCreate(t, barrier)
	eventually(t, "the orphaned barrier registration is deleted", func() error {
		return absent(&oauthv1alpha1.ClientRegistration{}, authNS, barrier.Name)
	})
	if after := readsOfClient(key); after != before {
		t.Errorf("the client was reconciled %d times after a status-only update of its registration, want 0", after-before)
	}
}

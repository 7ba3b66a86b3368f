package controllers_test

import (
	"context"
	"slices"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/api/v1alpha1/validation"
	"github.com/certbound/certbound/internal/registration"
)

// TestIntrospectionAudiencesNeedTheResourceServerPolicy: a client may list
// an introspection audience (and so read other clients' tokens for it) only
// when the server's policy names its namespace in that audience's
// resourceServerNamespaces. Being granted the audience for its own tokens
// is not enough; once the namespace is selected the audiences are
// registered as introspection_resources.
func TestIntrospectionAudiencesNeedTheResourceServerPolicy(t *testing.T) {
	const ns, server = "introspection", "ledger"
	createNamespace(t, ns, false)
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: clientsCA, Namespace: ns}, Data: mustSecret(t, authNS, clientsCA).Data})
	mustCreate(t, newServer(ns, server, func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.AllowedClientNamespaces = oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSame}
		as.Spec.ClientPolicy.Audiences = []oauthv1alpha1.AudiencePolicy{
			{URI: ledgerAudience, ResourceServerNamespaces: &metav1.LabelSelector{MatchLabels: map[string]string{teamLabel: "ledger"}}},
			{URI: vaultAudience},
		}
	}))
	newRSClient := func(name string, audiences, introspection []string) *oauthv1alpha1.OAuthClient {
		return newClient(ns, name, func(c *oauthv1alpha1.OAuthClient) {
			c.Spec.AuthorizationServerRef = oauthv1alpha1.AuthorizationServerReference{Name: server}
			c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/" + name}
			c.Spec.Audiences = audiences
			c.Spec.IntrospectionAudiences = introspection
		})
	}
	// The ledger's own API, before its namespace is a resource server
	// namespace; a client granted the vault audience, which has no
	// resource server namespaces at all.
	mustCreate(t, newRSClient("ledger-api", nil, []string{ledgerAudience}))
	mustCreate(t, newRSClient("vault-user", []string{vaultAudience}, []string{vaultAudience}))
	for _, name := range []string{"ledger-api", "vault-user"} {
		oc := waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionAccepted, metav1.ConditionFalse, validation.ReasonIntrospectionAudienceNotAllowed)
		if ready := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady); ready == nil || ready.Status != metav1.ConditionFalse {
			t.Errorf("%s: Ready = %+v, want False", name, ready)
		}
		assertAbsent(t, &oauthv1alpha1.ClientRegistration{}, ns, registration.ObjectName(ns, name))
		assertAbsent(t, &cmapi.Certificate{}, ns, name)
	}

	// Selecting the namespace makes the ledger API its resource server.
	var nsObj corev1.Namespace
	if err := env.Client.Get(context.Background(), client.ObjectKey{Name: ns}, &nsObj); err != nil {
		t.Fatal(err)
	}
	if nsObj.Labels == nil {
		nsObj.Labels = map[string]string{}
	}
	nsObj.Labels[teamLabel] = "ledger"
	if err := env.Client.Update(context.Background(), &nsObj); err != nil {
		t.Fatal(err)
	}
	waitForClientCondition(t, ns, "ledger-api", oauthv1alpha1.ConditionAccepted, metav1.ConditionTrue, "")
	reg := getRegistrationIn(t, ns, ns, "ledger-api")
	if got := reg.Spec.Client.IntrospectionResources; !slices.Equal(got, []string{ledgerAudience}) {
		t.Errorf("registered introspection_resources %v, want [%s]", got, ledgerAudience)
	}
	if len(reg.Spec.Client.Resources) != 0 {
		t.Errorf("registered resources %v: introspection audiences are not token audiences", reg.Spec.Client.Resources)
	}
	waitForClientCondition(t, ns, "vault-user", oauthv1alpha1.ConditionAccepted, metav1.ConditionFalse, validation.ReasonIntrospectionAudienceNotAllowed)
}

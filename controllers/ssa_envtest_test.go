package controllers_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/controllers"
	"github.com/certbound/certbound/internal/poll"
)

// TestAFieldNoLongerDesiredIsRemoved: a client-config Secret written by an
// earlier version carries its applied-hash annotation under the operator's
// field manager. The operator no longer sets it, so its next apply removes
// it, and leaves every field it does set in place.
func TestAFieldNoLongerDesiredIsRemoved(t *testing.T) {
	const legacyAnnotation = "oauth.certbound.io/applied-hash"
	ensureBillingClients(t)
	waitForClientCondition(t, billingNS, "reporter", oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	ctx := context.Background()
	key := client.ObjectKey{Namespace: billingNS, Name: controllers.ConfigSecretName("reporter")}
	var secret corev1.Secret
	if err := env.Client.Get(ctx, key, &secret); err != nil {
		t.Fatal(err)
	}
	owned, err := coreac.ExtractSecret(&secret, controllers.FieldManager)
	if err != nil {
		t.Fatal(err)
	}
	owned.WithAnnotations(map[string]string{legacyAnnotation: "0123456789abcdef"})
	if err := env.Client.Apply(ctx, owned, client.FieldOwner(controllers.FieldManager), client.ForceOwnership); err != nil {
		t.Fatal(err)
	}
	var oc oauthv1alpha1.OAuthClient
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: billingNS, Name: "reporter"}, &oc); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(oc.DeepCopy())
	metav1.SetMetaDataAnnotation(&oc.ObjectMeta, "test.certbound.io/poke", "legacy-annotation")
	if err := env.Client.Patch(ctx, &oc, patch); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, testTimeout, "the legacy annotation removed from "+key.String(), func() (bool, string) {
		var s corev1.Secret
		if err := env.Client.Get(ctx, key, &s); err != nil {
			return false, err.Error()
		}
		_, present := s.Annotations[legacyAnnotation]
		return !present, fmt.Sprintf("annotations %v", s.Annotations)
	})
	var after corev1.Secret
	if err := env.Client.Get(ctx, key, &after); err != nil {
		t.Fatal(err)
	}
	if !metav1.IsControlledBy(&after, &oc) || len(after.Data) != len(secret.Data) || len(after.Labels) != len(secret.Labels) {
		t.Errorf("after the apply the Secret has labels %v, %d data keys, owners %v; want labels %v, %d data keys, controlled by the client",
			after.Labels, len(after.Data), after.OwnerReferences, secret.Labels, len(secret.Data))
	}
}

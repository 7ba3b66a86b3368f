package controllers_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/controllers"
)

// TestConfigSecretOfSomeoneElseIsWhyTheClientIsNotReady: when a Secret by
// the name of the client's config Secret exists and is not the client's,
// Ready says so (NotControlled), however far the rest has got; the client
// is Stalled on it, and a Warning event says it once.
func TestConfigSecretOfSomeoneElseIsWhyTheClientIsNotReady(t *testing.T) {
	const ns, name = "config-taken", "squatted"
	createNamespace(t, ns, true)
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: controllers.ConfigSecretName(name)}})
	mustCreate(t, newClient(ns, name, func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/" + name}
	}))

	// Everything else gets done: the certificate is issued and the client
	// registered, and Ready still names the Secret.
	waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionCertificateReady, metav1.ConditionTrue, "")
	oc := waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionRegistered, metav1.ConditionTrue, "")
	oc = waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionReady, metav1.ConditionFalse, controllers.ReasonNotControlled)
	if ready := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionReady); !contains(ready.Message, controllers.ConfigSecretName(name)) {
		t.Errorf("Ready message %q does not name the Secret", ready.Message)
	}
	if stalled := findCondition(oc.Status.Conditions, oauthv1alpha1.ConditionStalled); stalled == nil || stalled.Status != metav1.ConditionTrue || stalled.Reason != controllers.ReasonNotControlled {
		t.Errorf("Stalled = %+v, want True with reason %s", stalled, controllers.ReasonNotControlled)
	}

	eventually(t, "a Warning event says the Secret is not the client's", func() error {
		var list eventsv1.EventList
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		var warnings []string
		for _, e := range list.Items {
			if e.Regarding.Kind != "OAuthClient" || e.Regarding.Name != name || e.Type != corev1.EventTypeWarning {
				continue
			}
			warnings = append(warnings, e.Reason)
		}
		if len(warnings) != 1 || warnings[0] != controllers.ReasonNotControlled {
			return errorf("Warning events of the client: %q, want one %s", warnings, controllers.ReasonNotControlled)
		}
		return nil
	})
}

package controllers_test

import (
	"context"
	"fmt"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/api/v1alpha1/validation"
	"github.com/certbound/certbound/controllers"
)

// waitForKstatus waits until kstatus, reading the object as Argo CD and
// Flux do, computes want; for Failed and InProgress, with the reason of the
// Stalled or Reconciling condition.
func waitForKstatus(t *testing.T, kind, ns, name string, want status.Status, reason string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s %s/%s kstatus %s/%s", kind, ns, name, want, reason), func() error {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(oauthv1alpha1.GroupVersion.WithKind(kind))
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
			return err
		}
		res, err := status.Compute(u)
		if err != nil {
			return err
		}
		if res.Status != want {
			return errorf("kstatus %s: %s", res.Status, res.Message)
		}
		if reason != "" && (len(res.Conditions) == 0 || res.Conditions[0].Reason != reason) {
			return errorf("kstatus %s with conditions %+v, want reason %s", res.Status, res.Conditions, reason)
		}
		return nil
	})
}

func TestKstatusOfHealthyRefusedAndConflictingClients(t *testing.T) {
	const ns = "kstatus"
	createNamespace(t, ns, true)
	const dn = "CN=api,OU=kstatus,O=Acme"
	mustCreate(t, newClient(ns, "healthy", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: dn}
	}))
	healthy := waitForClientCondition(t, ns, "healthy", oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")
	waitForKstatus(t, "OAuthClient", ns, "healthy", status.CurrentStatus, "")

	// A subject of another namespace: the policy refuses it.
	mustCreate(t, newClient(ns, "refused", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/elsewhere/sa/api"}
	}))
	waitForKstatus(t, "OAuthClient", ns, "refused", status.FailedStatus, validation.ReasonSubjectNotAllowed)

	// The healthy client's subject, claimed later.
	waitPastSecond(t, healthy.Status.SubjectHeldSince.Time)
	mustCreate(t, newClient(ns, "mirror", func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: dn}
	}))
	waitForKstatus(t, "OAuthClient", ns, "mirror", status.FailedStatus, controllers.ReasonSubjectConflict)
	waitForKstatus(t, "OAuthClient", ns, "healthy", status.CurrentStatus, "")
}

func TestKstatusOfAServerMissingItsTrustAnchor(t *testing.T) {
	const ns = "kstatus-server"
	createNamespace(t, ns, false)
	mustCreate(t, newServer(ns, "anchorless", func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.ClientTrustAnchors = []oauthv1alpha1.TrustAnchor{{SecretRef: oauthv1alpha1.SecretKeySelector{Name: "missing-ca", Key: "ca.crt"}}}
	}))
	waitForKstatus(t, "AuthorizationServer", ns, "anchorless", status.FailedStatus, controllers.ReasonTrustAnchorSecretNotFound)

	// With the Secret, the server only waits: envtest runs no pods, so its
	// Deployment never becomes available.
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "missing-ca", Namespace: ns}, Data: map[string][]byte{"ca.crt": mustSecret(t, authNS, clientsCA).Data["ca.crt"]}})
	waitForKstatus(t, "AuthorizationServer", ns, "anchorless", status.InProgressStatus, "")
}

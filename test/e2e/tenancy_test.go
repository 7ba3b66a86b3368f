package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/poll"
)

// The two-tenant story of issue #11: tenant b (namespace tenant-b) tries to
// become tenant a's clients (namespace auth, the sample server
// auth/payments) every way a tenant could, and is refused each time with a
// status reason or an OAuth error, while tenant a keeps working.

const tenantB = "tenant-b"

// waitForClient waits until the OAuthClient's condition has the status and
// reason, and returns the client.
func waitForClient(ctx context.Context, t *testing.T, ns, name, condType string, status metav1.ConditionStatus, reason string) *oauthv1alpha1.OAuthClient {
	t.Helper()
	oc := &oauthv1alpha1.OAuthClient{}
	poll.UntilContext(ctx, t, fmt.Sprintf("%s/%s has %s=%s (%s)", ns, name, condType, status, reason), func() (bool, string) {
		if err := cluster.Env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, oc); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(oc.Status.Conditions, condType)
		if c == nil {
			return false, "no condition yet"
		}
		return c.Status == status && c.Reason == reason && c.ObservedGeneration == oc.Generation, fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
	})
	return oc
}

// tenantAStillWorks: a's client gets a bound token.
func tenantAStillWorks(ctx context.Context, t *testing.T) {
	t.Helper()
	w := workload(ctx, t, "billing-worker")
	if _, _, err := w.Token(ctx, cluster.Dialer()); err != nil {
		t.Fatalf("tenant a's billing-worker can no longer get tokens: %v", err)
	}
}

func create(ctx context.Context, t *testing.T, obj client.Object) {
	t.Helper()
	if err := cluster.Env.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Env.Client.Delete(context.Background(), obj) })
}

// refused creates a client that must be refused for reason: by the
// admission webhook at once, or else by the controller in condition
// condType (the controller enforces the same rules with the webhook off).
// It returns the admission error's or the condition's message.
func refused(ctx context.Context, t *testing.T, oc *oauthv1alpha1.OAuthClient, condType, reason string) string {
	t.Helper()
	err := cluster.Env.Client.Create(ctx, oc)
	if err != nil {
		if !strings.Contains(err.Error(), reason) {
			t.Fatalf("creating %s/%s failed for another reason than %s: %v", oc.Namespace, oc.Name, reason, err)
		}
		return err.Error()
	}
	t.Cleanup(func() { _ = cluster.Env.Client.Delete(context.Background(), oc) })
	got := waitForClient(ctx, t, oc.Namespace, oc.Name, condType, metav1.ConditionFalse, reason)
	if got.Status.Certificate != nil {
		t.Errorf("refused client %s/%s holds a certificate", oc.Namespace, oc.Name)
	}
	return meta.FindStatusCondition(got.Status.Conditions, condType).Message
}

func TestTenantCannotBecomeAnotherTenant(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := cluster.Env.Client
	if err := cluster.Env.CreateNamespace(ctx, tenantB); err != nil {
		t.Fatal(err)
	}
	tenantAStillWorks(ctx, t)

	// The shared server takes clients of every namespace for this story.
	var payments oauthv1alpha1.AuthorizationServer
	if err := c.Get(ctx, client.ObjectKey{Namespace: "auth", Name: "payments"}, &payments); err != nil {
		t.Fatal(err)
	}
	original := payments.DeepCopy()
	payments.Spec.AllowedClientNamespaces = oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromAll}
	if err := c.Patch(ctx, &payments, client.MergeFrom(original)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var now oauthv1alpha1.AuthorizationServer
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(original), &now); err == nil {
			restored := now.DeepCopy()
			restored.Spec.AllowedClientNamespaces = original.Spec.AllowedClientNamespaces
			_ = c.Patch(context.Background(), restored, client.MergeFrom(&now))
		}
	})

	t.Run("1: another namespace's SPIFFE ID is not b's to claim", func(t *testing.T) {
		thief := pkiClient("ledger-sync", oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/auth/sa/ledger-sync"})
		thief.Namespace = tenantB
		thief.Spec.AuthorizationServerRef.Namespace = "auth"
		refused(ctx, t, thief, oauthv1alpha1.ConditionAccepted, "SubjectNotAllowed")
		tenantAStillWorks(ctx, t)
	})

	t.Run("2: b's own AuthorizationServer does not make a's subject b's", func(t *testing.T) {
		rogue := &oauthv1alpha1.AuthorizationServer{
			ObjectMeta: metav1.ObjectMeta{Namespace: tenantB, Name: "rogue"},
			Spec: oauthv1alpha1.AuthorizationServerSpec{
				ServingCertificate:      oauthv1alpha1.ServingCertificate{IssuerRef: oauthv1alpha1.IssuerReference{Name: "certbound-serving-ca", Kind: "ClusterIssuer"}},
				ClientTrustAnchors:      []oauthv1alpha1.TrustAnchor{{SecretRef: oauthv1alpha1.SecretKeySelector{Name: "rogue-ca"}}},
				AllowedClientNamespaces: oauthv1alpha1.AllowedNamespaces{From: oauthv1alpha1.NamespacesFromSame},
				ClientPolicy: oauthv1alpha1.ClientPolicy{
					// b opts out of namespace binding on its own server.
					Subjects:             []oauthv1alpha1.SubjectPattern{{DN: "CN=*,OU=*,O=Acme"}},
					AllowUnboundSubjects: true,
					Scopes:               []oauthv1alpha1.ScopePolicy{{Name: "payments.read"}},
				},
			},
		}
		create(ctx, t, rogue)
		impostor := pkiClient("impostor", oauthv1alpha1.ClientSubject{DN: "CN=billing-worker,OU=auth,O=Acme"})
		impostor.Namespace = tenantB
		impostor.Spec.AuthorizationServerRef.Name = "rogue"
		impostor.Spec.Certificate.IssuerRef = &oauthv1alpha1.IssuerReference{Name: "certbound-serving-ca", Kind: "ClusterIssuer"}
		create(ctx, t, impostor)
		oc := waitForClient(ctx, t, tenantB, "impostor", oauthv1alpha1.ConditionRegistered, metav1.ConditionFalse, "SubjectConflict")
		if c := meta.FindStatusCondition(oc.Status.Conditions, oauthv1alpha1.ConditionRegistered); strings.Contains(c.Message, "billing-worker") {
			t.Errorf("the refusal names tenant a's client: %s", c.Message)
		}
		assertNoCertificate(ctx, t, tenantB, "impostor")
		tenantAStillWorks(ctx, t)

		t.Run("3: nor does changing a subject onto it", func(t *testing.T) {
			changer := pkiClient("changer", oauthv1alpha1.ClientSubject{DN: "CN=changer,OU=tenant-b,O=Acme"})
			changer.Namespace = tenantB
			changer.Spec.AuthorizationServerRef.Name = "rogue"
			changer.Spec.Certificate.IssuerRef = &oauthv1alpha1.IssuerReference{Name: "certbound-serving-ca", Kind: "ClusterIssuer"}
			create(ctx, t, changer)
			waitForClient(ctx, t, tenantB, "changer", oauthv1alpha1.ConditionRegistered, metav1.ConditionTrue, "Registered")
			var current oauthv1alpha1.OAuthClient
			if err := c.Get(ctx, client.ObjectKeyFromObject(changer), &current); err != nil {
				t.Fatal(err)
			}
			changed := current.DeepCopy()
			changed.Spec.Subject = &oauthv1alpha1.ClientSubject{DN: "CN=billing-worker,OU=auth,O=Acme"}
			if err := c.Patch(ctx, changed, client.MergeFrom(&current)); err != nil {
				t.Fatal(err)
			}
			waitForClient(ctx, t, tenantB, "changer", oauthv1alpha1.ConditionRegistered, metav1.ConditionFalse, "SubjectConflict")
			assertNoCertificate(ctx, t, tenantB, "changer")
			waitForClient(ctx, t, "auth", "billing-worker", oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "Ready")
			tenantAStillWorks(ctx, t)
		})
	})

	t.Run("4: scopes and audiences are the platform team's", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			mutate   func(*oauthv1alpha1.OAuthClient)
			reason   string
			contains string
		}{
			{"admin", func(o *oauthv1alpha1.OAuthClient) { o.Spec.Scopes = []string{"payments.admin"} }, "ScopeNotAllowed", "payments.admin"},
			{"writer", func(o *oauthv1alpha1.OAuthClient) { o.Spec.Scopes = []string{"payments.write"} }, "ScopeNotAllowed", "payments.write"},
			{"elsewhere", func(o *oauthv1alpha1.OAuthClient) { o.Spec.Audiences = []string{"https://hr.auth.svc"} }, "AudienceNotAllowed", "https://hr.auth.svc"},
		} {
			oc := pkiClient(tc.name, oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/tenant-b/sa/" + tc.name})
			oc.Namespace = tenantB
			oc.Spec.AuthorizationServerRef.Namespace = "auth"
			tc.mutate(oc)
			if msg := refused(ctx, t, oc, oauthv1alpha1.ConditionAccepted, tc.reason); !strings.Contains(msg, tc.contains) {
				t.Errorf("%s: the refusal does not name %s: %s", tc.name, tc.contains, msg)
			}
		}
		tenantAStillWorks(ctx, t)
	})
}

// TestAReleasedSubjectsOldCertificateIsDead is attack 1 at the server: a
// client keeps its certificate, is deleted, and the subject is claimed
// again; the old certificate cannot get tokens as the new holder, whose own
// certificate works.
func TestAReleasedSubjectsOldCertificateIsDead(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	subject := oauthv1alpha1.ClientSubject{DNSName: "released.auth.svc"}
	first := pkiClient("first-holder", subject)
	create(ctx, t, first)
	kept := workload(ctx, t, "first-holder")
	if err := cluster.Env.Client.Delete(ctx, first); err != nil {
		t.Fatal(err)
	}
	poll.UntilContext(ctx, t, "the first holder is gone", func() (bool, string) {
		err := cluster.Env.Client.Get(ctx, client.ObjectKeyFromObject(first), &oauthv1alpha1.OAuthClient{})
		return err != nil, fmt.Sprint(err)
	})
	// cert-manager's notBefore has whole-second precision: let the new hold
	// begin in a later second than the old certificate's.
	time.Sleep(1100 * time.Millisecond)
	second := pkiClient("second-holder", subject)
	create(ctx, t, second)
	fresh := workload(ctx, t, "second-holder")
	if _, _, err := fresh.Token(ctx, cluster.Dialer()); err != nil {
		t.Fatalf("the new holder cannot get a token: %v", err)
	}
	thief := *fresh
	thief.Certificate = kept.Certificate
	_, _, err := thief.Token(ctx, cluster.Dialer())
	if err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("the released certificate got a token as the new holder (err %v), want invalid_client", err)
	}
}

// assertNoCertificate: nothing was issued for a refused client.
func assertNoCertificate(ctx context.Context, t *testing.T, ns, name string) {
	t.Helper()
	var oc oauthv1alpha1.OAuthClient
	if err := cluster.Env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &oc); err != nil {
		t.Fatal(err)
	}
	if oc.Status.Certificate != nil {
		t.Errorf("%s/%s holds a certificate: %+v", ns, name, oc.Status.Certificate)
	}
	var regs oauthv1alpha1.ClientRegistrationList
	if err := cluster.Env.Client.List(ctx, &regs, client.MatchingLabels{"oauth.certbound.io/client-namespace": ns, "oauth.certbound.io/client-name": name}); err != nil {
		t.Fatal(err)
	}
	if len(regs.Items) != 0 {
		t.Errorf("%s/%s is registered: %s/%s", ns, name, regs.Items[0].Namespace, regs.Items[0].Name)
	}
}

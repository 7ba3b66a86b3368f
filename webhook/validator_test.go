package webhook

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/kubescheme"
)

func pkiClient(subject v1alpha1.ClientSubject) *v1alpha1.OAuthClient {
	return &v1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Name: "billing-worker", Namespace: "auth"},
		Spec: v1alpha1.OAuthClientSpec{
			AuthorizationServerRef: v1alpha1.AuthorizationServerReference{Name: "payments"},
			AuthenticationMethod:   v1alpha1.TLSClientAuth,
			Subject:                &subject,
			GrantTypes:             []v1alpha1.GrantType{v1alpha1.GrantTypeClientCredentials},
		},
	}
}

func dnClient(dn string) *v1alpha1.OAuthClient {
	return pkiClient(v1alpha1.ClientSubject{DN: dn})
}

func spiffeClient() *v1alpha1.OAuthClient {
	return pkiClient(v1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/auth/sa/billing-worker"})
}

func authServer(change func(*v1alpha1.AuthorizationServer)) *v1alpha1.AuthorizationServer {
	ttl, rotation := metav1.Duration{Duration: 10 * time.Minute}, metav1.Duration{Duration: 720 * time.Hour}
	as := &v1alpha1.AuthorizationServer{
		ObjectMeta: metav1.ObjectMeta{Name: "payments", Namespace: "auth"},
		Spec: v1alpha1.AuthorizationServerSpec{
			ServingCertificate:      v1alpha1.ServingCertificate{IssuerRef: v1alpha1.IssuerReference{Name: "serving-ca", Kind: v1alpha1.IssuerKindClusterIssuer}},
			ClientTrustAnchors:      []v1alpha1.TrustAnchor{{SecretRef: v1alpha1.SecretKeySelector{Name: "clients-ca", Key: "ca.crt"}}},
			ClientCertificateIssuer: &v1alpha1.IssuerReference{Name: "clients-ca", Kind: v1alpha1.IssuerKindIssuer},
			AllowedClientNamespaces: v1alpha1.AllowedNamespaces{From: v1alpha1.NamespacesFromSame},
			Tokens:                  v1alpha1.TokenPolicy{AccessTokenTTL: &ttl, SigningAlgorithm: "ES256", KeyRotationPeriod: &rotation},
		},
	}
	if change != nil {
		change(as)
	}
	return as
}

// policyValidator reads the given objects, plus namespace auth.
func policyValidator(objs ...client.Object) oauthClientValidator {
	objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "auth", Labels: map[string]string{"team": "auth"}}})
	return oauthClientValidator{reader: fake.NewClientBuilder().WithScheme(kubescheme.New()).WithObjects(objs...).Build()}
}

func TestTheOAuthClientWebhookAppliesTheClientPolicy(t *testing.T) {
	readScope := authServer(func(as *v1alpha1.AuthorizationServer) {
		as.Spec.ClientPolicy.Scopes = []v1alpha1.ScopePolicy{{Name: "read"}}
	})
	ctx := requestContext(admissionv1.Create, nil)
	for name, tc := range map[string]struct {
		validator oauthClientValidator
		client    *v1alpha1.OAuthClient
		refusal   []string
		warning   string
	}{
		"a client the default policy admits": {validator: policyValidator(authServer(nil)), client: spiffeClient()},
		"a subject the policy does not admit is denied": {
			validator: policyValidator(authServer(nil)),
			client:    dnClient("CN=billing-worker,O=Acme"),
			refusal:   []string{"spec.subject", "SubjectNotAllowed", `spiffe://*/ns/auth/sa/*`},
		},
		"a granted scope is admitted": {
			validator: policyValidator(readScope),
			client:    with(spiffeClient(), func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"read"} }),
		},
		"a scope that is not granted is denied": {
			validator: policyValidator(readScope),
			client:    with(spiffeClient(), func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"read", "write"} }),
			refusal:   []string{"spec.scopes[1]", "ScopeNotAllowed", `scope "write"`},
		},
		"an audience that is not granted is denied": {
			validator: policyValidator(authServer(nil)),
			client:    with(spiffeClient(), func(c *v1alpha1.OAuthClient) { c.Spec.Audiences = []string{"urn:example:ledger"} }),
			refusal:   []string{"spec.audiences[0]", "AudienceNotAllowed"},
		},
		"a missing AuthorizationServer is only warned about": {
			validator: policyValidator(),
			client:    dnClient("CN=billing-worker,O=Acme"),
			warning:   "AuthorizationServer auth/payments does not exist (yet)",
		},
		"an AuthorizationServer that cannot be read is only warned about": {
			validator: oauthClientValidator{reader: fake.NewClientBuilder().WithScheme(kubescheme.New()).WithInterceptorFuncs(interceptor.Funcs{
				Get: func(context.Context, client.WithWatch, client.ObjectKey, client.Object, ...client.GetOption) error {
					return errors.New("cache not synced")
				},
			}).Build()},
			client:  dnClient("CN=billing-worker,O=Acme"),
			warning: "could not be checked now",
		},
		"without a reader there is no policy check": {validator: oauthClientValidator{}, client: dnClient("CN=billing-worker,O=Acme")},
	} {
		t.Run(name, func(t *testing.T) {
			warnings, err := tc.validator.ValidateCreate(ctx, tc.client)
			if tc.refusal == nil && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if tc.refusal != nil {
				if !apierrors.IsInvalid(err) {
					t.Fatalf("err = %v, want Invalid", err)
				}
				for _, want := range tc.refusal {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("refusal %q does not say %q", err, want)
					}
				}
			}
			if tc.warning != "" {
				assertWarned(t, warnings, tc.warning)
			}
		})
	}
}

func TestTheOAuthClientWebhookChecksThePolicyOnlyWhenTheSpecChanges(t *testing.T) {
	v := policyValidator(authServer(nil))
	ctx := requestContext(admissionv1.Update, nil)
	// Stored before the policy refused DNs.
	old := dnClient("CN=billing-worker,O=Acme")

	labelled := old.DeepCopy()
	labelled.Labels = map[string]string{"app": "billing"}
	if _, err := v.ValidateUpdate(ctx, old, labelled); err != nil {
		t.Errorf("a metadata-only update was refused: %v", err)
	}

	rescoped := with(old.DeepCopy(), func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"read"} })
	if _, err := v.ValidateUpdate(ctx, old, rescoped); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "SubjectNotAllowed") {
		t.Errorf("a spec update the policy refuses = %v, want SubjectNotAllowed", err)
	}
}

// TestAClientBeingDeletedCanLoseItsFinalizers: a client whose spec is
// invalid now (here: renewBefore beyond duration, and a subject the policy
// refuses) must still let its finalizers be removed, or it is never
// deleted.
func TestAClientBeingDeletedCanLoseItsFinalizers(t *testing.T) {
	v := policyValidator(authServer(nil))
	ctx := requestContext(admissionv1.Update, nil)
	old := with(dnClient("CN=billing-worker,O=Acme"), func(c *v1alpha1.OAuthClient) {
		c.Spec.Certificate.Duration = &metav1.Duration{Duration: time.Hour}
		c.Spec.Certificate.RenewBefore = &metav1.Duration{Duration: 2 * time.Hour}
		now := metav1.Now()
		c.DeletionTimestamp = &now
		c.Finalizers = []string{"oauth.certbound.io/registration"}
	})
	if _, errs := v.ValidateCreate(requestContext(admissionv1.Create, nil), old); errs == nil {
		t.Fatal("the test's client is valid; it must be invalid to prove the point")
	}
	released := old.DeepCopy()
	released.Finalizers = nil
	if _, err := v.ValidateUpdate(ctx, old, released); err != nil {
		t.Errorf("removing the finalizer of a client being deleted was refused: %v", err)
	}
	changed := with(released.DeepCopy(), func(c *v1alpha1.OAuthClient) { c.Spec.Scopes = []string{"read"} })
	if _, err := v.ValidateUpdate(ctx, old, changed); err == nil {
		t.Error("a spec change of a client being deleted skipped validation")
	}
}

func with(c *v1alpha1.OAuthClient, change func(*v1alpha1.OAuthClient)) *v1alpha1.OAuthClient {
	change(c)
	return c
}

func TestAServerBeingDeletedCanLoseItsFinalizers(t *testing.T) {
	ctx := requestContext(admissionv1.Update, nil)
	// An issuer naming another namespace's Service: refused since the rule
	// was introduced, but stored before it.
	old := authServer(func(as *v1alpha1.AuthorizationServer) {
		as.Spec.Issuer = "https://payments.billing.svc"
		now := metav1.Now()
		as.DeletionTimestamp = &now
		as.Finalizers = []string{"oauth.certbound.io/cleanup"}
	})
	if _, err := (authorizationServerValidator{}).ValidateCreate(requestContext(admissionv1.Create, nil), old); err == nil {
		t.Fatal("the test's server is valid; it must be invalid to prove the point")
	}
	released := old.DeepCopy()
	released.Finalizers = nil
	if _, err := (authorizationServerValidator{}).ValidateUpdate(ctx, old, released); err != nil {
		t.Errorf("removing the finalizer of a server being deleted was refused: %v", err)
	}
	changed := released.DeepCopy()
	changed.Spec.ClientPolicy.AllowUnboundSubjects = true
	if _, err := (authorizationServerValidator{}).ValidateUpdate(ctx, old, changed); err == nil {
		t.Error("a spec change of a server being deleted skipped validation")
	}
}

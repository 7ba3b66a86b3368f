package webhook

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/poll"
)

// Each manifest passes the CRD's schema and CEL rules, so the refusal can
// only come from the webhook — which the message proves by naming it.
func TestTheAPIServerRefusesInvalidManifestsThroughTheWebhook(t *testing.T) {
	for name, tc := range map[string]struct {
		manifest string
		webhook  string
		want     []string
	}{
		"an OAuthClient DN with a lower-case attribute type": {
			manifest: `
apiVersion: oauth.certbound.io/v1alpha1
kind: OAuthClient
metadata: {name: billing-worker}
spec:
  authorizationServerRef: {name: payments}
  subject: {dn: "cn=billing-worker,O=Acme"}
`,
			webhook: "voauthclient-v1alpha1.oauth.certbound.io",
			want:    []string{"spec.subject.dn", "write any other type as its dotted OID"},
		},
		"an OAuthClient with a wildcard DNS name": {
			manifest: `
apiVersion: oauth.certbound.io/v1alpha1
kind: OAuthClient
metadata: {name: ledger}
spec:
  authorizationServerRef: {name: payments}
  subject: {dnsName: "*.ledger.example.com"}
`,
			webhook: "voauthclient-v1alpha1.oauth.certbound.io",
			want:    []string{"spec.subject.dnsName", "register the exact DNS name"},
		},
		"an OAuthClient with a non-ASCII email": {
			manifest: `
apiVersion: oauth.certbound.io/v1alpha1
kind: OAuthClient
metadata: {name: reporting}
spec:
  authorizationServerRef: {name: payments}
  subject: {email: "wörker@example.com"}
`,
			webhook: "voauthclient-v1alpha1.oauth.certbound.io",
			want:    []string{"spec.subject.email", "IA5String"},
		},
		"an OAuthClient whose renewal comes after expiry": {
			manifest: `
apiVersion: oauth.certbound.io/v1alpha1
kind: OAuthClient
metadata: {name: short-lived}
spec:
  authorizationServerRef: {name: payments}
  subject: {uri: "spiffe://cluster.local/ns/auth/sa/short-lived"}
  certificate: {duration: 24h, renewBefore: 48h}
`,
			webhook: "voauthclient-v1alpha1.oauth.certbound.io",
			want:    []string{"spec.certificate.renewBefore", "lower renewBefore or raise duration"},
		},
		"an AuthorizationServer issuer with credentials": {
			manifest: `
apiVersion: oauth.certbound.io/v1alpha1
kind: AuthorizationServer
metadata: {name: payments}
spec:
  issuer: https://admin:secret@auth.example.com
  servingCertificate:
    issuerRef: {name: serving-ca, kind: ClusterIssuer}
  clientTrustAnchors:
  - secretRef: {name: clients-ca}
`,
			webhook: "vauthorizationserver-v1alpha1.oauth.certbound.io",
			want:    []string{"spec.issuer", "remove the user information"},
		},
		"an AuthorizationServer whose issuer names another namespace's Service": {
			manifest: `
apiVersion: oauth.certbound.io/v1alpha1
kind: AuthorizationServer
metadata: {name: payments}
spec:
  issuer: https://payments.kube-system.svc
  servingCertificate:
    issuerRef: {name: serving-ca, kind: ClusterIssuer}
  clientTrustAnchors:
  - secretRef: {name: clients-ca}
`,
			webhook: "vauthorizationserver-v1alpha1.oauth.certbound.io",
			want:    []string{"spec.issuer", "names a Service in namespace kube-system"},
		},
		"an AuthorizationServer with an unbound subject pattern": {
			manifest: `
apiVersion: oauth.certbound.io/v1alpha1
kind: AuthorizationServer
metadata: {name: payments}
spec:
  servingCertificate:
    issuerRef: {name: serving-ca, kind: ClusterIssuer}
  clientTrustAnchors:
  - secretRef: {name: clients-ca}
  clientPolicy:
    subjects: [{dn: "CN=*,O=Acme"}]
`,
			webhook: "vauthorizationserver-v1alpha1.oauth.certbound.io",
			want:    []string{"spec.clientPolicy.subjects[0]", "set allowUnboundSubjects"},
		},
		"an AuthorizationServer with a malformed namespace selector": {
			manifest: `
apiVersion: oauth.certbound.io/v1alpha1
kind: AuthorizationServer
metadata: {name: payments}
spec:
  servingCertificate:
    issuerRef: {name: serving-ca, kind: ClusterIssuer}
  clientTrustAnchors:
  - secretRef: {name: clients-ca}
  allowedClientNamespaces:
    from: Selector
    selector:
      matchExpressions:
      - {key: team, operator: Like, values: [payments]}
`,
			webhook: "vauthorizationserver-v1alpha1.oauth.certbound.io",
			want:    []string{"spec.allowedClientNamespaces.selector.matchExpressions[0].operator", "not a valid selector operator"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			obj := manifest(t, tc.manifest)
			obj.SetNamespace(namespace(t))
			err := k8s.Create(context.Background(), obj)
			if err == nil {
				t.Fatal("the API server admitted an invalid manifest")
			}
			for _, want := range append([]string{`admission webhook "` + tc.webhook + `" denied the request`}, tc.want...) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestValidManifestsAreAdmittedAndDefaulted(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)

	as := manifest(t, `
apiVersion: oauth.certbound.io/v1alpha1
kind: AuthorizationServer
metadata: {name: payments}
spec:
  servingCertificate:
    issuerRef: {name: serving-ca, kind: ClusterIssuer}
  clientTrustAnchors:
  - secretRef: {name: clients-ca, key: ca.crt}
  clientCertificateIssuer: {name: clients-ca, kind: Issuer}
  clientPolicy:
    scopes: [{name: payments.read}, {name: payments.write}]
`)
	as.SetNamespace(ns)
	if err := k8s.Create(ctx, as); err != nil {
		t.Fatalf("a valid AuthorizationServer was refused: %v", err)
	}
	var storedAS v1alpha1.AuthorizationServer
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(as), &storedAS); err != nil {
		t.Fatal(err)
	}
	if want := "https://payments." + ns + ".svc"; storedAS.Spec.Issuer != want {
		t.Errorf("spec.issuer = %q, want the webhook's default %q", storedAS.Spec.Issuer, want)
	}

	oc := manifest(t, `
apiVersion: oauth.certbound.io/v1alpha1
kind: OAuthClient
metadata: {name: billing-worker}
spec:
  authorizationServerRef: {name: payments}
  subject: {uri: "spiffe://cluster.local/ns/NAMESPACE/sa/billing-worker"}
  scopes: [payments.read]
`, ns)
	oc.SetNamespace(ns)
	if err := k8s.Create(ctx, oc); err != nil {
		t.Fatalf("a valid OAuthClient was refused: %v", err)
	}
	var storedOC v1alpha1.OAuthClient
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(oc), &storedOC); err != nil {
		t.Fatal(err)
	}
	if storedOC.Spec.AuthorizationServerRef.Namespace != ns {
		t.Errorf("spec.authorizationServerRef.namespace = %q, want the webhook's default %q", storedOC.Spec.AuthorizationServerRef.Namespace, ns)
	}

	// An update the webhook allows still goes through, and the pinned
	// defaults survive it.
	storedOC.Spec.Scopes = append(storedOC.Spec.Scopes, "payments.write")
	if err := k8s.Update(ctx, &storedOC); err != nil {
		t.Fatalf("a valid update was refused: %v", err)
	}
}

func TestWarningsReachTheClient(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)

	mark := warnings.mark()
	as := manifest(t, `
apiVersion: oauth.certbound.io/v1alpha1
kind: AuthorizationServer
metadata: {name: shared}
spec:
  servingCertificate:
    issuerRef: {name: serving-ca, kind: ClusterIssuer}
  clientTrustAnchors:
  - secretRef: {name: corp-ca}
  clientCertificateIssuer: {name: corp-ca, kind: ClusterIssuer}
  allowedClientNamespaces: {from: All}
  clientPolicy:
    subjects:
    - dn: "CN=*,OU={namespace},O=Acme"
    - uri: "spiffe://*/ns/{namespace}/sa/*"
`)
	as.SetNamespace(ns)
	if err := k8s.Create(ctx, as); err != nil {
		t.Fatalf("a risky but valid AuthorizationServer was refused: %v", err)
	}
	assertWarned(t, warnings.since(mark), "RFC 8705 §7.4")

	oc := manifest(t, `
apiVersion: oauth.certbound.io/v1alpha1
kind: OAuthClient
metadata: {name: worker}
spec:
  authorizationServerRef: {name: shared}
  subject: {dn: "CN=worker,OU=NAMESPACE,O=Acme"}
`, ns)
	oc.SetNamespace(ns)
	if err := k8s.Create(ctx, oc); err != nil {
		t.Fatal(err)
	}
	mark = warnings.mark()
	if err := unstructured.SetNestedField(oc.Object, "spiffe://cluster.local/ns/"+ns+"/sa/worker", "spec", "subject", "uri"); err != nil {
		t.Fatal(err)
	}
	unstructured.RemoveNestedField(oc.Object, "spec", "subject", "dn")
	if err := k8s.Update(ctx, oc); err != nil {
		t.Fatalf("changing the subject was refused: %v", err)
	}
	assertWarned(t, warnings.since(mark), "spec.subject changed")
}

func assertWarned(t *testing.T, got []string, want string) {
	t.Helper()
	for _, w := range got {
		if strings.Contains(w, want) {
			return
		}
	}
	t.Errorf("the client received warnings %q, none saying %q", got, want)
}

// TestAnOversizedObjectIsRefusedQuickly: the mutating webhook runs before
// the API server's own metadata validation, so it is the first to see a
// huge object and refuses it before any rule runs.
func TestAnOversizedObjectIsRefusedQuickly(t *testing.T) {
	oc := manifest(t, `
apiVersion: oauth.certbound.io/v1alpha1
kind: OAuthClient
metadata: {name: huge}
spec:
  authorizationServerRef: {name: payments}
  subject: {dn: "CN=huge"}
`)
	oc.SetNamespace(namespace(t))
	oc.SetAnnotations(map[string]string{"example.com/padding": strings.Repeat("x", maxObjectBytes)})
	start := time.Now()
	err := k8s.Create(context.Background(), oc)
	if err == nil {
		t.Fatal("a 512 KiB OAuthClient was admitted")
	}
	if !strings.Contains(err.Error(), "remove large annotations or labels") {
		t.Errorf("refusal %q is not the webhook's size check", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("refusing took %s", elapsed)
	}
}

// TestADeeplyNestedObjectIsRefusedQuickly: nesting is bounded before any
// webhook runs — the API server refuses to decode a body nested deeper than
// its limit (and prunes fields the schema does not declare from shallower
// ones), so the webhooks only ever decode schema-shaped objects. The body is
// sent as raw bytes because client-side encoders have depth limits of
// their own.
func TestADeeplyNestedObjectIsRefusedQuickly(t *testing.T) {
	ns := namespace(t)
	const depth = 20000
	body := `{"apiVersion":"oauth.certbound.io/v1alpha1","kind":"OAuthClient",` +
		`"metadata":{"name":"deep","namespace":"` + ns + `"},` +
		`"spec":{"authorizationServerRef":{"name":"payments"},"subject":{"dn":"CN=deep"},"nested":` +
		strings.Repeat(`{"a":`, depth) + `{}` + strings.Repeat(`}`, depth) + `}}`
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion("oauth.certbound.io/v1alpha1")
	obj.SetKind("OAuthClient")
	obj.SetNamespace(ns)
	obj.SetName("deep")
	start := time.Now()
	err := k8s.Patch(context.Background(), obj, client.RawPatch(types.ApplyPatchType, []byte(body)), client.FieldOwner("webhook-test"))
	if err == nil {
		t.Fatalf("an object nested %d levels deep was admitted", depth)
	}
	if !strings.Contains(err.Error(), "depth") {
		t.Errorf("refusal %q does not say the object is nested too deep", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("refusing took %s", elapsed)
	}
}

// eventuallyRefused retries an admission until the webhook's cache has seen
// the AuthorizationServer's current policy and refuses with want.
func eventuallyRefused(t *testing.T, want string, try func() error) error {
	t.Helper()
	var err error
	poll.Until(t, 15*time.Second, fmt.Sprintf("the webhook refuses with %q", want), func() (bool, string) {
		err = try()
		return err != nil && strings.Contains(err.Error(), want), fmt.Sprint(err)
	})
	return err
}

const policyServer = `
apiVersion: oauth.certbound.io/v1alpha1
kind: AuthorizationServer
metadata: {name: payments}
spec:
  servingCertificate:
    issuerRef: {name: serving-ca, kind: ClusterIssuer}
  clientTrustAnchors:
  - secretRef: {name: clients-ca}
  clientCertificateIssuer: {name: clients-ca, kind: Issuer}
  clientPolicy:
    scopes: [{name: payments.read}]
`

// TestTheWebhookRefusesWhatTheClientPolicyRefuses: the validating webhook
// applies the AuthorizationServer's client policy, with the field at fault.
func TestTheWebhookRefusesWhatTheClientPolicyRefuses(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	as := manifest(t, policyServer)
	as.SetNamespace(ns)
	if err := k8s.Create(ctx, as); err != nil {
		t.Fatal(err)
	}
	err := eventuallyRefused(t, "ScopeNotAllowed", func() error {
		oc := manifest(t, `
apiVersion: oauth.certbound.io/v1alpha1
kind: OAuthClient
metadata: {name: greedy}
spec:
  authorizationServerRef: {name: payments}
  subject: {uri: "spiffe://cluster.local/ns/NAMESPACE/sa/greedy"}
  scopes: [payments.read, payments.admin]
`, ns)
		oc.SetNamespace(ns)
		err := k8s.Create(ctx, oc)
		if err == nil {
			_ = k8s.Delete(ctx, oc)
		}
		return err
	})
	for _, want := range []string{`admission webhook "voauthclient-v1alpha1.oauth.certbound.io" denied the request`, "spec.scopes[1]", `scope "payments.admin"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}

	oc := manifest(t, `
apiVersion: oauth.certbound.io/v1alpha1
kind: OAuthClient
metadata: {name: foreign}
spec:
  authorizationServerRef: {name: payments}
  subject: {uri: "spiffe://cluster.local/ns/kube-system/sa/admin"}
`)
	oc.SetNamespace(ns)
	if err := k8s.Create(ctx, oc); err == nil || !strings.Contains(err.Error(), "SubjectNotAllowed") {
		t.Errorf("a subject of another namespace = %v, want SubjectNotAllowed", err)
	}
}

// TestAClientBeingDeletedCanDropItsFinalizerAfterThePolicyTightened: once
// a client's spec is refused (here: the server stopped granting its scope),
// it must still be deletable, which means its finalizers can be removed.
func TestAClientBeingDeletedCanDropItsFinalizerAfterThePolicyTightened(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t)
	as := manifest(t, policyServer)
	as.SetNamespace(ns)
	if err := k8s.Create(ctx, as); err != nil {
		t.Fatal(err)
	}
	oc := manifest(t, `
apiVersion: oauth.certbound.io/v1alpha1
kind: OAuthClient
metadata:
  name: reader
  finalizers: [example.com/hold]
spec:
  authorizationServerRef: {name: payments}
  subject: {uri: "spiffe://cluster.local/ns/NAMESPACE/sa/reader"}
  scopes: [payments.read]
`, ns)
	oc.SetNamespace(ns)
	if err := k8s.Create(ctx, oc); err != nil {
		t.Fatalf("a client the policy allows was refused: %v", err)
	}

	// The server's owner withdraws the scope.
	var storedAS v1alpha1.AuthorizationServer
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(as), &storedAS); err != nil {
		t.Fatal(err)
	}
	storedAS.Spec.ClientPolicy.Scopes = nil
	if err := k8s.Update(ctx, &storedAS); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(ctx, oc); err != nil {
		t.Fatalf("deleting the client was refused: %v", err)
	}

	// Its spec is now refused: a change to it is denied...
	eventuallyRefused(t, "ScopeNotAllowed", func() error {
		var stored v1alpha1.OAuthClient
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(oc), &stored); err != nil {
			return err
		}
		stored.Spec.Certificate.SecretName = "reader-tls"
		return k8s.Update(ctx, &stored)
	})

	// ...but removing the finalizer is not, and the client goes away.
	var stored v1alpha1.OAuthClient
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(oc), &stored); err != nil {
		t.Fatal(err)
	}
	if stored.DeletionTimestamp == nil {
		t.Fatal("the client is not being deleted")
	}
	stored.Finalizers = nil
	if err := k8s.Update(ctx, &stored); err != nil {
		t.Fatalf("removing the finalizer of a client being deleted was refused: %v", err)
	}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(oc), &stored); !apierrors.IsNotFound(err) {
		t.Errorf("the client still exists after its finalizer was removed: %v", err)
	}
}

package webhook

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certbound/certbound/api/v1alpha1"
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
  subject: {dn: "CN=billing-worker,OU=billing,O=Acme"}
  scopes: [payments.read]
`)
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
  subject: {dn: "CN=worker,O=Acme"}
`)
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

package controllers_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	jose "github.com/go-jose/go-jose/v4"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/controllers"
)

func TestAuthorizationServerChildren(t *testing.T) {
	ctx := context.Background()
	as := waitForServerCondition(t, authNS, serverName, oauthv1alpha1.ConditionServingCertificateReady, metav1.ConditionTrue, "")
	for _, ct := range []string{oauthv1alpha1.ConditionSigningKeyReady, oauthv1alpha1.ConditionTrustAnchorsReady, oauthv1alpha1.ConditionClientPolicyReady} {
		if c := findCondition(as.Status.Conditions, ct); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("%s = %+v, want True", ct, c)
		}
	}
	// No kubelet in envtest: the Deployment never becomes available, and
	// Ready says so honestly.
	ready := findCondition(as.Status.Conditions, oauthv1alpha1.ConditionReady)
	if ready == nil || ready.Status != metav1.ConditionFalse || ready.Reason != controllers.ReasonDeploymentUnavailable {
		t.Errorf("Ready = %+v, want False/DeploymentUnavailable", ready)
	}
	wantEndpoints := oauthv1alpha1.AuthorizationServerEndpoints{
		Metadata:  "https://payments.auth.svc/.well-known/oauth-authorization-server",
		Token:     "https://payments.auth.svc/token",
		MTLSToken: "https://payments.auth.svc:9443/token",
		JWKS:      "https://payments.auth.svc/jwks",
	}
	if as.Status.Issuer != "https://payments.auth.svc" || as.Status.Endpoints != wantEndpoints {
		t.Errorf("issuer %q endpoints %+v", as.Status.Issuer, as.Status.Endpoints)
	}

	owned := func(obj client.Object, name string) {
		t.Helper()
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: authNS, Name: name}, obj); err != nil {
			t.Fatalf("%T %s: %v", obj, name, err)
		}
		if !metav1.IsControlledBy(obj, as) {
			t.Errorf("%T %s is not controlled by the AuthorizationServer", obj, name)
		}
	}
	owned(&corev1.ServiceAccount{}, serverName)
	var role rbacv1.Role
	owned(&role, serverName)
	// Read-only on the ClientRegistrations it trusts but for a patch of
	// their status (its authentication failure reports); revocations and
	// refresh-token families are ConfigMaps it writes (update: rotation).
	// No Secrets (TestServerRoleReadsNoSecrets).
	if len(role.Rules) != 3 ||
		!slices.Equal(role.Rules[0].APIGroups, []string{oauthv1alpha1.GroupVersion.Group}) ||
		!slices.Equal(role.Rules[0].Resources, []string{"clientregistrations"}) || !slices.Equal(role.Rules[0].Verbs, []string{"get", "list", "watch"}) ||
		!slices.Equal(role.Rules[1].APIGroups, []string{oauthv1alpha1.GroupVersion.Group}) ||
		!slices.Equal(role.Rules[1].Resources, []string{"clientregistrations/status"}) || !slices.Equal(role.Rules[1].Verbs, []string{"patch"}) ||
		!slices.Equal(role.Rules[2].Resources, []string{"configmaps"}) || !slices.Equal(role.Rules[2].Verbs, []string{"get", "list", "watch", "create", "update", "delete"}) {
		t.Errorf("role rules %+v", role.Rules)
	}
	var rb rbacv1.RoleBinding
	owned(&rb, serverName)
	if rb.RoleRef.Name != serverName || len(rb.Subjects) != 1 || rb.Subjects[0].Name != serverName {
		t.Errorf("rolebinding %+v", rb)
	}
	var svc corev1.Service
	owned(&svc, serverName)
	ports := map[string][2]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = [2]int32{p.Port, p.TargetPort.IntVal}
	}
	if len(svc.Spec.Ports) != 2 || ports["https"][0] != 443 || ports["mtls"][0] != 9443 {
		t.Errorf("service ports %+v", svc.Spec.Ports)
	}
	var pdb policyv1.PodDisruptionBudget
	owned(&pdb, serverName)

	var cert cmapi.Certificate
	owned(&cert, serverName+"-tls")
	for _, n := range []string{"payments", "payments.auth", "payments.auth.svc", "payments.auth.svc.cluster.local"} {
		if !slices.Contains(cert.Spec.DNSNames, n) {
			t.Errorf("serving certificate dnsNames %v lack %s", cert.Spec.DNSNames, n)
		}
	}

	var keys corev1.Secret
	owned(&keys, serverName+"-signing-keys")
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(keys.Data["keys.json"], &set); err != nil || len(set.Keys) != 1 || set.Keys[0].IsPublic() || set.Keys[0].Algorithm != "ES256" {
		t.Errorf("signing keys: %v %+v", err, set.Keys)
	}
	var bundle corev1.Secret
	owned(&bundle, serverName+"-client-ca")
	if string(bundle.Data["ca.crt"]) != string(mustSecret(t, authNS, clientsCA).Data["ca.crt"]) {
		t.Error("trust bundle is not the trust anchor")
	}

	var d appsv1.Deployment
	owned(&d, serverName)
	if *d.Spec.Replicas != 2 {
		t.Errorf("replicas %d", *d.Spec.Replicas)
	}
	pod := d.Spec.Template.Spec
	if pod.ServiceAccountName != serverName {
		t.Errorf("serviceAccountName %q", pod.ServiceAccountName)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", psc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("containers %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0 || sc.Privileged != nil && *sc.Privileged {
		t.Errorf("container security context %+v", sc)
	}
	if c.Image != testImage {
		t.Errorf("image %q", c.Image)
	}
	wantArgs := []string{
		"authorization-server",
		"--issuer=https://payments.auth.svc",
		"--listen-address=:8443",
		"--mtls-listen-address=:9443",
		"--mtls-base-url=https://payments.auth.svc:9443",
		"--tls-cert-file=/etc/certbound/tls/tls.crt",
		"--tls-key-file=/etc/certbound/tls/tls.key",
		"--client-ca-file=/etc/certbound/client-ca/ca.crt",
		"--signing-key-file=/etc/certbound/signing-keys/keys.json",
		"--access-token-ttl=10m0s",
		"--refresh-token-ttl=1h0m0s",
		"--refresh-token-max-lifetime=24h0m0s",
		"--refresh-token-families-per-client=1000",
		"--metrics-address=:8080",
		"--registry-namespace=auth",
		"--registry-authorization-server=payments",
		"--revocation-namespace=auth",
	}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args\n got %q\nwant %q", c.Args, wantArgs)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Error("probes are not on /healthz and /readyz")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
}

func TestRegisteredClientsAreCounted(t *testing.T) {
	ensureBillingClients(t)
	for _, n := range []string{"worker", "reporter", "selfie"} {
		waitForClientCondition(t, billingNS, n, oauthv1alpha1.ConditionRegistered, metav1.ConditionTrue, "")
	}
	eventually(t, "registeredClients counts the registrations", func() error {
		var as oauthv1alpha1.AuthorizationServer
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: authNS, Name: serverName}, &as); err != nil {
			return err
		}
		var regs oauthv1alpha1.ClientRegistrationList
		if err := env.Client.List(context.Background(), &regs, client.InNamespace(authNS), client.MatchingLabels{controllers.LabelAuthorizationServer: serverName}); err != nil {
			return err
		}
		if int(as.Status.RegisteredClients) != len(regs.Items) || len(regs.Items) < 3 {
			return errorf("registeredClients %d, registrations %d", as.Status.RegisteredClients, len(regs.Items))
		}
		return nil
	})
}

func TestMissingTrustAnchorSaysWhich(t *testing.T) {
	const ns = "auth-broken"
	createNamespace(t, ns, false)
	mustCreate(t, newServer(ns, "broken", func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.ClientTrustAnchors = []oauthv1alpha1.TrustAnchor{{SecretRef: oauthv1alpha1.SecretKeySelector{Name: "no-such-ca", Key: "ca.crt"}}}
	}))
	as := waitForServerCondition(t, ns, "broken", oauthv1alpha1.ConditionTrustAnchorsReady, metav1.ConditionFalse, controllers.ReasonTrustAnchorSecretNotFound)
	c := findCondition(as.Status.Conditions, oauthv1alpha1.ConditionTrustAnchorsReady)
	if !contains(c.Message, "no-such-ca") {
		t.Errorf("message %q does not name the Secret", c.Message)
	}
	if ready := findCondition(as.Status.Conditions, oauthv1alpha1.ConditionReady); ready.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %+v", ready)
	}
	assertAbsent(t, &policyv1.PodDisruptionBudget{}, ns, "broken")

	// Creating the Secret fixes it.
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "no-such-ca", Namespace: ns}, Data: map[string][]byte{"ca.crt": mustSecret(t, authNS, clientsCA).Data["ca.crt"]}})
	waitForServerCondition(t, ns, "broken", oauthv1alpha1.ConditionTrustAnchorsReady, metav1.ConditionTrue, controllers.ReasonTrustAnchorsLoaded)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

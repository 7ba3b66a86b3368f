// Package config checks that what a user installs is accepted by a real API
// server: config/default (the operator) and config/samples are rendered with
// kustomize and every object is applied with server-side dry-run.
package config

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/certbound/certbound/test/testenv"
)

var env *testenv.Environment

func TestMain(m *testing.M) {
	var err error
	// Only the API server and the CRDs matter here: dry-run never reaches a
	// controller.
	env, err = testenv.Start(testenv.Options{WithoutCertManager: true})
	if err != nil {
		os.Stderr.WriteString("testenv: " + err.Error() + "\n")
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, res := range resMap.Resources() {
		data, err := res.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		t.Fatalf("%s renders no objects", dir)
	}
	return objs
}

// dryRunApply creates the namespaces for real (a dry-run namespace does not
// exist for the objects inside it) and server-side applies everything else
// with dry-run, so the API server's schema, CEL rules and admission judge
// each object.
func dryRunApply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range objs {
		if obj.GetKind() == "Namespace" {
			if err := env.CreateNamespace(ctx, obj.GetName()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, obj := range objs {
		if obj.GetKind() == "Namespace" || obj.GetKind() == "CustomResourceDefinition" {
			continue
		}
		if ns := obj.GetNamespace(); ns != "" {
			if err := env.CreateNamespace(ctx, ns); err != nil {
				t.Fatal(err)
			}
		}
		applied := obj.DeepCopy()
		if err := env.Client.Patch(ctx, applied, client.Apply, client.DryRunAll, client.FieldOwner("config-test"), client.ForceOwnership); err != nil {
			t.Errorf("%s %s/%s refused: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
}

func TestDefaultInstallIsAccepted(t *testing.T) {
	objs := render(t, "config/default")
	kinds := map[string]int{}
	for _, obj := range objs {
		kinds[obj.GetKind()]++
		if ns := obj.GetNamespace(); ns != "" && ns != "certbound-system" {
			t.Errorf("%s %s is in namespace %q, want certbound-system", obj.GetKind(), obj.GetName(), ns)
		}
	}
	for _, want := range []string{"CustomResourceDefinition", "Deployment", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Namespace",
		"Service", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "Issuer", "Certificate"} {
		if kinds[want] == 0 {
			t.Errorf("config/default renders no %s (kinds: %v)", want, kinds)
		}
	}
	dryRunApply(t, objs)
}

// TestManagerDeploysItsOwnImage: the authorization-server pods run the
// operator's image, passed down through CERTBOUND_IMAGE.
func TestManagerDeploysItsOwnImage(t *testing.T) {
	for _, obj := range render(t, "config/default") {
		if obj.GetKind() != "Deployment" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			container := c.(map[string]any)
			image := container["image"].(string)
			envs, _, _ := unstructured.NestedSlice(container, "env")
			for _, e := range envs {
				if e.(map[string]any)["name"] == "CERTBOUND_IMAGE" && e.(map[string]any)["value"] != image {
					t.Errorf("CERTBOUND_IMAGE = %v, want the manager's image %s", e.(map[string]any)["value"], image)
				}
			}
			if image == "controller:latest" {
				t.Errorf("the manager image placeholder was not replaced")
			}
		}
		return
	}
	t.Fatal("config/default renders no Deployment")
}

func TestCRDsInConfigMatchGenerated(t *testing.T) {
	objs := render(t, "config/crd")
	if len(objs) != 3 {
		t.Fatalf("config/crd renders %d objects, want the 3 CRDs", len(objs))
	}
}

func TestSamplesAreAccepted(t *testing.T) {
	dryRunApply(t, render(t, "config/samples"))
}

// TestInvalidManifestIsRefusedWithTheFieldPath shows the CRD's own
// validation (no webhook involved) naming the field a user must fix.
func TestInvalidManifestIsRefusedWithTheFieldPath(t *testing.T) {
	if err := env.CreateNamespace(context.Background(), "invalid"); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		spec map[string]any
		want string
	}{
		"a tls_client_auth client without a subject": {
			spec: map[string]any{"authorizationServerRef": map[string]any{"name": "payments"}, "authenticationMethod": "tls_client_auth"},
			want: "spec.subject",
		},
		"a subject with two values": {
			spec: map[string]any{"authorizationServerRef": map[string]any{"name": "payments"}, "subject": map[string]any{"dn": "CN=a", "dnsName": "a.example"}},
			want: "spec.subject",
		},
		"an IP that is not an IP": {
			spec: map[string]any{"authorizationServerRef": map[string]any{"name": "payments"}, "subject": map[string]any{"ip": "10.0.0.300"}},
			want: "spec.subject.ip",
		},
	} {
		t.Run(name, func(t *testing.T) {
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "oauth.certbound.io/v1alpha1",
				"kind":       "OAuthClient",
				"metadata":   map[string]any{"name": "bad", "namespace": "invalid"},
				"spec":       tc.spec,
			}}
			err := env.Client.Patch(context.Background(), obj, client.Apply, client.DryRunAll, client.FieldOwner("config-test"))
			if err == nil {
				t.Fatal("the API server accepted an invalid OAuthClient")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("refusal %q does not name %s", err, tc.want)
			}
		})
	}
}

// TestWebhooksAreWiredToTheirServingCertificate follows the names a user
// never sees: every webhook calls the webhook Service, which reaches the
// manager's webhook port; cainjector is pointed at the Certificate whose
// DNS names are that Service's and whose Secret the manager mounts where
// controller-runtime reads its serving certificate.
func TestWebhooksAreWiredToTheirServingCertificate(t *testing.T) {
	byKind := map[string][]*unstructured.Unstructured{}
	for _, obj := range render(t, "config/default") {
		byKind[obj.GetKind()] = append(byKind[obj.GetKind()], obj)
	}
	one := func(kind string) *unstructured.Unstructured {
		t.Helper()
		if len(byKind[kind]) != 1 {
			t.Fatalf("config/default renders %d %s, want 1", len(byKind[kind]), kind)
		}
		return byKind[kind][0]
	}
	svc, cert, deploy := one("Service"), one("Certificate"), one("Deployment")

	for _, kind := range []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"} {
		cfg := one(kind)
		if got, want := cfg.GetAnnotations()["cert-manager.io/inject-ca-from"], cert.GetNamespace()+"/"+cert.GetName(); got != want {
			t.Errorf("%s cert-manager.io/inject-ca-from = %q, want %q", kind, got, want)
		}
		hooks, _, _ := unstructured.NestedSlice(cfg.Object, "webhooks")
		if len(hooks) != 2 {
			t.Errorf("%s has %d webhooks, want one per kind", kind, len(hooks))
		}
		for _, h := range hooks {
			ref, _, _ := unstructured.NestedStringMap(h.(map[string]any), "clientConfig", "service")
			if ref["name"] != svc.GetName() || ref["namespace"] != svc.GetNamespace() {
				t.Errorf("%s webhook calls Service %s/%s, want %s/%s", kind, ref["namespace"], ref["name"], svc.GetNamespace(), svc.GetName())
			}
		}
	}

	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	if want := svc.GetName() + "." + svc.GetNamespace() + ".svc"; len(dnsNames) == 0 || dnsNames[0] != want {
		t.Errorf("serving certificate dnsNames = %v, want %s first", dnsNames, want)
	}
	secretName, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")

	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	if len(ports) != 1 || ports[0].(map[string]any)["targetPort"] != "webhook" {
		t.Errorf("webhook Service ports = %v, want one targeting the named port webhook", ports)
	}
	var mountedSecret string
	volumes, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "volumes")
	for _, v := range volumes {
		if v.(map[string]any)["name"] == "webhook-certs" {
			mountedSecret, _, _ = unstructured.NestedString(v.(map[string]any), "secret", "secretName")
		}
	}
	if mountedSecret != secretName {
		t.Errorf("the manager mounts Secret %q, the serving certificate is written to %q", mountedSecret, secretName)
	}
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	var port, mount bool
	for _, c := range containers {
		container := c.(map[string]any)
		if container["name"] != "manager" {
			continue
		}
		cports, _, _ := unstructured.NestedSlice(container, "ports")
		for _, p := range cports {
			port = port || (p.(map[string]any)["name"] == "webhook" && p.(map[string]any)["containerPort"] == int64(9443))
		}
		mounts, _, _ := unstructured.NestedSlice(container, "volumeMounts")
		for _, m := range mounts {
			mount = mount || (m.(map[string]any)["name"] == "webhook-certs" && m.(map[string]any)["mountPath"] == "/tmp/k8s-webhook-server/serving-certs")
		}
	}
	if !port || !mount {
		t.Errorf("manager container: webhook port 9443 declared %v, serving certificate mounted at /tmp/k8s-webhook-server/serving-certs %v", port, mount)
	}
}

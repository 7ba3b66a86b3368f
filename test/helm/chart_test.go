package helm

import (
	"bytes"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// helmLabels are the labels the chart puts on every object besides
// config/default's: Helm's conventional ones, which a kustomize install
// cannot know.
var helmLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version"}

// normaliseChartObject removes the documented differences of a chart
// object from its config/default twin:
//   - the labels in helmLabels;
//   - the manager's --zap-log-level, which the chart always passes
//     (logLevel) and config/ leaves at the binary's default, info;
//   - a CRD's labels: Helm installs crds/ verbatim (byte copies of
//     config/crd/bases, TestGeneratedFilesAreFresh), so they lack the
//     app.kubernetes.io/part-of label config/default adds.
func normaliseChartObject(obj *unstructured.Unstructured) {
	labels := obj.GetLabels()
	for _, l := range helmLabels {
		delete(labels, l)
	}
	setLabels(obj, labels)
	if obj.GetKind() == "Deployment" {
		containers, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			container := c.(map[string]any)
			args, _, _ := unstructured.NestedStringSlice(container, "args")
			args = slices.DeleteFunc(args, func(a string) bool { return a == "--zap-log-level=info" })
			_ = unstructured.SetNestedStringSlice(container, args, "args")
		}
		_ = unstructured.SetNestedSlice(obj.Object, containers, "spec", "template", "spec", "containers")
	}
}

func normaliseConfigObject(obj *unstructured.Unstructured) {
	if obj.GetKind() == "CustomResourceDefinition" {
		setLabels(obj, nil)
	}
}

func setLabels(obj *unstructured.Unstructured, labels map[string]string) {
	if len(labels) == 0 {
		unstructured.RemoveNestedField(obj.Object, "metadata", "labels")
		return
	}
	obj.SetLabels(labels)
}

// TestChartMatchesConfigDefault: with default values the chart installs
// the objects `kustomize build config/default` does, field for field, but
// for the differences normaliseChartObject lists and the Namespace, which
// `helm install --create-namespace` creates (namespace.create=true renders
// it, as in the static manifest, and that one is compared too).
func TestChartMatchesConfigDefault(t *testing.T) {
	root := repoRoot(t)
	config, err := Kustomize(root, "config/default")
	if err != nil {
		t.Fatal(err)
	}
	chartObjs := render(t, DefaultRelease, nil)
	if ns := ofKind(chartObjs, "Namespace"); len(ns) != 0 {
		t.Errorf("with default values the chart renders a Namespace; helm install --create-namespace creates it")
	}
	chartObjs = append(chartObjs, onlyOfKind(t, render(t, DefaultRelease, StaticManifestValues()), "Namespace"))

	want, got := byKey(config), byKey(chartObjs)
	for _, key := range slices.Sorted(maps.Keys(want)) {
		if _, ok := got[key]; !ok {
			t.Errorf("config/default installs %s; the chart does not", key)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[key]; !ok {
			t.Errorf("the chart installs %s; config/default does not", key)
		}
	}
	for key, chartObj := range got {
		configObj, ok := want[key]
		if !ok {
			continue
		}
		chartObj, configObj = chartObj.DeepCopy(), configObj.DeepCopy()
		for _, l := range helmLabels {
			if _, ok := chartObj.GetLabels()[l]; !ok && chartObj.GetKind() != "CustomResourceDefinition" {
				t.Errorf("%s lacks the label %s", key, l)
			}
		}
		normaliseChartObject(chartObj)
		normaliseConfigObject(configObj)
		if diff := cmp.Diff(configObj.Object, chartObj.Object); diff != "" {
			t.Errorf("%s differs between config/default and the chart (-config +chart):\n%s", key, diff)
		}
	}
}

// TestChartCRDsAreConfigCRDs: the chart's crds/ are byte copies of
// config/crd/bases, and nothing else.
func TestChartCRDsAreConfigCRDs(t *testing.T) {
	root := repoRoot(t)
	configCRDs, _ := filepath.Glob(filepath.Join(root, "config/crd/bases/*.yaml"))
	chartCRDs, _ := filepath.Glob(filepath.Join(root, ChartDir, "crds/*"))
	names := func(paths []string) []string {
		var n []string
		for _, p := range paths {
			n = append(n, filepath.Base(p))
		}
		return n
	}
	if !slices.Equal(names(configCRDs), names(chartCRDs)) {
		t.Fatalf("chart crds/ holds %v, config/crd/bases %v: run make static-manifest", names(chartCRDs), names(configCRDs))
	}
	for _, path := range configCRDs {
		if !bytes.Equal(readFile(t, path), readFile(t, filepath.Join(root, ChartDir, "crds", filepath.Base(path)))) {
			t.Errorf("chart crds/%s differs from config/crd/bases: run make static-manifest", filepath.Base(path))
		}
	}
}

// TestChartNamesFollowTheRelease: under another release name and
// namespace, every reference between the chart's objects still resolves.
func TestChartNamesFollowTheRelease(t *testing.T) {
	release := Release{Name: "auth", Namespace: "platform-auth"}
	objs := render(t, release, nil)
	for _, obj := range objs {
		if obj.GetKind() != "CustomResourceDefinition" && !strings.HasPrefix(obj.GetName(), "auth-certbound-") {
			t.Errorf("%s is not named after the release (auth-certbound-)", objectKey(obj))
		}
		if ns := obj.GetNamespace(); ns != "" && ns != release.Namespace {
			t.Errorf("%s is in namespace %s, want %s", objectKey(obj), ns, release.Namespace)
		}
	}
	service := onlyOfKind(t, objs, "Service")
	cert := onlyOfKind(t, objs, "Certificate")
	dnsNames, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	wantDNS := []string{"auth-certbound-webhook-service.platform-auth.svc", "auth-certbound-webhook-service.platform-auth.svc.cluster.local"}
	if service.GetName() != "auth-certbound-webhook-service" || !slices.Equal(dnsNames, wantDNS) {
		t.Errorf("webhook Service %s, certificate dnsNames %v, want %v", service.GetName(), dnsNames, wantDNS)
	}
	issuerName, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
	if issuer := onlyOfKind(t, objs, "Issuer"); issuer.GetName() != issuerName {
		t.Errorf("the Certificate's issuer is %s, the chart's Issuer %s", issuerName, issuer.GetName())
	}
	for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"} {
		config := onlyOfKind(t, objs, kind)
		if got := config.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != "platform-auth/"+cert.GetName() {
			t.Errorf("%s inject-ca-from = %q, want platform-auth/%s", kind, got, cert.GetName())
		}
		webhooks, _, _ := unstructured.NestedSlice(config.Object, "webhooks")
		for _, w := range webhooks {
			svc, _, _ := unstructured.NestedStringMap(w.(map[string]any), "clientConfig", "service")
			if svc["name"] != service.GetName() || svc["namespace"] != release.Namespace {
				t.Errorf("%s webhook calls service %s/%s, want %s/%s", kind, svc["namespace"], svc["name"], release.Namespace, service.GetName())
			}
		}
	}
	deployment := onlyOfKind(t, objs, "Deployment")
	sa, _, _ := unstructured.NestedString(deployment.Object, "spec", "template", "spec", "serviceAccountName")
	if onlyOfKind(t, objs, "ServiceAccount").GetName() != sa {
		t.Errorf("the Deployment runs as %s, which the chart does not create", sa)
	}
}

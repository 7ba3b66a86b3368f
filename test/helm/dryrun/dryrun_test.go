// Package dryrun applies the rendered chart and the static manifest to a
// real API server (envtest's kube-apiserver) with server-side dry-run, so
// the API server's schemas, CEL rules and admission judge every object.
package dryrun

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/certbound/certbound/test/helm"
)

// prometheusOperator is the prometheus-operator module whose CRDs
// (ServiceMonitor, PodMonitor, PrometheusRule) the monitoring objects are
// checked against; the go command fetches it from the module proxy.
const prometheusOperator = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

var (
	apiClient client.Client
	root      string
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "dryrun:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if root, err = helm.RepoRoot(); err != nil {
		return 0, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin")
	}
	crdPaths, err := crdPaths()
	if err != nil {
		return 0, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:   assets,
		CRDDirectoryPaths:       crdPaths,
		ErrorIfCRDPathMissing:   true,
		ControlPlaneStopTimeout: 5 * time.Second,
	}
	cfg, err := env.Start()
	if err != nil {
		return 0, fmt.Errorf("start envtest (kube-apiserver and etcd from %s; make tools builds them): %w", assets, err)
	}
	defer func() { _ = env.Stop() }()
	if apiClient, err = client.New(cfg, client.Options{}); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// crdPaths are the chart's CRDs (envtest installing them for real is part
// of the check), cert-manager's at the version the operator's go.mod
// requires, and prometheus-operator's monitoring CRDs.
func crdPaths() ([]string, error) {
	certManager, err := goCommand(root, "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager")
	if err != nil {
		return nil, err
	}
	// Outside any module, so the download touches no go.mod or go.sum.
	download, err := goCommand(os.TempDir(), "mod", "download", "-json", prometheusOperator)
	if err != nil {
		return nil, err
	}
	var module struct{ Dir string }
	if err := json.Unmarshal([]byte(download), &module); err != nil || module.Dir == "" {
		return nil, fmt.Errorf("go mod download %s: no module directory in %q", prometheusOperator, download)
	}
	monitoring := filepath.Join(module.Dir, "example", "prometheus-operator-crd")
	return []string{
		filepath.Join(root, helm.ChartDir, "crds"),
		filepath.Join(certManager, "deploy", "crds"),
		filepath.Join(monitoring, "monitoring.coreos.com_servicemonitors.yaml"),
		filepath.Join(monitoring, "monitoring.coreos.com_podmonitors.yaml"),
		filepath.Join(monitoring, "monitoring.coreos.com_prometheusrules.yaml"),
	}, nil
}

func goCommand(dir string, args ...string) (string, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if exitErr, ok := err.(*exec.ExitError); ok {
			stderr = string(exitErr.Stderr)
		}
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out)), nil
}

// dryRunApply creates the namespaces for real (a dry-run namespace does
// not exist for the objects inside it) and server-side applies everything
// else with dry-run. The CRDs were installed by envtest.
func dryRunApply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	for _, obj := range objs {
		ns := obj.GetNamespace()
		if obj.GetKind() == "Namespace" {
			ns = obj.GetName()
		}
		if ns == "" {
			continue
		}
		err := apiClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	for _, obj := range objs {
		if obj.GetKind() == "CustomResourceDefinition" {
			continue
		}
		if err := apiClient.Patch(ctx, obj.DeepCopy(), client.Apply, client.DryRunAll, client.FieldOwner("helm-test"), client.ForceOwnership); err != nil {
			t.Errorf("%s %s/%s refused: %v", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
}

func TestRenderedChartIsAccepted(t *testing.T) {
	chart, err := helm.LoadChart(root)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		release helm.Release
		values  map[string]any
	}{
		{"defaults", helm.DefaultRelease, nil},
		{"every value changed", helm.Release{Name: "auth", Namespace: "platform-auth"}, map[string]any{
			"replicas":       2,
			"logLevel":       "debug",
			"webhook":        map[string]any{"certificate": map[string]any{"issuerRef": map[string]any{"name": "platform-ca", "kind": "ClusterIssuer"}}},
			"metrics":        map[string]any{"serviceMonitor": map[string]any{"enabled": true, "interval": "30s"}, "podMonitor": map[string]any{"enabled": true}, "prometheusRule": map[string]any{"enabled": true}},
			"commonLabels":   map[string]any{"team": "platform"},
			"podLabels":      map[string]any{"tier": "control"},
			"podAnnotations": map[string]any{"example.com/owner": "platform"},
			"nodeSelector":   map[string]any{"kubernetes.io/os": "linux"},
			"tolerations":    []any{map[string]any{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}},
			"affinity": map[string]any{"nodeAffinity": map[string]any{"requiredDuringSchedulingIgnoredDuringExecution": map[string]any{
				"nodeSelectorTerms": []any{map[string]any{"matchExpressions": []any{map[string]any{"key": "kubernetes.io/arch", "operator": "In", "values": []any{"amd64", "arm64"}}}}},
			}}},
			"podSecurityContext": map[string]any{"runAsNonRoot": true, "runAsUser": 65532, "fsGroup": 65532, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
			"namespace":          map[string]any{"create": true},
		}},
		{"webhook off", helm.Release{Name: "certbound", Namespace: "no-webhooks"}, map[string]any{
			"webhook":        map[string]any{"enabled": false},
			"leaderElection": map[string]any{"enabled": false},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs, err := helm.Render(chart, c.release, c.values)
			if err != nil {
				t.Fatal(err)
			}
			dryRunApply(t, objs)
		})
	}
}

func TestStaticManifestIsAccepted(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, helm.StaticManifestPath))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := helm.DecodeObjects(data)
	if err != nil {
		t.Fatal(err)
	}
	dryRunApply(t, objs)
}

func TestPrometheusRuleFileIsAccepted(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, helm.PrometheusRulePath))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := helm.DecodeObjects(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 || objs[0].GetKind() != "PrometheusRule" {
		t.Fatalf("%s holds %d objects, want one PrometheusRule", helm.PrometheusRulePath, len(objs))
	}
	dryRunApply(t, objs)
}

// Package helm checks the Helm chart in deploy/charts/certbound against
// config/ and a real API server, generates the static manifest and the
// monitoring files from it, and validates the alerts and the dashboard.
//
// It is a module of its own so that the Helm and Prometheus libraries (and
// the Kubernetes module versions they pull in) never touch the operator's
// module graph. It reads the repository's files; it imports none of its
// packages.
package helm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// ChartDir is the chart, relative to the repository root.
const ChartDir = "deploy/charts/certbound"

// Release names a Helm release.
type Release struct{ Name, Namespace string }

// DefaultRelease is the release of the README's install command and of the
// generated files; with it the chart's object names equal config/default's.
var DefaultRelease = Release{Name: "certbound", Namespace: "certbound-system"}

// RepoRoot is the directory of the certbound module's go.mod above the
// working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(data, []byte("module github.com/certbound/certbound\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the certbound repository root (go.mod) above the working directory")
		}
		dir = parent
	}
}

// LoadChart loads the chart from the repository.
func LoadChart(root string) (*chartv2.Chart, error) {
	chart, err := loader.Load(filepath.Join(root, ChartDir))
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", ChartDir, err)
	}
	return chart, nil
}

// RenderManifest renders the chart the way `helm template --include-crds`
// does, values validated against values.schema.json, and returns the
// manifest: the CRDs, then the templates in Helm's install order.
func RenderManifest(chart *chartv2.Chart, release Release, values map[string]any) (string, error) {
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	install := action.NewInstall(cfg)
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = release.Name
	install.Namespace = release.Namespace
	install.Replace = true
	install.IncludeCRDs = true
	rel, err := install.Run(chart, values)
	if err != nil {
		return "", fmt.Errorf("render chart: %w", err)
	}
	r, ok := rel.(*releasev1.Release)
	if !ok {
		return "", fmt.Errorf("render chart: unexpected release type %T", rel)
	}
	if len(r.Hooks) > 0 {
		return "", fmt.Errorf("render chart: the chart has %d hooks; the static manifest cannot carry hooks", len(r.Hooks))
	}
	return strings.TrimSpace(r.Manifest) + "\n", nil
}

// Render renders the chart and decodes the objects.
func Render(chart *chartv2.Chart, release Release, values map[string]any) ([]*unstructured.Unstructured, error) {
	manifest, err := RenderManifest(chart, release, values)
	if err != nil {
		return nil, err
	}
	return DecodeObjects([]byte(manifest))
}

// DecodeObjects decodes a multi-document YAML stream, skipping empty
// documents.
func DecodeObjects(data []byte) ([]*unstructured.Unstructured, error) {
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var doc json.RawMessage
		if err := decoder.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("decode object %d: %w", len(objs)+1, err)
		}
		if len(doc) == 0 || string(doc) == "null" {
			continue
		}
		// Through Unstructured's JSON decoding, so integers are int64 as
		// in objects read from the API server or kustomize.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(doc); err != nil {
			return nil, fmt.Errorf("decode object %d: %w", len(objs)+1, err)
		}
		objs = append(objs, obj)
	}
}

// Kustomize renders a kustomization directory of the repository, as
// `kustomize build` does.
func Kustomize(root, dir string) ([]*unstructured.Unstructured, error) {
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, res := range resMap.Resources() {
		data, err := res.MarshalJSON()
		if err != nil {
			return nil, err
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

package helm

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Paths of the generated files, relative to the repository root.
const (
	StaticManifestPath = "deploy/certbound.yaml"
	PrometheusRulePath = "deploy/monitoring/prometheusrule.yaml"
)

// chartCopies are files the chart carries as copies of config/, because
// Helm reads nothing outside the chart directory: the CRDs (installed
// verbatim from crds/), the ClusterRole generated from the RBAC markers and
// the webhook configurations generated from the webhook markers.
func chartCopies(root string) (map[string]string, error) {
	copies := map[string]string{
		ChartDir + "/files/manager-role.yaml":      "config/rbac/role.yaml",
		ChartDir + "/files/webhook-manifests.yaml": "config/webhook/manifests.yaml",
	}
	crds, err := filepath.Glob(filepath.Join(root, "config/crd/bases/*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CRDs in %s", filepath.Join(root, "config/crd/bases"))
	}
	for _, crd := range crds {
		copies[ChartDir+"/crds/"+filepath.Base(crd)] = "config/crd/bases/" + filepath.Base(crd)
	}
	return copies, nil
}

// StaticManifestValues are the values of deploy/certbound.yaml: the
// defaults, plus the namespace, which `kubectl apply -f` does not create.
func StaticManifestValues() map[string]any {
	return map[string]any{"namespace": map[string]any{"create": true}}
}

// Generated returns every file generated from config/ and the chart, by
// path relative to root, with its content: first the chart's copies of
// config/ files, then the files rendered from the chart (which reads those
// copies), so one run is enough.
func Generated(root string) (map[string][]byte, error) {
	files := map[string][]byte{}
	copies, err := chartCopies(root)
	if err != nil {
		return nil, err
	}
	for dst, src := range copies {
		data, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			return nil, err
		}
		files[dst] = data
	}
	chart, err := LoadChart(root)
	if err != nil {
		return nil, err
	}
	// The chart on disk may hold stale copies: render from the fresh ones.
	for _, f := range chart.Files {
		if data, ok := files[ChartDir+"/"+f.Name]; ok {
			f.Data = data
		}
	}
	manifest, err := RenderManifest(chart, DefaultRelease, StaticManifestValues())
	if err != nil {
		return nil, err
	}
	files[StaticManifestPath] = append([]byte(staticManifestHeader), manifest...)

	monitoring, err := RenderManifest(chart, DefaultRelease, map[string]any{
		"metrics": map[string]any{"prometheusRule": map[string]any{"enabled": true}},
	})
	if err != nil {
		return nil, err
	}
	rule, err := documentOfKind(monitoring, "PrometheusRule")
	if err != nil {
		return nil, err
	}
	files[PrometheusRulePath] = append([]byte(prometheusRuleHeader), rule...)
	return files, nil
}

// documentOfKind is the one document of a rendered manifest with that
// top-level kind, as Helm rendered it (comments kept).
func documentOfKind(manifest, kind string) (string, error) {
	var found []string
	for _, doc := range strings.Split(manifest, "\n---\n") {
		if strings.Contains("\n"+doc+"\n", "\nkind: "+kind+"\n") {
			found = append(found, doc)
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("the rendered chart has %d %s documents, want 1", len(found), kind)
	}
	return strings.TrimSpace(found[0]) + "\n", nil
}

const prometheusRuleHeader = `# certbound's alerts as a prometheus-operator PrometheusRule for the release
# "certbound" in namespace certbound-system. Generated from the Helm chart
# (metrics.prometheusRule.enabled=true; the rules are
# deploy/charts/certbound/files/prometheus-rules.yaml) by make
# static-manifest; do not edit.
---
`

const staticManifestHeader = `# certbound, installed with ` + "`kubectl apply --server-side -f deploy/certbound.yaml`" + `.
# Generated from the Helm chart deploy/charts/certbound with its default
# values and namespace.create=true (make static-manifest); do not edit.
# Prerequisite: cert-manager.
`

// Write writes the generated files under root and returns the paths it
// changed.
func Write(root string, files map[string][]byte) ([]string, error) {
	var changed []string
	for path, data := range files {
		full := filepath.Join(root, path)
		if old, err := os.ReadFile(full); err == nil && bytes.Equal(old, data) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			return nil, err
		}
		changed = append(changed, path)
	}
	sort.Strings(changed)
	return changed, nil
}

package helm

import (
	"path/filepath"
	"testing"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
)

// TestChartLints runs `helm lint --strict`'s checks (Chart.yaml, values
// against the schema, templates, CRDs) with the default and the
// non-default values: a warning fails too.
func TestChartLints(t *testing.T) {
	dir := filepath.Join(repoRoot(t), ChartDir)
	for name, values := range map[string]map[string]any{"defaults": nil, "non-default": nonDefaultValues()} {
		t.Run(name, func(t *testing.T) {
			result := lint.RunAll(dir, values, DefaultRelease.Namespace)
			for _, m := range result.Messages {
				if m.Severity >= support.WarningSev {
					t.Error(m.Error())
				}
			}
		})
	}
}

package helm

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// kubeStateMetrics are the kube-state-metrics series the alerts use
// (kube-state-metrics is not a Go dependency, so they are listed here; see
// its docs/metrics/workload/deployment-metrics.md).
var kubeStateMetrics = []string{
	"kube_deployment_labels",
	"kube_deployment_spec_replicas",
	"kube_deployment_status_replicas_available",
	"kube_deployment_status_replicas_unavailable",
}

var (
	metricNameField = regexp.MustCompile(`Name:\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	metricDesc      = regexp.MustCompile(`prometheus\.NewDesc\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"`)
	workqueueKey    = regexp.MustCompile(`\w+Key\s*=\s*"([a-z_]+)"`)
)

// knownMetrics are the metric names the alerts and the dashboard may use,
// read from the code that registers them: the authorization server's
// asruntime/metrics.go and tokenexchange_metrics.go, the operator's
// controllers/metrics.go, controller-runtime (the manager's reconcile,
// work-queue, webhook and leader-election metrics, and the certwatcher
// metrics the authorization server registers too), cert-manager's
// certificate collector; plus kubeStateMetrics.
func knownMetrics(t *testing.T) map[string]bool {
	t.Helper()
	root := repoRoot(t)
	known := map[string]bool{}
	add := func(path string, re *regexp.Regexp, prefix string) {
		t.Helper()
		matches := re.FindAllStringSubmatch(string(readFile(t, path)), -1)
		if len(matches) == 0 {
			t.Fatalf("no metric names found in %s", path)
		}
		for _, m := range matches {
			known[prefix+m[1]] = true
		}
	}
	add(filepath.Join(root, "asruntime", "metrics.go"), metricNameField, "")
	add(filepath.Join(root, "asruntime", "tokenexchange_metrics.go"), metricNameField, "")
	add(filepath.Join(root, "controllers", "metrics.go"), metricNameField, "")

	controllerRuntime := moduleDir(t, ".", "sigs.k8s.io/controller-runtime")
	for _, f := range []string{
		"pkg/internal/controller/metrics/metrics.go",
		"pkg/metrics/leaderelection.go",
		"pkg/webhook/internal/metrics/metrics.go",
		"pkg/certwatcher/metrics/metrics.go",
	} {
		add(filepath.Join(controllerRuntime, f), metricNameField, "")
	}
	add(filepath.Join(controllerRuntime, "pkg/metrics/workqueue.go"), workqueueKey, "workqueue_")

	certManager := moduleDir(t, root, "github.com/cert-manager/cert-manager")
	add(filepath.Join(certManager, "internal/collectors/certificate_collector.go"), metricDesc, "")

	for _, m := range kubeStateMetrics {
		known[m] = true
	}
	return known
}

// moduleDir is the module cache directory of a module in the build list of
// the module at dir.
func moduleDir(t *testing.T, dir, module string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go list -m %s in %s: %v", module, dir, err)
	}
	return strings.TrimSpace(string(out))
}

// isKnownMetric accepts a known name, and the _bucket, _sum and _count
// series of a known histogram (the known *_seconds metrics the dashboard
// takes quantiles of).
func isKnownMetric(known map[string]bool, name string) bool {
	if known[name] {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && strings.HasSuffix(base, "_seconds") && known[base] {
			return true
		}
	}
	return false
}

// TestKnownMetricsAreRead guards the name extraction itself: a few names
// from each source must be found.
func TestKnownMetricsAreRead(t *testing.T) {
	known := knownMetrics(t)
	for _, name := range []string{
		"certbound_as_client_auth_failures_total",
		"certbound_as_token_requests_total",
		"certbound_as_token_request_duration_seconds",
		"certbound_as_refreshes_total",
		"certbound_signing_key_next_rotation_timestamp_seconds",
		"controller_runtime_reconcile_errors_total",
		"workqueue_depth",
		"certmanager_certificate_expiration_timestamp_seconds",
		"certmanager_certificate_ready_status",
	} {
		if !known[name] {
			t.Errorf("%s is not among the known metrics %v", name, known)
		}
	}
	if isKnownMetric(known, "certbound_as_token_requests_total_bucket") {
		t.Errorf("a counter's _bucket series is accepted")
	}
}

package helm

import (
	"context"
	"encoding/json"
	"log/slog"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"sigs.k8s.io/yaml"
)

// RulesPath is the rule file the chart's PrometheusRule carries.
const RulesPath = ChartDir + "/files/prometheus-rules.yaml"

var promqlParser = parser.NewParser(parser.Options{})

func parseRules(t *testing.T, content []byte, source string) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := rulefmt.Parse(content, false, model.LegacyValidation, promqlParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("%s: %v", source, err)
	}
	if groups == nil {
		t.FailNow()
	}
	return groups
}

func ruleFile(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	return parseRules(t, readFile(t, filepath.Join(repoRoot(t), RulesPath)), RulesPath)
}

func alertRules(groups *rulefmt.RuleGroups) map[string]rulefmt.Rule {
	alerts := map[string]rulefmt.Rule{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = r
		}
	}
	return alerts
}

// metricNames are the metric names an expression selects.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	node, err := promqlParser.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%q: %v", expr, err)
	}
	var names []string
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("%q selects series without naming the metric", expr)
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// TestRulesAreValid parses the rule file and the generated PrometheusRule
// with Prometheus' own rule parser (expressions, durations, label names
// and annotation templates included), and requires of every alert what
// an on-call person needs.
func TestRulesAreValid(t *testing.T) {
	groups := ruleFile(t)
	alerts := alertRules(groups)
	if len(alerts) == 0 {
		t.Fatal("no alerts")
	}
	for name, r := range alerts {
		if name == "" {
			t.Errorf("recording rule %s: the file holds alerts only", r.Record)
			continue
		}
		if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
			t.Errorf("%s: severity %q, want warning or critical", name, sev)
		}
		for _, a := range []string{"summary", "description", "runbook"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s has no %s", name, a)
			}
		}
	}

	// The PrometheusRule the chart renders carries the same alerts.
	objs, err := DecodeObjects(readFile(t, filepath.Join(repoRoot(t), PrometheusRulePath)))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("%s holds %d objects", PrometheusRulePath, len(objs))
	}
	spec, err := yaml.Marshal(objs[0].Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	rendered := alertRules(parseRules(t, spec, PrometheusRulePath))
	if !slices.Equal(slices.Sorted(maps.Keys(rendered)), slices.Sorted(maps.Keys(alerts))) {
		t.Errorf("%s alerts %v, rule file %v", PrometheusRulePath, slices.Sorted(maps.Keys(rendered)), slices.Sorted(maps.Keys(alerts)))
	}
}

// TestAlertsUseExistingMetrics: every metric an alert selects is one the
// code registers (knownMetrics).
func TestAlertsUseExistingMetrics(t *testing.T) {
	known := knownMetrics(t)
	for name, r := range alertRules(ruleFile(t)) {
		for _, m := range metricNames(t, r.Expr) {
			if !isKnownMetric(known, m) {
				t.Errorf("alert %s uses %s, which nothing registers", name, m)
			}
		}
	}
}

var grafanaVariable = regexp.MustCompile(`\$(__rate_interval|namespace|authorizationserver|operator_job)\b`)
var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*[a-z_]+\)$`)

// TestDashboardQueriesAreValid parses every query of the Grafana
// dashboard, panels and template variables, with Grafana's variables
// substituted, and checks the metrics they use exist.
func TestDashboardQueriesAreValid(t *testing.T) {
	var dashboard struct {
		Panels []struct {
			Title   string
			Type    string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name  string
				Type  string
				Query json.RawMessage
			}
		}
	}
	path := filepath.Join(repoRoot(t), "deploy/monitoring/grafana-dashboard.json")
	if err := json.Unmarshal(readFile(t, path), &dashboard); err != nil {
		t.Fatal(err)
	}
	substitute := func(expr string) string {
		return grafanaVariable.ReplaceAllStringFunc(expr, func(v string) string {
			if v == "$__rate_interval" {
				return "5m"
			}
			return ".*"
		})
	}
	known := knownMetrics(t)
	check := func(where, expr string) {
		for _, m := range metricNames(t, substitute(expr)) {
			if !isKnownMetric(known, m) {
				t.Errorf("%s uses %s, which nothing registers", where, m)
			}
		}
	}
	queries := 0
	for _, p := range dashboard.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, target := range p.Targets {
			check("panel "+p.Title, target.Expr)
			queries++
		}
	}
	for _, v := range dashboard.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatal(err)
		}
		m := labelValuesQuery.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
			continue
		}
		check("variable "+v.Name, m[1])
	}
	if queries == 0 {
		t.Fatal("the dashboard has no queries")
	}
}

// TestAlertsFire evaluates alerts in-process, the way promtool test rules
// does (Prometheus' rule evaluation over series loaded with the promqltest
// load syntax, samples every minute from time 0), and checks each fires on
// the failure it is about and stays quiet otherwise.
func TestAlertsFire(t *testing.T) {
	cases := []struct {
		name       string
		alert      string
		series     string
		at         time.Duration
		wantFiring map[string]string // labels of the one firing alert; nil: none fires
	}{
		{
			name:  "sustained authentication failures",
			alert: "CertboundClientAuthenticationFailing",
			series: `certbound_as_client_auth_failures_total{namespace="team-a", authorizationserver="main", pod="main-0", reason="untrusted_chain"} 0+60x30
certbound_as_client_auth_failures_total{namespace="team-a", authorizationserver="main", pod="main-0", reason="unknown_client"} 0+1x30`,
			at:         25 * time.Minute,
			wantFiring: map[string]string{"namespace": "team-a", "authorizationserver": "main", "reason": "untrusted_chain", "severity": "warning"},
		},
		{
			name:   "a trickle of authentication failures",
			alert:  "CertboundClientAuthenticationFailing",
			series: `certbound_as_client_auth_failures_total{namespace="team-a", authorizationserver="main", pod="main-0", reason="untrusted_chain"} 0+3x30`,
			at:     25 * time.Minute,
		},
		{
			name:  "introspection fails closed",
			alert: "CertboundRevocationStoreUnavailable",
			series: `certbound_as_introspection_requests_total{namespace="team-a", authorizationserver="main", pod="main-0", outcome="temporarily_unavailable"} 0+10x20
certbound_as_revocation_requests_total{namespace="team-a", authorizationserver="main", pod="main-0", outcome="revoked"} 0+1x20`,
			at:         15 * time.Minute,
			wantFiring: map[string]string{"namespace": "team-a", "authorizationserver": "main", "severity": "critical"},
		},
		{
			name:  "revocation store healthy",
			alert: "CertboundRevocationStoreUnavailable",
			series: `certbound_as_introspection_requests_total{namespace="team-a", authorizationserver="main", pod="main-0", outcome="active"} 0+100x20
certbound_as_revocation_requests_total{namespace="team-a", authorizationserver="main", pod="main-0", outcome="revoked"} 0+1x20`,
			at: 15 * time.Minute,
		},
		{
			// A 2h certificate due for renewal at time 0: after 1h more than
			// half of its renewal window is gone.
			name:  "certificate not renewed",
			alert: "CertboundCertificateNearExpiryRenewalFailing",
			series: `certmanager_certificate_expiration_timestamp_seconds{namespace="team-a", name="billing", issuer_name="ca", issuer_kind="Issuer", issuer_group="cert-manager.io"} 7200+0x80
certmanager_certificate_renewal_timestamp_seconds{namespace="team-a", name="billing", issuer_name="ca", issuer_kind="Issuer", issuer_group="cert-manager.io"} 0+0x80`,
			at:         70 * time.Minute,
			wantFiring: map[string]string{"namespace": "team-a", "name": "billing", "severity": "critical"},
		},
		{
			name:  "certificate renewed on time",
			alert: "CertboundCertificateNearExpiryRenewalFailing",
			series: `certmanager_certificate_expiration_timestamp_seconds{namespace="team-a", name="billing", issuer_name="ca", issuer_kind="Issuer", issuer_group="cert-manager.io"} 86400+0x80
certmanager_certificate_renewal_timestamp_seconds{namespace="team-a", name="billing", issuer_name="ca", issuer_kind="Issuer", issuer_group="cert-manager.io"} 57600+0x80`,
			at: 70 * time.Minute,
		},
		{
			name:  "renewal overdue",
			alert: "CertboundCertificateRenewalOverdue",
			series: `certmanager_certificate_renewal_timestamp_seconds{namespace="team-a", name="billing", issuer_name="ca", issuer_kind="Issuer", issuer_group="cert-manager.io"} 0+0x80
certmanager_certificate_renewal_timestamp_seconds{namespace="team-a", name="orders", issuer_name="ca", issuer_kind="Issuer", issuer_group="cert-manager.io"} 57600+0x80`,
			at:         70 * time.Minute,
			wantFiring: map[string]string{"namespace": "team-a", "name": "billing", "severity": "warning"},
		},
		{
			name:  "authorization server without replicas",
			alert: "CertboundAuthorizationServerDown",
			series: `kube_deployment_status_replicas_available{namespace="team-a", deployment="main-as"} 0+0x20
kube_deployment_spec_replicas{namespace="team-a", deployment="main-as"} 2+0x20
kube_deployment_labels{namespace="team-a", deployment="main-as", label_app_kubernetes_io_name="certbound-authorization-server", label_app_kubernetes_io_instance="main"} 1+0x20
kube_deployment_status_replicas_available{namespace="team-a", deployment="unrelated"} 0+0x20
kube_deployment_spec_replicas{namespace="team-a", deployment="unrelated"} 1+0x20
kube_deployment_labels{namespace="team-a", deployment="unrelated", label_app_kubernetes_io_name="web"} 1+0x20`,
			at:         15 * time.Minute,
			wantFiring: map[string]string{"namespace": "team-a", "deployment": "main-as", "label_app_kubernetes_io_instance": "main", "severity": "critical"},
		},
		{
			name:  "authorization server scaled and running",
			alert: "CertboundAuthorizationServerDown",
			series: `kube_deployment_status_replicas_available{namespace="team-a", deployment="main-as"} 2+0x20
kube_deployment_spec_replicas{namespace="team-a", deployment="main-as"} 2+0x20
kube_deployment_labels{namespace="team-a", deployment="main-as", label_app_kubernetes_io_name="certbound-authorization-server", label_app_kubernetes_io_instance="main"} 1+0x20`,
			at: 15 * time.Minute,
		},
		{
			name:  "operator reconcile errors",
			alert: "CertboundOperatorReconcileErrors",
			series: `controller_runtime_reconcile_errors_total{job="certbound-manager-metrics", namespace="certbound-system", pod="certbound-manager-0", controller="oauthclient"} 0+5x30
controller_runtime_reconcile_errors_total{job="other-operator", namespace="other", pod="other-0", controller="widget"} 0+5x30`,
			at:         25 * time.Minute,
			wantFiring: map[string]string{"namespace": "certbound-system", "controller": "oauthclient", "severity": "warning"},
		},
		{
			// Rotation planned for time 0: an hour later it is overdue, and
			// 15 minutes after that the alert fires. Another server rotated
			// on time (its gauge moved on), a third is not due; another
			// job's series are not certbound's.
			name:  "signing key rotation overdue",
			alert: "CertboundSigningKeyRotationOverdue",
			series: `certbound_signing_key_next_rotation_timestamp_seconds{job="certbound-manager-metrics", namespace="team-a", authorizationserver="stuck", pod="certbound-manager-0"} 0+0x90
certbound_signing_key_next_rotation_timestamp_seconds{job="certbound-manager-metrics", namespace="team-a", authorizationserver="rotated", pod="certbound-manager-0"} 0+0x30 172800+0x60
certbound_signing_key_next_rotation_timestamp_seconds{job="certbound-manager-metrics", namespace="team-b", authorizationserver="main", pod="certbound-manager-0"} 86400+0x90
certbound_signing_key_next_rotation_timestamp_seconds{job="other-operator", namespace="team-c", authorizationserver="main", pod="other-0"} 0+0x90`,
			at:         80 * time.Minute,
			wantFiring: map[string]string{"namespace": "team-a", "authorizationserver": "stuck", "severity": "warning"},
		},
		{
			name:   "signing key rotation late, not yet for 15 minutes",
			alert:  "CertboundSigningKeyRotationOverdue",
			series: `certbound_signing_key_next_rotation_timestamp_seconds{job="certbound-manager-metrics", namespace="team-a", authorizationserver="stuck", pod="certbound-manager-0"} 0+0x90`,
			at:     70 * time.Minute,
		},
		{
			// A new leader reports the rotation it carried out; the
			// stale series of the former one does not fire.
			name:  "signing keys rotated by a new leader",
			alert: "CertboundSigningKeyRotationOverdue",
			series: `certbound_signing_key_next_rotation_timestamp_seconds{job="certbound-manager-metrics", namespace="team-a", authorizationserver="main", pod="certbound-manager-0"} 0+0x90
certbound_signing_key_next_rotation_timestamp_seconds{job="certbound-manager-metrics", namespace="team-a", authorizationserver="main", pod="certbound-manager-1"} _x30 172800+0x60`,
			at: 90 * time.Minute,
		},
	}
	alerts := alertRules(ruleFile(t))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rule, ok := alerts[c.alert]
			if !ok {
				t.Fatalf("no alert %s", c.alert)
			}
			firing := evaluate(t, rule, "load 1m\n"+c.series, c.at)
			switch {
			case c.wantFiring == nil && len(firing) > 0:
				t.Errorf("%s fires at %s: %v", c.alert, c.at, firing)
			case c.wantFiring != nil && len(firing) != 1:
				t.Errorf("%s: %d alerts fire at %s, want 1: %v", c.alert, len(firing), c.at, firing)
			case c.wantFiring != nil:
				got := firing[0].Map()
				for k, v := range c.wantFiring {
					if got[k] != v {
						t.Errorf("%s fires with %s=%q, want %q (labels %v)", c.alert, k, got[k], v, got)
					}
				}
			}
		})
	}
}

// evaluate runs the alert every minute from time 0 to at, as a rule group
// with a one-minute interval would, and returns the labels of the alerts
// firing at the end.
func evaluate(t *testing.T, rule rulefmt.Rule, load string, at time.Duration) []labels.Labels {
	t.Helper()
	storage := promqltest.LoadedStorage(t, load)
	engine := promqltest.NewTestEngine(t, false, 0, promqltest.DefaultMaxSamplesPerQuery)
	expr, err := promqlParser.ParseExpr(rule.Expr)
	if err != nil {
		t.Fatal(err)
	}
	alerting := rules.NewAlertingRule(rule.Alert, expr, time.Duration(rule.For), time.Duration(rule.KeepFiringFor),
		labels.FromMap(rule.Labels), labels.FromMap(rule.Annotations), labels.EmptyLabels(), "", true, slog.New(slog.DiscardHandler))
	query := rules.EngineQueryFunc(engine, storage)
	for ts := time.Duration(0); ts <= at; ts += time.Minute {
		if _, err := alerting.Eval(context.Background(), 0, time.Unix(0, 0).Add(ts).UTC(), query, nil, 0); err != nil {
			t.Fatalf("evaluate %s at %s: %v", rule.Alert, ts, err)
		}
	}
	var firing []labels.Labels
	for _, a := range alerting.ActiveAlerts() {
		if a.State == rules.StateFiring {
			firing = append(firing, a.Labels)
		}
	}
	return firing
}

package helm

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// nonDefaultValues changes every value from its default.
func nonDefaultValues() map[string]any {
	return map[string]any{
		"image": map[string]any{
			"repository": "registry.example.com/mirror/certbound",
			"tag":        "v1.2.3",
			"pullPolicy": "IfNotPresent",
		},
		"imagePullSecrets": []any{"mirror-credentials"},
		"replicas":         3,
		"leaderElection":   map[string]any{"enabled": true},
		"logLevel":         "debug",
		"resources": map[string]any{
			"requests": map[string]any{"cpu": "100m", "memory": "128Mi"},
			"limits":   map[string]any{"cpu": "500m", "memory": "256Mi"},
		},
		"webhook": map[string]any{
			"enabled": true,
			"certificate": map[string]any{"issuerRef": map[string]any{
				"name": "platform-ca", "kind": "ClusterIssuer", "group": "cert-manager.io",
			}},
		},
		"metrics": map[string]any{
			"serviceMonitor": map[string]any{"enabled": true, "interval": "30s", "labels": map[string]any{"release": "kube-prometheus"}},
			"podMonitor":     map[string]any{"enabled": true, "interval": "15s", "labels": map[string]any{"release": "kube-prometheus"}},
			"prometheusRule": map[string]any{"enabled": true, "labels": map[string]any{"role": "alert-rules"}},
		},
		"commonLabels":   map[string]any{"team": "platform"},
		"podLabels":      map[string]any{"sidecar.istio.io/inject": "false"},
		"podAnnotations": map[string]any{"cluster-autoscaler.kubernetes.io/safe-to-evict": "true"},
		"nodeSelector":   map[string]any{"kubernetes.io/os": "linux", "node-role.kubernetes.io/infra": ""},
		"tolerations": []any{map[string]any{
			"key": "node-role.kubernetes.io/infra", "operator": "Exists", "effect": "NoSchedule",
		}},
		"affinity": map[string]any{"podAntiAffinity": map[string]any{
			"preferredDuringSchedulingIgnoredDuringExecution": []any{map[string]any{
				"weight": 100,
				"podAffinityTerm": map[string]any{
					"topologyKey":   "kubernetes.io/hostname",
					"labelSelector": map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/component": "manager"}},
				},
			}},
		}},
		"priorityClassName":  "system-cluster-critical",
		"podSecurityContext": map[string]any{"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": map[string]any{"type": "RuntimeDefault"}},
		"securityContext": map[string]any{
			"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
			"capabilities": map[string]any{"drop": []any{"ALL"}},
		},
		"namespace": map[string]any{"create": true},
	}
}

func nested(t *testing.T, obj *unstructured.Unstructured, fields ...string) any {
	t.Helper()
	v, found, err := unstructured.NestedFieldNoCopy(obj.Object, fields...)
	if err != nil || !found {
		t.Fatalf("%s has no %s (%v)", objectKey(obj), strings.Join(fields, "."), err)
	}
	return v
}

// jsonEqual compares a rendered field with a value as written in values
// by their JSON encodings (map keys sorted, integers alike whatever their
// Go type).
func jsonEqual(t *testing.T, got any, want any) bool {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(g, w)
}

// TestNonDefaultValuesTakeEffect sets every value and checks each lands
// where it should.
func TestNonDefaultValuesTakeEffect(t *testing.T) {
	values := nonDefaultValues()
	objs := render(t, DefaultRelease, values)
	deployment := onlyOfKind(t, objs, "Deployment")
	container := managerContainer(t, objs)
	pod := func(fields ...string) any {
		return nested(t, deployment, append([]string{"spec", "template", "spec"}, fields...)...)
	}

	image := "registry.example.com/mirror/certbound:v1.2.3"
	if container["image"] != image || container["imagePullPolicy"] != "IfNotPresent" {
		t.Errorf("image %v, pull policy %v, want %s, IfNotPresent", container["image"], container["imagePullPolicy"], image)
	}
	env, _, _ := unstructured.NestedSlice(container, "env")
	if len(env) != 1 || env[0].(map[string]any)["value"] != image {
		t.Errorf("CERTBOUND_IMAGE env = %v, want the manager's image %s", env, image)
	}
	if got := nested(t, deployment, "spec", "replicas"); got != int64(3) {
		t.Errorf("replicas = %v, want 3", got)
	}
	args := containerArgs(t, objs)
	if !hasArg(args, "--zap-log-level=debug") || !hasArg(args, "--leader-elect") {
		t.Errorf("args %v lack --zap-log-level=debug or --leader-elect", args)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"resources", container["resources"], values["resources"]},
		{"container securityContext", container["securityContext"], values["securityContext"]},
		{"pod securityContext", pod("securityContext"), values["podSecurityContext"]},
		{"nodeSelector", pod("nodeSelector"), values["nodeSelector"]},
		{"tolerations", pod("tolerations"), values["tolerations"]},
		{"affinity", pod("affinity"), values["affinity"]},
		{"priorityClassName", pod("priorityClassName"), values["priorityClassName"]},
		{"imagePullSecrets", pod("imagePullSecrets"), []any{map[string]any{"name": "mirror-credentials"}}},
		{"podAnnotations", nested(t, deployment, "spec", "template", "metadata", "annotations"), values["podAnnotations"]},
	}
	for _, c := range checks {
		if !jsonEqual(t, c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	podLabels := nested(t, deployment, "spec", "template", "metadata", "labels").(map[string]any)
	for k, v := range map[string]string{"sidecar.istio.io/inject": "false", "team": "platform", "app.kubernetes.io/component": "manager"} {
		if podLabels[k] != v {
			t.Errorf("pod label %s = %v, want %s", k, podLabels[k], v)
		}
	}
	for _, obj := range objs {
		if obj.GetKind() != "CustomResourceDefinition" && obj.GetLabels()["team"] != "platform" {
			t.Errorf("%s lacks commonLabels team=platform", objectKey(obj))
		}
	}

	// An existing issuer replaces the chart's self-signed one.
	if issuers := ofKind(objs, "Issuer"); len(issuers) != 0 {
		t.Errorf("with webhook.certificate.issuerRef the chart still renders Issuer %s", issuers[0].GetName())
	}
	if got := nested(t, onlyOfKind(t, objs, "Certificate"), "spec", "issuerRef"); !jsonEqual(t, got, values["webhook"].(map[string]any)["certificate"].(map[string]any)["issuerRef"]) {
		t.Errorf("Certificate issuerRef = %v", got)
	}

	// Monitoring: the ServiceMonitor selects the metrics Service, which
	// selects the manager pods; the PodMonitor the authorization servers.
	monitor := onlyOfKind(t, objs, "ServiceMonitor")
	var metricsService *unstructured.Unstructured
	for _, svc := range ofKind(objs, "Service") {
		if svc.GetName() == "certbound-manager-metrics" {
			metricsService = svc
		}
	}
	if metricsService == nil {
		t.Fatal("serviceMonitor.enabled renders no certbound-manager-metrics Service")
	}
	for k, v := range nested(t, monitor, "spec", "selector", "matchLabels").(map[string]any) {
		if metricsService.GetLabels()[k] != v {
			t.Errorf("the ServiceMonitor selects %s=%v, which the metrics Service lacks", k, v)
		}
	}
	for k, v := range nested(t, metricsService, "spec", "selector").(map[string]any) {
		if podLabels[k] != v {
			t.Errorf("the metrics Service selects %s=%v, which the manager pods lack", k, v)
		}
	}
	if monitor.GetLabels()["release"] != "kube-prometheus" || nested(t, monitor, "spec", "endpoints").([]any)[0].(map[string]any)["interval"] != "30s" {
		t.Errorf("ServiceMonitor labels %v / endpoints %v ignore the values", monitor.GetLabels(), nested(t, monitor, "spec", "endpoints"))
	}
	// The rotation alert groups by the AuthorizationServer's namespace,
	// which only honoured labels keep.
	if got := nested(t, monitor, "spec", "endpoints").([]any)[0].(map[string]any)["honorLabels"]; got != true {
		t.Errorf("ServiceMonitor honorLabels = %v, want true", got)
	}
	podMonitor := onlyOfKind(t, objs, "PodMonitor")
	if got := nested(t, podMonitor, "spec", "selector", "matchLabels", "app.kubernetes.io/name"); got != "certbound-authorization-server" {
		t.Errorf("the PodMonitor selects app.kubernetes.io/name=%v", got)
	}
	rule := onlyOfKind(t, objs, "PrometheusRule")
	if rule.GetLabels()["role"] != "alert-rules" {
		t.Errorf("PrometheusRule labels %v lack role=alert-rules", rule.GetLabels())
	}
	if ns := onlyOfKind(t, objs, "Namespace"); ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Errorf("namespace.create renders Namespace labels %v", ns.GetLabels())
	}
}

// TestWebhookOff: without webhooks the manager is told so and nothing of
// the webhook is rendered.
func TestWebhookOff(t *testing.T) {
	objs := render(t, DefaultRelease, map[string]any{"webhook": map[string]any{"enabled": false}})
	for _, kind := range []string{"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration", "Certificate", "Issuer", "Service"} {
		if found := ofKind(objs, kind); len(found) != 0 {
			t.Errorf("webhook.enabled=false still renders %s", objectKey(found[0]))
		}
	}
	if args := containerArgs(t, objs); !hasArg(args, "--enable-webhooks=false") {
		t.Errorf("args %v lack --enable-webhooks=false", args)
	}
	container := managerContainer(t, objs)
	for _, field := range []string{"volumeMounts"} {
		if _, ok := container[field]; ok {
			t.Errorf("the manager container still has %s", field)
		}
	}
	ports, _, _ := unstructured.NestedSlice(container, "ports")
	for _, p := range ports {
		if p.(map[string]any)["name"] == "webhook" {
			t.Errorf("the manager container still exposes the webhook port")
		}
	}
	if _, found, _ := unstructured.NestedFieldNoCopy(onlyOfKind(t, objs, "Deployment").Object, "spec", "template", "spec", "volumes"); found {
		t.Errorf("the Deployment still mounts the webhook certificate Secret")
	}
}

func TestLeaderElectionOffAndDigest(t *testing.T) {
	digest := "sha256:" + strings.Repeat("ab", 32)
	objs := render(t, DefaultRelease, map[string]any{
		"leaderElection": map[string]any{"enabled": false},
		"image":          map[string]any{"digest": digest},
	})
	if args := containerArgs(t, objs); hasPrefixArg(args, "--leader-elect") {
		t.Errorf("leaderElection.enabled=false still passes %v", args)
	}
	if got := managerContainer(t, objs)["image"]; got != "ghcr.io/certbound/certbound@"+digest {
		t.Errorf("image = %v, want it pinned by digest", got)
	}
}

// TestInvalidValuesAreRefused: values.schema.json refuses mistakes with an
// error naming the value.
func TestInvalidValuesAreRefused(t *testing.T) {
	cases := []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"unknown key", map[string]any{"replica": 2}, "replica"},
		{"zero replicas", map[string]any{"replicas": 0}, "replicas"},
		{"log level", map[string]any{"logLevel": "verbose"}, "logLevel"},
		{"pull policy", map[string]any{"image": map[string]any{"pullPolicy": "Sometimes"}}, "pullPolicy"},
		{"digest", map[string]any{"image": map[string]any{"digest": "latest"}}, "digest"},
		{"issuerRef without name", map[string]any{"webhook": map[string]any{"certificate": map[string]any{"issuerRef": map[string]any{"kind": "ClusterIssuer"}}}}, "issuerRef"},
		{"misspelt monitor toggle", map[string]any{"metrics": map[string]any{"serviceMonitor": map[string]any{"enable": true}}}, "enable"},
		{"label value not a string", map[string]any{"commonLabels": map[string]any{"tier": 1}}, "tier"},
		{"scrape interval", map[string]any{"metrics": map[string]any{"podMonitor": map[string]any{"interval": "often"}}}, "interval"},
	}
	chart := loadChart(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := RenderManifest(chart, DefaultRelease, c.values)
			if err == nil {
				t.Fatalf("values %v were accepted", c.values)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
		})
	}
}

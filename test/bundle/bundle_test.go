// Package bundle checks the OLM bundle a user installs through a catalog:
// the operator-framework validators accept bundle/, the committed bundle is
// what config/ generates today, and the CSV carries the install (webhooks
// served by the CSV's own Deployment, AllNamespaces only).
package bundle

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/operator-framework/api/pkg/manifests"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	"github.com/operator-framework/api/pkg/validation"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"

	"github.com/certbound/certbound/hack/bundle/olmbundle"
	"github.com/certbound/certbound/test/testenv"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func loadBundle(t *testing.T) *manifests.Bundle {
	t.Helper()
	b, err := manifests.GetBundleFromDir(filepath.Join(repoRoot(t), olmbundle.Dir))
	if err != nil {
		t.Fatalf("load bundle/: %v", err)
	}
	return b
}

// TestBundleIsValid runs the operator-framework's default bundle validators
// (CSV, CRD, bundle: owned CRDs present, alm-examples match provided APIs,
// install modes, service accounts, related images, size) and the good
// practices one (resource requests, CRD descriptions, channel names). Errors
// fail the test; warnings are logged.
func TestBundleIsValid(t *testing.T) {
	b := loadBundle(t)
	if b.Package != olmbundle.Package || b.DefaultChannel != olmbundle.Channel || len(b.Channels) != 1 || b.Channels[0] != olmbundle.Channel {
		t.Errorf("bundle package %q channels %v default %q, want %s / [%s] / %s", b.Package, b.Channels, b.DefaultChannel, olmbundle.Package, olmbundle.Channel, olmbundle.Channel)
	}
	if len(b.V1CRDs) != 3 {
		t.Errorf("bundle has %d v1 CRDs, want OAuthClient, AuthorizationServer and ClientRegistration", len(b.V1CRDs))
	}
	if got := b.CSV.GetAnnotations()["operators.operatorframework.io/internal-objects"]; !strings.Contains(got, "clientregistrations.oauth.certbound.io") {
		t.Errorf("the CSV does not mark ClientRegistrations internal (operator-written only): %q", got)
	}
	for _, result := range validation.DefaultBundleValidators.WithValidators(validation.GoodPracticesValidator).Validate(b.ObjectsToValidate()...) {
		for _, e := range result.Errors {
			t.Errorf("%s: %v", result.Name, e)
		}
		for _, w := range result.Warnings {
			t.Logf("warning: %s: %v", result.Name, w)
		}
	}
}

// TestBundleIsCurrent regenerates the bundle in memory from config/ and
// compares it byte for byte with what is committed.
func TestBundleIsCurrent(t *testing.T) {
	root := repoRoot(t)
	files, err := olmbundle.Generate(olmbundle.Options{Root: root})
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	problems, err := olmbundle.Diff(root, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("bundle/%s", p)
	}
	if len(problems) > 0 {
		t.Log("the bundle is stale: run `make bundle` and commit bundle/")
	}
}

// TestWebhooksAreServedByTheCSVDeployment: every webhook config/webhook
// declares is in the CSV, served by the CSV's Deployment on a port the
// manager container declares; and the Deployment no longer mounts the
// cert-manager Secret, since OLM mounts its own certificate there.
func TestWebhooksAreServedByTheCSVDeployment(t *testing.T) {
	csv := loadBundle(t).CSV
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "config", "webhook", "manifests.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]operatorsv1alpha1.WebhookAdmissionType{
		"ValidatingWebhookConfiguration": operatorsv1alpha1.ValidatingAdmissionWebhook,
		"MutatingWebhookConfiguration":   operatorsv1alpha1.MutatingAdmissionWebhook,
	}
	want := map[string]operatorsv1alpha1.WebhookAdmissionType{}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var cfg struct {
			Kind     string                                      `json:"kind"`
			Webhooks []admissionregistrationv1.ValidatingWebhook `json:"webhooks"`
		}
		if err := yaml.Unmarshal([]byte(doc), &cfg); err != nil {
			t.Fatal(err)
		}
		for _, h := range cfg.Webhooks {
			want[h.Name] = types[cfg.Kind]
		}
	}
	if len(want) == 0 {
		t.Fatal("config/webhook/manifests.yaml declares no webhooks")
	}

	deployments := csv.Spec.InstallStrategy.StrategySpec.DeploymentSpecs
	ports := map[int32]bool{}
	for _, d := range deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				ports[p.ContainerPort] = true
			}
			for _, m := range c.VolumeMounts {
				if m.MountPath == "/tmp/k8s-webhook-server/serving-certs" {
					t.Errorf("container %s mounts volume %s at the webhook certificate directory, where OLM mounts its own", c.Name, m.Name)
				}
			}
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Secret != nil && v.Secret.SecretName == "webhook-server-cert" {
				t.Errorf("Deployment %s mounts cert-manager's Secret %s, which the bundle does not create", d.Name, v.Secret.SecretName)
			}
		}
	}
	for _, def := range csv.Spec.WebhookDefinitions {
		typ, ok := want[def.GenerateName]
		if !ok {
			t.Errorf("CSV webhook %s is not in config/webhook", def.GenerateName)
			continue
		}
		delete(want, def.GenerateName)
		if def.Type != typ {
			t.Errorf("CSV webhook %s has type %s, want %s", def.GenerateName, def.Type, typ)
		}
		if len(deployments) != 1 || def.DeploymentName != deployments[0].Name {
			t.Errorf("CSV webhook %s is served by Deployment %q, not the CSV's", def.GenerateName, def.DeploymentName)
		}
		if def.ContainerPort == 0 || def.TargetPort == nil || !ports[def.TargetPort.IntVal] {
			t.Errorf("CSV webhook %s: containerPort %d targetPort %v, want a Service port and a port the manager declares", def.GenerateName, def.ContainerPort, def.TargetPort)
		}
		if def.WebhookPath == nil || *def.WebhookPath == "" {
			t.Errorf("CSV webhook %s has no path", def.GenerateName)
		}
	}
	for name := range want {
		t.Errorf("webhook %s from config/webhook is missing from the CSV", name)
	}
}

// TestOnlyAllNamespacesIsSupported: the manager watches every namespace.
func TestOnlyAllNamespacesIsSupported(t *testing.T) {
	csv := loadBundle(t).CSV
	got := map[operatorsv1alpha1.InstallModeType]bool{}
	for _, m := range csv.Spec.InstallModes {
		got[m.Type] = m.Supported
	}
	want := map[operatorsv1alpha1.InstallModeType]bool{
		operatorsv1alpha1.InstallModeTypeOwnNamespace:    false,
		operatorsv1alpha1.InstallModeTypeSingleNamespace: false,
		operatorsv1alpha1.InstallModeTypeMultiNamespace:  false,
		operatorsv1alpha1.InstallModeTypeAllNamespaces:   true,
	}
	if len(got) != len(want) {
		t.Errorf("install modes %v, want %v", got, want)
	}
	for typ, supported := range want {
		if s, ok := got[typ]; !ok || s != supported {
			t.Errorf("install mode %s supported=%v (declared %v), want %v", typ, s, ok, supported)
		}
	}
}

// TestDockerfileLabelsMatchAnnotations: the bundle image's labels are what
// metadata/annotations.yaml says, so `opm` and OLM read the same package.
func TestDockerfileLabelsMatchAnnotations(t *testing.T) {
	dir := filepath.Join(repoRoot(t), olmbundle.Dir)
	data, err := os.ReadFile(filepath.Join(dir, "metadata", "annotations.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var annotations struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := yaml.Unmarshal(data, &annotations); err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile(filepath.Join(dir, olmbundle.DockerfileName))
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{}
	for _, line := range strings.Split(string(dockerfile), "\n") {
		if kv, ok := strings.CutPrefix(line, "LABEL "); ok {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = v
		}
	}
	if len(annotations.Annotations) != 6 {
		t.Errorf("annotations.yaml has %d annotations, want the 6 registry+v1 ones", len(annotations.Annotations))
	}
	for k, v := range annotations.Annotations {
		if labels[k] != v {
			t.Errorf("annotation %s=%s, Dockerfile LABEL %q", k, v, labels[k])
		}
	}
	if len(labels) != len(annotations.Annotations) {
		t.Errorf("Dockerfile LABELs %v, annotations %v", labels, annotations.Annotations)
	}
}

// TestAnObjectTheBundleCannotCarryFailsTheGenerator: a kind added to
// config/default that is neither expressible in the CSV nor allowed in a
// bundle stops the generator instead of vanishing from the bundle.
func TestAnObjectTheBundleCannotCarryFailsTheGenerator(t *testing.T) {
	root := repoRoot(t)
	scratch := t.TempDir()
	if err := copyTree(filepath.Join(root, "config"), filepath.Join(scratch, "config")); err != nil {
		t.Fatal(err)
	}
	job := "---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  namespace: system\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: controller:latest\n"
	manager := filepath.Join(scratch, "config", "manager", "manager.yaml")
	data, err := os.ReadFile(manager)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(manager, append(data, job...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = olmbundle.Generate(olmbundle.Options{Root: scratch})
	if err == nil || !strings.Contains(err.Error(), "Job") {
		t.Fatalf("generate with a Job in config/default: err = %v, want a refusal naming the Job", err)
	}
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

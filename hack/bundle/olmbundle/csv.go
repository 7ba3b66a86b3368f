package olmbundle

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/blang/semver/v4"
	"github.com/operator-framework/api/pkg/lib/version"
	operatorsv1alpha1 "github.com/operator-framework/api/pkg/operators/v1alpha1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	// apiGroup is the group of the CRDs the operator owns; alm-examples are
	// the samples of this group.
	apiGroup = "oauth.certbound.io"
	// minKubeVersion: the CRDs' CEL rules use isIP() (the Kubernetes IP
	// library, added in 1.30 and usable in CRD validation from 1.31).
	minKubeVersion = "1.31.0"
)

// carriedKinds may ride along in bundle/manifests as plain objects (OLM
// creates them in the install namespace). Anything else config/default
// renders must be turned into CSV fields or be explicitly dropped.
var carriedKinds = map[string]bool{
	"ConfigMap":           true,
	"Secret":              true,
	"Service":             true,
	"PodDisruptionBudget": true,
	"PrometheusRule":      true,
	"ServiceMonitor":      true,
	"PriorityClass":       true,
	"NetworkPolicy":       true,
}

type result struct {
	crds  []*unstructured.Unstructured
	extra []*unstructured.Unstructured
	csv   map[string]any
}

// build turns the rendered install (config/default) and samples into the
// bundle's objects. Every rendered object is accounted for: it becomes part
// of the CSV (Deployment, ServiceAccount, RBAC, webhook configurations and
// the webhook Service), is copied (CRDs, carriedKinds), or is dropped for a
// stated reason (the Namespace: OLM installs into the OperatorGroup's; the
// cert-manager serving certificate: OLM issues webhook certificates itself).
func build(install, samples []*unstructured.Unstructured, opts Options) (*result, error) {
	used := map[*unstructured.Unstructured]bool{}
	var res result

	deployObj, deploy, err := managerDeployment(install)
	if err != nil {
		return nil, err
	}
	used[deployObj] = true
	image, err := setImage(deploy, opts)
	if err != nil {
		return nil, err
	}
	dropServingCertVolumes(deploy, install)

	saName := deploy.Spec.Template.Spec.ServiceAccountName
	if saName == "" {
		return nil, fmt.Errorf("Deployment %s: no serviceAccountName; OLM binds the CSV's permissions to it", deploy.Name)
	}
	for _, obj := range install {
		if obj.GetKind() == "ServiceAccount" && obj.GetName() == saName {
			used[obj] = true // OLM creates it from the CSV's permissions
		}
	}
	clusterPerms, perms, err := permissions(install, saName, used)
	if err != nil {
		return nil, err
	}
	webhooks, err := webhookDefinitions(install, deploy, used)
	if err != nil {
		return nil, err
	}

	for _, obj := range install {
		if used[obj] {
			continue
		}
		switch {
		case obj.GetKind() == "CustomResourceDefinition":
			res.crds = append(res.crds, obj)
		case obj.GetKind() == "Namespace":
			// OLM installs into the namespace of the OperatorGroup.
		case obj.GroupVersionKind().Group == "cert-manager.io":
			// The webhooks' serving certificate: OLM issues and rotates
			// webhook certificates itself and mounts them where
			// controller-runtime reads them.
		case carriedKinds[obj.GetKind()]:
			c := obj.DeepCopy()
			c.SetNamespace("")
			res.extra = append(res.extra, c)
		default:
			return nil, fmt.Errorf("config/default renders %s %s, which the bundle can neither carry nor express in the CSV: teach olmbundle what to do with it", obj.GetKind(), obj.GetName())
		}
	}
	sort.Slice(res.crds, func(i, j int) bool { return res.crds[i].GetName() < res.crds[j].GetName() })
	sort.Slice(res.extra, func(i, j int) bool {
		return res.extra[i].GetKind()+"/"+res.extra[i].GetName() < res.extra[j].GetKind()+"/"+res.extra[j].GetName()
	})

	owned, err := ownedCRDs(res.crds)
	if err != nil {
		return nil, err
	}
	examples, err := almExamples(samples)
	if err != nil {
		return nil, err
	}
	v, err := semver.Parse(opts.Version)
	if err != nil {
		return nil, fmt.Errorf("version %q: %w", opts.Version, err)
	}

	csv := &operatorsv1alpha1.ClusterServiceVersion{
		TypeMeta: metav1.TypeMeta{APIVersion: operatorsv1alpha1.SchemeGroupVersion.String(), Kind: operatorsv1alpha1.ClusterServiceVersionKind},
		ObjectMeta: metav1.ObjectMeta{
			Name: Package + ".v" + v.String(),
			Annotations: map[string]string{
				"alm-examples":   examples,
				"capabilities":   "Basic Install",
				"categories":     "Security",
				"containerImage": image,
				"description":    "Mutual-TLS OAuth 2.0 clients and authorization servers (RFC 8705) as Kubernetes resources, with certificates from cert-manager.",
				"repository":     "https://github.com/certbound/certbound",
				"operatorframework.io/suggested-namespace": deployObj.GetNamespace(),
				// Written by the operator only: consoles hide it from users.
				"operators.operatorframework.io/internal-objects": `["clientregistrations.oauth.certbound.io"]`,
			},
		},
		Spec: operatorsv1alpha1.ClusterServiceVersionSpec{
			DisplayName:    "certbound",
			Description:    description,
			Version:        version.OperatorVersion{Version: v},
			Maturity:       Channel,
			MinKubeVersion: minKubeVersion,
			Keywords:       []string{"oauth2", "mtls", "rfc8705", "certificate-bound tokens", "authorization server", "cert-manager", "spiffe"},
			Maintainers:    []operatorsv1alpha1.Maintainer{{Name: "certbound maintainers"}},
			Provider:       operatorsv1alpha1.AppLink{Name: "certbound", URL: "https://github.com/certbound/certbound"},
			Links: []operatorsv1alpha1.AppLink{
				{Name: "Source", URL: "https://github.com/certbound/certbound"},
				{Name: "RFC 8705", URL: "https://www.rfc-editor.org/rfc/rfc8705"},
			},
			// The manager watches OAuthClients and AuthorizationServers in
			// every namespace (an AuthorizationServer may accept clients
			// from other namespaces); it has no namespace-scoped mode.
			InstallModes: []operatorsv1alpha1.InstallMode{
				{Type: operatorsv1alpha1.InstallModeTypeOwnNamespace, Supported: false},
				{Type: operatorsv1alpha1.InstallModeTypeSingleNamespace, Supported: false},
				{Type: operatorsv1alpha1.InstallModeTypeMultiNamespace, Supported: false},
				{Type: operatorsv1alpha1.InstallModeTypeAllNamespaces, Supported: true},
			},
			CustomResourceDefinitions: operatorsv1alpha1.CustomResourceDefinitions{Owned: owned},
			InstallStrategy: operatorsv1alpha1.NamedInstallStrategy{
				StrategyName: operatorsv1alpha1.InstallStrategyNameDeployment,
				StrategySpec: operatorsv1alpha1.StrategyDetailsDeployment{
					DeploymentSpecs:    []operatorsv1alpha1.StrategyDeploymentSpec{{Name: deploy.Name, Label: labels.Set(deploy.Labels), Spec: deploy.Spec}},
					ClusterPermissions: clusterPerms,
					Permissions:        perms,
				},
			},
			WebhookDefinitions: webhooks,
			RelatedImages:      []operatorsv1alpha1.RelatedImage{{Name: Package, Image: image}},
		},
	}
	res.csv, err = csvObject(csv)
	if err != nil {
		return nil, err
	}
	return &res, nil
}

const description = `certbound runs OAuth 2.0 mutual-TLS client authentication and
certificate-bound access tokens (RFC 8705) inside the cluster.

* **AuthorizationServer** deploys an authorization server: its serving
  certificate comes from a cert-manager issuer, it trusts the client CAs you
  name, and it issues access tokens bound to the client certificate
  (` + "`cnf.x5t#S256`" + `).
* **OAuthClient** registers a client by its certificate subject (DN, DNS name,
  URI such as a SPIFFE ID, IP or email; ` + "`tls_client_auth`" + `) or by its
  self-signed certificate (` + "`self_signed_tls_client_auth`" + `). The operator
  issues the certificate with cert-manager and writes a Secret the workload
  mounts.

Both kinds report a ` + "`Ready`" + ` condition, so ` + "`kubectl wait --for=condition=Ready`" + `
and GitOps health checks work.

**Prerequisite:** cert-manager installed in the cluster.
`

// managerDeployment returns the one Deployment config/default renders.
func managerDeployment(objs []*unstructured.Unstructured) (*unstructured.Unstructured, *appsv1.Deployment, error) {
	var found []*unstructured.Unstructured
	for _, obj := range objs {
		if obj.GetKind() == "Deployment" {
			found = append(found, obj)
		}
	}
	if len(found) != 1 {
		return nil, nil, fmt.Errorf("config/default renders %d Deployments, want the manager only", len(found))
	}
	deploy, err := convert[appsv1.Deployment](found[0])
	if err != nil {
		return nil, nil, err
	}
	return found[0], deploy, nil
}

// setImage points the manager at the bundle's operator image, and with it
// every environment variable that carried the rendered image
// (CERTBOUND_IMAGE: the operator deploys authorization servers with its own
// image).
func setImage(deploy *appsv1.Deployment, opts Options) (string, error) {
	containers := deploy.Spec.Template.Spec.Containers
	if len(containers) == 0 {
		return "", fmt.Errorf("Deployment %s has no containers", deploy.Name)
	}
	rendered := containers[0].Image
	image := opts.Image
	if image == "" {
		image = imageRepository(rendered) + ":v" + strings.TrimPrefix(opts.Version, "v")
	}
	for i := range containers {
		c := &containers[i]
		if c.Image != rendered {
			continue
		}
		c.Image = image
		for j := range c.Env {
			if c.Env[j].Value == rendered {
				c.Env[j].Value = image
			}
		}
	}
	return image, nil
}

// imageRepository strips the tag or digest from an image reference.
func imageRepository(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	return ref
}

// dropServingCertVolumes removes the volumes (and their mounts) holding the
// Secrets cert-manager Certificates write: OLM mounts its own webhook
// certificate at controller-runtime's default directory instead.
func dropServingCertVolumes(deploy *appsv1.Deployment, objs []*unstructured.Unstructured) {
	secrets := map[string]bool{}
	for _, obj := range objs {
		if obj.GroupVersionKind().Group == "cert-manager.io" && obj.GetKind() == "Certificate" {
			name, _, _ := unstructured.NestedString(obj.Object, "spec", "secretName")
			secrets[name] = true
		}
	}
	dropped := map[string]bool{}
	pod := &deploy.Spec.Template.Spec
	pod.Volumes = slices.DeleteFunc(pod.Volumes, func(v corev1.Volume) bool {
		drop := v.Secret != nil && secrets[v.Secret.SecretName]
		dropped[v.Name] = drop
		return drop
	})
	if len(pod.Volumes) == 0 {
		pod.Volumes = nil
	}
	for i := range pod.Containers {
		c := &pod.Containers[i]
		c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return dropped[m.Name] })
		if len(c.VolumeMounts) == 0 {
			c.VolumeMounts = nil
		}
	}
}

// permissions follows every (Cluster)RoleBinding to the manager's
// ServiceAccount: ClusterRoleBindings become clusterPermissions, RoleBindings
// (to a Role or a ClusterRole) namespaced permissions in the install
// namespace. A role or binding that grants anything to anyone else is an
// error, since OLM could not reproduce it.
func permissions(objs []*unstructured.Unstructured, saName string, used map[*unstructured.Unstructured]bool) (cluster, namespaced []operatorsv1alpha1.StrategyDeploymentPermissions, err error) {
	roles := map[string]*unstructured.Unstructured{}
	for _, obj := range objs {
		if obj.GetKind() == "Role" || obj.GetKind() == "ClusterRole" {
			roles[obj.GetKind()+"/"+obj.GetName()] = obj
		}
	}
	var clusterRules, nsRules []rbacv1.PolicyRule
	var clusterRoles, nsRoles []string
	for _, obj := range objs {
		kind := obj.GetKind()
		if kind != "ClusterRoleBinding" && kind != "RoleBinding" {
			continue
		}
		binding, err := convert[rbacv1.RoleBinding](obj) // same shape as ClusterRoleBinding
		if err != nil {
			return nil, nil, err
		}
		if len(binding.Subjects) != 1 || binding.Subjects[0].Kind != rbacv1.ServiceAccountKind || binding.Subjects[0].Name != saName {
			return nil, nil, fmt.Errorf("%s %s binds %v; OLM can only bind the manager's ServiceAccount %s", kind, obj.GetName(), binding.Subjects, saName)
		}
		roleKey := binding.RoleRef.Kind + "/" + binding.RoleRef.Name
		role, ok := roles[roleKey]
		if !ok {
			return nil, nil, fmt.Errorf("%s %s refers to %s, which config/default does not render", kind, obj.GetName(), roleKey)
		}
		used[obj], used[role] = true, true
		if kind == "ClusterRoleBinding" {
			clusterRoles = append(clusterRoles, roleKey)
		} else {
			nsRoles = append(nsRoles, roleKey)
		}
	}
	rulesOf := func(keys []string) ([]rbacv1.PolicyRule, error) {
		sort.Strings(keys)
		var rules []rbacv1.PolicyRule
		for _, key := range slices.Compact(keys) {
			r, err := convert[rbacv1.ClusterRole](roles[key]) // rules are the same for a Role
			if err != nil {
				return nil, err
			}
			rules = append(rules, r.Rules...)
		}
		return rules, nil
	}
	if clusterRules, err = rulesOf(clusterRoles); err != nil {
		return nil, nil, err
	}
	if nsRules, err = rulesOf(nsRoles); err != nil {
		return nil, nil, err
	}
	for key, role := range roles {
		if !used[role] {
			return nil, nil, fmt.Errorf("%s is not bound to the manager's ServiceAccount %s", key, saName)
		}
	}
	if len(clusterRules) > 0 {
		cluster = []operatorsv1alpha1.StrategyDeploymentPermissions{{ServiceAccountName: saName, Rules: clusterRules}}
	}
	if len(nsRules) > 0 {
		namespaced = []operatorsv1alpha1.StrategyDeploymentPermissions{{ServiceAccountName: saName, Rules: nsRules}}
	}
	return cluster, namespaced, nil
}

// webhookDefinitions turns each webhook of the rendered webhook
// configurations into a CSV webhook definition. OLM creates the
// configurations, a Service in front of the Deployment and the serving
// certificate, so what it needs is which Deployment serves the webhook
// (the one the webhook Service selects), on which path, the Service port the
// API server calls (containerPort) and the pod port behind it (targetPort).
func webhookDefinitions(objs []*unstructured.Unstructured, deploy *appsv1.Deployment, used map[*unstructured.Unstructured]bool) ([]operatorsv1alpha1.WebhookDescription, error) {
	services := map[string]*unstructured.Unstructured{}
	for _, obj := range objs {
		if obj.GetKind() == "Service" {
			services[obj.GetNamespace()+"/"+obj.GetName()] = obj
		}
	}
	var defs []operatorsv1alpha1.WebhookDescription
	for _, obj := range objs {
		var (
			hooks        []admissionregistrationv1.ValidatingWebhook
			reinvocation = map[string]*admissionregistrationv1.ReinvocationPolicyType{}
			typ          operatorsv1alpha1.WebhookAdmissionType
		)
		switch obj.GetKind() {
		case "ValidatingWebhookConfiguration":
			cfg, err := convert[admissionregistrationv1.ValidatingWebhookConfiguration](obj)
			if err != nil {
				return nil, err
			}
			hooks, typ = cfg.Webhooks, operatorsv1alpha1.ValidatingAdmissionWebhook
		case "MutatingWebhookConfiguration":
			cfg, err := convert[admissionregistrationv1.MutatingWebhookConfiguration](obj)
			if err != nil {
				return nil, err
			}
			typ = operatorsv1alpha1.MutatingAdmissionWebhook
			for _, h := range cfg.Webhooks {
				reinvocation[h.Name] = h.ReinvocationPolicy
				hooks = append(hooks, admissionregistrationv1.ValidatingWebhook{
					Name: h.Name, ClientConfig: h.ClientConfig, Rules: h.Rules, FailurePolicy: h.FailurePolicy,
					MatchPolicy: h.MatchPolicy, NamespaceSelector: h.NamespaceSelector, ObjectSelector: h.ObjectSelector,
					SideEffects: h.SideEffects, TimeoutSeconds: h.TimeoutSeconds,
					AdmissionReviewVersions: h.AdmissionReviewVersions, MatchConditions: h.MatchConditions,
				})
			}
		default:
			continue
		}
		used[obj] = true
		for _, h := range hooks {
			def, svc, err := webhookDefinition(h, typ, services, deploy)
			if err != nil {
				return nil, fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err)
			}
			used[svc] = true
			def.ReinvocationPolicy = reinvocation[h.Name]
			defs = append(defs, def)
		}
	}
	sort.Slice(defs, func(i, j int) bool {
		if defs[i].Type != defs[j].Type {
			return defs[i].Type < defs[j].Type
		}
		return defs[i].GenerateName < defs[j].GenerateName
	})
	return defs, nil
}

func webhookDefinition(h admissionregistrationv1.ValidatingWebhook, typ operatorsv1alpha1.WebhookAdmissionType, services map[string]*unstructured.Unstructured, deploy *appsv1.Deployment) (operatorsv1alpha1.WebhookDescription, *unstructured.Unstructured, error) {
	var none operatorsv1alpha1.WebhookDescription
	ref := h.ClientConfig.Service
	if ref == nil {
		return none, nil, fmt.Errorf("webhook %s calls a URL; OLM can only serve webhooks from the operator's Deployment", h.Name)
	}
	// OLM scopes the webhooks to the OperatorGroup's namespaces itself and
	// has no field for these.
	if h.NamespaceSelector != nil && (len(h.NamespaceSelector.MatchLabels) > 0 || len(h.NamespaceSelector.MatchExpressions) > 0) {
		return none, nil, fmt.Errorf("webhook %s: a namespaceSelector cannot be expressed in a CSV", h.Name)
	}
	if len(h.MatchConditions) > 0 {
		return none, nil, fmt.Errorf("webhook %s: matchConditions cannot be expressed in a CSV", h.Name)
	}
	svcObj, ok := services[ref.Namespace+"/"+ref.Name]
	if !ok {
		return none, nil, fmt.Errorf("webhook %s calls Service %s/%s, which config/default does not render", h.Name, ref.Namespace, ref.Name)
	}
	svc, err := convert[corev1.Service](svcObj)
	if err != nil {
		return none, nil, err
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(deploy.Spec.Template.Labels)) || len(svc.Spec.Selector) == 0 {
		return none, nil, fmt.Errorf("webhook %s: Service %s does not select the manager's pods", h.Name, svc.Name)
	}
	port := int32(443)
	if ref.Port != nil {
		port = *ref.Port
	}
	var target *intstr.IntOrString
	for _, p := range svc.Spec.Ports {
		if p.Port == port {
			t, err := podPort(deploy, p.TargetPort)
			if err != nil {
				return none, nil, fmt.Errorf("webhook %s: %w", h.Name, err)
			}
			target = &t
		}
	}
	if target == nil {
		return none, nil, fmt.Errorf("webhook %s calls port %d, which Service %s does not expose", h.Name, port, svc.Name)
	}
	return operatorsv1alpha1.WebhookDescription{
		GenerateName:            h.Name,
		Type:                    typ,
		DeploymentName:          deploy.Name,
		ContainerPort:           port,
		TargetPort:              target,
		Rules:                   h.Rules,
		FailurePolicy:           h.FailurePolicy,
		MatchPolicy:             h.MatchPolicy,
		ObjectSelector:          h.ObjectSelector,
		SideEffects:             h.SideEffects,
		TimeoutSeconds:          h.TimeoutSeconds,
		AdmissionReviewVersions: h.AdmissionReviewVersions,
		WebhookPath:             ref.Path,
	}, svcObj, nil
}

// podPort resolves a Service targetPort (a number or a container port's
// name) to the number the manager container listens on.
func podPort(deploy *appsv1.Deployment, target intstr.IntOrString) (intstr.IntOrString, error) {
	for _, c := range deploy.Spec.Template.Spec.Containers {
		for _, p := range c.Ports {
			if (target.Type == intstr.String && p.Name == target.StrVal) || (target.Type == intstr.Int && p.ContainerPort == target.IntVal) {
				return intstr.FromInt32(p.ContainerPort), nil
			}
		}
	}
	return intstr.IntOrString{}, fmt.Errorf("targetPort %s is not a port of Deployment %s", target.String(), deploy.Name)
}

// almExamples lists the samples of the operator's own kinds, without their
// namespace so the console creates them where the user is.
func almExamples(samples []*unstructured.Unstructured) (string, error) {
	var examples []map[string]any
	for _, obj := range samples {
		if obj.GroupVersionKind().Group != apiGroup {
			continue
		}
		c := obj.DeepCopy()
		c.SetNamespace("")
		examples = append(examples, c.Object)
	}
	if len(examples) == 0 {
		return "", fmt.Errorf("config/samples renders no %s objects for alm-examples", apiGroup)
	}
	data, err := json.MarshalIndent(examples, "", "  ")
	if err != nil {
		return "", err
	}
	return string(data), nil
}

// csvObject turns the typed CSV into the map that is written out, without
// the fields a typed round trip adds but nobody wrote (null timestamps, the
// empty status, no API services, cleanup: {enabled: false}).
func csvObject(csv *operatorsv1alpha1.ClusterServiceVersion) (map[string]any, error) {
	data, err := json.Marshal(csv)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	if spec, ok := m["spec"].(map[string]any); ok {
		if cleanup, ok := spec["cleanup"].(map[string]any); ok && cleanup["enabled"] == false {
			delete(spec, "cleanup")
		}
		if apis, ok := spec["apiservicedefinitions"].(map[string]any); ok && len(apis) == 0 {
			delete(spec, "apiservicedefinitions")
		}
	}
	return pruneNulls(m).(map[string]any), nil
}

func pruneNulls(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil {
				delete(v, k)
				continue
			}
			v[k] = pruneNulls(e)
		}
	case []any:
		for i := range v {
			v[i] = pruneNulls(v[i])
		}
	}
	return v
}

func convert[T any](obj *unstructured.Unstructured) (*T, error) {
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, out); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	return out, nil
}

package controllers

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	appsac "k8s.io/client-go/applyconfigurations/apps/v1"
	coreac "k8s.io/client-go/applyconfigurations/core/v1"
	metaac "k8s.io/client-go/applyconfigurations/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestSameConfiguration(t *testing.T) {
	secretGVK := schema.GroupVersionKind{Version: "v1", Kind: "Secret"}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ns", Labels: map[string]string{"app": "x"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"client_id": []byte("ns.cfg")},
	}
	ownedSecret := func() *coreac.SecretApplyConfiguration {
		return coreac.Secret("cfg", "ns").WithLabels(map[string]string{"app": "x"}).WithType(corev1.SecretTypeOpaque).
			WithData(map[string][]byte{"client_id": []byte("ns.cfg")})
	}
	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "as", Namespace: "ns"},
		Spec:       appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "as"}}},
		Status:     appsv1.DeploymentStatus{Replicas: 2, ReadyReplicas: 1},
	}
	deploymentGVK := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	withoutStatus, err := toApplyConfiguration[appsac.DeploymentApplyConfiguration](&appsv1.Deployment{ObjectMeta: deployment.ObjectMeta, Spec: deployment.Spec}, deploymentGVK)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		desired client.Object
		gvk     schema.GroupVersionKind
		owned   runtime.ApplyConfiguration
		same    bool
	}{
		"the owned configuration": {secret, secretGVK, ownedSecret(), true},
		"a changed value":         {secret, secretGVK, ownedSecret().WithData(map[string][]byte{"client_id": []byte("other")}), false},
		"a field not yet owned":   {secret, secretGVK, coreac.Secret("cfg", "ns").WithType(corev1.SecretTypeOpaque).WithData(map[string][]byte{"client_id": []byte("ns.cfg")}), false},
		"an owned field now dropped (the applied-hash annotation of earlier versions)": {secret, secretGVK, ownedSecret().WithAnnotations(map[string]string{"oauth.certbound.io/applied-hash": "0123456789abcdef"}), false},
		"status is not configuration": {deployment, deploymentGVK, withoutStatus, true},
		"an unset struct is not configuration": {deployment, deploymentGVK, appsac.Deployment("as", "ns").WithSpec(appsac.DeploymentSpec().
			WithSelector(metaac.LabelSelector().WithMatchLabels(map[string]string{"app": "as"}))), true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			kind := applyKinds[reflect.TypeOf(tc.desired)]
			desired, err := kind.toApply(tc.desired, tc.gvk)
			if err != nil {
				t.Fatal(err)
			}
			same, err := sameConfiguration(desired, tc.owned)
			if err != nil {
				t.Fatal(err)
			}
			if same != tc.same {
				t.Errorf("same = %v, want %v", same, tc.same)
			}
		})
	}
}

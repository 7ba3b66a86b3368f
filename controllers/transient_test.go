package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/kubescheme"
)

// TestATransientErrorLeavesStatusAsItWas: when the API server fails a read
// mid-reconcile, the client's status keeps every condition it had, with
// its lastTransitionTime, and its clientID — nothing is written, nothing
// fires an event — and the error is returned for a retry.
func TestATransientErrorLeavesStatusAsItWas(t *testing.T) {
	transitioned := metav1.NewTime(t0.Add(-48 * time.Hour))
	known := oauthv1alpha1.OAuthClientStatus{
		ObservedGeneration: 1,
		ClientID:           "billing.worker",
		RegistrationName:   "billing.worker",
		Conditions: []metav1.Condition{
			{Type: oauthv1alpha1.ConditionAccepted, Status: metav1.ConditionTrue, Reason: ReasonAccepted, ObservedGeneration: 1, LastTransitionTime: transitioned},
			{Type: oauthv1alpha1.ConditionRegistered, Status: metav1.ConditionTrue, Reason: ReasonRegistered, ObservedGeneration: 1, LastTransitionTime: transitioned},
			{Type: oauthv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: ReasonReady, ObservedGeneration: 1, LastTransitionTime: transitioned},
		},
	}
	oc := oauthClient("billing", func(c *oauthv1alpha1.OAuthClient) {
		c.Generation = 1
		c.Finalizers = []string{finalizerRegistration}
		c.Status = known
	})
	scheme := kubescheme.New()
	statusWrites := 0
	apiDown := apierrors.NewServiceUnavailable("the API server is restarting")
	c := fake.NewClientBuilder().WithScheme(scheme).
		WithObjects(oc, server(nil), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "billing"}}).
		WithStatusSubresource(&oauthv1alpha1.OAuthClient{}).
		WithInterceptorFuncs(interceptor.Funcs{
			Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
				if _, ok := obj.(*corev1.Namespace); ok {
					return apiDown
				}
				return c.Get(ctx, key, obj, opts...)
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
				statusWrites++
				return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
			},
			SubResourceApply: func(ctx context.Context, c client.Client, sub string, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
				statusWrites++
				return c.SubResource(sub).Apply(ctx, obj, opts...)
			},
		}).Build()
	recorder := events.NewFakeRecorder(10)
	r := &OAuthClientReconciler{Client: c, Scheme: scheme, Recorder: recorder, Clock: clocktesting.NewFakePassiveClock(t0)}
	r.applier = &applier{client: c, scheme: scheme}

	_, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: oc.Namespace, Name: oc.Name}})
	if !errors.Is(err, apiDown) && !apierrors.IsServiceUnavailable(err) {
		t.Fatalf("Reconcile returned %v, want the API error for a retry", err)
	}
	if statusWrites != 0 {
		t.Errorf("%d status writes after a transient error, want none", statusWrites)
	}
	var after oauthv1alpha1.OAuthClient
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(oc), &after); err != nil {
		t.Fatal(err)
	}
	if after.Status.ClientID != known.ClientID || len(after.Status.Conditions) != len(known.Conditions) {
		t.Fatalf("status after a transient error = %+v, want it unchanged", after.Status)
	}
	for i, cond := range after.Status.Conditions {
		if cond.Status != known.Conditions[i].Status || !cond.LastTransitionTime.Equal(&transitioned) {
			t.Errorf("condition %s = %s since %s, want %s since %s", cond.Type, cond.Status, cond.LastTransitionTime, known.Conditions[i].Status, transitioned)
		}
	}
	if len(recorder.Events) != 0 {
		t.Errorf("a transient error fired %d events", len(recorder.Events))
	}
}

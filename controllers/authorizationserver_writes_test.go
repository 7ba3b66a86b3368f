package controllers

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/poll"
)

// TestRegistrationEventsEnqueueTheirServerAfterTheBatchDelay: however many
// registrations of a server come and go within the delay, the server is
// queued once, when the delay has passed, and not before.
func TestRegistrationEventsEnqueueTheirServerAfterTheBatchDelay(t *testing.T) {
	const delay = time.Minute
	clk := clocktesting.NewFakeClock(time.Now())
	queue := workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request](),
		workqueue.TypedRateLimitingQueueConfig[reconcile.Request]{
			DelayingQueue: workqueue.NewTypedDelayingQueueWithConfig(workqueue.TypedDelayingQueueConfig[reconcile.Request]{Clock: clk}),
		})
	defer queue.ShutDown()
	registration := func(server string, i int) *oauthv1alpha1.ClientRegistration {
		return &oauthv1alpha1.ClientRegistration{
			ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: fmt.Sprintf("%s-client-%d", server, i), Generation: 1},
			Spec:       oauthv1alpha1.ClientRegistrationSpec{AuthorizationServerName: server},
		}
	}

	ctx := context.Background()
	h := registrationToServerAfter(delay)
	for i := range 10 {
		created := registration("payments", i)
		h.Create(ctx, event.CreateEvent{Object: created}, queue)
		updated := created.DeepCopy()
		updated.Generation++
		h.Update(ctx, event.UpdateEvent{ObjectOld: created, ObjectNew: updated}, queue)
		h.Delete(ctx, event.DeleteEvent{Object: updated}, queue)
	}
	h.Create(ctx, event.CreateEvent{Object: registration("ledger", 0)}, queue)
	if n := queue.Len(); n != 0 {
		t.Fatalf("%d servers queued at once, want none before the delay", n)
	}

	want := map[reconcile.Request]bool{
		{NamespacedName: types.NamespacedName{Namespace: "auth", Name: "payments"}}: true,
		{NamespacedName: types.NamespacedName{Namespace: "auth", Name: "ledger"}}:   true,
	}
	// The queue moves items when its clock passes their time; stepping
	// again covers a step made before it had set its timer.
	poll.Until(t, 30*time.Second, "both servers queued", func() (bool, string) {
		clk.Step(delay)
		return queue.Len() == len(want), fmt.Sprintf("%d queued", queue.Len())
	})
	for range len(want) {
		req, _ := queue.Get()
		if !want[req] {
			t.Errorf("queued %v, want each of %v once", req, want)
		}
		delete(want, req)
		queue.Done(req)
	}
}

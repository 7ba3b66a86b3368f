package asruntime

// The writer of the in-cluster registry's failure reports: a merge patch
// of each due client's ClientRegistration status, with the server's own
// client. Replicas each write: the patch carries the resourceVersion the
// merge was computed from, so a replica that lost a race to another gets a
// conflict and merges again at its next flush from the fresher copy the
// informer then holds. Any other failed write is logged and dropped.

import (
	"context"
	"encoding/json"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/certbound/certbound/api/v1alpha1"
)

// authFailureFlushTick is how often due reports are looked for; the
// per-client limit is authFailureFlushInterval.
const authFailureFlushTick = 5 * time.Second

// recordAuthFailure counts a failed authentication of a registered client.
func (r *ClientRegistrationRegistry) recordAuthFailure(clientID string, f authFailure) {
	r.failures.record(clientID, f, time.Now())
}

// reportAuthFailures writes the due reports every tick until ctx is done.
func (r *ClientRegistrationRegistry) reportAuthFailures(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.flushAuthFailures(ctx, time.Now())
		}
	}
}

// flushAuthFailures writes the reports due at now.
func (r *ClientRegistrationRegistry) flushAuthFailures(ctx context.Context, now time.Time) {
	sources := r.sources.Load()
	for clientID, tallies := range r.failures.due(now, authFailureFlushMaxClients) {
		key, ok := (*sources)[clientID]
		if !ok {
			continue // unregistered since: nothing to report to
		}
		err := r.patchAuthFailures(ctx, key, tallies)
		switch {
		case err == nil:
		case apierrors.IsConflict(err):
			r.failures.requeue(clientID, tallies)
		default:
			r.log.Warn("authentication failures could not be written to the ClientRegistration status", "clientregistration", key, "error", err)
		}
	}
}

func (r *ClientRegistrationRegistry) patchAuthFailures(ctx context.Context, key string, tallies map[authFailure]failureTally) error {
	obj, exists, err := r.informer.GetStore().GetByKey(key)
	if err != nil || !exists {
		return err
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return nil
	}
	var current v1alpha1.ClientRegistration
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.UnstructuredContent(), &current); err != nil {
		return err
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": current.ResourceVersion},
		"status": v1alpha1.ClientRegistrationStatus{
			AuthenticationFailures: mergeAuthFailures(current.Status.AuthenticationFailures, tallies, r.observedBy),
		},
	})
	if err != nil {
		return err
	}
	_, err = r.client.Resource(ClientRegistrationResource).Namespace(current.Namespace).
		Patch(ctx, current.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}

package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// FieldManager is the one server-side apply field manager of the operator.
const FieldManager = "certbound"

// annotationAppliedHash records a hash of the last applied configuration, so
// that a field the operator stopped setting is removed on the next apply.
const annotationAppliedHash = "oauth.certbound.io/applied-hash"

// NotControlledError says an object the operator would create already exists
// and is not controlled by the object being reconciled; it is never taken
// over.
type NotControlledError struct {
	Kind, Namespace, Name string
}

func (e *NotControlledError) Error() string {
	return fmt.Sprintf("%s %s/%s exists and is not controlled by certbound; rename or delete it", e.Kind, e.Namespace, e.Name)
}

// applier writes children with server-side apply, and only when the apply
// would change something: a reconcile with nothing to change writes nothing.
type applier struct {
	client client.Client
	scheme *runtime.Scheme
}

// apply server-side applies desired (a typed object carrying exactly the
// fields the operator owns). When owner is not nil the object must be
// controlled by owner if it already exists. It reports whether a write was
// made.
func (a *applier) apply(ctx context.Context, desired client.Object, owner client.Object) (bool, error) {
	gvk, err := apiutil.GVKForObject(desired, a.scheme)
	if err != nil {
		return false, err
	}
	u, err := toApplyUnstructured(desired, gvk.GroupVersion().String(), gvk.Kind)
	if err != nil {
		return false, err
	}
	hash := hashOf(u.Object)
	annotations := u.GetAnnotations()
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[annotationAppliedHash] = hash
	u.SetAnnotations(annotations)

	existing, ok := desired.DeepCopyObject().(client.Object)
	if !ok {
		return false, fmt.Errorf("%T is not a client.Object", desired)
	}
	err = a.client.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, fmt.Errorf("get %s %s: %w", gvk.Kind, desired.GetName(), err)
	default:
		if owner != nil && !metav1.IsControlledBy(existing, owner) {
			return false, &NotControlledError{Kind: gvk.Kind, Namespace: desired.GetNamespace(), Name: desired.GetName()}
		}
		current, err := runtime.DefaultUnstructuredConverter.ToUnstructured(existing)
		if err != nil {
			return false, err
		}
		if existing.GetAnnotations()[annotationAppliedHash] == hash && isSubset(u.Object, current) {
			return false, nil
		}
	}
	if err := a.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return false, fmt.Errorf("apply %s %s/%s: %w", gvk.Kind, desired.GetNamespace(), desired.GetName(), err)
	}
	return true, nil
}

// toApplyUnstructured converts a typed object to an apply configuration,
// dropping what a typed struct always serialises but the operator does not
// own (creation timestamps, empty status).
func toApplyUnstructured(obj runtime.Object, apiVersion, kind string) (*unstructured.Unstructured, error) {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	u.SetAPIVersion(apiVersion)
	u.SetKind(kind)
	delete(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	return u, nil
}

// isSubset reports whether every field set in want has the same value in
// have: the apply of want would not change have. Lists must have the same
// length and match element by element.
func isSubset(want, have any) bool {
	switch w := want.(type) {
	case nil:
		return true
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return len(w) == 0 && have == nil
		}
		for k, wv := range w {
			hv, found := h[k]
			if !found {
				if wv == nil || isEmpty(wv) {
					continue
				}
				return false
			}
			if !isSubset(wv, hv) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok {
			return len(w) == 0 && have == nil
		}
		if len(w) != len(h) {
			return false
		}
		for i := range w {
			if !isSubset(w[i], h[i]) {
				return false
			}
		}
		return true
	default:
		return fmt.Sprint(want) == fmt.Sprint(have)
	}
}

func isEmpty(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		return len(t) == 0
	case []any:
		return len(t) == 0
	case string:
		return t == ""
	case bool:
		return !t
	case int64:
		return t == 0
	}
	return false
}

// hashOf is a short stable hash of a JSON-serialisable value.
func hashOf(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:16]
}

// unstructuredObj is an alias so callers need not import unstructured.
type unstructuredObj = unstructured.Unstructured

package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmac "github.com/cert-manager/cert-manager/pkg/client/applyconfigurations/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	appsac "k8s.io/client-go/applyconfigurations/apps/v1"
	coreac "k8s.io/client-go/applyconfigurations/core/v1"
	policyac "k8s.io/client-go/applyconfigurations/policy/v1"
	rbacac "k8s.io/client-go/applyconfigurations/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	oauthac "github.com/certbound/certbound/api/v1alpha1/applyconfiguration/api/v1alpha1"
)

// FieldManager is the one server-side apply field manager of the operator.
const FieldManager = "certbound"

// NotControlledError says an object the operator would create already exists
// and is not controlled by the object being reconciled; it is never taken
// over.
type NotControlledError struct {
	Kind, Namespace, Name string
}

func (e *NotControlledError) Error() string {
	return fmt.Sprintf("%s %s/%s exists and is not controlled by certbound; rename or delete it", e.Kind, e.Namespace, e.Name)
}

// applyKind is how one kind of child is applied: its desired typed object
// becomes the kind's typed apply configuration, and the live object yields
// the configuration FieldManager owns in it (from its managed fields).
type applyKind struct {
	newObject func() client.Object
	toApply   func(desired client.Object, gvk schema.GroupVersionKind) (runtime.ApplyConfiguration, error)
	owned     func(live client.Object) (runtime.ApplyConfiguration, error)
}

// kindOf builds the applyKind of the object type O from the apply
// configuration type *T and its generated extract function.
func kindOf[O client.Object, T any, AC interface {
	*T
	runtime.ApplyConfiguration
}](extract func(O, string) (AC, error)) applyKind {
	return applyKind{
		newObject: func() client.Object { return reflect.New(reflect.TypeFor[O]().Elem()).Interface().(O) },
		toApply: func(desired client.Object, gvk schema.GroupVersionKind) (runtime.ApplyConfiguration, error) {
			return toApplyConfiguration[T, AC](desired, gvk)
		},
		owned: func(live client.Object) (runtime.ApplyConfiguration, error) {
			return extract(live.(O), FieldManager)
		},
	}
}

// applyKinds are the kinds the operator applies, by Go type of the desired
// object.
var applyKinds = map[reflect.Type]applyKind{
	reflect.TypeFor[*corev1.Secret]():                    kindOf(coreac.ExtractSecret),
	reflect.TypeFor[*corev1.Service]():                   kindOf(coreac.ExtractService),
	reflect.TypeFor[*corev1.ServiceAccount]():            kindOf(coreac.ExtractServiceAccount),
	reflect.TypeFor[*rbacv1.Role]():                      kindOf(rbacac.ExtractRole),
	reflect.TypeFor[*rbacv1.RoleBinding]():               kindOf(rbacac.ExtractRoleBinding),
	reflect.TypeFor[*rbacv1.ClusterRole]():               kindOf(rbacac.ExtractClusterRole),
	reflect.TypeFor[*rbacv1.ClusterRoleBinding]():        kindOf(rbacac.ExtractClusterRoleBinding),
	reflect.TypeFor[*appsv1.Deployment]():                kindOf(appsac.ExtractDeployment),
	reflect.TypeFor[*policyv1.PodDisruptionBudget]():     kindOf(policyac.ExtractPodDisruptionBudget),
	reflect.TypeFor[*cmapi.Certificate]():                kindOf(cmac.ExtractCertificate),
	reflect.TypeFor[*cmapi.Issuer]():                     kindOf(cmac.ExtractIssuer),
	reflect.TypeFor[*oauthv1alpha1.ClientRegistration](): kindOf(oauthac.ExtractClientRegistration),
}

// toApplyConfiguration converts a desired typed object into the apply
// configuration *T. Only what the operator sets is kept: a typed object
// always serialises its status and creation timestamp, which the operator
// does not own and which would otherwise never match the owned
// configuration.
func toApplyConfiguration[T any, AC interface {
	*T
	runtime.ApplyConfiguration
}](obj runtime.Object, gvk schema.GroupVersionKind) (AC, error) {
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, err
	}
	delete(fields, "status")
	if fields["apiVersion"], err = json.Marshal(gvk.GroupVersion().String()); err != nil {
		return nil, err
	}
	if fields["kind"], err = json.Marshal(gvk.Kind); err != nil {
		return nil, err
	}
	if data, err = json.Marshal(fields); err != nil {
		return nil, err
	}
	ac := AC(new(T))
	if err := json.Unmarshal(data, ac); err != nil {
		return nil, fmt.Errorf("%s as an apply configuration: %w", gvk.Kind, err)
	}
	return ac, nil
}

// sameConfiguration reports whether applying desired over an object whose
// FieldManager-owned configuration is owned would change nothing: same
// fields, same values, and no owned field that desired drops (the apply
// would remove it).
//
// Empty objects and lists count as absent: a typed object serialises an
// unset struct as {}, which the server records as no owned field.
func sameConfiguration(desired, owned runtime.ApplyConfiguration) (bool, error) {
	want, err := prunedJSON(desired)
	if err != nil {
		return false, err
	}
	have, err := prunedJSON(owned)
	if err != nil {
		return false, err
	}
	return bytes.Equal(want, have), nil
}

// prunedJSON is the JSON of config without empty objects and lists.
func prunedJSON(config runtime.ApplyConfiguration) ([]byte, error) {
	data, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	var value any
	if err := json.Unmarshal(data, &value); err != nil {
		return nil, err
	}
	pruned, _ := pruneEmpty(value)
	return json.Marshal(pruned)
}

// pruneEmpty drops empty objects and lists from value, bottom up, and
// reports whether value itself is then empty.
func pruneEmpty(value any) (any, bool) {
	switch v := value.(type) {
	case map[string]any:
		for k, field := range v {
			pruned, empty := pruneEmpty(field)
			if empty {
				delete(v, k)
				continue
			}
			v[k] = pruned
		}
		return v, len(v) == 0
	case []any:
		for i, item := range v {
			v[i], _ = pruneEmpty(item)
		}
		return v, len(v) == 0
	case nil:
		return nil, true
	}
	return value, false
}

// applier writes children with typed server-side apply, and only when the
// apply would change something: a reconcile with nothing to change writes
// nothing.
type applier struct {
	client client.Client
	scheme *runtime.Scheme
}

// apply server-side applies desired (a typed object carrying exactly the
// fields the operator owns). When owner is not nil the object must be
// controlled by owner if it already exists. A field the operator set before
// and no longer sets is removed by the apply. It reports whether a write
// was made.
func (a *applier) apply(ctx context.Context, desired client.Object, owner client.Object) (bool, error) {
	kind, ok := applyKinds[reflect.TypeOf(desired)]
	if !ok {
		return false, fmt.Errorf("no apply configuration for %T", desired)
	}
	gvk, err := apiutil.GVKForObject(desired, a.scheme)
	if err != nil {
		return false, err
	}
	config, err := kind.toApply(desired, gvk)
	if err != nil {
		return false, err
	}
	live := kind.newObject()
	err = a.client.Get(ctx, client.ObjectKeyFromObject(desired), live)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, fmt.Errorf("get %s %s: %w", gvk.Kind, desired.GetName(), err)
	default:
		if owner != nil && !metav1.IsControlledBy(live, owner) {
			return false, &NotControlledError{Kind: gvk.Kind, Namespace: desired.GetNamespace(), Name: desired.GetName()}
		}
		owned, err := kind.owned(live)
		if err != nil {
			return false, fmt.Errorf("fields of %s %s/%s owned by %s: %w", gvk.Kind, desired.GetNamespace(), desired.GetName(), FieldManager, err)
		}
		same, err := sameConfiguration(config, owned)
		if err != nil || same {
			return false, err
		}
	}
	if err := a.client.Apply(ctx, config, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return false, fmt.Errorf("apply %s %s/%s: %w", gvk.Kind, desired.GetNamespace(), desired.GetName(), err)
	}
	return true, nil
}

// applyStatus writes the status of an AuthorizationServer or OAuthClient
// with typed server-side apply on the status subresource.
func applyStatus(ctx context.Context, c client.Client, obj client.Object) error {
	var config runtime.ApplyConfiguration
	switch o := obj.(type) {
	case *oauthv1alpha1.AuthorizationServer:
		status, err := statusConfiguration[oauthac.AuthorizationServerStatusApplyConfiguration](o.Status)
		if err != nil {
			return err
		}
		config = oauthac.AuthorizationServer(o.Name, o.Namespace).WithStatus(status)
	case *oauthv1alpha1.OAuthClient:
		status, err := statusConfiguration[oauthac.OAuthClientStatusApplyConfiguration](o.Status)
		if err != nil {
			return err
		}
		config = oauthac.OAuthClient(o.Name, o.Namespace).WithStatus(status)
	default:
		return fmt.Errorf("no status apply configuration for %T", obj)
	}
	return c.Status().Apply(ctx, config, client.FieldOwner(FieldManager), client.ForceOwnership)
}

// statusConfiguration converts a typed status into its apply configuration.
func statusConfiguration[T any](status any) (*T, error) {
	data, err := json.Marshal(status)
	if err != nil {
		return nil, err
	}
	config := new(T)
	if err := json.Unmarshal(data, config); err != nil {
		return nil, err
	}
	return config, nil
}

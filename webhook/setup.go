// Package webhook is the admission control of certbound: defaulting and
// validating webhooks for OAuthClient and AuthorizationServer, so that a
// wrong manifest is refused when it is applied, with the field path and the
// fix, instead of surfacing minutes later as a status condition.
//
// The rules are the pure functions of package validation
// (ValidateOAuthClient, ValidateAuthorizationServer,
// CheckClientAgainstPolicy), which the controllers call as well: a cluster
// whose webhook is switched off still never acts on a bad object. The
// webhook only adds admission-time UX on top of them.
package webhook

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/api/v1alpha1/validation"
)

// maxObjectBytes bounds the serialized object the webhooks look at. The API
// server caps all annotations of an object at 256 KiB together and the CRD
// schemas bound every spec field (the largest OAuthClient spec — a 1 KiB DN
// or 2 KiB URI plus 64 scopes of 128 bytes — is under 16 KiB), so a
// legitimate object with labels, annotations and managed fields stays far
// below 512 KiB. Anything larger is refused before any rule runs, with a
// message that says so, rather than being parsed on the request path of
// every write. Depth needs no separate bound: the API server prunes every
// field the structural schema does not declare before admission, so the
// object a webhook decodes is never nested deeper than the schema.
const maxObjectBytes = 512 << 10

// Setup registers the defaulting and validating webhooks of both kinds with
// mgr's webhook server. Panics in a handler are recovered into an error
// response (controller-runtime's default, made explicit here) so a bad
// request never takes the manager down. The OAuthClient validator reads
// AuthorizationServers and Namespaces through the manager's cache, which
// the controllers already fill.
func Setup(mgr ctrl.Manager) error {
	if err := ctrl.NewWebhookManagedBy(mgr, &v1alpha1.OAuthClient{}).
		WithDefaulter(oauthClientDefaulter{}).
		WithValidator(oauthClientValidator{reader: mgr.GetClient()}).
		RecoverPanic(true).
		Complete(); err != nil {
		return fmt.Errorf("register OAuthClient webhooks: %w", err)
	}
	if err := ctrl.NewWebhookManagedBy(mgr, &v1alpha1.AuthorizationServer{}).
		WithDefaulter(authorizationServerDefaulter{}).
		WithValidator(authorizationServerValidator{}).
		RecoverPanic(true).
		Complete(); err != nil {
		return fmt.Errorf("register AuthorizationServer webhooks: %w", err)
	}
	return nil
}

// The mutating webhooks see only CREATE: the defaults they set pin the
// identity of an object (which server a client belongs to, which issuer a
// server signs as) and must not appear on a later update of an object
// created while the webhook was off, where the CRD's immutability rules
// would then refuse the update. The controllers compute the same defaults
// for such objects.
//
// +kubebuilder:webhook:path=/mutate-oauth-certbound-io-v1alpha1-oauthclient,mutating=true,failurePolicy=fail,sideEffects=None,groups=oauth.certbound.io,resources=oauthclients,verbs=create,versions=v1alpha1,name=moauthclient-v1alpha1.oauth.certbound.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-oauth-certbound-io-v1alpha1-oauthclient,mutating=false,failurePolicy=fail,sideEffects=None,groups=oauth.certbound.io,resources=oauthclients,verbs=create;update,versions=v1alpha1,name=voauthclient-v1alpha1.oauth.certbound.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/mutate-oauth-certbound-io-v1alpha1-authorizationserver,mutating=true,failurePolicy=fail,sideEffects=None,groups=oauth.certbound.io,resources=authorizationservers,verbs=create,versions=v1alpha1,name=mauthorizationserver-v1alpha1.oauth.certbound.io,admissionReviewVersions=v1,timeoutSeconds=5
// +kubebuilder:webhook:path=/validate-oauth-certbound-io-v1alpha1-authorizationserver,mutating=false,failurePolicy=fail,sideEffects=None,groups=oauth.certbound.io,resources=authorizationservers,verbs=create;update,versions=v1alpha1,name=vauthorizationserver-v1alpha1.oauth.certbound.io,admissionReviewVersions=v1,timeoutSeconds=5

type oauthClientDefaulter struct{}

// Default makes the AuthorizationServer's namespace explicit, so that the
// stored object says where the client is registered.
func (oauthClientDefaulter) Default(ctx context.Context, obj *v1alpha1.OAuthClient) error {
	if obj == nil {
		return nil
	}
	if err := checkSize(ctx); err != nil {
		return err
	}
	if !creating(ctx) {
		return nil
	}
	if obj.Spec.AuthorizationServerRef.Namespace == "" {
		obj.Spec.AuthorizationServerRef.Namespace = objectNamespace(ctx, obj.Namespace)
	}
	return nil
}

type authorizationServerDefaulter struct{}

// Default pins the issuer the controller would derive
// (https://<name>.<namespace>.svc), so that it shows in the object and the
// CRD rule that an issuer never changes protects it from the start.
func (authorizationServerDefaulter) Default(ctx context.Context, obj *v1alpha1.AuthorizationServer) error {
	if obj == nil {
		return nil
	}
	if err := checkSize(ctx); err != nil {
		return err
	}
	if !creating(ctx) {
		return nil
	}
	ns := objectNamespace(ctx, obj.Namespace)
	// With generateName the name may not be known yet; the controller
	// derives the issuer itself then.
	if obj.Spec.Issuer == "" && obj.Name != "" && ns != "" {
		obj.Spec.Issuer = fmt.Sprintf("https://%s.%s.svc", obj.Name, ns)
	}
	return nil
}

// oauthClientValidator runs validation.ValidateOAuthClient and, when it
// can read the AuthorizationServer, validation.CheckClientAgainstPolicy:
// a client the controller would refuse is denied now. reader may be nil
// (no policy check).
type oauthClientValidator struct {
	reader client.Reader
}

func (v oauthClientValidator) ValidateCreate(ctx context.Context, obj *v1alpha1.OAuthClient) (admission.Warnings, error) {
	if err := checkSize(ctx); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, apierrors.NewBadRequest("no OAuthClient in the request")
	}
	warnings, errs := validation.ValidateOAuthClient(obj, nil)
	if len(errs) == 0 {
		w, e := v.checkPolicy(ctx, obj)
		warnings, errs = append(warnings, w...), e
	}
	return warnings, invalid("OAuthClient", obj.Name, errs)
}

// ValidateUpdate lets an object that is being deleted through unchecked as
// long as its spec does not change: the controllers (and anyone else) must
// be able to remove their finalizers from a client whose spec has become
// invalid or is no longer allowed. The policy is checked only when the spec
// changes, so that metadata-only updates (labels, finalizers) never fail on
// a policy the server's owner tightened later; the controller reports
// those clients in their Accepted condition.
func (v oauthClientValidator) ValidateUpdate(ctx context.Context, oldObj, newObj *v1alpha1.OAuthClient) (admission.Warnings, error) {
	if err := checkSize(ctx); err != nil {
		return nil, err
	}
	if oldObj == nil || newObj == nil {
		return nil, apierrors.NewBadRequest("an update needs both the stored and the new OAuthClient")
	}
	specChanged := !equality.Semantic.DeepEqual(oldObj.Spec, newObj.Spec)
	if newObj.DeletionTimestamp != nil && !specChanged {
		return nil, nil
	}
	warnings, errs := validation.ValidateOAuthClient(newObj, oldObj)
	if len(errs) == 0 && specChanged {
		w, e := v.checkPolicy(ctx, newObj)
		warnings, errs = append(warnings, w...), e
	}
	return warnings, invalid("OAuthClient", newObj.Name, errs)
}

// ValidateDelete allows every deletion: the controllers' finalizers clean up.
func (oauthClientValidator) ValidateDelete(context.Context, *v1alpha1.OAuthClient) (admission.Warnings, error) {
	return nil, nil
}

// checkPolicy applies the AuthorizationServer's client policy. What it
// cannot read it only warns about: the controller decides once the
// AuthorizationServer exists, and the webhook must not make writes depend on
// the cache being warm.
func (v oauthClientValidator) checkPolicy(ctx context.Context, obj *v1alpha1.OAuthClient) ([]string, field.ErrorList) {
	if v.reader == nil {
		return nil, nil
	}
	clientNamespace := objectNamespace(ctx, obj.Namespace)
	ref := obj.Spec.AuthorizationServerRef
	asKey := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	if asKey.Namespace == "" {
		asKey.Namespace = clientNamespace
	}
	var as v1alpha1.AuthorizationServer
	if err := v.reader.Get(ctx, asKey, &as); err != nil {
		if apierrors.IsNotFound(err) {
			return []string{fmt.Sprintf("AuthorizationServer %s does not exist (yet): the client is registered once it does and its client policy admits the client", asKey)}, nil
		}
		return []string{fmt.Sprintf("the client policy of AuthorizationServer %s could not be checked now (%v); the operator checks it and reports the result in the Accepted condition", asKey, err)}, nil
	}
	var ns corev1.Namespace
	if err := v.reader.Get(ctx, types.NamespacedName{Name: clientNamespace}, &ns); err != nil {
		return []string{fmt.Sprintf("the client policy of AuthorizationServer %s could not be checked now: reading namespace %s: %v; the operator checks it and reports the result in the Accepted condition", asKey, clientNamespace, err)}, nil
	}
	checked := obj
	if checked.Namespace == "" {
		checked = obj.DeepCopy()
		checked.Namespace = clientNamespace
	}
	var errs field.ErrorList
	for _, violation := range validation.CheckClientAgainstPolicy(checked, &as, ns.Labels) {
		path := violation.Field
		if path == nil {
			path = field.NewPath("spec")
		}
		errs = append(errs, field.Forbidden(path, violation.Reason+": "+violation.Message))
	}
	return nil, errs
}

type authorizationServerValidator struct{}

func (authorizationServerValidator) ValidateCreate(ctx context.Context, obj *v1alpha1.AuthorizationServer) (admission.Warnings, error) {
	if err := checkSize(ctx); err != nil {
		return nil, err
	}
	if obj == nil {
		return nil, apierrors.NewBadRequest("no AuthorizationServer in the request")
	}
	warnings, errs := validation.ValidateAuthorizationServer(obj, nil)
	return warnings, invalid("AuthorizationServer", obj.Name, errs)
}

// ValidateUpdate lets a server that is being deleted through unchecked as
// long as its spec does not change, so that finalizers can always be
// removed (see oauthClientValidator.ValidateUpdate).
func (authorizationServerValidator) ValidateUpdate(ctx context.Context, oldObj, newObj *v1alpha1.AuthorizationServer) (admission.Warnings, error) {
	if err := checkSize(ctx); err != nil {
		return nil, err
	}
	if oldObj == nil || newObj == nil {
		return nil, apierrors.NewBadRequest("an update needs both the stored and the new AuthorizationServer")
	}
	if newObj.DeletionTimestamp != nil && equality.Semantic.DeepEqual(oldObj.Spec, newObj.Spec) {
		return nil, nil
	}
	warnings, errs := validation.ValidateAuthorizationServer(newObj, oldObj)
	return warnings, invalid("AuthorizationServer", newObj.Name, errs)
}

// ValidateDelete allows every deletion: the controllers' finalizers clean up.
func (authorizationServerValidator) ValidateDelete(context.Context, *v1alpha1.AuthorizationServer) (admission.Warnings, error) {
	return nil, nil
}

// invalid turns field errors into the API server's Invalid status, whose
// message lists each field path with its detail.
func invalid(kind, name string, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(v1alpha1.GroupVersion.WithKind(kind).GroupKind(), name, errs)
}

// checkSize refuses an admission request whose object exceeds
// maxObjectBytes. Without a request in ctx (a direct call) there is nothing
// to measure.
func checkSize(ctx context.Context) error {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return nil
	}
	if n := len(req.Object.Raw); n > maxObjectBytes {
		return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("the object is %d bytes, more than the %d a certbound object can legitimately need; remove large annotations or labels", n, maxObjectBytes))
	}
	return nil
}

// creating reports whether ctx carries a CREATE admission request, or no
// request at all (a direct call, which is treated as a new object).
func creating(ctx context.Context) bool {
	req, err := admission.RequestFromContext(ctx)
	return err != nil || req.Operation == admissionv1.Create
}

// objectNamespace is the object's namespace, or the request's when the
// object does not carry one.
func objectNamespace(ctx context.Context, ns string) string {
	if ns != "" {
		return ns
	}
	if req, err := admission.RequestFromContext(ctx); err == nil {
		return req.Namespace
	}
	return ""
}

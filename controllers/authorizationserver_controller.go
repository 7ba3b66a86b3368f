package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/api/v1alpha1/validation"
)

// indexTrustAnchorSecrets indexes AuthorizationServers by the names of
// their trust-anchor Secrets.
const indexTrustAnchorSecrets = "spec.clientTrustAnchors.secretRef.name"

// AuthorizationServerReconciler deploys and keeps in step one
// authorization server: ServiceAccount, Role/RoleBinding, signing keys,
// serving Certificate, trust-anchor bundle, Deployment, Service and PDB.
type AuthorizationServerReconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	Image    string
	// GenerateKey makes signing keys; tests may make it deterministic.
	GenerateKey keyGenerator

	// TrustAnchorResync is how often a server with client trust anchors
	// is reconciled to re-read them; 0 never.
	TrustAnchorResync time.Duration

	applier *applier
	// apiReader reads what is not in the client's cache: the CRL
	// ConfigMaps (watched by metadata only) and the trust-anchor Secrets
	// (not the operator's, so not cached at all).
	apiReader client.Reader
}

// +kubebuilder:rbac:groups=oauth.certbound.io,resources=authorizationservers,verbs=get;list;watch
// +kubebuilder:rbac:groups=oauth.certbound.io,resources=authorizationservers/status,verbs=get;patch
// +kubebuilder:rbac:groups=oauth.certbound.io,resources=authorizationservers/finalizers,verbs=update
// +kubebuilder:rbac:groups=oauth.certbound.io,resources=clientregistrations,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=serviceaccounts;services,verbs=get;list;watch;create;patch
// The servers' Roles grant these on ConfigMaps (revocations); RBAC lets the
// operator grant only what it holds.
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;patch
// The servers' ClusterRole lets them create TokenReviews (token exchange of
// public clients); the operator holds that permission so that it may create
// the ClusterRole and bind it, and nothing more of authentication.k8s.io.
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterroles,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=clusterrolebindings,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;patch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler and its watches.
func (r *AuthorizationServerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.applier = &applier{client: r.Client, scheme: r.Scheme}
	r.apiReader = mgr.GetAPIReader()
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &oauthv1alpha1.AuthorizationServer{}, indexCRLConfigMaps, crlConfigMapNames); err != nil {
		return err
	}
	if r.GenerateKey == nil {
		r.GenerateKey = generateSigningKey
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &oauthv1alpha1.AuthorizationServer{}, indexTrustAnchorSecrets, func(o client.Object) []string {
		as := o.(*oauthv1alpha1.AuthorizationServer)
		var names []string
		for _, a := range as.Spec.ClientTrustAnchors {
			names = append(names, a.SecretRef.Name)
		}
		return names
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&oauthv1alpha1.AuthorizationServer{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&appsv1.Deployment{}).
		Owns(&corev1.Service{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&cmapi.Certificate{}).
		// A server's TokenReview binding is cluster-scoped and cannot be
		// owned: its annotation leads back to the server, which repairs
		// it, or removes it when the server is gone (also after an
		// operator restart, when the informer's first list replays it).
		Watches(&rbacv1.ClusterRoleBinding{}, handler.EnqueueRequestsFromMapFunc(bindingToServer)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.secretToServers)).
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.configMapToServers)).
		// The registered-client count.
		Watches(&oauthv1alpha1.ClientRegistration{}, registrationToServerAfter(registrationBatchDelay),
			builder.WithPredicates(registrationChanged)).
		Named("authorizationserver").
		Complete(r)
}

func bindingToServer(_ context.Context, o client.Object) []reconcile.Request {
	ns, name, ok := strings.Cut(o.GetAnnotations()[annotationAuthorizationServer], "/")
	if !ok || o.GetLabels()[labelManagedBy] != managedByValue {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
}

// registrationBatchDelay is how long a server waits after a change of its
// registrations before it counts them: clients created or deleted together
// cost their server a status write per delay, not one each, and the count
// is at most that much late.
const registrationBatchDelay = 3 * time.Second

// registrationToServerAfter queues a registration's server after delay.
// The queue keeps one entry per server, ready at the earliest time asked
// for, so the registrations of a burst share one reconcile.
func registrationToServerAfter(delay time.Duration) handler.EventHandler {
	add := func(q workqueue.TypedRateLimitingInterface[reconcile.Request], o client.Object) {
		if reg, ok := o.(*oauthv1alpha1.ClientRegistration); ok {
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: reg.Namespace, Name: reg.Spec.AuthorizationServerName}}, delay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.Object)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.ObjectOld)
			add(q, e.ObjectNew)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(q, e.Object)
		},
	}
}

// secretToServers maps a Secret to the servers it matters to: its
// controller, whose serving certificate it holds, or whose trust anchor it
// is. Only the operator's labelled Secrets are watched, so a trust anchor
// comes through here only when it is one of them (another server's serving
// certificate, say); the others are re-read every TrustAnchorResync.
func (r *AuthorizationServerReconciler) secretToServers(ctx context.Context, o client.Object) []reconcile.Request {
	var reqs []reconcile.Request
	add := func(name string) {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: name}})
	}
	if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "AuthorizationServer" && ref.APIVersion == oauthv1alpha1.GroupVersion.String() {
		add(ref.Name)
	}
	if name := o.GetLabels()[LabelServingCertificateOf]; name != "" {
		add(name)
	}
	var list oauthv1alpha1.AuthorizationServerList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexTrustAnchorSecrets: o.GetName()}); err == nil {
		for _, as := range list.Items {
			add(as.Name)
		}
	}
	return reqs
}

// serverScope is everything a reconcile of one authorization server has
// observed and decided so far; the steps below fill it in order.
type serverScope struct {
	server *oauthv1alpha1.AuthorizationServer
	conds  *conditionSet
	status oauthv1alpha1.AuthorizationServerStatus
	now    time.Time
	issuer string
	// keysHash is a hash of the published key IDs (a change rolls the
	// pods); nextKeyEvent is when the key set next changes.
	keysHash     string
	nextKeyEvent time.Time
	// bundle is the client trust-anchor bundle, nil when there are no
	// anchors or one of them is unusable.
	bundle []byte
}

// withClientCA reports whether the server verifies client certificates
// against trust anchors.
func (s *serverScope) withClientCA() bool {
	return len(s.server.Spec.ClientTrustAnchors) > 0
}

func (r *AuthorizationServerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	var as oauthv1alpha1.AuthorizationServer
	if err := r.Client.Get(ctx, req.NamespacedName, &as); err != nil {
		if apierrors.IsNotFound(err) {
			forgetServerMetrics(req.Namespace, req.Name)
			return ctrl.Result{}, r.deleteTokenReviewBinding(ctx, req.Namespace, req.Name)
		}
		return ctrl.Result{}, err
	}
	if !as.DeletionTimestamp.IsZero() {
		// Namespaced children are owned and garbage-collected;
		// registrations are removed by their clients, which lose
		// acceptance. The cluster-scoped binding goes now.
		forgetServerMetrics(as.Namespace, as.Name)
		return ctrl.Result{}, r.deleteTokenReviewBinding(ctx, as.Namespace, as.Name)
	}
	now := r.Clock.Now()
	s := &serverScope{
		server: &as,
		conds:  newConditionSet(as.Status.Conditions, as.Generation, metav1.NewTime(now)),
		status: oauthv1alpha1.AuthorizationServerStatus{ObservedGeneration: as.Status.ObservedGeneration},
		now:    now,
	}
	defer func() {
		if retErr == nil {
			s.status.ObservedGeneration = as.Generation
		}
		s.conds.setHealth(authorizationServerReasonHealth)
		s.status.Conditions = s.conds.result
		if err := r.writeStatus(ctx, &as, s.status); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	return r.reconcileNormal(ctx, s)
}

// reconcileNormal runs the steps in order; the first that fails ends the
// reconcile (a child not controlled by the server on Ready, anything else
// as an error to retry).
func (r *AuthorizationServerReconciler) reconcileNormal(ctx context.Context, s *serverScope) (ctrl.Result, error) {
	if !r.reconcileIssuer(s) {
		return ctrl.Result{}, nil
	}
	steps := []func(context.Context, *serverScope) error{
		r.reconcileAccess,
		r.reconcileSigningKeys,
		r.reconcileServingCertificate,
		r.reconcileTrustAnchors,
		r.reconcileClientCertificateRevocation,
		r.reconcileWorkload,
		r.observeAvailability,
		r.observeRegistrations,
	}
	for _, step := range steps {
		if err := step(ctx, s); err != nil {
			return ctrl.Result{}, r.childFailed(s.conds, err)
		}
	}
	s.conds.set(oauthv1alpha1.ConditionClientPolicyReady, ClientPolicyReady(s.server))
	summarized := []string{oauthv1alpha1.ConditionSigningKeyReady, oauthv1alpha1.ConditionServingCertificateReady, oauthv1alpha1.ConditionTrustAnchorsReady}
	if s.server.Spec.ClientCertificateRevocation != nil {
		summarized = append(summarized, oauthv1alpha1.ConditionClientCertificateRevocationReady)
	}
	s.conds.summarize(ReasonReady, "the authorization server is serving", append(summarized, oauthv1alpha1.ConditionAvailable)...)
	log.FromContext(ctx).V(1).Info("reconciled", "issuer", s.issuer, "nextKeyEvent", s.nextKeyEvent)
	result := ctrl.Result{}
	if !s.nextKeyEvent.IsZero() {
		result.RequeueAfter = max(s.nextKeyEvent.Sub(s.now), time.Second)
	}
	if s.withClientCA() && r.TrustAnchorResync > 0 && (result.RequeueAfter == 0 || r.TrustAnchorResync < result.RequeueAfter) {
		result.RequeueAfter = r.TrustAnchorResync
	}
	return result, nil
}

// reconcileIssuer validates the spec and derives the issuer and endpoints;
// false (with Ready set) when the spec cannot be served.
func (r *AuthorizationServerReconciler) reconcileIssuer(s *serverScope) bool {
	// The webhook's rules hold even when the webhook is switched off.
	if _, errs := validation.ValidateAuthorizationServer(s.server, nil); len(errs) > 0 {
		s.conds.set(oauthv1alpha1.ConditionReady, falseResult(ReasonInvalidSpec, errs.ToAggregate().Error()))
		return false
	}
	issuer := effectiveIssuer(s.server)
	eps, err := endpoints(issuer)
	if err != nil {
		s.conds.set(oauthv1alpha1.ConditionReady, falseResult(ReasonInvalidIssuer, err.Error()))
		return false
	}
	s.issuer = issuer
	s.status.Issuer = issuer
	s.status.Endpoints = eps
	return true
}

// reconcileAccess applies the server's ServiceAccount, Role and
// RoleBinding, and its binding to the shared TokenReview ClusterRole.
func (r *AuthorizationServerReconciler) reconcileAccess(ctx context.Context, s *serverScope) error {
	for _, obj := range []client.Object{desiredServiceAccount(s.server), desiredRole(s.server), desiredRoleBinding(s.server)} {
		if err := r.applyOwned(ctx, s.server, obj); err != nil {
			return err
		}
	}
	if _, err := r.applier.apply(ctx, desiredTokenReviewClusterRole(), nil); err != nil {
		return err
	}
	binding := desiredTokenReviewBinding(s.server)
	var existing rbacv1.ClusterRoleBinding
	switch err := r.Client.Get(ctx, client.ObjectKeyFromObject(binding), &existing); {
	case err == nil:
		if existing.Annotations[annotationAuthorizationServer] != binding.Annotations[annotationAuthorizationServer] {
			return &NotControlledError{Kind: "ClusterRoleBinding", Name: binding.Name}
		}
	case !apierrors.IsNotFound(err):
		return err
	}
	_, err := r.applier.apply(ctx, binding, nil)
	return err
}

// deleteTokenReviewBinding removes the TokenReview binding of a server that
// is gone or going, if it exists and was made for that server.
func (r *AuthorizationServerReconciler) deleteTokenReviewBinding(ctx context.Context, asNamespace, asName string) error {
	var binding rbacv1.ClusterRoleBinding
	if err := r.Client.Get(ctx, client.ObjectKey{Name: tokenReviewBindingName(asNamespace, asName)}, &binding); err != nil {
		return client.IgnoreNotFound(err)
	}
	if binding.Annotations[annotationAuthorizationServer] != asNamespace+"/"+asName {
		return nil
	}
	if err := r.Client.Delete(ctx, &binding, client.Preconditions{UID: &binding.UID}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete ClusterRoleBinding %s: %w", binding.Name, err)
	}
	log.FromContext(ctx).Info("deleted the TokenReview binding of a removed server", "clusterRoleBinding", binding.Name)
	return nil
}

// reconcileSigningKeys rotates the signing keys on schedule and records a
// hash of the key IDs (to roll the pods) and the next rotation event.
func (r *AuthorizationServerReconciler) reconcileSigningKeys(ctx context.Context, s *serverScope) error {
	as := s.server
	var existing corev1.Secret
	var keys []signingKey
	regenerated := false
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: as.Namespace, Name: signingSecretName(as.Name)}, &existing)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return err
	default:
		if !metav1.IsControlledBy(&existing, as) {
			return &NotControlledError{Kind: "Secret", Namespace: as.Namespace, Name: existing.Name}
		}
		keys, err = decodeSigningKeys(existing.Data[signingKeysDataKey], existing.Annotations[annotationSigningSchedule])
		if err != nil {
			log.FromContext(ctx).Error(err, "signing keys unreadable; generating new ones")
			keys, regenerated = nil, true
		}
	}
	policy := rotationPolicyOf(as)
	planned, _, next, err := planSigningKeys(s.now, keys, policy, r.GenerateKey)
	if err != nil {
		s.conds.set(oauthv1alpha1.ConditionSigningKeyReady, falseResult(ReasonKeyGenerationFailed, err.Error()))
		return err
	}
	jwks, schedule, err := encodeSigningKeys(planned)
	if err != nil {
		return err
	}
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: objectMeta(as, signingSecretName(as.Name)),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{signingKeysDataKey: jwks},
	}
	secret.Annotations = map[string]string{annotationSigningSchedule: schedule}
	if err := r.applyOwned(ctx, as, secret); err != nil {
		return err
	}
	kids := make([]string, 0, len(planned))
	for _, k := range planned {
		kids = append(kids, k.JWK.KeyID)
	}
	msg := fmt.Sprintf("key %s signs; %d keys published", planned[0].JWK.KeyID, len(planned))
	if regenerated {
		s.conds.set(oauthv1alpha1.ConditionSigningKeyReady, trueResult(ReasonKeysRegenerated, "the previous signing keys were unreadable and were replaced; "+msg))
	} else {
		s.conds.set(oauthv1alpha1.ConditionSigningKeyReady, trueResult(ReasonKeysCurrent, msg))
	}
	s.keysHash, s.nextKeyEvent = hashOf(kids), next
	recordNextRotation(as.Namespace, as.Name, nextRotation(planned, policy))
	return nil
}

// reconcileServingCertificate applies the serving Certificate and observes
// whether cert-manager has issued it.
func (r *AuthorizationServerReconciler) reconcileServingCertificate(ctx context.Context, s *serverScope) error {
	if err := r.applyOwned(ctx, s.server, desiredServingCertificate(s.server, s.issuer)); err != nil {
		return err
	}
	as := s.server
	var cert cmapi.Certificate
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: as.Namespace, Name: servingSecretName(as.Name)}, &cert); err != nil {
		s.conds.set(oauthv1alpha1.ConditionServingCertificateReady, ServingCertificateReady(nil, nil, r.Clock.Now()))
		return nil
	}
	var tlsCrt []byte
	var secret corev1.Secret
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: as.Namespace, Name: cert.Spec.SecretName}, &secret); err == nil {
		tlsCrt = secret.Data[corev1.TLSCertKey]
	}
	s.conds.set(oauthv1alpha1.ConditionServingCertificateReady, ServingCertificateReady(&cert, tlsCrt, r.Clock.Now()))
	return nil
}

// reconcileTrustAnchors reads the client trust-anchor Secrets and writes
// their bundle. On a bad anchor the last good bundle stays mounted: the
// server keeps trusting what it trusted rather than something partial.
func (r *AuthorizationServerReconciler) reconcileTrustAnchors(ctx context.Context, s *serverScope) error {
	as := s.server
	anchors := make([]trustAnchorInput, 0, len(as.Spec.ClientTrustAnchors))
	for _, a := range as.Spec.ClientTrustAnchors {
		in := trustAnchorInput{Ref: a.SecretRef}
		var secret corev1.Secret
		err := r.apiReader.Get(ctx, client.ObjectKey{Namespace: as.Namespace, Name: a.SecretRef.Name}, &secret)
		switch {
		case err == nil:
			in.Secret = &secret
		case !apierrors.IsNotFound(err):
			return err
		}
		anchors = append(anchors, in)
	}
	bundle, anchorsResult := TrustAnchorBundle(anchors)
	s.conds.set(oauthv1alpha1.ConditionTrustAnchorsReady, anchorsResult)
	s.bundle = bundle
	if bundle == nil {
		return nil
	}
	return r.applyOwned(ctx, as, &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: objectMeta(as, trustBundleName(as.Name)),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{trustBundleKey: bundle},
	})
}

// reconcileWorkload applies the Deployment, Service and (when wanted) the
// PodDisruptionBudget, deleting a PDB no longer wanted.
func (r *AuthorizationServerReconciler) reconcileWorkload(ctx context.Context, s *serverScope) error {
	as := s.server
	deployment, err := desiredDeployment(as, s.issuer, podInputs{
		Image: r.Image, SigningKeysHash: s.keysHash, TrustBundleHash: hashOf(string(s.bundle)), WithClientCA: s.withClientCA(),
	})
	if err != nil {
		return err
	}
	if s.bundle == nil && s.withClientCA() {
		// Keep the pods on the last good bundle's hash.
		var current appsv1.Deployment
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(deployment), &current); err == nil {
			if h, ok := current.Spec.Template.Annotations["oauth.certbound.io/client-ca-hash"]; ok {
				deployment.Spec.Template.Annotations["oauth.certbound.io/client-ca-hash"] = h
			}
		}
	}
	for _, obj := range []client.Object{deployment, desiredService(as)} {
		if err := r.applyOwned(ctx, as, obj); err != nil {
			return err
		}
	}
	if pdb := desiredPDB(as); pdb != nil {
		return r.applyOwned(ctx, as, pdb)
	}
	return r.deleteOwned(ctx, as, &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: as.Namespace, Name: workloadName(as.Name)}})
}

// observeAvailability sets Available from the server's Deployment.
func (r *AuthorizationServerReconciler) observeAvailability(ctx context.Context, s *serverScope) error {
	var current appsv1.Deployment
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.server.Namespace, Name: workloadName(s.server.Name)}, &current)
	switch {
	case err == nil:
		s.conds.set(oauthv1alpha1.ConditionAvailable, DeploymentAvailable(&current))
	case apierrors.IsNotFound(err):
		s.conds.set(oauthv1alpha1.ConditionAvailable, DeploymentAvailable(nil))
	default:
		return err
	}
	return nil
}

// observeRegistrations counts the clients registered with the server.
func (r *AuthorizationServerReconciler) observeRegistrations(ctx context.Context, s *serverScope) error {
	var regs oauthv1alpha1.ClientRegistrationList
	if err := r.Client.List(ctx, &regs, client.InNamespace(s.server.Namespace), client.MatchingLabels{LabelAuthorizationServer: s.server.Name}); err != nil {
		return err
	}
	s.status.RegisteredClients = int32(len(regs.Items))
	return nil
}

// childFailed records a child that cannot be written on Ready; a child not
// controlled by the server is a user-fixable condition, not a retry.
func (r *AuthorizationServerReconciler) childFailed(conds *conditionSet, err error) error {
	var nc *NotControlledError
	if errors.As(err, &nc) {
		conds.set(oauthv1alpha1.ConditionReady, falseResult(ReasonNotControlled, err.Error()))
		return nil
	}
	return err
}

func (r *AuthorizationServerReconciler) applyOwned(ctx context.Context, as *oauthv1alpha1.AuthorizationServer, obj client.Object) error {
	if err := ctrl.SetControllerReference(as, obj, r.Scheme); err != nil {
		return err
	}
	changed, err := r.applier.apply(ctx, obj, as)
	if err != nil {
		return err
	}
	if changed {
		log.FromContext(ctx).Info("applied", "kind", fmt.Sprintf("%T", obj), "name", obj.GetName())
	}
	return nil
}

func (r *AuthorizationServerReconciler) deleteOwned(ctx context.Context, as *oauthv1alpha1.AuthorizationServer, obj client.Object) error {
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, as) {
		return nil
	}
	return client.IgnoreNotFound(r.Client.Delete(ctx, obj))
}

func (r *AuthorizationServerReconciler) writeStatus(ctx context.Context, as *oauthv1alpha1.AuthorizationServer, status oauthv1alpha1.AuthorizationServerStatus) error {
	recordTransitions(r.Recorder, as, as.Status.Conditions, status.Conditions)
	if equality.Semantic.DeepEqual(as.Status, status) {
		return nil
	}
	return applyStatus(ctx, r.Client, &oauthv1alpha1.AuthorizationServer{
		ObjectMeta: metav1.ObjectMeta{Name: as.Name, Namespace: as.Namespace},
		Status:     status,
	})
}

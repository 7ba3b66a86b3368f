package controllers

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/registration"
)

// indexAuthorizationServer indexes OAuthClients by <namespace>/<name> of
// their AuthorizationServer.
const indexAuthorizationServer = "spec.authorizationServerRef"

// indexServiceAccount indexes public clients by <namespace>/<name> of the
// ServiceAccount they are bound to.
const indexServiceAccount = "spec.serviceAccountName"

// OAuthClientReconciler issues a client's certificate, registers it with its
// AuthorizationServer and writes the client-config Secret.
//
// A workload gets its certificate, key and configuration from one projected
// volume (ca.crt of the certificate Secret is left out: the config Secret's
// ca.crt is the authorization server's serving CA, which is what the client
// verifies the token endpoint with):
//
//	volumes:
//	- name: oauth
//	  projected:
//	    sources:
//	    - secret:
//	        name: <spec.certificate.secretName, default <name>-mtls>
//	        items: [{key: tls.crt, path: tls.crt}, {key: tls.key, path: tls.key}]
//	    - secret:
//	        name: <name>-oauth-config   # client_id, issuer, token_endpoint, ca.crt
//
// mounted at e.g. /var/run/oauth: the workload POSTs
// grant_type=client_credentials&client_id=$(cat client_id) to
// $(cat token_endpoint) with tls.crt/tls.key as its client certificate,
// trusting ca.crt.
//
// A public client (authenticationMethod none) gets no certificate and no
// key: its pods mount only the config Secret and a projected service
// account token whose audience is the issuer, exchange the token at
// token_endpoint (RFC 8693) with a certificate they make in memory, and
// get tokens bound to that certificate (RFC 8705 §4).
type OAuthClientReconciler struct {
	Client client.Client
	// APIReader reads past the cache where a stale "not found" would be
	// costly: a client's own registration, whose absence restarts its hold.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// Workers is how many clients are reconciled at once; 0 means one.
	Workers int

	applier *applier
}

// +kubebuilder:rbac:groups=oauth.certbound.io,resources=oauthclients,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=oauth.certbound.io,resources=oauthclients/status,verbs=get;patch
// +kubebuilder:rbac:groups=oauth.certbound.io,resources=oauthclients/finalizers,verbs=update
// +kubebuilder:rbac:groups=oauth.certbound.io,resources=authorizationservers,verbs=get;list;watch
// +kubebuilder:rbac:groups=oauth.certbound.io,resources=clientregistrations,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates;issuers,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler and its watches.
func (r *OAuthClientReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.applier = &applier{client: &secretFallbackClient{Client: r.Client, apiReader: r.APIReader}, scheme: r.Scheme}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &oauthv1alpha1.OAuthClient{}, indexAuthorizationServer, func(o client.Object) []string {
		c := o.(*oauthv1alpha1.OAuthClient)
		return []string{authorizationServerNamespace(c) + "/" + c.Spec.AuthorizationServerRef.Name}
	}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &oauthv1alpha1.ClientRegistration{}, indexRegistrationSubject, registrationSubjectIndex); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &oauthv1alpha1.OAuthClient{}, indexClientSubject, clientSubjectIndex); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &oauthv1alpha1.OAuthClient{}, indexServiceAccount, func(o client.Object) []string {
		if sa := clientServiceAccount(o.(*oauthv1alpha1.OAuthClient)); sa != "" {
			return []string{sa}
		}
		return nil
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&oauthv1alpha1.OAuthClient{}).
		Owns(&cmapi.Certificate{}).
		Owns(&cmapi.Issuer{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.secretToClients)).
		Watches(&oauthv1alpha1.ClientRegistration{}, handler.EnqueueRequestsFromMapFunc(r.registrationToClients),
			builder.WithPredicates(registrationChanged)).
		// Only what clients read from their server re-reconciles them: its
		// spec and its issuer and endpoints, not every status update (the
		// registered-client count changes with each registration, and
		// re-reconciling every client on each would be quadratic).
		Watches(&oauthv1alpha1.AuthorizationServer{}, handler.EnqueueRequestsFromMapFunc(r.serverToClients),
			builder.WithPredicates(serverChangedForClients)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.namespaceToClients)).
		// A public client's ServiceAccountFound follows its ServiceAccount's
		// creation and deletion; the informer is the one the
		// AuthorizationServer controller keeps for its own ServiceAccounts,
		// so this costs no extra list or watch, and updates are ignored.
		Watches(&corev1.ServiceAccount{}, handler.EnqueueRequestsFromMapFunc(r.serviceAccountToClients),
			builder.WithPredicates(predicate.Funcs{UpdateFunc: func(event.UpdateEvent) bool { return false }})).
		Named("oauthclient").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Workers, 1)}).
		Complete(r)
}

func (r *OAuthClientReconciler) clientsOf(ctx context.Context, asNamespace, asName string) []reconcile.Request {
	var list oauthv1alpha1.OAuthClientList
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexAuthorizationServer: asNamespace + "/" + asName}); err != nil {
		log.FromContext(ctx).Error(err, "list clients of server", "server", asNamespace+"/"+asName)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, c := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}})
	}
	return reqs
}

// registrationToClients maps a ClientRegistration to its holder (which
// removes it when it is an orphan) and to every client claiming the same
// subject anywhere in the cluster, so a refused claimant learns within
// seconds that the subject was released, and a holder that lost a race
// learns it lost.
func (r *OAuthClientReconciler) registrationToClients(ctx context.Context, o client.Object) []reconcile.Request {
	reg, ok := o.(*oauthv1alpha1.ClientRegistration)
	if !ok {
		return nil
	}
	reqs := []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: reg.Spec.Holder.Namespace, Name: reg.Spec.Holder.Name}}}
	for _, key := range registrationSubjectIndex(reg) {
		var list oauthv1alpha1.OAuthClientList
		if err := r.Client.List(ctx, &list, client.MatchingFields{indexClientSubject: key}); err != nil {
			log.FromContext(ctx).Error(err, "list claimants of a subject")
			continue
		}
		for _, c := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}})
		}
	}
	return reqs
}

func (r *OAuthClientReconciler) serverToClients(ctx context.Context, o client.Object) []reconcile.Request {
	return r.clientsOf(ctx, o.GetNamespace(), o.GetName())
}

// serviceAccountToClients maps a ServiceAccount to the public clients
// bound to it.
func (r *OAuthClientReconciler) serviceAccountToClients(ctx context.Context, o client.Object) []reconcile.Request {
	var list oauthv1alpha1.OAuthClientList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexServiceAccount: o.GetNamespace() + "/" + o.GetName()}); err != nil {
		log.FromContext(ctx).Error(err, "list clients of a service account")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, c := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}})
	}
	return reqs
}

func (r *OAuthClientReconciler) namespaceToClients(ctx context.Context, o client.Object) []reconcile.Request {
	var list oauthv1alpha1.OAuthClientList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetName())); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, c := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}})
	}
	return reqs
}

// secretToClients maps the config Secret (owned), the certificate Secret
// and a registration Secret of an earlier version (labelled) to their
// client, and a server's serving
// certificate Secret to all of that server's clients (its ca.crt is in their
// config).
func (r *OAuthClientReconciler) secretToClients(ctx context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	var reqs []reconcile.Request
	if ref := metav1.GetControllerOf(o); ref != nil && ref.Kind == "OAuthClient" && ref.APIVersion == oauthv1alpha1.GroupVersion.String() {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: ref.Name}})
	}
	if ns, name := l[LabelClientNamespace], l[LabelClientName]; ns != "" && name != "" {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	}
	if as := l[LabelServingCertificateOf]; as != "" {
		reqs = append(reqs, r.clientsOf(ctx, o.GetNamespace(), as)...)
	}
	return reqs
}

// clientScope is everything a reconcile of one client has observed.
type clientScope struct {
	client   *oauthv1alpha1.OAuthClient
	server   *oauthv1alpha1.AuthorizationServer
	clientID string
	regKey   client.ObjectKey
	conds    *conditionSet
	status   oauthv1alpha1.OAuthClientStatus
	now      time.Time
	leaf     *x509.Certificate
	// own is the client's current registration, if it has one.
	own *registeredClient
	// heldSince is when the client's hold on its subject began (zero for
	// a self-signed client); established when that hold was recorded
	// before this reconcile.
	heldSince   time.Time
	established bool
	registered  []*x509.Certificate
}

func (r *OAuthClientReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	var oc oauthv1alpha1.OAuthClient
	if err := r.Client.Get(ctx, req.NamespacedName, &oc); err != nil {
		if apierrors.IsNotFound(err) {
			// However the client went (even with its finalizer removed by
			// hand), nothing it registered outlives it.
			return ctrl.Result{}, r.deleteRegistrations(ctx, req.NamespacedName, "", "")
		}
		return ctrl.Result{}, err
	}
	if !oc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.reconcileDelete(ctx, &oc)
	}
	if !controllerutil.ContainsFinalizer(&oc, finalizerRegistration) {
		patch := client.MergeFrom(oc.DeepCopy())
		controllerutil.AddFinalizer(&oc, finalizerRegistration)
		return ctrl.Result{}, r.Client.Patch(ctx, &oc, patch, client.FieldOwner(FieldManager))
	}

	now := r.Clock.Now()
	s := &clientScope{
		client:   &oc,
		clientID: registration.ClientID(oc.Namespace, oc.Name),
		regKey:   client.ObjectKey{Namespace: authorizationServerNamespace(&oc), Name: registration.ObjectName(oc.Namespace, oc.Name)},
		conds:    newConditionSet(oc.Status.Conditions, oc.Generation, metav1.NewTime(now)),
		status:   oauthv1alpha1.OAuthClientStatus{ObservedGeneration: oc.Status.ObservedGeneration},
		now:      now,
	}
	defer func() {
		if retErr == nil {
			s.status.ObservedGeneration = oc.Generation
		} else {
			// A transient error (the API server away, a conflict) says
			// nothing new about the client: keep what status said.
			s.status = *oc.Status.DeepCopy()
			return
		}
		s.conds.setHealth(oauthClientReasonHealth)
		s.status.Conditions = s.conds.result
		if err := r.writeStatus(ctx, &oc, s.status); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	return r.reconcileNormal(ctx, s)
}

func (r *OAuthClientReconciler) reconcileNormal(ctx context.Context, s *clientScope) (ctrl.Result, error) {
	oc := s.client
	// Accepted.
	var as oauthv1alpha1.AuthorizationServer
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: authorizationServerNamespace(oc), Name: oc.Spec.AuthorizationServerRef.Name}, &as)
	switch {
	case err == nil:
		s.server = &as
	case !apierrors.IsNotFound(err):
		return ctrl.Result{}, err
	}
	var ns corev1.Namespace
	if err := r.Client.Get(ctx, client.ObjectKey{Name: oc.Namespace}, &ns); err != nil {
		return ctrl.Result{}, err
	}
	accepted := ClientAccepted(oc, s.server, ns.Labels)
	s.conds.set(oauthv1alpha1.ConditionAccepted, accepted)
	if accepted.Status != metav1.ConditionTrue {
		s.conds.set(oauthv1alpha1.ConditionCertificateReady, unknownResult(ReasonNotAccepted, "the client is not accepted"))
		s.conds.set(oauthv1alpha1.ConditionRegistered, falseResult(ReasonNotAccepted, "the client is not accepted"))
		s.conds.summarize(ReasonReady, "", oauthv1alpha1.ConditionAccepted)
		// A client the server no longer accepts is registered nowhere and
		// holds no certificate for a subject it may not claim.
		if err := r.deleteRegistrations(ctx, types.NamespacedName{Namespace: oc.Namespace, Name: oc.Name}, "", ""); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, r.deleteIssuance(ctx, oc)
	}
	s.status.ClientID = s.clientID
	s.status.RegistrationName = s.regKey.Name
	if err := r.observeRegistration(ctx, s); err != nil {
		return ctrl.Result{}, err
	}

	// Unique: refuse before issuing a certificate that would carry another
	// client's subject.
	unique, err := r.checkUnique(ctx, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	if unique.Status != metav1.ConditionTrue {
		s.status.RegistrationName = ""
		s.conds.set(oauthv1alpha1.ConditionRegistered, unique)
		s.conds.set(oauthv1alpha1.ConditionCertificateReady, unknownResult(unique.Reason, "no certificate is issued for a conflicting client"))
		s.conds.summarize(ReasonReady, "", oauthv1alpha1.ConditionAccepted, oauthv1alpha1.ConditionRegistered)
		if err := r.deleteRegistrations(ctx, types.NamespacedName{Namespace: oc.Namespace, Name: oc.Name}, "", ""); err != nil {
			return ctrl.Result{}, err
		}
		return ctrl.Result{}, r.deleteIssuance(ctx, oc)
	}
	if !s.heldSince.IsZero() {
		s.status.SubjectHeldSince = &metav1.Time{Time: s.heldSince}
	}
	if s.own != nil {
		s.registered = s.own.Certificates
	}

	// Registration, first when it does not need the certificate: the hold
	// it records is the oldest notBefore the server accepts, so it must be
	// written before cert-manager can issue. Written after, an operator
	// stopped in between would start a later hold on its restart and the
	// certificate just issued would predate it.
	registersWithCertificate := methodOf(oc) == oauthv1alpha1.SelfSignedTLSClientAuth && !clientManagesKeys(oc)
	if !registersWithCertificate {
		if err := r.reconcileRegistration(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	}

	// Certificate: none for a public client, whose pods make their own,
	// and none when the client manages its own keys (a spec that switched
	// to them leaves nothing of ours issued).
	public := methodOf(oc) == oauthv1alpha1.PublicClient
	if public {
		s.status.ServiceAccount = registration.ServiceAccountUsername(oc.Namespace, oc.Spec.ServiceAccountName)
		s.conds.set(oauthv1alpha1.ConditionCertificateReady, PublicClientCertificateReady())
		found, err := r.serviceAccountExists(ctx, oc)
		if err != nil {
			return ctrl.Result{}, err
		}
		s.conds.set(oauthv1alpha1.ConditionServiceAccountFound, ServiceAccountFound(oc, found))
	} else if clientManagesKeys(oc) {
		s.registered = nil
		if err := r.deleteIssuance(ctx, oc); err != nil {
			return ctrl.Result{}, err
		}
		s.conds.set(oauthv1alpha1.ConditionCertificateReady, ClientKeysReady(oc))
	} else {
		certResult, err := r.reconcileCertificate(ctx, s)
		if err != nil {
			var nc *NotControlledError
			if !errors.As(err, &nc) {
				return ctrl.Result{}, err
			}
			certResult = falseResult(ReasonNotControlled, err.Error())
		}
		s.conds.set(oauthv1alpha1.ConditionCertificateReady, certResult)
		if certResult.Reason == ReasonCertificatePredatesRegistration {
			// cert-manager reissues a Certificate whose Secret is gone,
			// with notBefore now.
			if err := r.deleteCertificateSecret(ctx, oc); err != nil {
				return ctrl.Result{}, err
			}
		}
	}

	// A self-signed certificate is itself what is registered.
	if registersWithCertificate {
		if err := r.reconcileRegistration(ctx, s); err != nil {
			return ctrl.Result{}, err
		}
	}

	// Client config.
	config, err := r.reconcileConfig(ctx, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	s.status.ConfigSecretName = ConfigSecretName(oc.Name)

	readyMsg := "the workload can get certificate-bound tokens with Secrets " + CertificateSecretName(oc.Name, oc.Spec.Certificate.SecretName) + " and " + ConfigSecretName(oc.Name)
	readyFrom := []string{oauthv1alpha1.ConditionAccepted, oauthv1alpha1.ConditionCertificateReady, oauthv1alpha1.ConditionRegistered}
	switch {
	case public:
		readyMsg = fmt.Sprintf("pods running as ServiceAccount %s get certificate-bound tokens with Secret %s and a projected service account token whose audience is %s", oc.Spec.ServiceAccountName, ConfigSecretName(oc.Name), effectiveIssuer(&as))
		readyFrom = append(readyFrom, oauthv1alpha1.ConditionServiceAccountFound)
	case clientManagesKeys(oc):
		readyMsg = "the workload can get certificate-bound tokens with its own certificate and Secret " + ConfigSecretName(oc.Name)
	}
	s.conds.summarize(ReasonReady, readyMsg, readyFrom...)
	if ready := s.conds.get(oauthv1alpha1.ConditionReady); configDecidesReady(config, ready) {
		s.conds.set(oauthv1alpha1.ConditionReady, config)
	}
	if d := nextClientRequeue(s.now, s.leaf, s.registered); d > 0 {
		return ctrl.Result{RequeueAfter: d}, nil
	}
	return ctrl.Result{}, nil
}

// serviceAccountExists looks the public client's ServiceAccount up in the
// cache, which the ServiceAccount watch keeps current.
func (r *OAuthClientReconciler) serviceAccountExists(ctx context.Context, oc *oauthv1alpha1.OAuthClient) (bool, error) {
	var sa corev1.ServiceAccount
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: oc.Namespace, Name: oc.Spec.ServiceAccountName}, &sa)
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	default:
		return false, err
	}
}

// reconcileConfig writes the client-config Secret. It reports what the
// config means for Ready: True, or False when the server's CA bundle is
// not available yet or the Secret is someone else's.
func (r *OAuthClientReconciler) reconcileConfig(ctx context.Context, s *clientScope) (conditionResult, error) {
	caNotReady := falseResult(ReasonServerCANotReady, fmt.Sprintf("the serving certificate of AuthorizationServer %s/%s has no ca.crt yet", s.server.Namespace, s.server.Name))
	issuer := effectiveIssuer(s.server)
	eps, err := endpoints(issuer)
	if err != nil {
		return caNotReady, nil
	}
	data := map[string][]byte{
		registration.ConfigKeyClientID:      []byte(s.clientID),
		registration.ConfigKeyIssuer:        []byte(issuer),
		registration.ConfigKeyTokenEndpoint: []byte(eps.MTLSToken),
	}
	var serving corev1.Secret
	caReady := false
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.server.Namespace, Name: servingSecretName(s.server.Name)}, &serving); err == nil {
		if ca := serving.Data[registration.ConfigKeyCA]; len(ca) > 0 {
			data[registration.ConfigKeyCA] = ca
			caReady = true
		}
	} else if !apierrors.IsNotFound(err) {
		return conditionResult{}, err
	}
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: ConfigSecretName(s.client.Name), Namespace: s.client.Namespace, Labels: clientLabels(s.client)},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
	if err := r.applyOwned(ctx, s.client, secret); err != nil {
		var nc *NotControlledError
		if errors.As(err, &nc) {
			return falseResult(ReasonNotControlled, err.Error()), nil
		}
		return conditionResult{}, err
	}
	if !caReady {
		return caNotReady, nil
	}
	return trueResult(ReasonReady, ""), nil
}

// configDecidesReady tells whether a config that is not ready is what
// Ready says, rather than the summary of the other conditions: when those
// are all True, and when the config needs a user (a Secret of someone
// else's) while they only wait on progress, which would hide it until
// they were done.
func configDecidesReady(config conditionResult, ready *metav1.Condition) bool {
	if config.Status == metav1.ConditionTrue {
		return false
	}
	return ready.Status == metav1.ConditionTrue ||
		oauthClientReasonHealth[config.Reason] == stalled && oauthClientReasonHealth[ready.Reason] != stalled
}

func (r *OAuthClientReconciler) applyOwned(ctx context.Context, oc *oauthv1alpha1.OAuthClient, obj client.Object) error {
	if err := ctrl.SetControllerReference(oc, obj, r.Scheme); err != nil {
		return err
	}
	_, err := r.applier.apply(ctx, obj, oc)
	return err
}

// reconcileDelete removes the registration (the server stops accepting the
// client) and everything issued for it, then the finalizer.
func (r *OAuthClientReconciler) reconcileDelete(ctx context.Context, oc *oauthv1alpha1.OAuthClient) error {
	if !controllerutil.ContainsFinalizer(oc, finalizerRegistration) {
		return nil
	}
	if err := r.deleteRegistrations(ctx, types.NamespacedName{Namespace: oc.Namespace, Name: oc.Name}, "", ""); err != nil {
		return err
	}
	if err := r.deleteIssuance(ctx, oc); err != nil {
		return err
	}
	if err := r.deleteIfControlled(ctx, oc, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: oc.Namespace, Name: ConfigSecretName(oc.Name)}}); err != nil {
		return err
	}
	r.Recorder.Eventf(oc, nil, corev1.EventTypeNormal, "Unregistered", "Delete", "registration removed")
	patch := client.MergeFrom(oc.DeepCopy())
	controllerutil.RemoveFinalizer(oc, finalizerRegistration)
	return client.IgnoreNotFound(r.Client.Patch(ctx, oc, patch, client.FieldOwner(FieldManager)))
}

func (r *OAuthClientReconciler) writeStatus(ctx context.Context, oc *oauthv1alpha1.OAuthClient, status oauthv1alpha1.OAuthClientStatus) error {
	recordTransitions(r.Recorder, oc, oc.Status.Conditions, status.Conditions)
	if equality.Semantic.DeepEqual(oc.Status, status) {
		return nil
	}
	return applyStatus(ctx, r.Client, &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Name: oc.Name, Namespace: oc.Namespace},
		Status:     status,
	})
}

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
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/asruntime/certbinding"
)

// indexAuthorizationServer indexes OAuthClients by <namespace>/<name> of
// their AuthorizationServer.
const indexAuthorizationServer = "spec.authorizationServerRef"

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
type OAuthClientReconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	Clock    clock.PassiveClock

	applier *applier
}

// +kubebuilder:rbac:groups=oauth.certbound.io,resources=oauthclients,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=oauth.certbound.io,resources=oauthclients/status,verbs=get;patch
// +kubebuilder:rbac:groups=oauth.certbound.io,resources=oauthclients/finalizers,verbs=update
// +kubebuilder:rbac:groups=oauth.certbound.io,resources=authorizationservers,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=cert-manager.io,resources=certificates;issuers,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler and its watches.
func (r *OAuthClientReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.applier = &applier{client: r.Client, scheme: r.Scheme}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &oauthv1alpha1.OAuthClient{}, indexAuthorizationServer, func(o client.Object) []string {
		c := o.(*oauthv1alpha1.OAuthClient)
		return []string{authorizationServerNamespace(c) + "/" + c.Spec.AuthorizationServerRef.Name}
	}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Secret{}, indexRegistrationValues, registrationIndexValues); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&oauthv1alpha1.OAuthClient{}).
		Owns(&cmapi.Certificate{}).
		Owns(&cmapi.Issuer{}).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.secretToClients)).
		// Only what clients read from their server re-reconciles them: its
		// spec and its issuer and endpoints, not every status update (the
		// registered-client count changes with each registration, and
		// re-reconciling every client on each would be quadratic).
		Watches(&oauthv1alpha1.AuthorizationServer{}, handler.EnqueueRequestsFromMapFunc(r.serverToClients),
			builder.WithPredicates(serverChangedForClients)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.namespaceToClients)).
		Named("oauthclient").
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

func (r *OAuthClientReconciler) conflictingClientsOf(ctx context.Context, asNamespace, asName string) []reconcile.Request {
	var list oauthv1alpha1.OAuthClientList
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexAuthorizationServer: asNamespace + "/" + asName}); err != nil {
		return nil
	}
	var reqs []reconcile.Request
	for _, c := range list.Items {
		cond := meta.FindStatusCondition(c.Status.Conditions, oauthv1alpha1.ConditionRegistered)
		if cond != nil && (cond.Reason == ReasonSubjectConflict || cond.Reason == ReasonClientIDConflict) {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: c.Namespace, Name: c.Name}})
		}
	}
	return reqs
}

func (r *OAuthClientReconciler) serverToClients(ctx context.Context, o client.Object) []reconcile.Request {
	return r.clientsOf(ctx, o.GetNamespace(), o.GetName())
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
// and the registration (labelled) to their client, and a server's serving
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
	if as := l[LabelAuthorizationServer]; as != "" {
		// A registration changed or went: clients refused for a conflict
		// may now register.
		reqs = append(reqs, r.conflictingClientsOf(ctx, o.GetNamespace(), as)...)
	}
	return reqs
}

// clientScope is everything a reconcile of one client has observed.
type clientScope struct {
	client     *oauthv1alpha1.OAuthClient
	server     *oauthv1alpha1.AuthorizationServer
	clientID   string
	regKey     client.ObjectKey
	conds      *conditionSet
	status     oauthv1alpha1.OAuthClientStatus
	now        time.Time
	leaf       *x509.Certificate
	registered []*x509.Certificate
}

func (r *OAuthClientReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	var oc oauthv1alpha1.OAuthClient
	if err := r.Client.Get(ctx, req.NamespacedName, &oc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
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
		clientID: ClientID(oc.Namespace, oc.Name),
		regKey:   client.ObjectKey{Namespace: authorizationServerNamespace(&oc), Name: RegistrationSecretName(oc.Namespace, oc.Name)},
		conds:    newConditionSet(oc.Status.Conditions, oc.Generation, metav1.NewTime(now)),
		status:   oauthv1alpha1.OAuthClientStatus{ObservedGeneration: oc.Status.ObservedGeneration},
		now:      now,
	}
	defer func() {
		if retErr == nil {
			s.status.ObservedGeneration = oc.Generation
		}
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
	var nsLabels map[string]string
	if s.server != nil && allowedFrom(s.server) == oauthv1alpha1.NamespacesFromSelector {
		var ns corev1.Namespace
		if err := r.Client.Get(ctx, client.ObjectKey{Name: oc.Namespace}, &ns); err != nil {
			return ctrl.Result{}, err
		}
		nsLabels = ns.Labels
	}
	accepted := ClientAccepted(oc, s.server, nsLabels)
	s.conds.set(oauthv1alpha1.ConditionAccepted, accepted)
	if accepted.Status != metav1.ConditionTrue {
		s.conds.set(oauthv1alpha1.ConditionCertificateReady, unknownResult(ReasonNotAccepted, "the client is not accepted"))
		s.conds.set(oauthv1alpha1.ConditionRegistered, falseResult(ReasonNotAccepted, "the client is not accepted"))
		s.conds.summarize(ReasonReady, "", oauthv1alpha1.ConditionAccepted)
		// A client the server no longer accepts is not registered with it.
		return ctrl.Result{}, r.deleteRegistration(ctx, oc)
	}
	s.status.ClientID = s.clientID

	// Unique: refuse before issuing a certificate that would carry another
	// client's subject value.
	unique, existing, err := r.checkUnique(ctx, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	if unique.Status != metav1.ConditionTrue {
		s.conds.set(oauthv1alpha1.ConditionRegistered, unique)
		s.conds.set(oauthv1alpha1.ConditionCertificateReady, unknownResult(unique.Reason, "no certificate is issued for a conflicting client"))
		s.conds.summarize(ReasonReady, "", oauthv1alpha1.ConditionAccepted, oauthv1alpha1.ConditionRegistered)
		if existing != nil {
			// We lost a race: the older holder keeps the value.
			if err := r.deleteRegistration(ctx, oc); err != nil {
				return ctrl.Result{}, err
			}
		}
		return ctrl.Result{}, r.deleteIssuance(ctx, oc)
	}
	if existing != nil {
		s.registered = existing.Certificates
	}

	// Certificate: none when the client manages its own keys (a spec that
	// switched to them leaves nothing of ours issued).
	if clientManagesKeys(oc) {
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
	}

	// Registration.
	if err := r.reconcileRegistration(ctx, s); err != nil {
		return ctrl.Result{}, err
	}

	// Client config.
	caReady, err := r.reconcileConfig(ctx, s)
	if err != nil {
		return ctrl.Result{}, err
	}
	s.status.ConfigSecretName = ConfigSecretName(oc.Name)

	readyMsg := "the workload can get certificate-bound tokens with Secrets " + CertificateSecretName(oc.Name, oc.Spec.Certificate.SecretName) + " and " + ConfigSecretName(oc.Name)
	if clientManagesKeys(oc) {
		readyMsg = "the workload can get certificate-bound tokens with its own certificate and Secret " + ConfigSecretName(oc.Name)
	}
	s.conds.summarize(ReasonReady, readyMsg,
		oauthv1alpha1.ConditionAccepted, oauthv1alpha1.ConditionCertificateReady, oauthv1alpha1.ConditionRegistered)
	if ready := s.conds.get(oauthv1alpha1.ConditionReady); ready.Status == metav1.ConditionTrue && !caReady {
		s.conds.set(oauthv1alpha1.ConditionReady, falseResult(ReasonServerCANotReady, fmt.Sprintf("the serving certificate of AuthorizationServer %s/%s has no ca.crt yet", as.Namespace, as.Name)))
	}
	if d := nextClientRequeue(s.now, s.leaf, s.registered); d > 0 {
		return ctrl.Result{RequeueAfter: d}, nil
	}
	return ctrl.Result{}, nil
}

// checkUnique lists the server's registrations (uncached) and applies
// SubjectUnique. It returns this client's own registration when it has one.
func (r *OAuthClientReconciler) checkUnique(ctx context.Context, s *clientScope) (conditionResult, *registeredClient, error) {
	holder := s.client.Namespace + "/" + s.client.Name
	ours := registeredClient{Holder: holder, ClientID: s.clientID, SecretName: s.regKey.Name}
	if methodOf(s.client) == oauthv1alpha1.TLSClientAuth {
		subject, _ := subjectOf(s.client.Spec.Subject)
		ours.SubjectKey, _ = subjectKey(subject)
	}
	// Only registrations that share our client_id or subject value can
	// conflict: the index finds them without reading every registration of
	// the server on every reconcile. The cache may not yet hold a rival
	// registered a moment ago; both registrations then exist briefly, the
	// authorization server serves only the older one, and the Secret watch
	// brings the younger client back here to lose (SubjectUnique orders by
	// creation).
	server := s.server.Namespace + "/" + s.server.Name
	lookups := []string{registrationIndexValue(server, "id", ours.ClientID)}
	if ours.SubjectKey != "" {
		lookups = append(lookups, registrationIndexValue(server, "subject", ours.SubjectKey))
	}
	seen := map[string]bool{}
	var own *registeredClient
	var others []registeredClient
	consider := func(sec *corev1.Secret) {
		if seen[sec.Name] {
			return
		}
		seen[sec.Name] = true
		reg, err := parseRegistration(sec.Data[RegistrationKey])
		if err != nil {
			log.FromContext(ctx).Info("ignoring an unreadable registration", "secret", sec.Namespace+"/"+sec.Name, "error", err.Error())
			return
		}
		reg.Holder = sec.Labels[LabelClientNamespace] + "/" + sec.Labels[LabelClientName]
		reg.Created = sec.CreationTimestamp.Time
		reg.SecretName = sec.Name
		if sec.Name == s.regKey.Name && reg.Holder == holder {
			ours.Created = reg.Created
			own = &reg
			return
		}
		others = append(others, reg)
	}
	for _, value := range lookups {
		var list corev1.SecretList
		if err := r.Client.List(ctx, &list, client.InNamespace(s.server.Namespace), client.MatchingFields{indexRegistrationValues: value}); err != nil {
			return conditionResult{}, nil, err
		}
		for i := range list.Items {
			consider(&list.Items[i])
		}
	}
	var mine corev1.Secret
	switch err := r.Client.Get(ctx, s.regKey, &mine); {
	case err == nil:
		consider(&mine)
	case !apierrors.IsNotFound(err):
		return conditionResult{}, nil, err
	}
	return SubjectUnique(ours, others), own, nil
}

func (r *OAuthClientReconciler) reconcileCertificate(ctx context.Context, s *clientScope) (conditionResult, error) {
	oc := s.client
	issuer, ok := certificateIssuer(oc, s.server)
	if !ok {
		return falseResult(ReasonNoIssuerConfigured, fmt.Sprintf("neither spec.certificate.issuerRef nor AuthorizationServer %s/%s spec.clientCertificateIssuer names an issuer", s.server.Namespace, s.server.Name)), nil
	}
	if methodOf(oc) == oauthv1alpha1.SelfSignedTLSClientAuth {
		if err := r.applyOwned(ctx, oc, desiredSelfSignedIssuer(oc)); err != nil {
			return conditionResult{}, err
		}
	}
	desired := desiredCertificate(oc, issuer)
	if err := r.applyOwned(ctx, oc, desired); err != nil {
		return conditionResult{}, err
	}
	var cert cmapi.Certificate
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), &cert); err != nil {
		if !apierrors.IsNotFound(err) {
			return conditionResult{}, err
		}
		res, _ := CertificateReady(oc, nil, nil, s.now)
		return res, nil
	}
	var secret *corev1.Secret
	var sec corev1.Secret
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: oc.Namespace, Name: cert.Spec.SecretName}, &sec); err == nil {
		secret = &sec
	} else if !apierrors.IsNotFound(err) {
		return conditionResult{}, err
	}
	res, leaf := CertificateReady(oc, &cert, secret, s.now)
	if leaf != nil {
		s.status.Certificate = &oauthv1alpha1.IssuedCertificate{
			SecretName: cert.Spec.SecretName,
			Thumbprint: certbinding.Thumbprint(leaf.Raw),
			Subject:    leaf.Subject.String(),
			NotAfter:   &metav1.Time{Time: leaf.NotAfter.UTC()},
		}
	}
	if res.Status == metav1.ConditionTrue {
		s.leaf = leaf
	}
	return res, nil
}

// reconcileRegistration writes the registration Secret in the server's
// namespace. A tls_client_auth client registers its subject value at once;
// a self-signed client needs its certificate first.
func (r *OAuthClientReconciler) reconcileRegistration(ctx context.Context, s *clientScope) error {
	oc := s.client
	var certs []*x509.Certificate
	if methodOf(oc) == oauthv1alpha1.SelfSignedTLSClientAuth && !clientManagesKeys(oc) {
		if s.leaf == nil {
			if len(s.registered) == 0 {
				s.conds.set(oauthv1alpha1.ConditionRegistered, falseResult(ReasonWaitingForCertificate, "a self-signed client is registered once its certificate is issued"))
				return nil
			}
			// Renewal in progress: keep what is registered.
			certs = selfSignedKeySet(s.registered[0], s.registered[1:], s.now)
		} else {
			certs = selfSignedKeySet(s.leaf, s.registered, s.now)
		}
		s.registered = certs
	}
	doc, err := registrationDocument(oc, certs)
	if err != nil {
		s.conds.set(oauthv1alpha1.ConditionRegistered, falseResult(ReasonInvalidSubject, err.Error()))
		return nil
	}
	labels := clientLabels(oc)
	labels[LabelAuthorizationServer] = s.server.Name
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: s.regKey.Name, Namespace: s.regKey.Namespace, Labels: labels},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{RegistrationKey: doc},
	}
	var current corev1.Secret
	if err := r.Client.Get(ctx, s.regKey, &current); err == nil {
		if current.Labels[LabelClientNamespace] != oc.Namespace || current.Labels[LabelClientName] != labels[LabelClientName] {
			s.conds.set(oauthv1alpha1.ConditionRegistered, falseResult(ReasonNotControlled, (&NotControlledError{Kind: "Secret", Namespace: s.regKey.Namespace, Name: s.regKey.Name}).Error()))
			return nil
		}
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	var owner client.Object
	if s.regKey.Namespace == oc.Namespace {
		if err := ctrl.SetControllerReference(oc, secret, r.Scheme); err != nil {
			return err
		}
		owner = oc
	}
	if _, err := r.applier.apply(ctx, secret, owner); err != nil {
		var nc *NotControlledError
		if errors.As(err, &nc) {
			s.conds.set(oauthv1alpha1.ConditionRegistered, falseResult(ReasonNotControlled, err.Error()))
			return nil
		}
		return err
	}
	msg := fmt.Sprintf("registered with AuthorizationServer %s/%s as client_id %s (Secret %s)", s.server.Namespace, s.server.Name, s.clientID, s.regKey.Name)
	if len(certs) > 1 {
		msg += fmt.Sprintf("; %d certificates registered until the earlier ones expire", len(certs))
	}
	s.conds.set(oauthv1alpha1.ConditionRegistered, trueResult(ReasonRegistered, msg))
	return nil
}

// reconcileConfig writes the client-config Secret. It reports whether the
// server's CA bundle was available.
func (r *OAuthClientReconciler) reconcileConfig(ctx context.Context, s *clientScope) (bool, error) {
	issuer := effectiveIssuer(s.server)
	eps, err := endpoints(issuer)
	if err != nil {
		return false, nil
	}
	data := map[string][]byte{
		ConfigKeyClientID:      []byte(s.clientID),
		ConfigKeyIssuer:        []byte(issuer),
		ConfigKeyTokenEndpoint: []byte(eps.MTLSToken),
	}
	var serving corev1.Secret
	caReady := false
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: s.server.Namespace, Name: servingSecretName(s.server.Name)}, &serving); err == nil {
		if ca := serving.Data[ConfigKeyCA]; len(ca) > 0 {
			data[ConfigKeyCA] = ca
			caReady = true
		}
	} else if !apierrors.IsNotFound(err) {
		return false, err
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
			s.conds.set(oauthv1alpha1.ConditionReady, falseResult(ReasonNotControlled, err.Error()))
			return false, nil
		}
		return false, err
	}
	return caReady, nil
}

func (r *OAuthClientReconciler) applyOwned(ctx context.Context, oc *oauthv1alpha1.OAuthClient, obj client.Object) error {
	if err := ctrl.SetControllerReference(oc, obj, r.Scheme); err != nil {
		return err
	}
	_, err := r.applier.apply(ctx, obj, oc)
	return err
}

// deleteRegistration removes this client's registration, if it is this
// client's (labels name it).
func (r *OAuthClientReconciler) deleteRegistration(ctx context.Context, oc *oauthv1alpha1.OAuthClient) error {
	var list corev1.SecretList
	if err := r.Client.List(ctx, &list, client.MatchingLabels{LabelClientNamespace: oc.Namespace, LabelClientName: boundedName(oc.Name, 63)}, client.HasLabels{LabelAuthorizationServer}); err != nil {
		return err
	}
	for i := range list.Items {
		sec := &list.Items[i]
		if sec.Name != RegistrationSecretName(oc.Namespace, oc.Name) {
			continue
		}
		if err := r.Client.Delete(ctx, sec, client.Preconditions{UID: &sec.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete registration %s/%s: %w", sec.Namespace, sec.Name, err)
		}
	}
	return nil
}

// deleteIssuance removes the certificate machinery of a client that must not
// hold one (a conflicting subject value).
func (r *OAuthClientReconciler) deleteIssuance(ctx context.Context, oc *oauthv1alpha1.OAuthClient) error {
	objs := []client.Object{
		&cmapi.Certificate{ObjectMeta: metav1.ObjectMeta{Namespace: oc.Namespace, Name: oc.Name}},
		&cmapi.Issuer{ObjectMeta: metav1.ObjectMeta{Namespace: oc.Namespace, Name: SelfSignedIssuerName(oc.Name)}},
	}
	for _, o := range objs {
		if err := r.deleteIfControlled(ctx, oc, o); err != nil {
			return err
		}
	}
	return r.deleteCertificateSecret(ctx, oc)
}

func (r *OAuthClientReconciler) deleteIfControlled(ctx context.Context, oc *oauthv1alpha1.OAuthClient, obj client.Object) error {
	if err := r.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !metav1.IsControlledBy(obj, oc) {
		return nil
	}
	if err := r.Client.Delete(ctx, obj); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete %s: %w", obj.GetName(), err)
	}
	return nil
}

// deleteCertificateSecret removes the Secret cert-manager wrote (it is not
// owned by the Certificate unless cert-manager runs with
// --enable-certificate-owner-ref), if the labels say it is this client's.
func (r *OAuthClientReconciler) deleteCertificateSecret(ctx context.Context, oc *oauthv1alpha1.OAuthClient) error {
	var sec corev1.Secret
	key := client.ObjectKey{Namespace: oc.Namespace, Name: CertificateSecretName(oc.Name, oc.Spec.Certificate.SecretName)}
	if err := r.Client.Get(ctx, key, &sec); err != nil {
		return client.IgnoreNotFound(err)
	}
	if sec.Labels[LabelClientNamespace] != oc.Namespace || sec.Labels[LabelClientName] != boundedName(oc.Name, 63) {
		return nil
	}
	return client.IgnoreNotFound(r.Client.Delete(ctx, &sec, client.Preconditions{UID: &sec.UID}))
}

// reconcileDelete removes the registration (the server stops accepting the
// client) and everything issued for it, then the finalizer.
func (r *OAuthClientReconciler) reconcileDelete(ctx context.Context, oc *oauthv1alpha1.OAuthClient) error {
	if !controllerutil.ContainsFinalizer(oc, finalizerRegistration) {
		return nil
	}
	if err := r.deleteRegistration(ctx, oc); err != nil {
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
	return applyStatus(ctx, r.Client, r.Scheme, &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Name: oc.Name, Namespace: oc.Namespace},
		Status:     status,
	})
}

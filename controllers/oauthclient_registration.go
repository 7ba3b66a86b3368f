package controllers

// The OAuthClient reconciler's registration steps: the hold on a subject,
// its uniqueness across namespaces and servers, the ClientRegistration the
// authorization server reads, and its removal.

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/registration"
)

// observeRegistration reads the client's current registration and any
// registration Secret of an earlier version, and works out since when the
// client holds its subject.
func (r *OAuthClientReconciler) observeRegistration(ctx context.Context, s *clientScope) error {
	oc := s.client
	var reg oauthv1alpha1.ClientRegistration
	err := r.Client.Get(ctx, s.regKey, &reg)
	if apierrors.IsNotFound(err) && r.APIReader != nil {
		// The cache may not have seen the registration written a moment
		// ago; concluding there is none would restart the hold and have the
		// certificate just issued reissued.
		err = r.APIReader.Get(ctx, s.regKey, &reg)
	}
	switch {
	case err == nil:
		if reg.Spec.Holder.Namespace == oc.Namespace && reg.Spec.Holder.Name == oc.Name {
			own, err := registeredFrom(&reg)
			if err != nil {
				log.FromContext(ctx).Info("rewriting an unreadable registration", "registration", own.Name, "error", err.Error())
			} else {
				s.own = &own
			}
		}
	case !apierrors.IsNotFound(err):
		return err
	}
	// Registration Secrets of earlier versions carry the operator's label,
	// so the cache holds them: a List finds one without a request to the
	// API server, which a Get of a Secret the cache lacks would make for
	// every client that has none.
	var legacyCreated time.Time
	var legacies corev1.SecretList
	if err := r.Client.List(ctx, &legacies, client.InNamespace(s.regKey.Namespace),
		client.MatchingLabels{LabelClientNamespace: oc.Namespace, LabelClientName: boundedName(oc.Name, 63)}, client.HasLabels{LabelAuthorizationServer}); err != nil {
		return err
	}
	for _, legacy := range legacies.Items {
		if legacy.Name == legacyRegistrationSecretName(oc.Namespace, oc.Name) && legacy.Labels[LabelAuthorizationServer] != "" {
			legacyCreated = legacy.CreationTimestamp.Time
		}
	}
	if methodOf(oc) != oauthv1alpha1.TLSClientAuth {
		return nil
	}
	subject, err := registration.SubjectFromAPI(oc.Spec.Subject)
	if err != nil {
		return nil // ClientAccepted has refused the client already.
	}
	s.heldSince, s.established = subjectHeldSince(s.own, oc.UID, subject.Key(), legacyCreated, s.now)
	return nil
}

// checkUnique looks for other registrations of the client's subject across
// the cluster and applies SubjectUnique. A registration whose holder is
// gone (or was recreated) is an orphan: it is removed, not obeyed.
func (r *OAuthClientReconciler) checkUnique(ctx context.Context, s *clientScope) (conditionResult, error) {
	oc := s.client
	if s.heldSince.IsZero() {
		return trueResult(ReasonRegistered, ""), nil
	}
	subject, err := registration.SubjectFromAPI(oc.Spec.Subject)
	if err != nil {
		return conditionResult{}, err
	}
	ours := claim{
		Holder:      types.NamespacedName{Namespace: oc.Namespace, Name: oc.Name},
		SubjectKey:  subject.Key(),
		HeldSince:   s.heldSince,
		Name:        s.regKey.Namespace + "/" + s.regKey.Name,
		Established: s.established,
	}
	var list oauthv1alpha1.ClientRegistrationList
	if err := r.Client.List(ctx, &list, client.MatchingFields{indexRegistrationSubject: ours.SubjectKey}); err != nil {
		return conditionResult{}, err
	}
	var others []registeredClient
	for i := range list.Items {
		reg := &list.Items[i]
		other, err := registeredFrom(reg)
		if err != nil || other.Holder == ours.Holder {
			continue
		}
		orphan, err := r.isOrphan(ctx, reg)
		if err != nil {
			return conditionResult{}, err
		}
		if orphan {
			if err := r.Client.Delete(ctx, reg, client.Preconditions{UID: &reg.UID}); client.IgnoreNotFound(err) != nil {
				return conditionResult{}, fmt.Errorf("delete orphaned registration %s: %w", other.Name, err)
			}
			continue
		}
		others = append(others, other)
	}
	return SubjectUnique(ours, others), nil
}

// isOrphan reports whether a registration's holder no longer exists as the
// OAuthClient that registered it.
func (r *OAuthClientReconciler) isOrphan(ctx context.Context, reg *oauthv1alpha1.ClientRegistration) (bool, error) {
	var holder oauthv1alpha1.OAuthClient
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: reg.Spec.Holder.Namespace, Name: reg.Spec.Holder.Name}, &holder)
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return holder.UID != reg.Spec.Holder.UID, nil
}

// reconcileRegistration writes the client's ClientRegistration in the
// server's namespace, then removes what earlier versions or an earlier
// spec left: a registration Secret (migrated: its creation time is the
// start of the client's hold), a registration with another server.
// A tls_client_auth client registers its subject at once (certificates
// issued before it are refused by min_certificate_not_before); a
// self-signed client needs its certificate first.
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
	md, err := desiredClientMetadata(oc, certs, s.heldSince)
	if err != nil {
		s.conds.set(oauthv1alpha1.ConditionRegistered, falseResult(ReasonInvalidSubject, err.Error()))
		return nil
	}
	desired := desiredRegistration(oc, s.server, md)
	var owner client.Object
	if s.regKey.Namespace == oc.Namespace {
		if err := ctrl.SetControllerReference(oc, desired, r.Scheme); err != nil {
			return err
		}
		owner = oc
	}
	if _, err := r.applier.apply(ctx, desired, owner); err != nil {
		return err
	}
	if err := r.deleteRegistrations(ctx, types.NamespacedName{Namespace: oc.Namespace, Name: oc.Name}, s.regKey.Namespace, s.regKey.Name); err != nil {
		return err
	}
	msg := fmt.Sprintf("registered with AuthorizationServer %s/%s as client_id %s (ClientRegistration %s)", s.server.Namespace, s.server.Name, s.clientID, s.regKey.Name)
	if md.ServiceAccount != "" {
		msg += "; tokens of " + md.ServiceAccount + " are exchanged for its access tokens"
	}
	if !s.heldSince.IsZero() {
		msg += fmt.Sprintf("; certificates issued before %s are refused", s.heldSince.UTC().Format(time.RFC3339))
	}
	if len(certs) > 1 {
		msg += fmt.Sprintf("; %d certificates registered until the earlier ones expire", len(certs))
	}
	s.conds.set(oauthv1alpha1.ConditionRegistered, trueResult(ReasonRegistered, msg))
	return nil
}

// deleteRegistrations removes the registrations the client holds, in any
// namespace, except the one named keepNamespace/keepName (none when empty),
// and registration Secrets of earlier versions naming it.
func (r *OAuthClientReconciler) deleteRegistrations(ctx context.Context, holder types.NamespacedName, keepNamespace, keepName string) error {
	selector := client.MatchingLabels{LabelClientNamespace: holder.Namespace, LabelClientName: boundedName(holder.Name, 63)}
	var regs oauthv1alpha1.ClientRegistrationList
	if err := r.Client.List(ctx, &regs, selector); err != nil {
		return err
	}
	for i := range regs.Items {
		reg := &regs.Items[i]
		if reg.Spec.Holder.Namespace != holder.Namespace || reg.Spec.Holder.Name != holder.Name || (reg.Namespace == keepNamespace && reg.Name == keepName) {
			continue
		}
		if err := r.Client.Delete(ctx, reg, client.Preconditions{UID: &reg.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete registration %s/%s: %w", reg.Namespace, reg.Name, err)
		}
	}
	var secrets corev1.SecretList
	if err := r.Client.List(ctx, &secrets, selector, client.HasLabels{LabelAuthorizationServer}); err != nil {
		return err
	}
	for i := range secrets.Items {
		sec := &secrets.Items[i]
		if sec.Name != legacyRegistrationSecretName(holder.Namespace, holder.Name) {
			continue
		}
		if err := r.Client.Delete(ctx, sec, client.Preconditions{UID: &sec.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete registration Secret %s/%s: %w", sec.Namespace, sec.Name, err)
		}
	}
	return nil
}

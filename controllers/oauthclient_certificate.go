package controllers

// The OAuthClient reconciler's certificate steps: the cert-manager
// Certificate (and self-signed Issuer) of a client, and their removal when
// the client must not hold a certificate.

import (
	"context"
	"fmt"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/asruntime/certbinding"
)

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
		res, _ := CertificateReady(oc, nil, nil, s.now, s.heldSince)
		return res, nil
	}
	var secret *corev1.Secret
	var sec corev1.Secret
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: oc.Namespace, Name: cert.Spec.SecretName}, &sec); err == nil {
		secret = &sec
	} else if !apierrors.IsNotFound(err) {
		return conditionResult{}, err
	}
	res, leaf := CertificateReady(oc, &cert, secret, s.now, s.heldSince)
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

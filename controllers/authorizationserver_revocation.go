package controllers

// spec.clientCertificateRevocation: the CRL ConfigMaps are mounted into the
// server's pods as they are (the kubelet keeps them current and the server
// reloads them), so a platform team revokes by updating a ConfigMap; the
// operator only checks that each named CRL is there and parses, and says
// so in a condition.

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/asruntime/certrevocation"
)

// Reasons of the ClientCertificateRevocationReady condition.
const (
	ReasonCRLsLoaded             = "CRLsLoaded"
	ReasonCRLConfigMapNotFound   = "CRLConfigMapNotFound"
	ReasonCRLKeyNotFound         = "CRLKeyNotFound"
	ReasonCRLInvalid             = "CRLInvalid"
	ReasonDistributionPointsOnly = "DistributionPointsOnly"
)

const (
	// indexCRLConfigMaps indexes AuthorizationServers by the names of
	// their CRL ConfigMaps.
	indexCRLConfigMaps = "spec.clientCertificateRevocation.crls.configMapRef.name"
	// mountCRLs is the parent of one directory per CRL.
	mountCRLs = "/etc/certbound/crls"
	// defaultCRLKey is the ConfigMap key when configMapRef.key is empty.
	defaultCRLKey = "ca.crl"
)

// crlInput is one spec.clientCertificateRevocation.crls entry as observed.
type crlInput struct {
	Ref       oauthv1alpha1.ConfigMapKeySelector
	ConfigMap *corev1.ConfigMap // nil: not found
}

func crlKey(ref oauthv1alpha1.ConfigMapKeySelector) string {
	if ref.Key == "" {
		return defaultCRLKey
	}
	return ref.Key
}

// ClientCertificateRevocationReady checks each named CRL with the server's
// own parser: a missing ConfigMap or key, or a CRL the server would refuse,
// says which and what to do.
func ClientCertificateRevocationReady(rev *oauthv1alpha1.ClientCertificateRevocation, crls []crlInput) conditionResult {
	for _, c := range crls {
		name, key := c.Ref.Name, crlKey(c.Ref)
		if c.ConfigMap == nil {
			return falseResult(ReasonCRLConfigMapNotFound, fmt.Sprintf("CRL ConfigMap %s not found: create it with the issuing CA's CRL under key %q (kubectl create configmap %s --from-file=%s=<crl file>); the server's pods wait for it", name, key, name, key))
		}
		data, ok := c.ConfigMap.BinaryData[key]
		if !ok {
			var text string
			text, ok = c.ConfigMap.Data[key]
			data = []byte(text)
		}
		if !ok || len(data) == 0 {
			return falseResult(ReasonCRLKeyNotFound, fmt.Sprintf("CRL ConfigMap %s has no key %q in data or binaryData", name, key))
		}
		if _, err := certrevocation.ParseCRL(data); err != nil {
			return falseResult(ReasonCRLInvalid, fmt.Sprintf("CRL ConfigMap %s key %q: %v", name, key, err))
		}
	}
	if len(crls) == 0 {
		return trueResult(ReasonDistributionPointsOnly, "CRLs are fetched from the client certificates' distribution points; failure mode "+string(failureModeOf(rev)))
	}
	return trueResult(ReasonCRLsLoaded, fmt.Sprintf("%d CRLs from ConfigMaps; failure mode %s", len(crls), failureModeOf(rev)))
}

func failureModeOf(rev *oauthv1alpha1.ClientCertificateRevocation) oauthv1alpha1.RevocationFailureMode {
	if rev.FailureMode == "" {
		return oauthv1alpha1.RevocationFailClosed
	}
	return rev.FailureMode
}

// revocationArgs are the server's revocation flags; none when the field is
// absent.
func revocationArgs(as *oauthv1alpha1.AuthorizationServer) []string {
	rev := as.Spec.ClientCertificateRevocation
	if rev == nil {
		return nil
	}
	var args []string
	for i, c := range rev.CRLs {
		args = append(args, "--client-crl-file="+crlDir(i)+"/"+crlKey(c.ConfigMapRef))
	}
	if rev.DistributionPoints {
		args = append(args, "--client-crl-distribution-points")
	}
	mode := certrevocation.FailClosed
	if failureModeOf(rev) == oauthv1alpha1.RevocationFailOpen {
		mode = certrevocation.FailOpen
	}
	return append(args, "--client-revocation-failure-mode="+string(mode))
}

func crlDir(i int) string { return mountCRLs + "/" + strconv.Itoa(i) }

// revocationVolumes mount each CRL ConfigMap key in a directory of its own,
// without subPath, so that the kubelet's updates reach the server.
func revocationVolumes(as *oauthv1alpha1.AuthorizationServer) ([]corev1.Volume, []corev1.VolumeMount) {
	rev := as.Spec.ClientCertificateRevocation
	if rev == nil {
		return nil, nil
	}
	readOnly := int32(0o444)
	var volumes []corev1.Volume
	var mounts []corev1.VolumeMount
	for i, c := range rev.CRLs {
		name := "crl-" + strconv.Itoa(i)
		key := crlKey(c.ConfigMapRef)
		volumes = append(volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: c.ConfigMapRef.Name},
			Items:                []corev1.KeyToPath{{Key: key, Path: key}},
			DefaultMode:          &readOnly,
		}}})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: crlDir(i), ReadOnly: true})
	}
	return volumes, mounts
}

// reconcileClientCertificateRevocation observes the CRL ConfigMaps. They
// are read from the API server, not a cache: the operator watches only
// ConfigMap metadata, so that the servers' many revocation ConfigMaps are
// not held in its memory.
func (r *AuthorizationServerReconciler) reconcileClientCertificateRevocation(ctx context.Context, s *serverScope) error {
	rev := s.server.Spec.ClientCertificateRevocation
	if rev == nil {
		return nil
	}
	crls := make([]crlInput, 0, len(rev.CRLs))
	for _, c := range rev.CRLs {
		in := crlInput{Ref: c.ConfigMapRef}
		var cm corev1.ConfigMap
		err := r.apiReader.Get(ctx, client.ObjectKey{Namespace: s.server.Namespace, Name: c.ConfigMapRef.Name}, &cm)
		switch {
		case err == nil:
			in.ConfigMap = &cm
		case !apierrors.IsNotFound(err):
			return err
		}
		crls = append(crls, in)
	}
	s.conds.set(oauthv1alpha1.ConditionClientCertificateRevocationReady, ClientCertificateRevocationReady(rev, crls))
	return nil
}

// crlConfigMapNames is the indexCRLConfigMaps index function.
func crlConfigMapNames(o client.Object) []string {
	as := o.(*oauthv1alpha1.AuthorizationServer)
	if as.Spec.ClientCertificateRevocation == nil {
		return nil
	}
	var names []string
	for _, c := range as.Spec.ClientCertificateRevocation.CRLs {
		names = append(names, c.ConfigMapRef.Name)
	}
	return names
}

// configMapToServers maps a ConfigMap to the servers that name it as a CRL.
func (r *AuthorizationServerReconciler) configMapToServers(ctx context.Context, o client.Object) []reconcile.Request {
	var list oauthv1alpha1.AuthorizationServerList
	if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{indexCRLConfigMaps: o.GetName()}); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, as := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: as.Namespace, Name: as.Name}})
	}
	return reqs
}

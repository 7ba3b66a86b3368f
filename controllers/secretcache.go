package controllers

// The operator caches only its own Secrets, selected by label, the way
// cert-manager caches only the Secrets it labels: the other Secrets of the
// cluster (tenants' credentials, keys and certificates) are never listed,
// watched or held in the operator's memory.
//
// Every Secret the operator reads by name or by label carries
// app.kubernetes.io/managed-by=certbound: the client-config, signing-key and
// trust-bundle Secrets it writes; the certificate Secrets cert-manager
// writes for it (the label is in each Certificate's spec.secretTemplate,
// which cert-manager also copies onto Secrets that already exist); and the
// registration Secrets of earlier versions, which were written with the
// same label. Secrets the operator does not own (the AuthorizationServers'
// client trust anchors) are read from the API server by name and re-read
// every TrustAnchorResyncPeriod.

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The label, and its value, of the Secrets in the operator's cache.
const (
	CachedSecretLabel      = labelManagedBy
	CachedSecretLabelValue = managedByValue
)

// CacheOptions are the options of the manager's cache: Secrets are cached
// only when they carry CachedSecretLabel. The selector applies to every
// Secret informer of the manager's cache (typed, unstructured and
// metadata-only alike), so no read through the manager's client can start
// an informer over all Secrets.
func CacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Label: labels.SelectorFromSet(labels.Set{CachedSecretLabel: CachedSecretLabelValue})},
	}}
}

// secretFallbackClient reads a Secret the cache does not hold from the API
// server. Without it, a Secret of an operator's name but without the label
// would look absent: the operator would apply over a user's Secret it must
// never take over, or replace signing keys whose label someone removed. A
// present, labelled Secret is read from the cache and costs no request.
// The AuthorizationServer reconciler reads through it everywhere; the
// OAuthClient reconciler only where it applies (see Setup).
type secretFallbackClient struct {
	client.Client
	apiReader client.Reader
}

func (c *secretFallbackClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	err := c.Client.Get(ctx, key, obj, opts...)
	if _, isSecret := obj.(*corev1.Secret); isSecret && apierrors.IsNotFound(err) {
		return c.apiReader.Get(ctx, key, obj, opts...)
	}
	return err
}

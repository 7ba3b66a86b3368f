package controllers_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/controllers"
)

// TestSecretCacheHoldsOnlyLabelledSecrets: a Secret without the operator's
// label is on the API server but never in the manager's cache, typed or
// metadata-only, while a labelled Secret created after it is.
func TestSecretCacheHoldsOnlyLabelledSecrets(t *testing.T) {
	ctx := context.Background()
	const ns = "secret-cache"
	createNamespace(t, ns, false)
	mustCreate(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "tenant-credentials", Namespace: ns},
		Data:       map[string][]byte{"password": []byte("not the operator's")},
	})
	mustCreate(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{
		Name: "labelled", Namespace: ns, Labels: map[string]string{controllers.CachedSecretLabel: controllers.CachedSecretLabelValue},
	}})
	// The cache's Secret watch has passed the unlabelled Secret once it
	// holds the labelled one, created later.
	eventually(t, "the labelled Secret is in the cache", func() error {
		return managerCache.Get(ctx, client.ObjectKey{Namespace: ns, Name: "labelled"}, &corev1.Secret{})
	})

	key := client.ObjectKey{Namespace: ns, Name: "tenant-credentials"}
	if err := env.Client.Get(ctx, key, &corev1.Secret{}); err != nil {
		t.Fatalf("the API server has no unlabelled Secret: %v", err)
	}
	if err := managerCache.Get(ctx, key, &corev1.Secret{}); !apierrors.IsNotFound(err) {
		t.Errorf("cache Get of the unlabelled Secret: %v, want NotFound", err)
	}
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := managerCache.Get(ctx, key, meta); !apierrors.IsNotFound(err) {
		t.Errorf("metadata-only cache Get of the unlabelled Secret: %v, want NotFound", err)
	}
	var list corev1.SecretList
	if err := managerCache.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "labelled" {
		names := make([]string, 0, len(list.Items))
		for _, s := range list.Items {
			names = append(names, s.Name)
		}
		t.Errorf("cached Secrets in %s: %v, want only the labelled one", ns, names)
	}
}

// TestTrustAnchorChangeIsPickedUp: a trust-anchor Secret is not the
// operator's and not watched; a change to it still reaches the server's
// trust bundle, within the resync period.
func TestTrustAnchorChangeIsPickedUp(t *testing.T) {
	ctx := context.Background()
	const ns, name, anchors = "anchor-resync", "resyncing", "tenant-ca"
	createNamespace(t, ns, false)
	first, second := testCAPEM(t, "first CA"), testCAPEM(t, "second CA")
	anchor := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: anchors, Namespace: ns}, Data: map[string][]byte{"ca.crt": first}}
	mustCreate(t, anchor)
	mustCreate(t, newServer(ns, name, func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.ClientTrustAnchors = []oauthv1alpha1.TrustAnchor{{SecretRef: oauthv1alpha1.SecretKeySelector{Name: anchors, Key: "ca.crt"}}}
	}))
	waitForServerCondition(t, ns, name, oauthv1alpha1.ConditionServingCertificateReady, metav1.ConditionTrue, "")
	waitForBundle(t, ns, name+"-client-ca", first)
	// Only the resync, not the reconciles that set the server up, may
	// pick up the change.
	waitUntilNoWrites(t)

	anchor.Data = map[string][]byte{"ca.crt": second}
	if err := env.Client.Update(ctx, anchor); err != nil {
		t.Fatal(err)
	}
	waitForBundle(t, ns, name+"-client-ca", second)
}

// TestClientCertificateSecretIsCached: the Secret cert-manager writes for
// a client carries the operator's label (from the Certificate's
// secretTemplate), so the operator sees it in its cache and reports the
// certificate it holds; so does the server's serving certificate Secret.
func TestClientCertificateSecretIsCached(t *testing.T) {
	ctx := context.Background()
	const ns, name = "cached-cert", "worker"
	createNamespace(t, ns, true)
	mustCreate(t, newClient(ns, name, func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/" + name}
	}))
	oc := waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionReady, metav1.ConditionTrue, "")

	for _, key := range []client.ObjectKey{{Namespace: ns, Name: name + "-mtls"}, {Namespace: authNS, Name: serverName + "-tls"}} {
		secret := mustSecret(t, key.Namespace, key.Name)
		if got := secret.Labels[controllers.CachedSecretLabel]; got != controllers.CachedSecretLabelValue {
			t.Errorf("Secret %s label %s = %q, want %q", key, controllers.CachedSecretLabel, got, controllers.CachedSecretLabelValue)
		}
		if err := managerCache.Get(ctx, key, &corev1.Secret{}); err != nil {
			t.Errorf("Secret %s is not in the operator's cache: %v", key, err)
		}
	}
	leaf := parseCert(t, mustSecret(t, ns, name+"-mtls").Data[corev1.TLSCertKey])
	if oc.Status.Certificate == nil || oc.Status.Certificate.Thumbprint != certbinding.Thumbprint(leaf.Raw) {
		t.Errorf("status.certificate %+v does not describe the issued certificate", oc.Status.Certificate)
	}
}

// TestUnlabelledSecretOfAnOperatorNameIsNotTakenOver: a user's Secret that
// happens to have a client-config Secret's name is not in the cache, yet the
// operator still finds it and leaves it alone.
func TestUnlabelledSecretOfAnOperatorNameIsNotTakenOver(t *testing.T) {
	const ns, name = "squatted", "squatter"
	createNamespace(t, ns, true)
	mustCreate(t, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-oauth-config", Namespace: ns},
		Data:       map[string][]byte{"mine": []byte("keep")},
	})
	mustCreate(t, newClient(ns, name, func(c *oauthv1alpha1.OAuthClient) {
		c.Spec.Subject = &oauthv1alpha1.ClientSubject{URI: "spiffe://cluster.local/ns/" + ns + "/sa/" + name}
	}))
	// The status written after the reconcile that applied the config.
	waitForClientCondition(t, ns, name, oauthv1alpha1.ConditionRegistered, metav1.ConditionTrue, "")
	secret := mustSecret(t, ns, name+"-oauth-config")
	if len(secret.OwnerReferences) != 0 || len(secret.Labels) != 0 || len(secret.Data) != 1 || string(secret.Data["mine"]) != "keep" {
		t.Errorf("the user's Secret was changed: labels %v, owners %v, keys %d", secret.Labels, secret.OwnerReferences, len(secret.Data))
	}
}

// waitForBundle waits until the trust-bundle Secret holds exactly want.
func waitForBundle(t *testing.T, ns, name string, want []byte) {
	t.Helper()
	eventually(t, fmt.Sprintf("trust bundle %s/%s holds the anchor", ns, name), func() error {
		var s corev1.Secret
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			return err
		}
		if !bytes.Equal(s.Data["ca.crt"], want) {
			return fmt.Errorf("bundle %q", s.Data["ca.crt"])
		}
		return nil
	})
}

// testCAPEM is the PEM of a CA certificate made for the test.
func testCAPEM(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

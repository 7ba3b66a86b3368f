package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"sync"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	"github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
)

// benchNamespace holds the sample AuthorizationServer, whose clients must
// live in its namespace, and so every object the bench creates for it.
const benchNamespace = "auth"

func benchName(i int) string { return fmt.Sprintf("bench-%04d", i) }

func benchURI(i int) string {
	return fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/%s", benchNamespace, benchName(i))
}

// pkiClient is a tls_client_auth OAuthClient whose certificate the
// operator requests from the server's client issuer.
func pkiClient(i int) *oauthv1alpha1.OAuthClient {
	return &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: benchName(i)},
		Spec: oauthv1alpha1.OAuthClientSpec{
			AuthorizationServerRef: oauthv1alpha1.AuthorizationServerReference{Name: "payments"},
			AuthenticationMethod:   oauthv1alpha1.TLSClientAuth,
			Subject:                &oauthv1alpha1.ClientSubject{URI: benchURI(i)},
			Scopes:                 []string{"payments.read"},
		},
	}
}

// floorCertificate is the Certificate the operator would request for
// pkiClient(i) (see controllers/oauthclient_policy.go), made directly:
// cert-manager's own pace with no operator in the loop.
func floorCertificate(i int) *cmapi.Certificate {
	return &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: benchName(i)},
		Spec: cmapi.CertificateSpec{
			SecretName: benchName(i) + "-mtls",
			URIs:       []string{benchURI(i)},
			Usages:     []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageClientAuth},
			IssuerRef:  cmmeta.IssuerReference{Name: "clients-ca", Kind: "Issuer"},
			PrivateKey: &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm, RotationPolicy: cmapi.RotationPolicyAlways},
		},
	}
}

// ownKeyClient is a self_signed_tls_client_auth OAuthClient that brings
// its own certificate in spec.jwks: the operator requests nothing from
// cert-manager for it.
type ownKeyClient struct {
	object *oauthv1alpha1.OAuthClient
	cert   tls.Certificate
}

func selfSignedClient(i int) (ownKeyClient, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return ownKeyClient{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return ownKeyClient{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: benchName(i)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return ownKeyClient{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return ownKeyClient{}, err
	}
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, Certificates: []*x509.Certificate{leaf}, Use: "sig"}}}
	jwks, err := json.Marshal(set)
	if err != nil {
		return ownKeyClient{}, err
	}
	return ownKeyClient{
		object: &oauthv1alpha1.OAuthClient{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: benchName(i)},
			Spec: oauthv1alpha1.OAuthClientSpec{
				AuthorizationServerRef: oauthv1alpha1.AuthorizationServerReference{Name: "payments"},
				AuthenticationMethod:   oauthv1alpha1.SelfSignedTLSClientAuth,
				JWKS:                   string(jwks),
				Scopes:                 []string{"payments.read"},
			},
		},
		cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
	}, nil
}

// unrelatedSecret is a tenant's Secret of about 4 KiB that nothing of
// certbound's refers to: what an unfiltered Secret cache holds anyway.
func unrelatedSecret(i int) (*corev1.Secret, error) {
	data := make([]byte, 4096)
	if _, err := rand.Read(data); err != nil {
		return nil, err
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: tenantNamespace(i), Name: fmt.Sprintf("tenant-secret-%05d", i)},
		Data:       map[string][]byte{"payload": data},
	}, nil
}

// tenantNamespace spreads unrelated Secrets 100 to a namespace.
func tenantNamespace(i int) string { return fmt.Sprintf("tenant-%03d", i/100) }

// createAll creates n objects made by newObject, 16 at a time, and calls
// created with each one right after the API server accepted it.
func createAll(ctx context.Context, c client.Client, n int, newObject func(i int) (client.Object, error), created func(i int)) error {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	sem := make(chan struct{}, 16)
	for i := range n {
		obj, err := newObject(i)
		if err != nil {
			return err
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := c.Create(ctx, obj); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
				}
				mu.Unlock()
				return
			}
			if created != nil {
				created(i)
			}
		}()
	}
	wg.Wait()
	return firstErr
}

package testenv

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certbound/certbound/internal/poll"
)

var env *Environment

func TestMain(m *testing.M) {
	var err error
	env, err = Start(Options{})
	if err != nil {
		os.Stderr.WriteString("testenv: " + err.Error() + "\n")
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		os.Stderr.WriteString("testenv stop: " + err.Error() + "\n")
	}
	os.Exit(code)
}

// TestCertManagerIssuesAClientCertificate walks the chain a certbound
// installation relies on: SelfSigned ClusterIssuer → CA Certificate → CA
// Issuer → leaf client certificate with a literal subject and a URI SAN.
func TestCertManagerIssuesAClientCertificate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := env.Client
	const ns = "issuance"
	if err := env.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}

	mustCreate(t, c, &cmapi.ClusterIssuer{
		ObjectMeta: metav1.ObjectMeta{Name: "bootstrap"},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{SelfSigned: &cmapi.SelfSignedIssuer{}}},
	})
	mustCreate(t, c, &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Name: "clients-ca", Namespace: ns},
		Spec: cmapi.CertificateSpec{
			IsCA:       true,
			CommonName: "clients-ca",
			SecretName: "clients-ca",
			IssuerRef:  cmmeta.IssuerReference{Name: "bootstrap", Kind: "ClusterIssuer"},
		},
	})
	mustCreate(t, c, &cmapi.Issuer{
		ObjectMeta: metav1.ObjectMeta{Name: "clients-ca", Namespace: ns},
		Spec:       cmapi.IssuerSpec{IssuerConfig: cmapi.IssuerConfig{CA: &cmapi.CAIssuer{SecretName: "clients-ca"}}},
	})
	const spiffeID = "spiffe://cluster.local/ns/billing/sa/worker"
	mustCreate(t, c, &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Name: "worker", Namespace: ns},
		Spec: cmapi.CertificateSpec{
			LiteralSubject: "CN=billing-worker,OU=billing,O=Acme",
			URIs:           []string{spiffeID},
			Usages:         []cmapi.KeyUsage{cmapi.UsageDigitalSignature, cmapi.UsageClientAuth},
			SecretName:     "worker-mtls",
			PrivateKey:     &cmapi.CertificatePrivateKey{Algorithm: cmapi.ECDSAKeyAlgorithm},
			IssuerRef:      cmmeta.IssuerReference{Name: "clients-ca", Kind: "Issuer"},
		},
	})

	secret := waitForCertificateSecret(ctx, t, c, ns, "worker")
	leaf := parsePEMCertificate(t, secret.Data[corev1.TLSCertKey])
	ca := parsePEMCertificate(t, secret.Data["ca.crt"])

	if got, want := leaf.Subject.String(), "CN=billing-worker,OU=billing,O=Acme"; got != want {
		t.Errorf("subject = %q, want %q", got, want)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != spiffeID {
		t.Errorf("URI SANs = %v, want [%s]", leaf.URIs, spiffeID)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("extended key usage = %v, want [client auth]", leaf.ExtKeyUsage)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify to ca.crt: %v", err)
	}
	if ca.Subject.CommonName != "clients-ca" || !ca.IsCA {
		t.Errorf("ca.crt is %q (IsCA=%v), want the clients-ca CA", ca.Subject.CommonName, ca.IsCA)
	}
}

// TestCertManagerReportsAMissingIssuer checks the failure path tests of
// later issues rely on: a Certificate whose issuer does not exist is not
// issued and says why, rather than the harness hanging silently.
func TestCertManagerReportsAMissingIssuer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const ns = "missing-issuer"
	if err := env.CreateNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, env.Client, &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Name: "orphan", Namespace: ns},
		Spec: cmapi.CertificateSpec{
			CommonName: "orphan",
			SecretName: "orphan-tls",
			IssuerRef:  cmmeta.IssuerReference{Name: "does-not-exist", Kind: "Issuer"},
		},
	})
	for {
		var req cmapi.CertificateRequestList
		if err := env.Client.List(ctx, &req, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		if len(req.Items) == 1 && hasCondition(req.Items[0].Status.Conditions, cmapi.CertificateRequestConditionReady, cmmeta.ConditionFalse, "Pending") {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no pending CertificateRequest for a Certificate with a missing issuer: %+v", req.Items)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var secret corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "orphan-tls"}, &secret); err == nil && len(secret.Data[corev1.TLSCertKey]) > 0 {
		t.Fatal("a certificate was issued by an issuer that does not exist")
	}
}

func hasCondition(conds []cmapi.CertificateRequestCondition, typ cmapi.CertificateRequestConditionType, status cmmeta.ConditionStatus, reason string) bool {
	for _, c := range conds {
		if c.Type == typ && c.Status == status && c.Reason == reason {
			return true
		}
	}
	return false
}

func mustCreate(t *testing.T, c client.Client, obj client.Object) {
	t.Helper()
	if err := c.Create(context.Background(), obj); err != nil {
		t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
	}
}

func waitForCertificateSecret(ctx context.Context, t *testing.T, c client.Client, ns, name string) *corev1.Secret {
	t.Helper()
	var secret corev1.Secret
	poll.UntilContext(ctx, t, "certificate "+name+" is Ready", func() (bool, string) {
		var cert cmapi.Certificate
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cert); err != nil {
			return false, err.Error()
		}
		for _, cond := range cert.Status.Conditions {
			if cond.Type == cmapi.CertificateConditionReady && cond.Status == cmmeta.ConditionTrue {
				err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: cert.Spec.SecretName}, &secret)
				return err == nil, fmt.Sprintf("secret %s: %v", cert.Spec.SecretName, err)
			}
		}
		return false, fmt.Sprintf("%+v", cert.Status.Conditions)
	})
	return &secret
}

func parsePEMCertificate(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no PEM certificate in %q", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

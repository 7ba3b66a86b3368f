package controllers_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/controllers"
)

// testCRL is a current, empty DER CRL of a CA made for the test.
func testCRL(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: time.Now().Add(-time.Minute), NextUpdate: time.Now().Add(time.Hour)}, ca, key)
	if err != nil {
		t.Fatal(err)
	}
	return crl
}

// TestClientCertificateRevocationMountsCRLs: a missing CRL ConfigMap is
// named in the condition and keeps Ready False; once it exists the
// condition turns True, the pods mount it (no subPath, so updates reach
// them) and get the revocation flags; a CRL the server would refuse says
// why.
func TestClientCertificateRevocationMountsCRLs(t *testing.T) {
	const ns, name, cmName = "auth-crl", "revoking", "client-ca-crl"
	ctx := context.Background()
	createNamespace(t, ns, false)

	empty := newServer(ns, "no-source", func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.ClientCertificateRevocation = &oauthv1alpha1.ClientCertificateRevocation{}
	})
	if err := env.Client.Create(ctx, empty); err == nil || !contains(err.Error(), "name a CRL source") {
		t.Fatalf("a revocation spec without source: %v, want refused", err)
	}

	mustCreate(t, newServer(ns, name, func(as *oauthv1alpha1.AuthorizationServer) {
		as.Spec.ClientCertificateRevocation = &oauthv1alpha1.ClientCertificateRevocation{
			CRLs:               []oauthv1alpha1.CRLSource{{ConfigMapRef: oauthv1alpha1.ConfigMapKeySelector{Name: cmName}}},
			DistributionPoints: true,
			FailureMode:        oauthv1alpha1.RevocationFailOpen,
		}
	}))
	as := waitForServerCondition(t, ns, name, oauthv1alpha1.ConditionClientCertificateRevocationReady, metav1.ConditionFalse, controllers.ReasonCRLConfigMapNotFound)
	if c := findCondition(as.Status.Conditions, oauthv1alpha1.ConditionClientCertificateRevocationReady); !contains(c.Message, cmName) || !contains(c.Message, "ca.crl") {
		t.Errorf("message %q does not name the ConfigMap and key", c.Message)
	}
	if ready := findCondition(as.Status.Conditions, oauthv1alpha1.ConditionReady); ready.Status != metav1.ConditionFalse {
		t.Errorf("Ready = %+v, want False", ready)
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName, Namespace: ns}, BinaryData: map[string][]byte{"ca.crl": testCRL(t)}}
	mustCreate(t, cm)
	waitForServerCondition(t, ns, name, oauthv1alpha1.ConditionClientCertificateRevocationReady, metav1.ConditionTrue, controllers.ReasonCRLsLoaded)

	var d appsv1.Deployment
	eventually(t, "the Deployment mounts the CRL and passes the flags", func() error {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &d); err != nil {
			return err
		}
		pod := d.Spec.Template.Spec
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.ConfigMap != nil && v.ConfigMap.Name == cmName })
		if i < 0 {
			return errorf("no volume of ConfigMap %s in %+v", cmName, pod.Volumes)
		}
		if items := pod.Volumes[i].ConfigMap.Items; len(items) != 1 || items[0].Key != "ca.crl" {
			return errorf("volume items %+v, want ca.crl", items)
		}
		c := pod.Containers[0]
		m := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == pod.Volumes[i].Name })
		if m < 0 || c.VolumeMounts[m].MountPath != "/etc/certbound/crls/0" || c.VolumeMounts[m].SubPath != "" || !c.VolumeMounts[m].ReadOnly {
			return errorf("mounts %+v, want %s read-only at /etc/certbound/crls/0 without subPath", c.VolumeMounts, pod.Volumes[i].Name)
		}
		for _, want := range []string{"--client-crl-file=/etc/certbound/crls/0/ca.crl", "--client-crl-distribution-points", "--client-revocation-failure-mode=open"} {
			if !slices.Contains(c.Args, want) {
				return errorf("args %v lack %s", c.Args, want)
			}
		}
		return nil
	})

	cm.BinaryData = nil
	cm.Data = map[string]string{"ca.crl": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}
	if err := env.Client.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	as = waitForServerCondition(t, ns, name, oauthv1alpha1.ConditionClientCertificateRevocationReady, metav1.ConditionFalse, controllers.ReasonCRLInvalid)
	if c := findCondition(as.Status.Conditions, oauthv1alpha1.ConditionClientCertificateRevocationReady); !contains(c.Message, "X509 CRL") {
		t.Errorf("message %q does not say what is wrong", c.Message)
	}
}

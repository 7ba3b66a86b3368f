package controllers

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
)

func emptyCRL(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: t0, NextUpdate: t0.Add(time.Hour)}, ca, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestClientCertificateRevocationReady(t *testing.T) {
	crl := emptyCRL(t)
	ref := oauthv1alpha1.ConfigMapKeySelector{Name: "client-ca-crl"}
	cm := func(binary map[string][]byte, text map[string]string) *corev1.ConfigMap {
		return &corev1.ConfigMap{BinaryData: binary, Data: text}
	}
	cases := map[string]struct {
		crls   []crlInput
		status metav1.ConditionStatus
		reason string
	}{
		"a DER CRL in binaryData under the default key is loaded": {
			crls: []crlInput{{Ref: ref, ConfigMap: cm(map[string][]byte{"ca.crl": crl}, nil)}}, status: metav1.ConditionTrue, reason: ReasonCRLsLoaded},
		"a PEM CRL in data is loaded": {
			crls:   []crlInput{{Ref: ref, ConfigMap: cm(nil, map[string]string{"ca.crl": string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl}))})}},
			status: metav1.ConditionTrue, reason: ReasonCRLsLoaded},
		"a missing ConfigMap is named": {
			crls: []crlInput{{Ref: ref}}, status: metav1.ConditionFalse, reason: ReasonCRLConfigMapNotFound},
		"a missing key is named": {
			crls: []crlInput{{Ref: oauthv1alpha1.ConfigMapKeySelector{Name: "client-ca-crl", Key: "other.crl"}, ConfigMap: cm(map[string][]byte{"ca.crl": crl}, nil)}}, status: metav1.ConditionFalse, reason: ReasonCRLKeyNotFound},
		"a certificate where the CRL should be is invalid": {
			crls: []crlInput{{Ref: ref, ConfigMap: cm(nil, map[string]string{"ca.crl": "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"})}}, status: metav1.ConditionFalse, reason: ReasonCRLInvalid},
		"no CRLs means distribution points only": {
			status: metav1.ConditionTrue, reason: ReasonDistributionPointsOnly},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := ClientCertificateRevocationReady(&oauthv1alpha1.ClientCertificateRevocation{DistributionPoints: true}, c.crls)
			if got.Status != c.status || got.Reason != c.reason {
				t.Fatalf("%s/%s (%s), want %s/%s", got.Status, got.Reason, got.Message, c.status, c.reason)
			}
		})
	}
}

func TestRevocationArgsAndVolumes(t *testing.T) {
	as := &oauthv1alpha1.AuthorizationServer{}
	if args := revocationArgs(as); args != nil {
		t.Fatalf("no revocation spec: args %v, want none", args)
	}
	as.Spec.ClientCertificateRevocation = &oauthv1alpha1.ClientCertificateRevocation{CRLs: []oauthv1alpha1.CRLSource{
		{ConfigMapRef: oauthv1alpha1.ConfigMapKeySelector{Name: "root-crl"}},
		{ConfigMapRef: oauthv1alpha1.ConfigMapKeySelector{Name: "intermediate-crl", Key: "inter.pem"}},
	}}
	want := []string{"--client-crl-file=/etc/certbound/crls/0/ca.crl", "--client-crl-file=/etc/certbound/crls/1/inter.pem", "--client-revocation-failure-mode=closed"}
	if args := revocationArgs(as); !slices.Equal(args, want) {
		t.Fatalf("args %v, want %v", args, want)
	}
	volumes, mounts := revocationVolumes(as)
	if len(volumes) != 2 || volumes[1].ConfigMap.Name != "intermediate-crl" || volumes[1].ConfigMap.Items[0].Key != "inter.pem" ||
		len(mounts) != 2 || mounts[1].MountPath != "/etc/certbound/crls/1" || mounts[1].SubPath != "" {
		t.Fatalf("volumes %+v mounts %+v", volumes, mounts)
	}
}

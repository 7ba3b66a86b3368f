package controllers

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestServingCertificateReady(t *testing.T) {
	leaf := selfSigned(t, &x509.Certificate{Subject: pkix.Name{CommonName: "as"}, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)})
	failing := func(msg string) *cmapi.Certificate {
		return &cmapi.Certificate{Status: cmapi.CertificateStatus{Conditions: []cmapi.CertificateCondition{
			{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionFalse, Message: msg},
		}}}
	}
	for name, tc := range map[string]struct {
		cert    *cmapi.Certificate
		tlsCrt  []byte
		now     time.Time
		status  metav1.ConditionStatus
		reason  string
		message string
	}{
		"a Certificate not yet created is Issuing": {
			cert: nil, now: t0,
			status: metav1.ConditionFalse, reason: ReasonIssuing, message: "the serving Certificate has not been created yet",
		},
		"an issued certificate within its validity is Issued until its notAfter": {
			cert: &cmapi.Certificate{}, tlsCrt: pemOf(leaf), now: t0,
			status: metav1.ConditionTrue, reason: ReasonIssued, message: "serving certificate valid until 2026-01-01T01:00:00Z",
		},
		"an issued certificate past its notAfter is Issuing again": {
			cert: &cmapi.Certificate{}, tlsCrt: pemOf(leaf), now: t0.Add(2 * time.Hour),
			status: metav1.ConditionFalse, reason: ReasonIssuing, message: "cert-manager has not issued the serving certificate yet",
		},
		"an empty Secret is Issuing with cert-manager's message": {
			cert: failing("issuer not found"), now: t0,
			status: metav1.ConditionFalse, reason: ReasonIssuing, message: "cert-manager has not issued the serving certificate yet: issuer not found",
		},
		"an unparsable tls.crt is Issuing, not Issued": {
			cert: &cmapi.Certificate{}, tlsCrt: []byte("not a certificate"), now: t0,
			status: metav1.ConditionFalse, reason: ReasonIssuing, message: "cert-manager has not issued the serving certificate yet",
		},
		"a Ready certificate's message is not repeated while the Secret is missing": {
			cert: &cmapi.Certificate{Status: cmapi.CertificateStatus{Conditions: []cmapi.CertificateCondition{
				{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue, Message: "Certificate is up to date"},
			}}}, now: t0,
			status: metav1.ConditionFalse, reason: ReasonIssuing, message: "cert-manager has not issued the serving certificate yet",
		},
	} {
		t.Run(name, func(t *testing.T) {
			got := ServingCertificateReady(tc.cert, tc.tlsCrt, tc.now)
			if got.Status != tc.status || got.Reason != tc.reason || got.Message != tc.message {
				t.Errorf("got %s/%s %q, want %s/%s %q", got.Status, got.Reason, got.Message, tc.status, tc.reason, tc.message)
			}
		})
	}
}

package diagnose

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/registration"
)

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const spiffeID = "spiffe://cluster.local/ns/team/sa/app"

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub any, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func newCA(t testing.TB, cn string) *testCA {
	key := newKey(t)
	tmpl := &x509.Certificate{
		Subject: pkix.Name{CommonName: cn}, NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	return &testCA{cert: sign(t, tmpl, tmpl, &key.PublicKey, key), key: key}
}

// issue makes a client certificate for spiffeID valid from an hour ago
// for 30 days, after edit has changed its template.
func (ca *testCA) issue(t testing.TB, edit func(*x509.Certificate)) *x509.Certificate {
	t.Helper()
	uri, err := url.Parse(spiffeID)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		URIs: []*url.URL{uri}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if edit != nil {
		edit(tmpl)
	}
	key := newKey(t)
	return sign(t, tmpl, ca.cert, &key.PublicKey, ca.key)
}

// healthy returns the objects of a client of the given method that has
// nothing wrong with it.
func healthy(t testing.TB, method v1alpha1.AuthenticationMethod, ca *testCA) *Objects {
	t.Helper()
	client := &v1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "app", Generation: 2},
		Spec: v1alpha1.OAuthClientSpec{
			AuthorizationServerRef: v1alpha1.AuthorizationServerReference{Name: "as", Namespace: "auth"},
			AuthenticationMethod:   method,
			Scopes:                 []string{"read"},
			Audiences:              []string{"https://api.example"},
		},
		Status: v1alpha1.OAuthClientStatus{ObservedGeneration: 2, Conditions: []metav1.Condition{
			{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready"},
			{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionFalse, Reason: "Done"},
			{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionFalse, Reason: "Done"},
		}},
	}
	md := v1alpha1.ClientMetadata{
		ClientID:                registration.ClientID("team", "app"),
		TokenEndpointAuthMethod: string(method),
		Scope:                   "read",
		Resources:               []string{"https://api.example"},
	}
	if method == v1alpha1.TLSClientAuth {
		client.Spec.Subject = &v1alpha1.ClientSubject{URI: spiffeID}
		subject, err := registration.SubjectFromAPI(client.Spec.Subject)
		if err != nil {
			t.Fatal(err)
		}
		subject.SetOn(&md)
	}
	o := &Objects{
		Client: client,
		Server: &v1alpha1.AuthorizationServer{
			ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "as"},
			Spec: v1alpha1.AuthorizationServerSpec{ClientPolicy: v1alpha1.ClientPolicy{
				Scopes:    []v1alpha1.ScopePolicy{{Name: "read"}},
				Audiences: []v1alpha1.AudiencePolicy{{URI: "https://api.example"}},
			}},
		},
		Registration: &v1alpha1.ClientRegistration{
			ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: registration.ObjectName("team", "app")},
			Spec:       v1alpha1.ClientRegistrationSpec{AuthorizationServerName: "as", Client: md},
		},
		Now: now,
	}
	if method == v1alpha1.PublicClient {
		client.Spec.ServiceAccountName = "app"
		o.ServiceAccount = &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "app"}}
		return o
	}
	o.Certificate = &cmapi.Certificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "app"},
		Spec:       cmapi.CertificateSpec{SecretName: "app-mtls"},
		Status: cmapi.CertificateStatus{
			Conditions:  []cmapi.CertificateCondition{{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue}},
			RenewalTime: &metav1.Time{Time: now.Add(20 * 24 * time.Hour)},
		},
	}
	o.SecretName = "app-mtls"
	o.Secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "app-mtls"}}
	o.Chain = []*x509.Certificate{ca.issue(t, nil)}
	o.TrustAnchors = []*x509.Certificate{ca.cert}
	return o
}

func TestHealthyClientsHaveOnlyOKFindings(t *testing.T) {
	ca := newCA(t, "client CA")
	for _, m := range []v1alpha1.AuthenticationMethod{v1alpha1.TLSClientAuth, v1alpha1.SelfSignedTLSClientAuth, v1alpha1.PublicClient} {
		t.Run(string(m), func(t *testing.T) {
			for _, f := range Diagnose(healthy(t, m, ca)) {
				if f.Severity != SeverityOK {
					t.Errorf("unexpected finding %+v", f)
				}
			}
		})
	}
}

func TestEachCheckReportsItsBrokenClient(t *testing.T) {
	ca := newCA(t, "client CA")
	otherCA := newCA(t, "other CA")
	tests := []struct {
		name    string
		method  v1alpha1.AuthenticationMethod
		breakIt func(*Objects)
		check   string
		want    Severity
		says    string
	}{
		{"condition not true", v1alpha1.TLSClientAuth, func(o *Objects) {
			o.Client.Status.Conditions[0] = metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "CertificateNotReady", Message: "issuer ca not found"}
		}, "conditions", SeverityError, "condition Ready is False (CertificateNotReady): issuer ca not found"},
		{"stalled", v1alpha1.TLSClientAuth, func(o *Objects) {
			o.Client.Status.Conditions[2] = metav1.Condition{Type: v1alpha1.ConditionStalled, Status: metav1.ConditionTrue, Reason: "SubjectConflict", Message: "held by other/app"}
		}, "conditions", SeverityError, "(SubjectConflict): held by other/app"},
		{"reconciling", v1alpha1.TLSClientAuth, func(o *Objects) {
			o.Client.Status.Conditions[1] = metav1.Condition{Type: v1alpha1.ConditionReconciling, Status: metav1.ConditionTrue, Reason: "Issuing", Message: "waiting for cert-manager"}
		}, "conditions", SeverityWarning, "still working"},
		{"status of an older generation", v1alpha1.TLSClientAuth, func(o *Objects) { o.Client.Generation = 3 }, "conditions", SeverityWarning, "not yet processed generation 3"},
		{"server missing", v1alpha1.TLSClientAuth, func(o *Objects) { o.Server = nil }, "policy", SeverityError, "AuthorizationServer auth/as does not exist"},
		{"scope not granted", v1alpha1.TLSClientAuth, func(o *Objects) { o.Server.Spec.ClientPolicy.Scopes = nil }, "policy", SeverityError, `scope "read" is not among the scopes`},
		{"audience not granted", v1alpha1.PublicClient, func(o *Objects) { o.Server.Spec.ClientPolicy.Audiences = nil }, "policy", SeverityError, `audience "https://api.example"`},
		{"subject outside policy", v1alpha1.TLSClientAuth, func(o *Objects) { o.Client.Spec.Subject.URI = "spiffe://cluster.local/ns/other/sa/app" }, "policy", SeverityError, "not admitted by the subject policy"},
		{"registration missing", v1alpha1.TLSClientAuth, func(o *Objects) { o.Registration = nil }, "registration", SeverityError, "no ClientRegistration auth/team.app"},
		{"registered method differs", v1alpha1.SelfSignedTLSClientAuth, func(o *Objects) { o.Registration.Spec.Client.TokenEndpointAuthMethod = "tls_client_auth" }, "registration", SeverityError, `token_endpoint_auth_method is "tls_client_auth"`},
		{"registered subject differs", v1alpha1.TLSClientAuth, func(o *Objects) {
			o.Client.Spec.Subject.URI = "spiffe://cluster.local/ns/team/sa/new"
		}, "registration", SeverityError, "registration's subject is tls_client_auth_san_uri"},
		{"registered scopes differ", v1alpha1.TLSClientAuth, func(o *Objects) { o.Registration.Spec.Client.Scope = "read write" }, "registration", SeverityError, `scope is "read write"`},
		{"registered audiences differ", v1alpha1.PublicClient, func(o *Objects) { o.Registration.Spec.Client.Resources = nil }, "registration", SeverityError, "resources (audiences)"},
		{"service account missing", v1alpha1.PublicClient, func(o *Objects) { o.ServiceAccount = nil }, "service-account", SeverityError, "ServiceAccount team/app does not exist"},
		{"certificate missing", v1alpha1.TLSClientAuth, func(o *Objects) { o.Certificate = nil }, "certificate", SeverityError, "Certificate team/app does not exist"},
		{"certificate not ready", v1alpha1.SelfSignedTLSClientAuth, func(o *Objects) {
			o.Certificate.Status.Conditions[0] = cmapi.CertificateCondition{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionFalse, Reason: "Failed", Message: "issuer not ready"}
		}, "certificate", SeverityError, "not Ready (Failed): issuer not ready"},
		{"secret missing", v1alpha1.TLSClientAuth, func(o *Objects) { o.Secret, o.Chain = nil, nil }, "certificate", SeverityError, "Secret team/app-mtls does not exist"},
		{"secret without certificate", v1alpha1.TLSClientAuth, func(o *Objects) { o.Chain = nil }, "certificate", SeverityError, "no parseable certificate"},
		{"certificate lacks subject", v1alpha1.TLSClientAuth, func(o *Objects) {
			o.Chain[0] = ca.issue(t, func(c *x509.Certificate) { c.URIs = nil; c.DNSNames = []string{"app.team.svc"} })
		}, "subject", SeverityError, `does not carry the registered subject tls_client_auth_san_uri "` + spiffeID + `"`},
		{"chain to another CA", v1alpha1.TLSClientAuth, func(o *Objects) { o.Chain[0] = otherCA.issue(t, nil) }, "chain", SeverityError, `(issuer "CN=other CA") does not chain`},
		{"no trust anchors", v1alpha1.TLSClientAuth, func(o *Objects) { o.TrustAnchors = nil }, "chain", SeverityError, "no usable client trust anchors"},
		{"trust anchor secret empty", v1alpha1.TLSClientAuth, func(o *Objects) {
			o.TrustAnchorProblems = []string{`trust anchor Secret auth/ca has no certificate under key "ca.crt"`}
		}, "chain", SeverityWarning, "auth/ca has no certificate"},
		{"no clientAuth usage", v1alpha1.TLSClientAuth, func(o *Objects) {
			o.Chain[0] = ca.issue(t, func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })
		}, "eku", SeverityError, "lacks the clientAuth extended key usage"},
		{"expired", v1alpha1.SelfSignedTLSClientAuth, func(o *Objects) {
			o.Chain[0] = ca.issue(t, func(c *x509.Certificate) { c.NotBefore, c.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour) })
		}, "expiry", SeverityError, "expired at 2026-06-01T11:00:00Z"},
		{"expiring within 7 days", v1alpha1.TLSClientAuth, func(o *Objects) {
			o.Chain[0] = ca.issue(t, func(c *x509.Certificate) { c.NotAfter = now.Add(3 * 24 * time.Hour) })
		}, "expiry", SeverityWarning, "in less than 7 days"},
		{"renewal overdue", v1alpha1.TLSClientAuth, func(o *Objects) { o.Certificate.Status.RenewalTime = &metav1.Time{Time: now.Add(-time.Hour)} }, "renewal", SeverityWarning, "should have renewed the certificate at 2026-06-01T11:00:00Z"},
		{"issued before min_certificate_not_before", v1alpha1.TLSClientAuth, func(o *Objects) {
			o.Registration.Spec.Client.MinCertificateNotBefore = &metav1.Time{Time: now.Add(-time.Minute)}
		}, "not-before", SeverityError, "before the registration's min_certificate_not_before 2026-06-01T11:59:00Z"},
		{"recent authentication failures", v1alpha1.TLSClientAuth, func(o *Objects) {
			o.Registration.Status.AuthenticationFailures = []v1alpha1.AuthenticationFailure{
				{Reason: "subject_mismatch", Count: 4, FirstSeen: metav1.NewTime(now.Add(-2 * time.Hour)), LastSeen: metav1.NewTime(now.Add(-time.Minute))},
			}
		}, "auth-failures", SeverityError, "refused 4 authentication(s) of this client between 2026-06-01T10:00:00Z and 2026-06-01T11:59:00Z (subject_mismatch): the certificate does not carry the registered subject"},
		{"failure of an unknown reason", v1alpha1.SelfSignedTLSClientAuth, func(o *Objects) {
			o.Registration.Status.AuthenticationFailures = []v1alpha1.AuthenticationFailure{
				{Reason: "something_new", Count: 1, FirstSeen: metav1.NewTime(now.Add(-time.Minute)), LastSeen: metav1.NewTime(now.Add(-time.Minute))},
			}
		}, "auth-failures", SeverityError, "(something_new): the server refused the client's authentication"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := healthy(t, tc.method, ca)
			tc.breakIt(o)
			findings := Diagnose(o)
			found := false
			for _, f := range findings {
				if f.Check == tc.check && f.Severity == tc.want && strings.Contains(f.Message, tc.says) {
					found = true
				}
			}
			if !found {
				t.Fatalf("no %s finding of check %s saying %q in\n%v", tc.want, tc.check, tc.says, findings)
			}
			if got := HasErrors(findings); got != (tc.want == SeverityError) {
				t.Errorf("HasErrors = %v, want %v", got, tc.want == SeverityError)
			}
			for i := 1; i < len(findings); i++ {
				if rank(findings[i]) < rank(findings[i-1]) {
					t.Errorf("findings not ordered errors first: %v", findings)
				}
			}
		})
	}
}

func rank(f Finding) int {
	return map[Severity]int{SeverityError: 0, SeverityWarning: 1, SeverityOK: 2}[f.Severity]
}

// Failures older than AuthFailureWindow are history, not a finding.
func TestOldAuthFailuresAreNotReported(t *testing.T) {
	o := healthy(t, v1alpha1.TLSClientAuth, newCA(t, "client CA"))
	o.Registration.Status.AuthenticationFailures = []v1alpha1.AuthenticationFailure{
		{Reason: "untrusted_chain", Count: 9, FirstSeen: metav1.NewTime(now.Add(-3 * time.Hour)), LastSeen: metav1.NewTime(now.Add(-AuthFailureWindow - time.Second))},
	}
	for _, f := range Diagnose(o) {
		if f.Check == "auth-failures" && f.Severity != SeverityOK {
			t.Errorf("an old failure was reported: %+v", f)
		}
	}
}

// An expired certificate is reported once, by the expiry check, not again
// as a chain failure.
func TestExpiredCertificateIsNotAlsoAChainFailure(t *testing.T) {
	ca := newCA(t, "client CA")
	o := healthy(t, v1alpha1.TLSClientAuth, ca)
	o.Chain[0] = ca.issue(t, func(c *x509.Certificate) { c.NotBefore, c.NotAfter = now.Add(-48*time.Hour), now.Add(-time.Hour) })
	var errs []Finding
	for _, f := range Diagnose(o) {
		if f.Severity == SeverityError {
			errs = append(errs, f)
		}
	}
	if len(errs) != 1 || errs[0].Check != "expiry" {
		t.Errorf("want only the expiry error, got %v", errs)
	}
}

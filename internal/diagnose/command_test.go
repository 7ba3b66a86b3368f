package diagnose

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/registration"
	"github.com/certbound/certbound/test/testenv"
)

func TestCommandRejectsBadArguments(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"oauthclient"},
		{"authorizationserver", "ns/name"},
		{"oauthclient", "name-without-namespace"},
		{"oauthclient", "ns/"},
		{"oauthclient", "ns/name", "extra"},
		{"oauthclient", "ns/name", "-o", "yaml"},
	} {
		if err := Command(context.Background(), args, &bytes.Buffer{}); err == nil || errors.Is(err, ErrProblemsFound) {
			t.Errorf("Command(%q) = %v, want a usage error", args, err)
		}
	}
}

func pemOf(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// TestCommandAgainstAPIServer diagnoses a tls_client_auth client whose
// certificate was issued by a CA its authorization server does not trust,
// reading every object from a real API server.
func TestCommandAgainstAPIServer(t *testing.T) {
	env, err := testenv.Start(testenv.Options{WithoutCertManager: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	ctx := context.Background()
	for _, ns := range []string{"team", "auth"} {
		if err := env.CreateNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	trusted, untrusted := newCA(t, "trusted CA"), newCA(t, "untrusted CA")
	realNow := time.Now()
	leafCert := untrusted.issue(t, func(c *x509.Certificate) {
		c.NotBefore, c.NotAfter = realNow.Add(-time.Hour), realNow.Add(30*24*time.Hour)
	})
	subject := &v1alpha1.ClientSubject{URI: spiffeID}
	oc := &v1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "app"},
		Spec: v1alpha1.OAuthClientSpec{
			AuthorizationServerRef: v1alpha1.AuthorizationServerReference{Name: "as", Namespace: "auth"},
			AuthenticationMethod:   v1alpha1.TLSClientAuth,
			Subject:                subject,
		},
	}
	md := v1alpha1.ClientMetadata{ClientID: registration.ClientID("team", "app"), TokenEndpointAuthMethod: string(v1alpha1.TLSClientAuth)}
	s, err := registration.SubjectFromAPI(subject)
	if err != nil {
		t.Fatal(err)
	}
	s.SetOn(&md)
	objects := []client.Object{
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "client-ca"}, Data: map[string][]byte{"ca.crt": pemOf(trusted.cert)}},
		&v1alpha1.AuthorizationServer{
			ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "as"},
			Spec: v1alpha1.AuthorizationServerSpec{
				ServingCertificate: v1alpha1.ServingCertificate{IssuerRef: v1alpha1.IssuerReference{Name: "ca"}},
				ClientTrustAnchors: []v1alpha1.TrustAnchor{{SecretRef: v1alpha1.SecretKeySelector{Name: "client-ca"}}},
			},
		},
		oc,
		&v1alpha1.ClientRegistration{
			ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: registration.ObjectName("team", "app")},
			Spec: v1alpha1.ClientRegistrationSpec{
				AuthorizationServerName: "as",
				Holder:                  v1alpha1.ClientHolder{Namespace: "team", Name: "app", UID: "00000000-0000-0000-0000-000000000001"},
				Client:                  md,
			},
		},
		&cmapi.Certificate{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "app"},
			Spec:       cmapi.CertificateSpec{SecretName: "app-mtls", IssuerRef: cmmeta.IssuerReference{Name: "ca"}, URIs: []string{spiffeID}},
		},
		&corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "app-mtls"},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: pemOf(leafCert, untrusted.cert), corev1.TLSPrivateKeyKey: []byte("unused by the diagnosis")},
		},
	}
	for _, obj := range objects {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatalf("create %T %s: %v", obj, obj.GetName(), err)
		}
	}
	// What cert-manager would report once it issued the certificate.
	issued := objects[4].(*cmapi.Certificate)
	issued.Status.Conditions = []cmapi.CertificateCondition{{Type: cmapi.CertificateConditionReady, Status: cmmeta.ConditionTrue, Reason: "Ready"}}
	if err := env.Client.Status().Update(ctx, issued); err != nil {
		t.Fatal(err)
	}

	var text bytes.Buffer
	err = Command(ctx, []string{"oauthclient", "team/app", "--kubeconfig", env.KubeconfigPath}, &text)
	if !errors.Is(err, ErrProblemsFound) {
		t.Fatalf("Command = %v, want ErrProblemsFound", err)
	}
	first, _, _ := strings.Cut(text.String(), "\n")
	if !strings.HasPrefix(first, "ERROR") {
		t.Errorf("first line is not an error:\n%s", text.String())
	}
	if !strings.Contains(text.String(), `the certificate (issuer "CN=untrusted CA") does not chain to the authorization server's trust anchors`) {
		t.Errorf("output does not name the untrusted issuer:\n%s", text.String())
	}

	var out bytes.Buffer
	if err := Command(ctx, []string{"-o", "json", "oauthclient", "team/app", "--kubeconfig", env.KubeconfigPath}, &out); !errors.Is(err, ErrProblemsFound) {
		t.Fatalf("Command -o json = %v, want ErrProblemsFound", err)
	}
	var findings []Finding
	if err := json.Unmarshal(out.Bytes(), &findings); err != nil {
		t.Fatalf("-o json output does not parse: %v\n%s", err, out.String())
	}
	var chain []Finding
	for _, f := range findings {
		if f.Severity == SeverityError {
			if f.Check != "chain" {
				t.Errorf("unexpected error finding %+v", f)
			}
			chain = append(chain, f)
		}
	}
	if len(chain) != 1 {
		t.Errorf("want one chain error, got %v", findings)
	}

	// Trusting the issuer fixes the client.
	var anchor corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "auth", Name: "client-ca"}, &anchor); err != nil {
		t.Fatal(err)
	}
	anchor.Data["ca.crt"] = pemOf(trusted.cert, untrusted.cert)
	if err := env.Client.Update(ctx, &anchor); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Command(ctx, []string{"oauthclient", "team/app", "--kubeconfig", env.KubeconfigPath}, &out); err != nil {
		t.Fatalf("Command after trusting the issuer = %v\n%s", err, out.String())
	}
}

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/internal/poll"
	"github.com/certbound/certbound/internal/registration"
	"github.com/certbound/certbound/test/devcluster"
)

// The zero-Secret workload of issue #14: a public client (authentication
// method none) bound to a ServiceAccount. Its pod holds no key from
// anywhere: the token-agent sidecar exchanges the pod's projected token for
// a token bound to a certificate it makes itself.

const zeroSecretClient = "zero-secret-worker"

// TestZeroSecretWorkload: the operator issues no certificate and a config
// Secret without a key; a Deployment with only its projected token and
// that Secret gets a bound token from the token-agent and calls the
// protected API with it; the token is worthless with another certificate.
// Refresh tokens rotate and are bound to the certificate of the exchange:
// a thief replaying one over a connection with another certificate gets
// invalid_grant, and the owner keeps refreshing.
func TestZeroSecretWorkload(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := cluster.Env.Client
	as := sampleServer(ctx, t)

	create(ctx, t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: zeroSecretClient}})
	create(ctx, t, &oauthv1alpha1.OAuthClient{
		ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: zeroSecretClient},
		Spec: oauthv1alpha1.OAuthClientSpec{
			AuthorizationServerRef: oauthv1alpha1.AuthorizationServerReference{Name: "payments"},
			AuthenticationMethod:   oauthv1alpha1.PublicClient,
			ServiceAccountName:     zeroSecretClient,
			GrantTypes:             []oauthv1alpha1.GrantType{oauthv1alpha1.GrantTypeTokenExchange, oauthv1alpha1.GrantTypeRefreshToken},
			Scopes:                 []string{"payments.read"},
			Audiences:              []string{devcluster.LedgerAudience},
		},
	})
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: zeroSecretClient}}
	if err := devcluster.WaitReady(ctx, c, oc, func() []metav1.Condition { return oc.Status.Conditions }, transcript(t)); err != nil {
		t.Fatal(err)
	}
	config := assertNoKeyIssued(ctx, t, oc)
	servingCAs := x509.NewCertPool()
	if !servingCAs.AppendCertsFromPEM(config.Data[registration.ConfigKeyCA]) {
		t.Fatalf("config Secret %s has no CA bundle", config.Name)
	}

	create(ctx, t, tokenAgentDeployment(string(config.Data[registration.ConfigKeyIssuer]), config.Name))
	agentCert, agentToken := agentOutput(ctx, t)
	assertBoundTo(t, agentToken, agentCert)
	claims := jwtClaims(t, agentToken)
	if claims["sub"] != oc.Status.ServiceAccount || claims["client_id"] != oc.Status.ClientID {
		t.Fatalf("the agent's token has sub %v and client_id %v, want %s and %s", claims["sub"], claims["client_id"], oc.Status.ServiceAccount, oc.Status.ClientID)
	}

	api, err := devcluster.StartProtectedAPI(ctx, cluster, as.Status.Issuer, servingCAs)
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	status, body, _, err := api.Call(ctx, servingCAs, &agentCert, agentToken)
	if err != nil || status != http.StatusOK || !strings.Contains(body, oc.Status.ClientID) {
		t.Fatalf("the agent's token and certificate at the protected API: %d %q %v, want 200 naming %s", status, body, err, oc.Status.ClientID)
	}
	thief := selfSignedCertificate(t, "thief")
	status, _, header, err := api.Call(ctx, servingCAs, &thief, agentToken)
	if err != nil || status != http.StatusUnauthorized || !strings.Contains(header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("the agent's token with another certificate: %d (%s) %v, want 401 invalid_token", status, header.Get("WWW-Authenticate"), err)
	}

	// The same grants by hand, to see the refresh tokens the agent keeps
	// to itself.
	endpoint := devcluster.PublicClient{TokenEndpoint: string(config.Data[registration.ConfigKeyTokenEndpoint]),
		ClientID: oc.Status.ClientID, ServerCAs: servingCAs, Dial: cluster.Dialer()}
	subjectToken, err := devcluster.ServiceAccountToken(ctx, cluster.Env.Config, "auth", zeroSecretClient, as.Status.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	owner := selfSignedCertificate(t, "owner")
	exchanged, err := endpoint.Exchange(ctx, owner, subjectToken)
	if err != nil {
		t.Fatalf("token exchange: %v", err)
	}
	assertBoundTo(t, exchanged.AccessToken, owner)
	refreshed, err := endpoint.Refresh(ctx, owner, exchanged.RefreshToken)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	assertBoundTo(t, refreshed.AccessToken, owner)
	if refreshed.RefreshToken == exchanged.RefreshToken {
		t.Fatal("the refresh token did not rotate")
	}
	status, body, _, err = api.Call(ctx, servingCAs, &owner, refreshed.AccessToken)
	if err != nil || status != http.StatusOK {
		t.Fatalf("a refreshed token at the protected API: %d %q %v, want 200", status, body, err)
	}
	_, err = endpoint.Refresh(ctx, thief, refreshed.RefreshToken)
	var refusal *devcluster.GrantError
	if !errors.As(err, &refusal) || refusal.Status != http.StatusBadRequest || refusal.Code != "invalid_grant" {
		t.Fatalf("a thief's refresh with another certificate: %v, want 400 invalid_grant", err)
	}
	// The thief's attempt neither used nor revoked the owner's token.
	if _, err := endpoint.Refresh(ctx, owner, refreshed.RefreshToken); err != nil {
		t.Fatalf("the owner's refresh after the thief's attempt: %v", err)
	}
	// Rotation spent the first refresh token.
	_, err = endpoint.Refresh(ctx, owner, exchanged.RefreshToken)
	if !errors.As(err, &refusal) || refusal.Code != "invalid_grant" {
		t.Fatalf("a spent refresh token: %v, want invalid_grant", err)
	}
}

func assertBoundTo(t *testing.T, token string, cert tls.Certificate) {
	t.Helper()
	if got, want := devcluster.Confirmation(token), certbinding.Thumbprint(cert.Certificate[0]); got != want {
		t.Fatalf("access token bound to %q, want %s", got, want)
	}
}

// sampleServer applies config/samples (a no-op when the demo story ran
// first) and waits for the sample server auth/payments.
func sampleServer(ctx context.Context, t *testing.T) *oauthv1alpha1.AuthorizationServer {
	t.Helper()
	if _, err := devcluster.ApplyDir(ctx, cluster.Env.Client, "config/samples"); err != nil {
		t.Fatal(err)
	}
	as := &oauthv1alpha1.AuthorizationServer{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "payments"}}
	if err := devcluster.WaitReady(ctx, cluster.Env.Client, as, func() []metav1.Condition { return as.Status.Conditions }, transcript(t)); err != nil {
		t.Fatal(err)
	}
	return as
}

// assertNoKeyIssued: a public client has no Certificate and its config
// Secret holds exactly client_id, issuer, token_endpoint and ca.crt.
func assertNoKeyIssued(ctx context.Context, t *testing.T, oc *oauthv1alpha1.OAuthClient) *corev1.Secret {
	t.Helper()
	if oc.Status.Certificate != nil {
		t.Errorf("public client %s/%s names a certificate: %+v", oc.Namespace, oc.Name, oc.Status.Certificate)
	}
	var certs cmapi.CertificateList
	if err := cluster.Env.Client.List(ctx, &certs, client.InNamespace(oc.Namespace)); err != nil {
		t.Fatal(err)
	}
	for _, cert := range certs.Items {
		if slices.ContainsFunc(cert.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == oc.UID }) {
			t.Errorf("public client %s/%s owns Certificate %s", oc.Namespace, oc.Name, cert.Name)
		}
	}
	var secrets corev1.SecretList
	if err := cluster.Env.Client.List(ctx, &secrets, client.InNamespace(oc.Namespace)); err != nil {
		t.Fatal(err)
	}
	for _, secret := range secrets.Items {
		owned := slices.ContainsFunc(secret.OwnerReferences, func(o metav1.OwnerReference) bool { return o.UID == oc.UID })
		if owned && secret.Name != oc.Status.ConfigSecretName {
			t.Errorf("public client %s/%s owns Secret %s besides its config Secret", oc.Namespace, oc.Name, secret.Name)
		}
	}
	config, err := devcluster.PublicClientConfig(ctx, cluster.Env.Client, oc)
	if err != nil {
		t.Fatal(err)
	}
	return config
}

// tokenAgentDeployment runs `certbound token-agent` as a native sidecar
// with the config Secret, a projected token for the issuer and an
// emptyDir for its output, nothing else.
func tokenAgentDeployment(issuer, configSecret string) *appsv1.Deployment {
	labels := map[string]string{"app": zeroSecretClient}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: zeroSecretClient},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName:           zeroSecretClient,
					AutomountServiceAccountToken: ptr.To(false),
					InitContainers: []corev1.Container{{
						Name:          "token-agent",
						Image:         devcluster.Image,
						RestartPolicy: ptr.To(corev1.ContainerRestartPolicyAlways),
						Args: []string{"token-agent", "--config-dir=/etc/certbound/client", "--token-file=/var/run/secrets/tokens/certbound-token",
							"--output-dir=/run/certbound", "--health-address=:8081"},
						Ports:          []corev1.ContainerPort{{Name: "health", ContainerPort: 8081}},
						ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("health")}}},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "oauth-config", MountPath: "/etc/certbound/client", ReadOnly: true},
							{Name: "certbound-token", MountPath: "/var/run/secrets/tokens", ReadOnly: true},
							{Name: "bound-token", MountPath: "/run/certbound"},
						},
					}},
					Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1.0",
						VolumeMounts: []corev1.VolumeMount{{Name: "bound-token", MountPath: "/run/certbound", ReadOnly: true}}}},
					Volumes: []corev1.Volume{
						{Name: "oauth-config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: configSecret}}},
						{Name: "certbound-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
							ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: issuer, ExpirationSeconds: ptr.To(int64(3600)), Path: "certbound-token"},
						}}}}},
						{Name: "bound-token", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
					},
				},
			},
		},
	}
}

// agentOutput waits for the agent's Deployment to be available and reads
// the certificate, key and token it wrote.
func agentOutput(ctx context.Context, t *testing.T) (tls.Certificate, string) {
	t.Helper()
	var cert tls.Certificate
	var token string
	// Shorter than ctx, so that the last state seen is not ctx's end.
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	poll.UntilContext(waitCtx, t, "the token-agent is ready and has written its files", func() (bool, string) {
		var err error
		cert, token, err = devcluster.AgentOutput(ctx, cluster, "auth", zeroSecretClient, "bound-token")
		if err != nil {
			return false, fmt.Sprintf("%v; agent log: %s", err, cluster.Runner.LastLogLines("auth", zeroSecretClient, 5))
		}
		return token != "", "empty token file"
	})
	return cert, token
}

func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatal("the access token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func selfSignedCertificate(t *testing.T, name string) tls.Certificate {
	t.Helper()
	cert, err := devcluster.SelfSignedCertificate(name)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

package devcluster

// The demo story: apply the samples, wait for the operator to make them
// Ready, then act as each sample workload using only the Secrets the
// operator issued — get a certificate-bound token at the mTLS token
// endpoint, call a protected API through `resource-proxy`, and show that a
// thief replaying the token with another certificate is turned away. Last,
// the zero-Secret workload: a pod with only its projected token and a
// config Secret without a key gets a bound token from the token-agent
// sidecar, calls the API, and its refresh tokens are of no use to a thief.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/asruntime/resourceproxy"
	"github.com/certbound/certbound/asruntime/resourceserver"
	"github.com/certbound/certbound/internal/registration"
	"github.com/certbound/certbound/test/testenv"
)

// Transcript prints the story's steps.
type Transcript struct {
	W     io.Writer
	start time.Time
}

// Step prints a passed step.
func (t *Transcript) Step(format string, args ...any) {
	if t.start.IsZero() {
		t.start = time.Now()
	}
	fmt.Fprintf(t.W, "[%5.1fs] ✔ %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

// Progress prints a line while waiting.
func (t *Transcript) Progress(format string, args ...any) {
	if t.start.IsZero() {
		t.start = time.Now()
	}
	fmt.Fprintf(t.W, "[%5.1fs]   … %s\n", time.Since(t.start).Seconds(), fmt.Sprintf(format, args...))
}

// ApplyDir renders a kustomize directory of the repository and applies it
// with server-side apply, returning the objects.
func ApplyDir(ctx context.Context, c client.Client, dir string) ([]*unstructured.Unstructured, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(root, dir))
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, res := range resMap.Resources() {
		data, err := res.MarshalJSON()
		if err != nil {
			return nil, err
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			return nil, err
		}
		if err := c.Patch(ctx, obj, client.Apply, client.FieldOwner("certbound-demo"), client.ForceOwnership); err != nil {
			return nil, fmt.Errorf("apply %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// WaitReady waits until obj's Ready condition is True, printing progress
// every few seconds. On timeout the error carries the conditions.
func WaitReady(ctx context.Context, c client.Client, obj client.Object, conditions func() []metav1.Condition, t *Transcript) error {
	kind := fmt.Sprintf("%T", obj)[len("*v1alpha1."):]
	key := client.ObjectKeyFromObject(obj)
	lastProgress := time.Now()
	for {
		err := c.Get(ctx, key, obj)
		if err == nil && apimeta.IsStatusConditionTrue(conditions(), oauthv1alpha1.ConditionReady) && obj.GetGeneration() == observedGeneration(obj) {
			return nil
		}
		if time.Since(lastProgress) > 5*time.Second {
			t.Progress("waiting for %s %s to be Ready: %s", kind, key, summarize(conditions()))
			lastProgress = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s %s did not become Ready: %s", kind, key, summarize(conditions()))
		case <-time.After(300 * time.Millisecond):
		}
	}
}

func observedGeneration(obj client.Object) int64 {
	switch o := obj.(type) {
	case *oauthv1alpha1.OAuthClient:
		return o.Status.ObservedGeneration
	case *oauthv1alpha1.AuthorizationServer:
		return o.Status.ObservedGeneration
	}
	return obj.GetGeneration()
}

func summarize(conds []metav1.Condition) string {
	if len(conds) == 0 {
		return "no conditions yet"
	}
	var parts []string
	for _, c := range conds {
		parts = append(parts, fmt.Sprintf("%s=%s (%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return strings.Join(parts, "; ")
}

// Workload is what a pod of an OAuthClient mounts: its certificate Secret
// and its client-config Secret.
type Workload struct {
	Name          string
	ClientID      string
	Issuer        string
	TokenEndpoint string
	Certificate   tls.Certificate
	ServerCAs     *x509.CertPool
}

// LoadWorkload reads the Secrets the operator issued for an OAuthClient.
func LoadWorkload(ctx context.Context, c client.Client, oc *oauthv1alpha1.OAuthClient) (*Workload, error) {
	if oc.Status.Certificate == nil || oc.Status.ConfigSecretName == "" {
		return nil, fmt.Errorf("OAuthClient %s/%s names no certificate or config Secret yet", oc.Namespace, oc.Name)
	}
	var certSecret, config corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: oc.Namespace, Name: oc.Status.Certificate.SecretName}, &certSecret); err != nil {
		return nil, err
	}
	if err := c.Get(ctx, client.ObjectKey{Namespace: oc.Namespace, Name: oc.Status.ConfigSecretName}, &config); err != nil {
		return nil, err
	}
	cert, err := tls.X509KeyPair(certSecret.Data[corev1.TLSCertKey], certSecret.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("certificate Secret %s: %w", certSecret.Name, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(config.Data[registration.ConfigKeyCA]) {
		return nil, fmt.Errorf("config Secret %s has no CA bundle", config.Name)
	}
	return &Workload{
		Name:          oc.Name,
		ClientID:      string(config.Data[registration.ConfigKeyClientID]),
		Issuer:        string(config.Data[registration.ConfigKeyIssuer]),
		TokenEndpoint: string(config.Data[registration.ConfigKeyTokenEndpoint]),
		Certificate:   cert,
		ServerCAs:     pool,
	}, nil
}

// HTTPClient presents cert (nil: no certificate) and trusts roots.
func HTTPClient(dial func(ctx context.Context, network, addr string) (net.Conn, error), roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, TLSClientConfig: cfg}}
}

// Token gets an access token with the client_credentials grant at the
// mTLS token endpoint and returns it with its claims.
func (w *Workload) Token(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error)) (string, map[string]any, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {w.ClientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	// A client of its own per call: close its connection when done, or
	// every call leaves one open at the server until its idle timeout.
	httpClient := HTTPClient(dial, w.ServerCAs, &w.Certificate)
	defer httpClient.CloseIdleConnections()
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("token endpoint answered %d: %s", resp.StatusCode, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return "", nil, err
	}
	parts := strings.Split(tok.AccessToken, ".")
	if len(parts) != 3 {
		return "", nil, errors.New("the access token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", nil, err
	}
	return tok.AccessToken, claims, nil
}

// LedgerAudience is the resource the sample clients register
// (spec.audiences, allowed by the sample server's clientPolicy): the
// protected API accepts tokens issued for it and no others.
const LedgerAudience = "https://ledger.auth.svc"

// ProtectedAPI is a tiny upstream behind `resource-proxy`.
type ProtectedAPI struct {
	URL   string
	close func()
}

// Close stops the proxy and the upstream.
func (p *ProtectedAPI) Close() { p.close() }

// StartProtectedAPI runs an upstream that greets the client id it is given
// behind a resource proxy that demands tokens of issuer bound to the
// caller's certificate. The proxy's serving certificate comes from
// cert-manager (the samples' serving CA).
func StartProtectedAPI(ctx context.Context, c *Cluster, issuer string, issuerCAs *x509.CertPool) (*ProtectedAPI, error) {
	cert := &cmapi.Certificate{
		TypeMeta:   metav1.TypeMeta{APIVersion: cmapi.SchemeGroupVersion.String(), Kind: cmapi.CertificateKind},
		ObjectMeta: metav1.ObjectMeta{Name: "payments-api", Namespace: "auth"},
		Spec: cmapi.CertificateSpec{
			SecretName:  "payments-api-tls",
			DNSNames:    []string{"localhost"},
			IPAddresses: []string{"127.0.0.1"},
			IssuerRef:   cmmeta.IssuerReference{Name: "certbound-serving-ca", Kind: "ClusterIssuer"},
		},
	}
	if err := c.Env.Client.Patch(ctx, cert, client.Apply, client.FieldOwner("certbound-demo"), client.ForceOwnership); err != nil {
		return nil, err
	}
	var secret corev1.Secret
	for {
		err := c.Env.Client.Get(ctx, client.ObjectKey{Namespace: "auth", Name: "payments-api-tls"}, &secret)
		if err == nil && len(secret.Data[corev1.TLSCertKey]) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, errors.New("cert-manager did not issue the protected API's serving certificate")
		case <-time.After(200 * time.Millisecond):
		}
	}
	serving, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, err
	}
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s (scope %q)", r.Header.Get(resourceproxy.HeaderClientID), r.Header.Get(resourceproxy.HeaderScope))
	}))
	upstreamURL, _ := url.Parse(upstream.URL)
	verifier, err := resourceserver.New(resourceserver.Config{
		Issuer:      issuer,
		Audience:    LedgerAudience,
		RootCAs:     issuerCAs,
		DialContext: c.Dialer(),
	})
	if err != nil {
		upstream.Close()
		return nil, err
	}
	proxyLog, err := os.OpenFile(filepath.Join(c.Dir, "protected-api.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		upstream.Close()
		return nil, err
	}
	proxy, err := resourceproxy.New(resourceproxy.Config{
		Logger:         slog.New(slog.NewTextHandler(proxyLog, nil)),
		Upstream:       upstreamURL,
		Verifier:       verifier,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil },
	})
	if err != nil {
		upstream.Close()
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		upstream.Close()
		return nil, err
	}
	proxyCtx, cancel := context.WithCancel(context.Background())
	go func() { _ = proxy.Serve(proxyCtx, l) }()
	return &ProtectedAPI{URL: "https://" + l.Addr().String(), close: func() { cancel(); upstream.Close() }}, nil
}

// Call calls the protected API with token, presenting cert.
func (p *ProtectedAPI) Call(ctx context.Context, servingCAs *x509.CertPool, cert *tls.Certificate, token string) (int, string, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/invoices", nil)
	if err != nil {
		return 0, "", nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := HTTPClient(nil, servingCAs, cert).Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, string(body), resp.Header, nil
}

// registeredAs says what the authorization server knows the client by.
func registeredAs(oc *oauthv1alpha1.OAuthClient) string {
	switch s := oc.Spec.Subject; {
	case s == nil:
		return "its self-signed certificate (thumbprint " + oc.Status.Certificate.Thumbprint[:12] + "…)"
	case s.DN != "":
		return "subject DN " + s.DN
	case s.DNSName != "":
		return "DNS SAN " + s.DNSName
	case s.URI != "":
		return "URI SAN " + s.URI
	case s.IP != "":
		return "IP SAN " + s.IP
	default:
		return "email SAN " + s.Email
	}
}

// SampleClients are the OAuthClients in config/samples.
var SampleClients = []string{"billing-worker", "ledger-sync", "reporting"}

// RunStory plays the demo on a running cluster and returns an error naming
// the first step that failed.
func RunStory(ctx context.Context, c *Cluster, t *Transcript) error {
	objs, err := ApplyDir(ctx, c.Env.Client, "config/samples")
	if err != nil {
		return err
	}
	t.Step("applied config/samples (%d objects: issuers, AuthorizationServer auth/payments, 4 OAuthClients, 2 workload Deployments)", len(objs))

	as := &oauthv1alpha1.AuthorizationServer{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "payments"}}
	if err := WaitReady(ctx, c.Env.Client, as, func() []metav1.Condition { return as.Status.Conditions }, t); err != nil {
		return fmt.Errorf("%w\nlast authorization-server log lines:\n%s", err, c.Runner.LastLogLines("auth", "payments", 15))
	}
	t.Step("AuthorizationServer auth/payments is Ready: issuer %s, mTLS token endpoint %s", as.Status.Issuer, as.Status.Endpoints.MTLSToken)

	workloads := map[string]*Workload{}
	for _, name := range SampleClients {
		oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: name}}
		if err := WaitReady(ctx, c.Env.Client, oc, func() []metav1.Condition { return oc.Status.Conditions }, t); err != nil {
			return err
		}
		w, err := LoadWorkload(ctx, c.Env.Client, oc)
		if err != nil {
			return err
		}
		workloads[name] = w
		t.Step("OAuthClient %s is Ready: %s, client_id %s, registered %s", name, oc.Spec.AuthenticationMethod, oc.Status.ClientID, registeredAs(oc))
	}

	var servingCAs *x509.CertPool
	tokens := map[string]string{}
	for _, name := range SampleClients {
		w := workloads[name]
		token, claims, err := w.Token(ctx, c.Dialer())
		if err != nil {
			return fmt.Errorf("%s: get a token: %w\nlast authorization-server log lines:\n%s", name, err, c.Runner.LastLogLines("auth", "payments", 15))
		}
		cnf, _ := claims["cnf"].(map[string]any)
		want := certbinding.Thumbprint(w.Certificate.Certificate[0])
		if cnf[certbinding.ConfirmationKey] != want {
			return fmt.Errorf("%s: token cnf %v is not bound to its certificate (%s)", name, cnf, want)
		}
		tokens[name] = token
		servingCAs = w.ServerCAs
		t.Step("%s got a token at %s bound to its certificate (cnf.x5t#S256 %s…, scope %q)", name, w.TokenEndpoint, want[:12], claims["scope"])
	}

	api, err := StartProtectedAPI(ctx, c, workloads[SampleClients[0]].Issuer, servingCAs)
	if err != nil {
		return fmt.Errorf("start the protected API: %w", err)
	}
	defer api.Close()
	t.Step("protected API (resource-proxy in front of a tiny upstream) listening at %s", api.URL)

	for _, name := range SampleClients {
		w := workloads[name]
		status, body, _, err := api.Call(ctx, servingCAs, &w.Certificate, tokens[name])
		if err != nil {
			return fmt.Errorf("%s: call the protected API: %w", name, err)
		}
		if status != http.StatusOK || !strings.Contains(body, w.ClientID) {
			return fmt.Errorf("%s: the protected API answered %d %q, want 200 naming %s", name, status, body, w.ClientID)
		}
		t.Step("%s called the protected API with its token and certificate: %d %s", name, status, body)
	}

	victim, thief := workloads[SampleClients[0]], workloads[SampleClients[2]]
	status, _, header, err := api.Call(ctx, servingCAs, &thief.Certificate, tokens[SampleClients[0]])
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if status != http.StatusUnauthorized || !strings.Contains(header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		return fmt.Errorf("a replay of %s's token with %s's certificate answered %d (%s), want 401 invalid_token", victim.Name, thief.Name, status, header.Get("WWW-Authenticate"))
	}
	t.Step("a thief replaying %s's token with %s's certificate was turned away: %d %s", victim.Name, thief.Name, status, header.Get("WWW-Authenticate"))
	return zeroSecretStory(ctx, c, t, api, servingCAs, thief)
}

// zeroSecretClient is the sample public client (authenticationMethod none)
// and its Deployment, whose token-agent sidecar writes into the emptyDir
// zeroSecretOutputVolume.
const (
	zeroSecretClient       = "invoice-worker"
	zeroSecretOutputVolume = "bound-token"
)

// zeroSecretStory plays the sample zero-Secret workload: its client has no
// certificate and a config Secret without a key; its pod's token-agent
// gets a bound token the protected API accepts, and refuses with the
// thief's certificate; refresh tokens rotate, and one replayed with the
// thief's certificate is refused.
func zeroSecretStory(ctx context.Context, c *Cluster, t *Transcript, api *ProtectedAPI, servingCAs *x509.CertPool, thief *Workload) error {
	oc := &oauthv1alpha1.OAuthClient{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: zeroSecretClient}}
	if err := WaitReady(ctx, c.Env.Client, oc, func() []metav1.Condition { return oc.Status.Conditions }, t); err != nil {
		return err
	}
	config, err := PublicClientConfig(ctx, c.Env.Client, oc)
	if err != nil {
		return err
	}
	t.Step("OAuthClient %s is Ready: %s, client_id %s, service account %s; no certificate, and its config Secret %s holds only %s",
		oc.Name, oc.Spec.AuthenticationMethod, oc.Status.ClientID, oc.Status.ServiceAccount, config.Name, strings.Join(slices.Sorted(maps.Keys(config.Data)), ", "))

	var agentCert tls.Certificate
	var agentToken string
	lastProgress := time.Now()
	for {
		agentCert, agentToken, err = AgentOutput(ctx, c, "auth", zeroSecretClient, zeroSecretOutputVolume)
		if err == nil {
			break
		}
		if time.Since(lastProgress) > 5*time.Second {
			t.Progress("waiting for the token-agent of %s: %v", zeroSecretClient, err)
			lastProgress = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the token-agent of %s wrote no token: %w\nlast token-agent log lines:\n%s", zeroSecretClient, err, c.Runner.LastLogLines("auth", zeroSecretClient, 15))
		case <-time.After(300 * time.Millisecond):
		}
	}
	thumbprint := certbinding.Thumbprint(agentCert.Certificate[0])
	if got := Confirmation(agentToken); got != thumbprint {
		return fmt.Errorf("the token-agent's token is bound to %q, not to its certificate %s", got, thumbprint)
	}
	t.Step("the %s pod (its projected service-account token and the config Secret, nothing else) got a token from its token-agent sidecar, bound to a certificate the agent made in memory (cnf.x5t#S256 %s…)", zeroSecretClient, thumbprint[:12])

	status, body, _, err := api.Call(ctx, servingCAs, &agentCert, agentToken)
	if err != nil {
		return fmt.Errorf("%s: call the protected API: %w", zeroSecretClient, err)
	}
	if status != http.StatusOK || !strings.Contains(body, oc.Status.ClientID) {
		return fmt.Errorf("%s: the protected API answered %d %q, want 200 naming %s", zeroSecretClient, status, body, oc.Status.ClientID)
	}
	t.Step("%s called the protected API with the agent's token and certificate: %d %s", zeroSecretClient, status, body)
	status, _, header, err := api.Call(ctx, servingCAs, &thief.Certificate, agentToken)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if status != http.StatusUnauthorized {
		return fmt.Errorf("a replay of %s's token with %s's certificate answered %d, want 401", zeroSecretClient, thief.Name, status)
	}
	t.Step("a thief replaying %s's token with %s's certificate was turned away: %d %s", zeroSecretClient, thief.Name, status, header.Get("WWW-Authenticate"))

	// The agent keeps its refresh tokens to itself: show them by acting as
	// a second pod of the same ServiceAccount.
	endpoint := PublicClient{TokenEndpoint: string(config.Data[registration.ConfigKeyTokenEndpoint]), ClientID: oc.Status.ClientID, ServerCAs: servingCAs, Dial: c.Dialer()}
	subjectToken, err := ServiceAccountToken(ctx, c.Env.Config, "auth", oc.Spec.ServiceAccountName, string(config.Data[registration.ConfigKeyIssuer]))
	if err != nil {
		return err
	}
	podCert, err := SelfSignedCertificate(zeroSecretClient + "-pod")
	if err != nil {
		return err
	}
	exchanged, err := endpoint.Exchange(ctx, podCert, subjectToken)
	if err != nil {
		return err
	}
	refreshed, err := endpoint.Refresh(ctx, podCert, exchanged.RefreshToken)
	if err != nil {
		return err
	}
	if refreshed.RefreshToken == exchanged.RefreshToken || Confirmation(refreshed.AccessToken) != certbinding.Thumbprint(podCert.Certificate[0]) {
		return errors.New("the refresh did not rotate the refresh token or issued a token bound to another certificate")
	}
	t.Step("a second %s pod exchanged its projected token, then refreshed: a rotated refresh token and an access token bound to the same certificate", zeroSecretClient)
	_, err = endpoint.Refresh(ctx, thief.Certificate, refreshed.RefreshToken)
	var refusal *GrantError
	if !errors.As(err, &refusal) || refusal.Code != "invalid_grant" {
		return fmt.Errorf("a thief's refresh with %s's certificate: %v, want invalid_grant", thief.Name, err)
	}
	t.Step("a thief replaying that refresh token with %s's certificate was turned away: %d %s", thief.Name, refusal.Status, refusal.Code)
	return nil
}

// PublicClientConfig checks that a public client has no certificate and
// that its config Secret holds exactly client_id, issuer, token_endpoint
// and ca.crt, and returns that Secret.
func PublicClientConfig(ctx context.Context, c client.Client, oc *oauthv1alpha1.OAuthClient) (*corev1.Secret, error) {
	if oc.Status.Certificate != nil {
		return nil, fmt.Errorf("public client %s/%s names a certificate (Secret %s)", oc.Namespace, oc.Name, oc.Status.Certificate.SecretName)
	}
	if oc.Status.ConfigSecretName == "" {
		return nil, fmt.Errorf("public client %s/%s names no config Secret yet", oc.Namespace, oc.Name)
	}
	var config corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: oc.Namespace, Name: oc.Status.ConfigSecretName}, &config); err != nil {
		return nil, err
	}
	keys := slices.Sorted(maps.Keys(config.Data))
	want := []string{registration.ConfigKeyCA, registration.ConfigKeyClientID, registration.ConfigKeyIssuer, registration.ConfigKeyTokenEndpoint}
	if !slices.Equal(keys, want) {
		return nil, fmt.Errorf("config Secret %s holds %v, want exactly %v", config.Name, keys, want)
	}
	return &config, nil
}

// AgentOutput reads the certificate, key and token a token-agent wrote into
// the emptyDir volume of a Deployment's local pod, once the Deployment is
// available (the agent's /readyz passed).
func AgentOutput(ctx context.Context, c *Cluster, namespace, name, volume string) (tls.Certificate, string, error) {
	var d appsv1.Deployment
	if err := c.Env.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &d); err != nil {
		return tls.Certificate{}, "", err
	}
	if d.Status.AvailableReplicas == 0 {
		return tls.Certificate{}, "", fmt.Errorf("deployment %s/%s is not available", namespace, name)
	}
	dir, err := c.Runner.VolumeDir(namespace, name, volume)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		return tls.Certificate{}, "", err
	}
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		return tls.Certificate{}, "", err
	}
	return cert, strings.TrimSpace(string(token)), nil
}

// Confirmation is the cnf.x5t#S256 claim of a JWT access token ("" if it
// has none or is no JWT).
func Confirmation(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Cnf map[string]string `json:"cnf"`
	}
	if json.Unmarshal(payload, &claims) != nil {
		return ""
	}
	return claims.Cnf[certbinding.ConfirmationKey]
}

// ServiceAccountToken is what the kubelet projects into a pod of the
// ServiceAccount: a TokenRequest for audience, valid 10 minutes.
func ServiceAccountToken(ctx context.Context, cfg *rest.Config, namespace, serviceAccount, audience string) (string, error) {
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	tr, err := kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To(int64(600))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for service account %s/%s: %w", namespace, serviceAccount, err)
	}
	return tr.Status.Token, nil
}

// SelfSignedCertificate is a P-256 key and a self-signed client
// certificate for it, valid an hour, as a workload makes for itself.
func SelfSignedCertificate(name string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// PublicClient makes a public client's token requests at its mTLS token
// endpoint, over a connection presenting the certificate given.
type PublicClient struct {
	TokenEndpoint string
	ClientID      string
	ServerCAs     *x509.CertPool
	Dial          func(ctx context.Context, network, addr string) (net.Conn, error)
}

// GrantResponse is a successful token response.
type GrantResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// GrantError is a token endpoint's refusal (RFC 6749 §5.2).
type GrantError struct {
	Status int
	Code   string
}

func (e *GrantError) Error() string {
	return fmt.Sprintf("token endpoint answered %d %s", e.Status, e.Code)
}

// Exchange exchanges a service account token (RFC 8693).
func (p PublicClient) Exchange(ctx context.Context, cert tls.Certificate, subjectToken string) (*GrantResponse, error) {
	return p.grant(ctx, cert, url.Values{
		"grant_type":         {string(oauthv1alpha1.GrantTypeTokenExchange)},
		"subject_token":      {subjectToken},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
	})
}

// Refresh redeems a refresh token (RFC 6749 §6).
func (p PublicClient) Refresh(ctx context.Context, cert tls.Certificate, refreshToken string) (*GrantResponse, error) {
	return p.grant(ctx, cert, url.Values{"grant_type": {string(oauthv1alpha1.GrantTypeRefreshToken)}, "refresh_token": {refreshToken}})
}

func (p PublicClient) grant(ctx context.Context, cert tls.Certificate, form url.Values) (*GrantResponse, error) {
	form.Set("client_id", p.ClientID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := HTTPClient(p.Dial, p.ServerCAs, &cert).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var refusal struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &refusal) != nil || refusal.Error == "" {
			return nil, fmt.Errorf("%s grant: token endpoint answered %d without an OAuth error", form.Get("grant_type"), resp.StatusCode)
		}
		return nil, &GrantError{Status: resp.StatusCode, Code: refusal.Error}
	}
	var granted GrantResponse
	if err := json.Unmarshal(body, &granted); err != nil {
		return nil, fmt.Errorf("%s grant: %w", form.Get("grant_type"), err)
	}
	if granted.AccessToken == "" || granted.RefreshToken == "" {
		return nil, fmt.Errorf("%s grant: the response lacks an access or a refresh token", form.Get("grant_type"))
	}
	return &granted, nil
}

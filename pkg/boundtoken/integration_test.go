package boundtoken_test

// The workload side against the real authorization server (in-process, real
// TLS on loopback) and a real kube-apiserver reviewing the service account
// tokens, as a pod would use it: the config directory the operator's
// Secret becomes, a projected token from the TokenRequest API, a protected
// resource that checks the binding, and the token-agent sidecar.

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
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/certbound/certbound/asruntime"
	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/asruntime/oauthurl"
	"github.com/certbound/certbound/asruntime/resourceserver"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
	"github.com/certbound/certbound/internal/poll"
	"github.com/certbound/certbound/pkg/boundtoken"
	"github.com/certbound/certbound/pkg/boundtoken/agent"
	"github.com/certbound/certbound/test/testenv"
)

const (
	namespace      = "team"
	serviceAccount = "worker"
	clientID       = "team.worker"
	resource       = "https://payments.example"
)

// world is a control plane, an authorization server registering the
// public client team.worker for the service account team/worker, and the
// pod's view of it: the config directory and the projected token file.
type world struct {
	ctx       context.Context
	kube      kubernetes.Interface
	issuer    string
	servingCA *rstest.CA
	serving   tls.Certificate
	configDir string
	tokenFile string
	endpoint  string
}

func startWorld(t *testing.T) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	env, err := testenv.Start(testenv.Options{WithoutCertManager: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	w := &world{ctx: ctx, kube: kubernetes.NewForConfigOrDie(env.Config), servingCA: rstest.NewCA(t, "serving CA")}
	w.serving = w.servingCA.ServingCertificate(t)
	if err := env.CreateNamespace(ctx, namespace); err != nil {
		t.Fatal(err)
	}
	if _, err := w.kube.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: serviceAccount}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	clients := t.TempDir()
	doc, _ := json.Marshal(map[string]any{
		"client_id":                  clientID,
		"token_endpoint_auth_method": "none",
		"service_account":            "system:serviceaccount:" + namespace + ":" + serviceAccount,
		"grant_types":                []string{boundtoken.GrantTypeTokenExchange, boundtoken.GrantTypeRefreshToken},
		"scope":                      "payments.read payments.write",
		"resources":                  []string{resource},
		"tls_client_certificate_bound_access_tokens": true,
	})
	writeFile(t, filepath.Join(clients, "worker.json"), doc)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	registry, err := asruntime.NewDirectoryRegistry(clients, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	serving := w.serving
	as, err := asruntime.Start(ctx, asruntime.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil },
		Registry:       registry,
		TokenReviewer:  asruntime.NewKubeTokenReviewer(w.kube),
		Logger:         log,
	}, "127.0.0.1:0", "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = as.Wait() })
	w.issuer = as.Issuer
	w.endpoint = strings.TrimSuffix(as.MTLSBaseURL, "/") + oauthurl.TokenPath

	// What the pod mounts: the config Secret and the projected token.
	w.configDir = t.TempDir()
	writeFile(t, filepath.Join(w.configDir, boundtoken.ConfigFileClientID), []byte(clientID))
	writeFile(t, filepath.Join(w.configDir, boundtoken.ConfigFileIssuer), []byte(w.issuer))
	writeFile(t, filepath.Join(w.configDir, boundtoken.ConfigFileTokenEndpoint), []byte(w.endpoint))
	writeFile(t, filepath.Join(w.configDir, boundtoken.ConfigFileCA), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: w.servingCA.Cert.Raw}))
	w.tokenFile = filepath.Join(t.TempDir(), "certbound-token")
	writeFile(t, w.tokenFile, []byte(w.serviceAccountToken(t, nil)))
	return w
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// serviceAccountToken is what the kubelet projects: a TokenRequest token
// of team/worker with the issuer as audience, optionally bound to an
// object.
func (w *world) serviceAccountToken(t *testing.T, bound *authenticationv1.BoundObjectReference) string {
	t.Helper()
	tr, err := w.kube.CoreV1().ServiceAccounts(namespace).CreateToken(w.ctx, serviceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{w.issuer}, BoundObjectRef: bound},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// requireTokenExchange skips only when the server does not advertise the
// grant at all (the workload side was built before the server's grant).
func (w *world) requireTokenExchange(t *testing.T) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: w.servingCA.Pool()}}}
	resp, err := c.Get(w.issuer + oauthurl.WellKnownMetadata)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md struct {
		GrantTypes []string `json:"grant_types_supported"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(md.GrantTypes, boundtoken.GrantTypeTokenExchange) {
		t.Skipf("the authorization server does not offer the token exchange grant (grant_types_supported %v)", md.GrantTypes)
	}
}

func (w *world) source(t *testing.T, clock *clocktesting.FakeClock, lifetime time.Duration) *boundtoken.Source {
	t.Helper()
	cfg, err := boundtoken.LoadConfig(w.configDir)
	if err != nil {
		t.Fatal(err)
	}
	opts := boundtoken.Options{Config: cfg, TokenFile: w.tokenFile, CertificateLifetime: lifetime}
	if clock != nil {
		opts.Clock = clock
	}
	src, err := boundtoken.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// postRefresh replays a refresh token over a connection presenting cert.
func (w *world) postRefresh(t *testing.T, cert tls.Certificate, refreshToken string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:              w.servingCA.Pool(),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
	}}}
	resp, err := c.PostForm(w.endpoint, url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {refreshToken}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error
}

func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a compact JWS: %d parts", len(parts))
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

func boundThumbprint(t *testing.T, token string) any {
	t.Helper()
	cnf, _ := claimsOf(t, token)["cnf"].(map[string]any)
	return cnf[certbinding.ConfirmationKey]
}

// selfSignedCertificate is a thief's certificate.
func selfSignedCertificate(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "thief"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// protectedResource is an mTLS API that demands tokens bound to the
// connection's certificate, answering with the caller's client_id.
func (w *world) protectedResource(t *testing.T) string {
	t.Helper()
	verifier, err := resourceserver.New(resourceserver.Config{Issuer: w.issuer, Audience: resource, RootCAs: w.servingCA.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(verifier.Middleware(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		claims, _ := resourceserver.ClaimsFromContext(r.Context())
		_, _ = io.WriteString(rw, "client="+claims.ClientID)
	})))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{w.serving}, ClientAuth: tls.RequireAnyClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestWithTheAuthorizationServer(t *testing.T) {
	w := startWorld(t)
	w.requireTokenExchange(t)
	ctx := w.ctx

	t.Run("a projected token is exchanged for a token bound to the in-memory certificate", func(t *testing.T) {
		src := w.source(t, nil, 0)
		bt, err := src.BoundToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		claims := claimsOf(t, bt.AccessToken)
		if got, want := boundThumbprint(t, bt.AccessToken), certbinding.Thumbprint(bt.Certificate.Certificate[0]); got != want || bt.Thumbprint != want {
			t.Errorf("cnf.x5t#S256 = %v, Thumbprint %s, want the certificate's %s", got, bt.Thumbprint, want)
		}
		if claims["client_id"] != clientID || claims["sub"] != "system:serviceaccount:team:worker" || claims["aud"] != resource {
			t.Errorf("claims client_id=%v sub=%v aud=%v", claims["client_id"], claims["sub"], claims["aud"])
		}
		if cert, err := src.GetClientCertificate(nil); err != nil || certbinding.Thumbprint(cert.Certificate[0]) != bt.Thumbprint {
			t.Errorf("GetClientCertificate: %v, want the certificate the token is bound to", err)
		}
		if s := bt.String(); strings.Contains(s, bt.AccessToken) {
			t.Errorf("String shows the token: %s", s)
		}
	})

	t.Run("refresh rotates, and a replayed refresh token sends the source back to an exchange", func(t *testing.T) {
		clock := clocktesting.NewFakeClock(time.Now())
		src := w.source(t, clock, 0)
		first, err := src.BoundToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rt1 := boundtoken.RefreshTokenOf(src)
		if rt1 == "" {
			t.Fatal("the exchange gave no refresh token")
		}
		clock.Step(9 * time.Minute) // past the refresh time of a 10-minute token
		second, err := src.BoundToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rt2 := boundtoken.RefreshTokenOf(src)
		if second.AccessToken == first.AccessToken || rt2 == "" || rt2 == rt1 {
			t.Fatal("the refresh did not give a new access token and a rotated refresh token")
		}
		if second.Thumbprint != first.Thumbprint || boundThumbprint(t, second.AccessToken) != first.Thumbprint {
			t.Fatal("the refreshed token is not bound to the same certificate")
		}
		// A thief with the old refresh token and its own certificate.
		if status, code := w.postRefresh(t, selfSignedCertificate(t), rt1); status != http.StatusBadRequest || code != "invalid_grant" {
			t.Fatalf("a thief's refresh: %d %s, want 400 invalid_grant", status, code)
		}
		// The old refresh token replayed with the right certificate
		// revokes the family; the source's next refresh is refused and it
		// starts over with an exchange, transparently.
		if status, code := w.postRefresh(t, first.Certificate, rt1); status != http.StatusBadRequest || code != "invalid_grant" {
			t.Fatalf("a replayed refresh token: %d %s, want 400 invalid_grant", status, code)
		}
		clock.Step(9 * time.Minute)
		third, err := src.BoundToken(ctx)
		if err != nil {
			t.Fatalf("after its family was revoked: %v", err)
		}
		family := func(rt string) string { id, _, _ := strings.Cut(rt, "."); return id }
		if rt3 := boundtoken.RefreshTokenOf(src); rt3 == "" || family(rt3) == family(rt1) || third.AccessToken == second.AccessToken {
			t.Fatal("the source did not start a new refresh token family with an exchange")
		}
	})

	t.Run("the projected token is re-read at each exchange", func(t *testing.T) {
		secret, err := w.kube.CoreV1().Secrets(namespace).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "pod-stand-in"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		first := w.serviceAccountToken(t, &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: secret.Name, UID: secret.UID})
		writeFile(t, w.tokenFile, []byte(first))
		clock := clocktesting.NewFakeClock(time.Now())
		src := w.source(t, clock, time.Hour)
		before, err := src.BoundToken(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The object the first token is bound to goes away, so only a
		// re-read token can be exchanged; the kubelet rotates the file.
		if err := w.kube.CoreV1().Secrets(namespace).Delete(ctx, secret.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		poll.Until(t, 30*time.Second, "the API server refuses the first token", func() (bool, string) {
			review, err := w.kube.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: first, Audiences: []string{w.issuer}}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return !review.Status.Authenticated, "still authenticated"
		})
		writeFile(t, w.tokenFile, []byte(w.serviceAccountToken(t, nil)))
		// Past the certificate's renewal (80% of an hour): a new key and
		// an exchange.
		clock.Step(50 * time.Minute)
		after, err := src.BoundToken(ctx)
		if err != nil {
			t.Fatalf("exchange after the projected token rotated: %v", err)
		}
		if after.Thumbprint == before.Thumbprint || boundThumbprint(t, after.AccessToken) != after.Thumbprint {
			t.Fatal("the new token is not bound to a new certificate")
		}
	})

	t.Run("the transport calls a protected resource with the certificate the token is bound to", func(t *testing.T) {
		api := w.protectedResource(t)
		src := w.source(t, nil, 0)
		resp, err := src.Client(&tls.Config{RootCAs: w.servingCA.Pool()}).Get(api + "/invoices")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != "client="+clientID {
			t.Fatalf("call with the bound token: %d %q", resp.StatusCode, body)
		}
		// The binding is what the resource checked: the same token over a
		// connection with another certificate is refused.
		token, err := src.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if status := callWith(t, api, w.servingCA.Pool(), selfSignedCertificate(t), token); status != http.StatusUnauthorized {
			t.Fatalf("the token over a thief's connection: %d, want 401", status)
		}
	})

	t.Run("token-agent writes the token and its key pair and serves them", func(t *testing.T) {
		api := w.protectedResource(t)
		out := t.TempDir()
		socket := filepath.Join(t.TempDir(), "agent.sock")
		health := freeLoopbackAddress(t)
		agentCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- agent.Run(agentCtx, []string{
				"--config-dir", w.configDir, "--token-file", w.tokenFile,
				"--output-dir", out, "--socket", socket, "--health-address", health,
			})
		}()
		poll.Until(t, 30*time.Second, "the agent is ready", func() (bool, string) {
			select {
			case err := <-done:
				t.Fatalf("the agent stopped: %v", err)
			default:
			}
			resp, err := http.Get("http://" + health + "/readyz")
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, resp.Status
		})
		token, err := os.ReadFile(filepath.Join(out, agent.FileToken))
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(filepath.Join(out, agent.FileCert), filepath.Join(out, agent.FileKey))
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{agent.FileToken, agent.FileCert, agent.FileKey} {
			if fi, err := os.Stat(filepath.Join(out, name)); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v, mode %v; want 0600", name, err, fi.Mode().Perm())
			}
		}
		if boundThumbprint(t, string(token)) != certbinding.Thumbprint(pair.Certificate[0]) {
			t.Fatal("the written token is not bound to the written certificate")
		}
		if status := callWith(t, api, w.servingCA.Pool(), pair, string(token)); status != http.StatusOK {
			t.Fatalf("a call with the files' token and key pair: %d", status)
		}

		overSocket := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socket)
		}}}
		resp, err := overSocket.Get("http://agent/token")
		if err != nil {
			t.Fatal(err)
		}
		var served struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int64  `json:"expires_in"`
		}
		err = json.NewDecoder(resp.Body).Decode(&served)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || served.AccessToken != string(token) || served.TokenType != "Bearer" || served.ExpiresIn <= 0 || served.ExpiresIn > 600 {
			t.Fatalf("GET /token over the socket: %d %v, token_type %q, expires_in %d, same token: %v", resp.StatusCode, err, served.TokenType, served.ExpiresIn, served.AccessToken == string(token))
		}
		resp, err = overSocket.Get("http://agent/" + agent.FileCert)
		if err != nil {
			t.Fatal(err)
		}
		servedCert, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if fileCert, _ := os.ReadFile(filepath.Join(out, agent.FileCert)); string(servedCert) != string(fileCert) {
			t.Fatal("GET /tls.crt differs from the written tls.crt")
		}
		stop()
		if err := <-done; err != nil {
			t.Fatalf("the agent's exit after its context ended: %v", err)
		}
	})
}

// callWith calls the protected resource with token over a connection
// presenting cert.
func callWith(t *testing.T, api string, roots *x509.CertPool, cert tls.Certificate, token string) int {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs:              roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil },
	}}}
	req, _ := http.NewRequest(http.MethodGet, api+"/invoices", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// freeLoopbackAddress is a loopback address with a port free a moment ago.
func freeLoopbackAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

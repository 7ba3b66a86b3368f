package asruntime

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/certbound/certbound/internal/poll"
)

// apiServer is a control plane for the tests of the public clients'
// grants against the real TokenReview and the in-cluster store.
type apiServer struct {
	kube kubernetes.Interface
	ctx  context.Context
	host string
}

func startTokenReviewAPIServer(t *testing.T) *apiServer {
	t.Helper()
	env, ctx := startControlPlane(t, 2*time.Minute)
	for _, ns := range []string{"auth", "team", "other"} {
		if err := env.CreateNamespace(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	return &apiServer{kube: kubernetes.NewForConfigOrDie(env.Config), ctx: ctx, host: env.Config.Host}
}

func (a *apiServer) serviceAccount(t *testing.T, ns, name string) {
	t.Helper()
	if _, err := a.kube.CoreV1().ServiceAccounts(ns).Create(a.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// token is a projected-style token of the service account from the
// TokenRequest API, for the audience, optionally bound to an object.
func (a *apiServer) token(t *testing.T, ns, name, audience string, bound *authenticationv1.BoundObjectReference) string {
	t.Helper()
	tr, err := a.kube.CoreV1().ServiceAccounts(ns).CreateToken(a.ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{audience}, BoundObjectRef: bound},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// sharedIssuer is the issuer of every replica in these tests, as the
// replicas of one AuthorizationServer share theirs; it is also the
// audience of the service account tokens.
const sharedIssuer = "https://payments.auth.svc"

func withKubeGrants(kube kubernetes.Interface, store RefreshTokenStore) asOption {
	return func(_ *testAS, cfg *Config) {
		cfg.Issuer = sharedIssuer
		cfg.TokenReviewer = NewKubeTokenReviewer(kube)
		cfg.RefreshTokens = store
	}
}

// forgedToken is a service account token signed by a key the API server
// has never seen, with the claims a real one carries.
func forgedToken(t *testing.T, audience string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	claims, _ := json.Marshal(map[string]any{
		"iss": "https://kubernetes.default.svc.cluster.local", "sub": workerSA, "aud": []string{audience},
		"iat": now, "nbf": now, "exp": now + 600,
		"kubernetes.io": map[string]any{"namespace": "team", "serviceaccount": map[string]any{"name": "worker", "uid": "00000000-0000-4000-8000-000000000000"}},
	})
	jws, err := signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serviceAccountSigningKey reads the service account signing key of the
// test's kube-apiserver from its command line: envtest generates the key
// and passes its path as --service-account-signing-key-file. The test
// re-signs real tokens with it to make one that is expired, which the
// TokenRequest API (at least 10 minutes) cannot.
func (a *apiServer) serviceAccountSigningKey(t *testing.T) crypto.Signer {
	t.Helper()
	u, err := url.Parse(a.host)
	if err != nil {
		t.Fatal(err)
	}
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		raw, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(raw), "\x00")
		if !slices.Contains(args, "--secure-port="+u.Port()) {
			continue
		}
		for _, arg := range args {
			path, ok := strings.CutPrefix(arg, "--service-account-signing-key-file=")
			if !ok {
				continue
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			block, _ := pem.Decode(data)
			if block == nil {
				t.Fatalf("%s: no PEM block", path)
			}
			if key, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
				return key
			}
			key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			return key.(crypto.Signer)
		}
	}
	t.Skip("the kube-apiserver's service account signing key was not found")
	return nil
}

// resign signs the claims of a real service account token again with the
// API server's key, after mutate has changed them.
func resign(t *testing.T, key crypto.Signer, token string, mutate func(map[string]any)) string {
	t.Helper()
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
		t.Fatal(err)
	}
	mutate(claims)
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	alg := jose.SignatureAlgorithm(jws.Signatures[0].Protected.Algorithm)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", jws.Signatures[0].Protected.KeyID))
	if err != nil {
		t.Fatal(err)
	}
	signed, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := signed.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTokenExchangeAgainstAnAPIServer exchanges real service account
// tokens, reviewed by a real kube-apiserver, and keeps the refresh tokens
// in its ConfigMaps.
func TestTokenExchangeAgainstAnAPIServer(t *testing.T) {
	api := startTokenReviewAPIServer(t)
	api.serviceAccount(t, "team", "worker")
	api.serviceAccount(t, "other", "worker")
	api.serviceAccount(t, "team", "gone")
	store, err := NewKubeRefreshTokenStore(api.kube, "auth", "payments")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]map[string]any{
		"worker.json": publicClient(workerClientID, workerSA),
		"gone.json":   publicClient("team.gone", "system:serviceaccount:team:gone"),
	}
	as := startAS(t, docs, withKubeGrants(api.kube, store))
	cert, _ := selfSigned(t, "pod")
	c := as.client(&cert)
	exchange := func(clientID, subjectToken string) tokenResponse {
		t.Helper()
		return as.post(t, c, as.mtlsURL, exchangeForm(clientID, subjectToken))
	}

	resp := exchange(workerClientID, api.token(t, "team", "worker", sharedIssuer, nil))
	if resp.status != http.StatusOK {
		t.Fatalf("exchange of the client's own service account token: %d %s", resp.status, resp.raw)
	}
	if sub := as.claims(t, resp.body["access_token"].(string))["sub"]; sub != workerSA {
		t.Errorf("sub = %v, want %s", sub, workerSA)
	}

	t.Run("refused", func(t *testing.T) {
		secret, err := api.kube.CoreV1().Secrets("team").Create(api.ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "binding"}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		boundToken := api.token(t, "team", "worker", sharedIssuer, &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: secret.Name, UID: secret.UID})
		if resp := exchange(workerClientID, boundToken); resp.status != http.StatusOK {
			t.Fatalf("token bound to a live object: %d %s", resp.status, resp.raw)
		}
		if err := api.kube.CoreV1().Secrets("team").Delete(api.ctx, secret.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		key := api.serviceAccountSigningKey(t)
		real := api.token(t, "team", "worker", sharedIssuer, nil)
		// The control: the same claims re-signed are a valid token, so
		// what refuses the expired one below is its expiry.
		if resp := exchange(workerClientID, resign(t, key, real, func(map[string]any) {})); resp.status != http.StatusOK {
			t.Fatalf("re-signed valid token: %d %s", resp.status, resp.raw)
		}
		expired := resign(t, key, real, func(c map[string]any) {
			past := time.Now().Add(-2 * time.Hour).Unix()
			c["iat"], c["nbf"], c["exp"] = past, past, past+600
		})
		goneToken := api.token(t, "team", "gone", sharedIssuer, nil)
		if resp := exchange("team.gone", goneToken); resp.status != http.StatusOK {
			t.Fatalf("before its service account is deleted: %d %s", resp.status, resp.raw)
		}
		if err := api.kube.CoreV1().ServiceAccounts("team").Delete(api.ctx, "gone", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]struct{ clientID, token string }{
			"another namespace's service account": {workerClientID, api.token(t, "other", "worker", sharedIssuer, nil)},
			"a token for another audience":        {workerClientID, api.token(t, "team", "worker", "https://elsewhere.example", nil)},
			"a token for the API server":          {workerClientID, api.token(t, "team", "worker", "https://kubernetes.default.svc.cluster.local", nil)},
			"a forged token":                      {workerClientID, forgedToken(t, sharedIssuer)},
			"an expired token":                    {workerClientID, expired},
			"garbage":                             {workerClientID, "not-a-token"},
		} {
			t.Run(name, func(t *testing.T) {
				if resp := exchange(c.clientID, c.token); resp.status != http.StatusBadRequest || resp.errorCode() != "invalid_grant" {
					t.Fatalf("got %d %s, want 400 invalid_grant", resp.status, resp.raw)
				}
			})
		}
		// Deletions take effect within the API server's own cache of
		// authenticated tokens (kube-apiserver keeps a success for 10 s)
		// and its informers' lag, so these are polled.
		for name, c := range map[string]struct{ clientID, token string }{
			"a deleted service account":          {"team.gone", goneToken},
			"a token whose bound object is gone": {workerClientID, boundToken},
		} {
			t.Run(name, func(t *testing.T) {
				poll.Until(t, 30*time.Second, "the exchange is refused", func() (bool, string) {
					resp := exchange(c.clientID, c.token)
					if resp.status == http.StatusOK {
						return false, "still exchanged"
					}
					if resp.status != http.StatusBadRequest || resp.errorCode() != "invalid_grant" {
						t.Fatalf("got %d %s, want 400 invalid_grant", resp.status, resp.raw)
					}
					return true, ""
				})
			})
		}
	})

	t.Run("refresh tokens outlive the server and are shared by replicas", func(t *testing.T) {
		rt := exchange(workerClientID, api.token(t, "team", "worker", sharedIssuer, nil)).body["refresh_token"].(string)
		as.stop()
		// Two replicas sharing the store, each with a store of its own
		// over the same ConfigMaps.
		replica := func() *testAS {
			s, err := NewKubeRefreshTokenStore(api.kube, "auth", "payments")
			if err != nil {
				t.Fatal(err)
			}
			return startAS(t, docs, withKubeGrants(api.kube, s))
		}
		a, b := replica(), replica()
		refresh := func(at *testAS, cert *tls.Certificate, rt string) tokenResponse {
			t.Helper()
			return at.post(t, at.client(cert), at.mtlsURL, refreshForm(workerClientID, rt))
		}
		resp := refresh(a, &cert, rt)
		if resp.status != http.StatusOK {
			t.Fatalf("refresh after a restart: %d %s", resp.status, resp.raw)
		}
		next := resp.body["refresh_token"].(string)
		thief, _ := selfSigned(t, "pod")
		if resp := refresh(b, &thief, next); resp.errorCode() != "invalid_grant" {
			t.Fatalf("refresh at the other replica with another certificate: %d %s", resp.status, resp.raw)
		}
		resp = refresh(b, &cert, next)
		if resp.status != http.StatusOK {
			t.Fatalf("refresh at the other replica: %d %s", resp.status, resp.raw)
		}
		newest := resp.body["refresh_token"].(string)

		// Introspection and revocation at a replica, by the family's client.
		introspect := func(at *testAS, token string) map[string]any {
			t.Helper()
			got := postForm(t, at.client(&cert), at.mtlsURL+introspectionPath, url.Values{"client_id": {workerClientID}, "token": {token}})
			var body map[string]any
			if err := json.Unmarshal([]byte(got.body), &body); err != nil {
				t.Fatalf("introspection %d %q", got.status, got.body)
			}
			return body
		}
		if got := introspect(a, newest); got["active"] != true || got["token_type"] != "refresh_token" || got["client_id"] != workerClientID ||
			got["scope"] != "read write" || got["exp"] == nil || got["cnf"].(map[string]any)["x5t#S256"] == nil {
			t.Errorf("introspection of the current refresh token: %v", got)
		}
		if got := introspect(a, next); got["active"] != false || len(got) != 1 {
			t.Errorf("introspection of a rotated refresh token: %v", got)
		}
		if got := postForm(t, a.client(&cert), a.mtlsURL+revocationPath, url.Values{"client_id": {workerClientID}, "token": {newest}}); got.status != http.StatusOK {
			t.Fatalf("revocation: %d %s", got.status, got.body)
		}
		if resp := refresh(b, &cert, newest); resp.errorCode() != "invalid_grant" {
			t.Fatalf("refresh of a revoked family at the other replica: %d %s", resp.status, resp.raw)
		}
	})
}

// TestConcurrentRefreshAtTwoReplicas: two replicas given the same refresh
// token at once cannot both rotate it. One wins; the other sees the token
// used and revokes the family, so the winner's new token is dead too —
// the same outcome as a sequential replay.
func TestConcurrentRefreshAtTwoReplicas(t *testing.T) {
	api := startTokenReviewAPIServer(t)
	api.serviceAccount(t, "team", "worker")
	docs := map[string]map[string]any{"worker.json": publicClient(workerClientID, workerSA)}
	replica := func() *testAS {
		s, err := NewKubeRefreshTokenStore(api.kube, "auth", "payments")
		if err != nil {
			t.Fatal(err)
		}
		return startAS(t, docs, withKubeGrants(api.kube, s))
	}
	a, b := replica(), replica()
	cert, _ := selfSigned(t, "pod")
	for round := range 5 {
		resp := a.post(t, a.client(&cert), a.mtlsURL, exchangeForm(workerClientID, api.token(t, "team", "worker", sharedIssuer, nil)))
		if resp.status != http.StatusOK {
			t.Fatalf("exchange: %d %s", resp.status, resp.raw)
		}
		rt := resp.body["refresh_token"].(string)
		var wg sync.WaitGroup
		results := make([]tokenResponse, 2)
		for i, at := range []*testAS{a, b} {
			wg.Go(func() { results[i] = at.post(t, at.client(&cert), at.mtlsURL, refreshForm(workerClientID, rt)) })
		}
		wg.Wait()
		var winner string
		ok := 0
		for _, r := range results {
			if r.status == http.StatusOK {
				ok++
				winner = r.body["refresh_token"].(string)
			} else if r.errorCode() != "invalid_grant" {
				t.Fatalf("round %d: %d %s", round, r.status, r.raw)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d replicas rotated the same refresh token", round, ok)
		}
		if resp := a.post(t, a.client(&cert), a.mtlsURL, refreshForm(workerClientID, winner)); resp.errorCode() != "invalid_grant" {
			t.Fatalf("round %d: the family survived a concurrent reuse: %d %s", round, resp.status, resp.raw)
		}
	}
}

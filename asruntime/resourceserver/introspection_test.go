package resourceserver_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certbound/certbound/asruntime"
	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/asruntime/resourceserver"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
)

// Since makes clock a clock.PassiveClock, so one clock drives both the
// authorization server and the verifier.
func (c *clock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }

// realAS is a certbound authorization server on loopback TLS with a
// token-holding client (billing) and two resource-server clients: one
// authenticating with a certificate (resource-mtls), one with a secret
// (resource-secret).
type realAS struct {
	issuer, mtlsURL string
	servingCA       *rstest.CA
	billing         tls.Certificate
	resourceCert    tls.Certificate
	clock           *clock
	stop            func()
}

const resourceSecret = "s3cret+/=-correct-horse-battery-staple"

func startRealAS(t *testing.T) *realAS {
	t.Helper()
	servingCA, clientCA := rstest.NewCA(t, "serving CA"), rstest.NewCA(t, "client CA")
	serving := servingCA.ServingCertificate(t)
	dir := t.TempDir()
	for name, doc := range map[string]map[string]any{
		"billing": {
			"client_id": "billing", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=billing",
			"grant_types": []string{"client_credentials"}, "tls_client_certificate_bound_access_tokens": true, "resources": []string{audience},
		},
		"resource-mtls":   {"client_id": "resource-mtls", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=resource", "introspection_resources": []string{audience}},
		"resource-secret": {"client_id": "resource-secret", "token_endpoint_auth_method": "client_secret_basic", "client_secret": resourceSecret, "introspection_resources": []string{audience}},
	} {
		data, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	log := slog.New(slog.DiscardHandler)
	metrics := asruntime.NewMetrics()
	registry, err := asruntime.NewDirectoryRegistry(dir, log, metrics)
	if err != nil {
		t.Fatal(err)
	}
	as := &realAS{
		servingCA:    servingCA,
		billing:      clientCA.ClientCertificate(t, "billing"),
		resourceCert: clientCA.ClientCertificate(t, "resource"),
		clock:        &clock{now: time.Now()},
	}
	ctx, cancel := context.WithCancel(context.Background())
	started, err := asruntime.Start(ctx, asruntime.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil },
		TrustAnchors:   clientCA.Pool(),
		Registry:       registry,
		Clock:          as.clock,
		Logger:         log,
		Metrics:        metrics,
	}, "127.0.0.1:0", "127.0.0.1:0", "")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	as.issuer, as.mtlsURL = started.Issuer, started.MTLSBaseURL
	stopped := false
	as.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			if err := started.Wait(); err != nil {
				t.Errorf("authorization server: %v", err)
			}
		}
	}
	t.Cleanup(as.stop)
	return as
}

// post sends a form over mTLS as billing and decodes the JSON answer.
func (as *realAS) post(t *testing.T, path string, form url.Values) map[string]any {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: as.servingCA.Pool(), Certificates: []tls.Certificate{as.billing},
	}}, Timeout: 10 * time.Second}
	form.Set("client_id", "billing")
	resp, err := c.PostForm(as.mtlsURL+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", path, resp.Status)
	}
	var m map[string]any
	if path == "/token" {
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (as *realAS) token(t *testing.T) string {
	t.Helper()
	return as.post(t, "/token", url.Values{"grant_type": {"client_credentials"}})["access_token"].(string)
}

func (as *realAS) revoke(t *testing.T, token string) {
	t.Helper()
	as.post(t, "/revoke", url.Values{"token": {token}})
}

func (as *realAS) verifier(t *testing.T, in *resourceserver.Introspection) *resourceserver.Verifier {
	t.Helper()
	v, err := resourceserver.New(resourceserver.Config{
		Issuer: as.issuer, Audience: audience, RootCAs: as.servingCA.Pool(), Now: as.clock.Now, Introspection: in,
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestIntrospectionAgainstTheAuthorizationServer(t *testing.T) {
	as := startRealAS(t)
	viaCertificate := &resourceserver.Introspection{ClientID: "resource-mtls", ClientCertificate: &as.resourceCert}
	viaSecret := &resourceserver.Introspection{ClientID: "resource-secret", ClientSecret: resourceSecret, CacheTTL: -1}

	t.Run("a revoked token is refused once the cached answer is older than the cache bound", func(t *testing.T) {
		res := newResource(t, as.verifier(t, viaCertificate))
		token := as.token(t)
		if a := res.get(t, &as.billing, "Bearer "+token); a.status != http.StatusOK || a.body != "billing" {
			t.Fatalf("an active token: %+v", a)
		}
		if a := res.get(t, &as.resourceCert, "Bearer "+token); a.reason != resourceserver.ErrCertificateMismatch.Reason {
			t.Fatalf("an active token with another certificate: %+v", a)
		}
		as.revoke(t, token)
		if a := res.get(t, &as.billing, "Bearer "+token); a.status != http.StatusOK {
			t.Fatalf("the cached answer was not used: %+v", a)
		}
		as.clock.Advance(resourceserver.DefaultIntrospectionCacheTTL)
		a := res.get(t, &as.billing, "Bearer "+token)
		if a.status != http.StatusUnauthorized || a.reason != resourceserver.ErrTokenInactive.Reason ||
			a.wwwAuthenticate != invalidToken("the access token is not active") {
			t.Fatalf("a revoked token after the cache bound: %+v", a)
		}
		if a := res.get(t, &as.billing, "Bearer "+as.token(t)); a.status != http.StatusOK {
			t.Fatalf("a new token of the same client: %+v", a)
		}
	})

	t.Run("with a client secret and no cache a revocation is seen at once", func(t *testing.T) {
		res := newResource(t, as.verifier(t, viaSecret))
		token := as.token(t)
		if a := res.get(t, &as.billing, "Bearer "+token); a.status != http.StatusOK {
			t.Fatalf("an active token: %+v", a)
		}
		as.revoke(t, token)
		if a := res.get(t, &as.billing, "Bearer "+token); a.reason != resourceserver.ErrTokenInactive.Reason {
			t.Fatalf("a revoked token: %+v", a)
		}
	})

	t.Run("an answer is not cached past the token's exp", func(t *testing.T) {
		long := *viaCertificate
		long.CacheTTL = time.Hour
		res := newResource(t, as.verifier(t, &long))
		token := as.token(t)
		if a := res.get(t, &as.billing, "Bearer "+token); a.status != http.StatusOK {
			t.Fatalf("an active token: %+v", a)
		}
		// Past exp, within the verifier's leeway: the JWT still passes
		// locally, so only the cache could let it through.
		as.clock.Advance(asruntime.DefaultAccessTokenTTL + 5*time.Second)
		if a := res.get(t, &as.billing, "Bearer "+token); a.reason != resourceserver.ErrTokenInactive.Reason {
			t.Fatalf("a token past its exp: %+v", a)
		}
	})

	t.Run("an unreachable authorization server fails closed", func(t *testing.T) {
		res := newResource(t, as.verifier(t, viaSecret))
		token := as.token(t)
		if a := res.get(t, &as.billing, "Bearer "+token); a.status != http.StatusOK {
			t.Fatalf("an active token: %+v", a)
		}
		as.stop()
		a := res.get(t, &as.billing, "Bearer "+token)
		if a.status != http.StatusServiceUnavailable || a.reason != resourceserver.ErrIntrospectionUnavailable.Reason {
			t.Fatalf("with the authorization server down: %+v", a)
		}
	})
}

// stubIntrospection is an introspection endpoint answering a fixed
// document for one opaque token and {"active":false} for any other.
func stubIntrospection(t *testing.T, token string, answer map[string]any) (endpoint string, ca *rstest.CA, asked *atomic.Int32) {
	t.Helper()
	ca = rstest.NewCA(t, "introspection CA")
	asked = new(atomic.Int32)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		id, secret, _ := r.BasicAuth()
		if r.Method != http.MethodPost || id != "resource" || secret != url.QueryEscape(resourceSecret) {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("token") != token {
			fmt.Fprint(w, `{"active":false}`)
			return
		}
		_ = json.NewEncoder(w).Encode(answer)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.ServingCertificate(t)}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL + "/introspect", ca, asked
}

// TestAllowedOpaqueTokensAreIntrospected: with AllowOpaqueTokens,
// introspection alone decides about a token that is not a JWT.
func TestAllowedOpaqueTokensAreIntrospected(t *testing.T) {
	clientCA := rstest.NewCA(t, "client CA")
	cert := clientCA.ClientCertificate(t, "billing")
	other := clientCA.ClientCertificate(t, "billing")
	const issuer, opaque = "https://as.example.test", "opaque-token-value"
	newVerifier := func(t *testing.T, answer map[string]any) (*resource, *atomic.Int32) {
		t.Helper()
		endpoint, ca, asked := stubIntrospection(t, opaque, answer)
		v, err := resourceserver.New(resourceserver.Config{
			Issuer: issuer, Audience: audience, RootCAs: ca.Pool(),
			Introspection: &resourceserver.Introspection{Endpoint: endpoint, ClientID: "resource", ClientSecret: resourceSecret, AllowOpaqueTokens: true},
		})
		if err != nil {
			t.Fatal(err)
		}
		return newResource(t, v), asked
	}
	active := func(change func(map[string]any)) map[string]any {
		m := map[string]any{
			"active": true, "iss": issuer, "aud": audience, "client_id": "billing", "sub": "billing",
			"exp": time.Now().Add(time.Minute).Unix(), "cnf": map[string]string{certbinding.ConfirmationKey: certbinding.Thumbprint(cert.Leaf.Raw)},
		}
		change(m)
		return m
	}

	t.Run("an active bound token is accepted with its certificate only, and the answer is cached", func(t *testing.T) {
		res, asked := newVerifier(t, active(func(map[string]any) {}))
		if a := res.get(t, &cert, "Bearer "+opaque); a.status != http.StatusOK || a.body != "billing" {
			t.Fatalf("%+v", a)
		}
		if a := res.get(t, &other, "Bearer "+opaque); a.reason != resourceserver.ErrCertificateMismatch.Reason {
			t.Fatalf("another certificate: %+v", a)
		}
		if n := asked.Load(); n != 1 {
			t.Fatalf("the endpoint was asked %d times, want 1", n)
		}
		if a := res.get(t, &cert, "Bearer another-opaque-token"); a.reason != resourceserver.ErrTokenInactive.Reason {
			t.Fatalf("an unknown opaque token: %+v", a)
		}
	})
	for name, c := range map[string]struct {
		change func(map[string]any)
		reason string
	}{
		"a token of another issuer is refused":    {func(m map[string]any) { m["iss"] = "https://evil.example" }, "InvalidToken"},
		"a token for another audience is refused": {func(m map[string]any) { m["aud"] = []string{"https://other.example"} }, "InvalidToken"},
		"a token without exp is refused":          {func(m map[string]any) { delete(m, "exp") }, "InvalidToken"},
		"an expired token is refused":             {func(m map[string]any) { m["exp"] = time.Now().Add(-time.Hour).Unix() }, "TokenExpired"},
		"an unbound token is refused":             {func(m map[string]any) { delete(m, "cnf") }, "UnboundToken"},
		"a token bound another way is refused":    {func(m map[string]any) { m["cnf"] = map[string]string{"jkt": "x"} }, "InvalidToken"},
		"a token in an audience list is accepted": {func(m map[string]any) { m["aud"] = []string{"https://other.example", audience} }, ""},
		"an inactive token is refused":            {func(m map[string]any) { m["active"] = false }, "TokenInactive"},
		"a malformed answer fails closed":         {func(m map[string]any) { m["active"] = "yes" }, "IntrospectionUnavailable"},
	} {
		t.Run(name, func(t *testing.T) {
			res, _ := newVerifier(t, active(c.change))
			a := res.get(t, &cert, "Bearer "+opaque)
			if c.reason == "" && a.status != http.StatusOK || c.reason != "" && a.reason != c.reason {
				t.Fatalf("%+v, want reason %q", a, c.reason)
			}
		})
	}
}

func TestIntrospectionConfigIsChecked(t *testing.T) {
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "resource")
	for name, c := range map[string]struct {
		in   resourceserver.Introspection
		want string
	}{
		"no client_id":               {resourceserver.Introspection{ClientSecret: "s"}, "client_id"},
		"no credentials":             {resourceserver.Introspection{ClientID: "r"}, "exactly one"},
		"a certificate and a secret": {resourceserver.Introspection{ClientID: "r", ClientSecret: "s", ClientCertificate: &cert}, "exactly one"},
		"a plain-http endpoint":      {resourceserver.Introspection{ClientID: "r", ClientSecret: "s", Endpoint: "http://as/introspect"}, "https"},
		"a relative endpoint":        {resourceserver.Introspection{ClientID: "r", ClientSecret: "s", Endpoint: "/introspect"}, "https"},
		"two certificates": {resourceserver.Introspection{ClientID: "r", ClientCertificate: &cert,
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }}, "exactly one"},
		"a certificate and no secrets": {resourceserver.Introspection{ClientID: "r", ClientCertificate: &cert}, ""},
	} {
		_, err := resourceserver.New(resourceserver.Config{Issuer: "https://as.example.test", Audience: audience, Introspection: &c.in})
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: error %v, want one mentioning %q", name, err, c.want)
		}
	}
}

// TestOpaqueTokensAreRefusedWithoutAsking: a bearer string that is not a
// JWT costs the authorization server nothing unless opaque tokens are
// allowed, and neither does one shaped like a JWT that does not parse.
func TestOpaqueTokensAreRefusedWithoutAsking(t *testing.T) {
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "billing")
	const issuer, opaque = "https://as.example.test", "opaque-token-value"
	answer := map[string]any{
		"active": true, "iss": issuer, "aud": audience, "client_id": "billing",
		"exp": time.Now().Add(time.Minute).Unix(), "cnf": map[string]string{certbinding.ConfirmationKey: certbinding.Thumbprint(cert.Leaf.Raw)},
	}
	for _, c := range []struct {
		name       string
		allow      bool
		token      string
		wantReason string
		wantAsked  int32
	}{
		{"an opaque token", false, opaque, resourceserver.ErrInvalidToken.Reason, 0},
		{"an opaque token, allowed", true, opaque, "", 1},
		{"three dot-separated segments of junk", false, "a.b.c", resourceserver.ErrInvalidToken.Reason, 0},
		{"three dot-separated segments of junk, opaque allowed", true, "a.b.c", resourceserver.ErrInvalidToken.Reason, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			endpoint, ca, asked := stubIntrospection(t, opaque, answer)
			v, err := resourceserver.New(resourceserver.Config{
				Issuer: issuer, Audience: audience, RootCAs: ca.Pool(),
				Introspection: &resourceserver.Introspection{Endpoint: endpoint, ClientID: "resource", ClientSecret: resourceSecret, AllowOpaqueTokens: c.allow},
			})
			if err != nil {
				t.Fatal(err)
			}
			a := newResource(t, v).get(t, &cert, "Bearer "+c.token)
			if c.wantReason == "" && a.status != http.StatusOK || c.wantReason != "" && a.reason != c.wantReason {
				t.Fatalf("%+v, want reason %q", a, c.wantReason)
			}
			if n := asked.Load(); n != c.wantAsked {
				t.Fatalf("the introspection endpoint was asked %d times, want %d", n, c.wantAsked)
			}
		})
	}
}

// TestInactiveAnswersDoNotEvictActiveOnes: a stream of junk opaque tokens
// (each one inactive) fills the inactive cache only; the active token's
// answer stays cached, so it costs no further introspection.
func TestInactiveAnswersDoNotEvictActiveOnes(t *testing.T) {
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "billing")
	const issuer, opaque = "https://as.example.test", "opaque-token-value"
	endpoint, ca, asked := stubIntrospection(t, opaque, map[string]any{
		"active": true, "iss": issuer, "aud": audience, "client_id": "billing",
		"exp": time.Now().Add(time.Minute).Unix(), "cnf": map[string]string{certbinding.ConfirmationKey: certbinding.Thumbprint(cert.Leaf.Raw)},
	})
	v, err := resourceserver.New(resourceserver.Config{
		Issuer: issuer, Audience: audience, RootCAs: ca.Pool(),
		Introspection: &resourceserver.Introspection{Endpoint: endpoint, ClientID: "resource", ClientSecret: resourceSecret, AllowOpaqueTokens: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	const cacheSize = 4
	resourceserver.SetIntrospectionCacheSizes(v, cacheSize, cacheSize)
	res := newResource(t, v)
	if a := res.get(t, &cert, "Bearer "+opaque); a.status != http.StatusOK {
		t.Fatalf("the active token: %+v", a)
	}
	const junk = 5 * cacheSize
	for i := range junk {
		if a := res.get(t, &cert, fmt.Sprintf("Bearer junk-%d", i)); a.reason != resourceserver.ErrTokenInactive.Reason {
			t.Fatalf("junk token %d: %+v", i, a)
		}
	}
	if a := res.get(t, &cert, "Bearer "+opaque); a.status != http.StatusOK {
		t.Fatalf("the active token after the junk: %+v", a)
	}
	if a := res.get(t, &cert, fmt.Sprintf("Bearer junk-%d", junk-1)); a.reason != resourceserver.ErrTokenInactive.Reason {
		t.Fatalf("the last junk token again: %+v", a)
	}
	if n := asked.Load(); n != 1+junk {
		t.Fatalf("the introspection endpoint was asked %d times, want %d: the active answer was evicted or the last inactive one not cached", n, 1+junk)
	}
}

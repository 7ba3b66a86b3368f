package resourceserver_test

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/asruntime/resourceserver"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
)

const audience = "https://api.example.test"

// clock is a settable time source for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// resource is a protected resource on loopback TLS that requests (but does
// not verify) client certificates, like the resource proxy. It answers 200
// with the verified client_id, or the verifier's refusal with the refusal's
// Reason in X-Test-Reason, so tests see both the wire answer and the typed
// error.
type resource struct {
	url    string
	client func(cert *tls.Certificate) *http.Client
}

func newResource(t *testing.T, v *resourceserver.Verifier) *resource {
	t.Helper()
	ca := rstest.NewCA(t, "resource CA")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, err := v.Verify(r.Context(), r)
		if err != nil {
			var rerr *resourceserver.Error
			if !errors.As(err, &rerr) {
				t.Errorf("Verify returned %T, want *resourceserver.Error", err)
			} else if s := sentinels[rerr.Reason]; s == nil || !errors.Is(err, s) {
				t.Errorf("errors.Is(%v, its sentinel) is false", err)
			}
			w.Header().Set("X-Test-Reason", rerr.Reason)
			resourceserver.WriteError(w, err)
			return
		}
		fmt.Fprint(w, claims.ClientID)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.ServingCertificate(t)}, ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return &resource{
		url: srv.URL,
		client: func(cert *tls.Certificate) *http.Client {
			cfg := &tls.Config{RootCAs: ca.Pool()}
			if cert != nil {
				cfg.Certificates = []tls.Certificate{*cert}
			}
			return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		},
	}
}

var sentinels = map[string]*resourceserver.Error{}

func init() {
	for _, s := range []*resourceserver.Error{
		resourceserver.ErrMissingToken, resourceserver.ErrMalformedRequest, resourceserver.ErrInvalidToken,
		resourceserver.ErrTokenExpired, resourceserver.ErrUnknownKey, resourceserver.ErrUnboundToken,
		resourceserver.ErrMissingClientCertificate, resourceserver.ErrCertificateMismatch, resourceserver.ErrKeysUnavailable,
		resourceserver.ErrTokenInactive, resourceserver.ErrIntrospectionUnavailable,
	} {
		sentinels[s.Reason] = s
	}
}

type answer struct {
	status          int
	wwwAuthenticate string
	reason          string
	body            string
}

func (res *resource) get(t *testing.T, cert *tls.Certificate, authorization ...string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, res.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range authorization {
		req.Header.Add("Authorization", a)
	}
	resp, err := res.client(cert).Do(req)
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header.Get("WWW-Authenticate"), resp.Header.Get("X-Test-Reason"), string(body)}
}

func invalidToken(description string) string {
	return fmt.Sprintf(`Bearer error="invalid_token", error_description=%q`, description)
}

// unsigned builds a token with alg "none", which go-jose will not sign.
func unsigned(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	header, _ := json.Marshal(map[string]string{"alg": "none", "typ": "at+jwt", "kid": kid})
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
}

func TestVerifyOverTLS(t *testing.T) {
	as := rstest.NewAuthority(t)
	clientCA := rstest.NewCA(t, "client CA")
	cert := clientCA.ClientCertificate(t, "billing-worker")
	other := clientCA.ClientCertificate(t, "billing-worker")
	v, err := resourceserver.New(resourceserver.Config{Issuer: as.Issuer, Audience: audience, RootCAs: as.CA.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	res := newResource(t, v)
	bearer := func(tok string) string { return "Bearer " + tok }
	claims := func(change func(map[string]any)) map[string]any {
		c := as.Claims("billing", audience, &cert)
		change(c)
		return c
	}
	signed := func(change func(map[string]any)) string { return bearer(as.Sign(t, claims(change))) }
	good := signed(func(map[string]any) {})

	unknownKey := rstest.NewAuthority(t) // its keys are not in as's JWK Set
	unknownKeyToken := bearer(unknownKey.Sign(t, claims(func(map[string]any) {})))

	for _, tc := range []struct {
		name          string
		cert          *tls.Certificate
		authorization []string
		want          answer
	}{
		{"a bound token over a connection with its certificate is accepted",
			&cert, []string{good}, answer{status: 200, body: "billing"}},
		{"the same token replayed with another certificate is refused",
			&other, []string{good}, answer{401, invalidToken("the access token is bound to a different client certificate"), "CertificateMismatch", ""}},
		{"the same token without a client certificate is refused",
			nil, []string{good}, answer{401, invalidToken("the access token is certificate-bound but the connection has no client certificate"), "MissingClientCertificate", ""}},
		{"an unbound token is refused by default",
			&cert, []string{signed(func(c map[string]any) { delete(c, "cnf") })}, answer{401, invalidToken("the access token is not bound to a client certificate"), "UnboundToken", ""}},
		{"a token bound by another confirmation method is refused",
			&cert, []string{signed(func(c map[string]any) { c["cnf"] = map[string]string{"jkt": "abc"} })}, answer{401, invalidToken("the access token is not valid"), "InvalidToken", ""}},
		{"an expired token is refused",
			&cert, []string{signed(func(c map[string]any) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() })}, answer{401, invalidToken("the access token expired"), "TokenExpired", ""}},
		{"a token expired within the leeway is accepted",
			&cert, []string{signed(func(c map[string]any) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() })}, answer{status: 200, body: "billing"}},
		{"a token without exp is refused",
			&cert, []string{signed(func(c map[string]any) { delete(c, "exp") })}, answer{401, invalidToken("the access token is not valid"), "InvalidToken", ""}},
		{"a token not yet valid is refused",
			&cert, []string{signed(func(c map[string]any) { c["nbf"] = time.Now().Add(5 * time.Minute).Unix() })}, answer{401, invalidToken("the access token is not valid"), "InvalidToken", ""}},
		{"a token from another issuer is refused",
			&cert, []string{signed(func(c map[string]any) { c["iss"] = "https://evil.example" })}, answer{401, invalidToken("the access token is not valid"), "InvalidToken", ""}},
		{"a token for another audience is refused",
			&cert, []string{signed(func(c map[string]any) { c["aud"] = "https://other.example" })}, answer{401, invalidToken("the access token is not valid"), "InvalidToken", ""}},
		{"a token whose audience list contains this resource is accepted",
			&cert, []string{signed(func(c map[string]any) { c["aud"] = []string{"https://other.example", audience} })}, answer{status: 200, body: "billing"}},
		{"a token with typ JWT is refused",
			&cert, []string{bearer(as.SignWithType(t, "JWT", claims(func(map[string]any) {})))}, answer{401, invalidToken("the access token is not valid"), "InvalidToken", ""}},
		{"a token without typ is refused",
			&cert, []string{bearer(as.SignWithType(t, "", claims(func(map[string]any) {})))}, answer{401, invalidToken("the access token is not valid"), "InvalidToken", ""}},
		{"a token with typ application/AT+JWT is accepted",
			&cert, []string{bearer(as.SignWithType(t, "application/AT+JWT", claims(func(map[string]any) {})))}, answer{status: 200, body: "billing"}},
		{"an unsigned token (alg none) is refused",
			&cert, []string{bearer(unsigned(t, as.KeyID(), claims(func(map[string]any) {})))}, answer{401, invalidToken("the access token is not valid"), "InvalidToken", ""}},
		{"an HMAC-signed token is refused",
			&cert, []string{bearer(rstest.SignWith(t, jose.SigningKey{Algorithm: jose.HS256, Key: jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef"), KeyID: as.KeyID()}}, "at+jwt", claims(func(map[string]any) {})))}, answer{401, invalidToken("the access token is not valid"), "InvalidToken", ""}},
		{"a token signed with an unpublished key is refused",
			&cert, []string{unknownKeyToken}, answer{401, invalidToken("the access token is signed with an unknown key"), "UnknownSigningKey", ""}},
		{"a token with a forged signature is refused",
			&cert, []string{good[:len(good)-4] + "AAAA"}, answer{401, invalidToken("the access token is not valid"), "InvalidToken", ""}},
		{"a garbage token is refused",
			&cert, []string{"Bearer not-a-jwt"}, answer{401, invalidToken("the access token is not valid"), "InvalidToken", ""}},
		{"a request without Authorization gets a bare challenge",
			&cert, nil, answer{401, "Bearer", "MissingToken", ""}},
		{"a request with another scheme gets a bare challenge",
			&cert, []string{"Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, answer{401, "Bearer", "MissingToken", ""}},
		{"two Authorization headers are a malformed request",
			&cert, []string{good, good}, answer{400, `Bearer error="invalid_request", error_description="the Authorization header is malformed"`, "MalformedRequest", ""}},
		{"a Bearer header without a token is a malformed request",
			&cert, []string{"Bearer "}, answer{400, `Bearer error="invalid_request", error_description="the Authorization header is malformed"`, "MalformedRequest", ""}},
		{"a Bearer header with a space in the token is a malformed request",
			&cert, []string{good + " extra"}, answer{400, `Bearer error="invalid_request", error_description="the Authorization header is malformed"`, "MalformedRequest", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := res.get(t, tc.cert, tc.authorization...)
			if got.status != 200 {
				got.body = "" // the refusal text is covered by WWW-Authenticate
			}
			if got != tc.want {
				t.Fatalf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestUnboundTokensWhenAllowed(t *testing.T) {
	as := rstest.NewAuthority(t)
	v, err := resourceserver.New(resourceserver.Config{Issuer: as.Issuer, Audience: audience, RootCAs: as.CA.Pool(), AllowUnboundTokens: true})
	if err != nil {
		t.Fatal(err)
	}
	res := newResource(t, v)
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "worker")
	other := rstest.NewCA(t, "client CA").ClientCertificate(t, "worker")
	if got := res.get(t, nil, "Bearer "+as.Token(t, "public", audience, nil)); got.status != 200 {
		t.Fatalf("unbound token without a certificate: got %+v, want 200", got)
	}
	if got := res.get(t, &other, "Bearer "+as.Token(t, "billing", audience, &cert)); got.reason != "CertificateMismatch" {
		t.Fatalf("allowing unbound tokens must not weaken bound ones: got %+v", got)
	}
}

func TestKeyRotationIsPickedUpAndRefetchesAreRateLimited(t *testing.T) {
	as := rstest.NewAuthority(t)
	clk := &clock{now: time.Now()}
	v, err := resourceserver.New(resourceserver.Config{Issuer: as.Issuer, Audience: audience, RootCAs: as.CA.Pool(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	res := newResource(t, v)
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "worker")
	oldToken := "Bearer " + as.Token(t, "billing", audience, &cert)
	if got := res.get(t, &cert, oldToken); got.status != 200 {
		t.Fatalf("token with the first key: got %+v", got)
	}
	if n := as.JWKSFetches(); n != 1 {
		t.Fatalf("JWKS fetched %d times for the first token, want 1", n)
	}

	as.RotateKey(t, false)
	newToken := "Bearer " + as.Token(t, "billing", audience, &cert)
	if got := res.get(t, &cert, newToken); got.reason != "UnknownSigningKey" {
		t.Fatalf("new key right after a fetch: got %+v, want UnknownSigningKey (rate limited)", got)
	}
	if n := as.JWKSFetches(); n != 1 {
		t.Fatalf("JWKS fetched %d times, want 1: the refetch is rate limited", n)
	}

	clk.Advance(resourceserver.DefaultKeyRefreshInterval + time.Second)
	if got := res.get(t, &cert, newToken); got.status != 200 {
		t.Fatalf("new key after the refresh interval: got %+v, want 200", got)
	}
	if n := as.JWKSFetches(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2", n)
	}

	stranger := rstest.NewAuthority(t)
	for i := range 20 {
		stranger.RotateKey(t, false)
		tok := stranger.Sign(t, stranger.Claims("billing", audience, &cert))
		if got := res.get(t, &cert, "Bearer "+tok); got.reason != "UnknownSigningKey" {
			t.Fatalf("made-up key %d: got %+v", i, got)
		}
	}
	if n := as.JWKSFetches(); n != 2 {
		t.Fatalf("a burst of unknown kids made %d JWKS fetches, want none beyond the 2 before", n)
	}
	if got := res.get(t, &cert, oldToken); got.reason != "UnknownSigningKey" {
		t.Fatalf("token signed with the withdrawn key: got %+v, want UnknownSigningKey", got)
	}
}

func TestKeysUnavailable(t *testing.T) {
	as := rstest.NewAuthority(t)
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "worker")
	token := "Bearer " + as.Token(t, "billing", audience, &cert)
	for _, tc := range []struct {
		name string
		cfg  resourceserver.Config
	}{
		{"the authorization server's TLS certificate is not trusted",
			resourceserver.Config{Issuer: as.Issuer, Audience: audience}},
		{"the metadata names another issuer",
			resourceserver.Config{Issuer: as.Issuer + "/", Audience: audience, RootCAs: as.CA.Pool()}},
		{"the JWKS URL does not serve a JWK Set",
			resourceserver.Config{Issuer: as.Issuer, Audience: audience, RootCAs: as.CA.Pool(), JWKSURL: as.Issuer + "/nothing-here"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := resourceserver.New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := newResource(t, v).get(t, &cert, token)
			if got.status != http.StatusServiceUnavailable || got.reason != "KeysUnavailable" || got.wwwAuthenticate != "" {
				t.Fatalf("got %+v, want 503 KeysUnavailable without a challenge", got)
			}
		})
	}
}

func TestConfiguredJWKSURLSkipsDiscovery(t *testing.T) {
	as := rstest.NewAuthority(t)
	// The issuer's metadata would fail the issuer check; a configured JWKS
	// URL must not depend on it.
	v, err := resourceserver.New(resourceserver.Config{Issuer: as.Issuer + "/", Audience: audience, RootCAs: as.CA.Pool(), JWKSURL: as.Issuer + "/jwks"})
	if err != nil {
		t.Fatal(err)
	}
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "worker")
	c := as.Claims("billing", audience, &cert)
	c["iss"] = as.Issuer + "/"
	if got := newResource(t, v).get(t, &cert, "Bearer "+as.Sign(t, c)); got.status != 200 {
		t.Fatalf("got %+v, want 200", got)
	}
}

func TestMiddlewarePutsClaimsInTheContext(t *testing.T) {
	as := rstest.NewAuthority(t)
	v, err := resourceserver.New(resourceserver.Config{Issuer: as.Issuer, Audience: audience, RootCAs: as.CA.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	ca := rstest.NewCA(t, "CA")
	cert := ca.ClientCertificate(t, "worker")
	srv := httptest.NewUnstartedServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, ok := resourceserver.ClaimsFromContext(r.Context())
		if !ok {
			t.Error("no claims in the context")
			return
		}
		fmt.Fprintf(w, "%s %s %s", claims.ClientID, strings.Join(claims.Scopes(), ","), claims.Thumbprint)
	})))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.ServingCertificate(t)}, ClientAuth: tls.RequestClientCert}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{cert}}}}

	for _, tc := range []struct {
		name       string
		token      string
		wantStatus int
		wantBody   string
	}{
		{"a good token reaches the handler with its claims", as.Token(t, "billing", audience, &cert), 200,
			"billing read,write " + certbinding.Thumbprint(cert.Certificate[0])},
		{"a refused token never reaches the handler", as.Token(t, "billing", "https://other.example", &cert), 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
			req.Header.Set("Authorization", "Bearer "+tc.token)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus || (tc.wantStatus == 200 && string(body) != tc.wantBody) {
				t.Fatalf("got %d %q, want %d %q", resp.StatusCode, body, tc.wantStatus, tc.wantBody)
			}
		})
	}
}

func TestNewRefusesUnsafeConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  resourceserver.Config
	}{
		{"an http issuer", resourceserver.Config{Issuer: "http://as.example", Audience: audience}},
		{"no audience", resourceserver.Config{Issuer: "https://as.example"}},
		{"an http JWKS URL", resourceserver.Config{Issuer: "https://as.example", Audience: audience, JWKSURL: "http://as.example/jwks"}},
		{"alg none", resourceserver.Config{Issuer: "https://as.example", Audience: audience, Algorithms: []jose.SignatureAlgorithm{"none"}}},
		{"an HMAC algorithm", resourceserver.Config{Issuer: "https://as.example", Audience: audience, Algorithms: []jose.SignatureAlgorithm{jose.ES256, jose.HS256}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := resourceserver.New(tc.cfg); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

func TestConcurrentRequestsShareOneKeyFetch(t *testing.T) {
	as := rstest.NewAuthority(t)
	v, err := resourceserver.New(resourceserver.Config{Issuer: as.Issuer, Audience: audience, RootCAs: as.CA.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	res := newResource(t, v)
	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "worker")
	token := "Bearer " + as.Token(t, "billing", audience, &cert)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			// Not res.get: it may call t.Fatal, which belongs to the test goroutine.
			req, _ := http.NewRequest(http.MethodGet, res.url, nil)
			req.Header.Set("Authorization", token)
			resp, err := res.client(&cert).Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("got %d, want 200", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if n := as.JWKSFetches(); n != 1 {
		t.Fatalf("16 concurrent first requests made %d JWKS fetches, want 1", n)
	}
}

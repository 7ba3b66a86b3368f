package boundtoken

// The Source's renewal rules against a scripted token endpoint on real TLS:
// the cases here (a response lost after the server rotated the refresh
// token, many concurrent callers, an outage) cannot be produced on demand
// with the real authorization server, which integration_test.go drives.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/certbound/certbound/internal/poll"
)

// tokenRequest is what the scripted endpoint saw.
type tokenRequest struct {
	grantType, subjectToken, refreshToken, thumbprint string
}

// scriptedEndpoint answers token requests with respond.
type scriptedEndpoint struct {
	srv     *httptest.Server
	mu      sync.Mutex
	seen    []tokenRequest
	respond func(n int, req tokenRequest, w http.ResponseWriter)
}

func newScriptedEndpoint(t *testing.T) *scriptedEndpoint {
	t.Helper()
	e := &scriptedEndpoint{}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req := tokenRequest{grantType: r.PostForm.Get("grant_type"), subjectToken: r.PostForm.Get("subject_token"), refreshToken: r.PostForm.Get("refresh_token")}
		if len(r.TLS.PeerCertificates) == 1 {
			sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
			req.thumbprint = base64.RawURLEncoding.EncodeToString(sum[:])
		}
		e.mu.Lock()
		e.seen = append(e.seen, req)
		n := len(e.seen)
		e.mu.Unlock()
		e.respond(n, req, w)
	}))
	e.srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	e.srv.StartTLS()
	t.Cleanup(e.srv.Close)
	return e
}

func (e *scriptedEndpoint) requests() []tokenRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]tokenRequest(nil), e.seen...)
}

// issue answers with access token "at-<n>" and refresh token "rt-<n>".
func issue(n int, w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":"at-%d","issued_token_type":%q,"token_type":"Bearer","expires_in":600,"refresh_token":"rt-%d"}`, n, TokenTypeAccessToken, n)
}

func refuse(code string, w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	fmt.Fprintf(w, `{"error":%q}`, code)
}

func newTestSource(t *testing.T, e *scriptedEndpoint, tokenFile string) (*Source, *clocktesting.FakeClock) {
	t.Helper()
	clock := clocktesting.NewFakeClock(time.Now())
	src, err := New(Options{
		Config: &Config{
			ClientID: "team.worker", Issuer: "https://issuer.example", TokenEndpoint: e.srv.URL + "/token",
			RootCAs: func() *x509.CertPool { p := x509.NewCertPool(); p.AddCert(e.srv.Certificate()); return p }(),
		},
		TokenFile: tokenFile,
		Clock:     clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	return src, clock
}

func writeTokenFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentCallersShareOneExchange(t *testing.T) {
	e := newScriptedEndpoint(t)
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseAll := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseAll) // before the server's Close, which waits for handlers
	e.respond = func(n int, _ tokenRequest, w http.ResponseWriter) { <-release; issue(n, w) }
	file := filepath.Join(t.TempDir(), "token")
	writeTokenFile(t, file, "sa-token-1")
	src, _ := newTestSource(t, e, file)

	var wg sync.WaitGroup
	var got sync.Map
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := src.Token(context.Background())
			if err != nil {
				t.Error(err)
			}
			got.Store(i, tok)
		}()
	}
	poll.Until(t, 10*time.Second, "the exchange reached the endpoint", func() (bool, string) { return len(e.requests()) > 0, "" })
	releaseAll()
	wg.Wait()
	if n := len(e.requests()); n != 1 {
		t.Fatalf("%d token requests for 20 concurrent callers, want 1", n)
	}
	got.Range(func(_, v any) bool {
		if v != "at-1" {
			t.Errorf("a caller got %v, want at-1", v)
		}
		return true
	})
}

func TestRenewalRules(t *testing.T) {
	e := newScriptedEndpoint(t)
	var mode atomic.Value // how the next refresh is answered
	mode.Store("issue")
	e.respond = func(n int, req tokenRequest, w http.ResponseWriter) {
		if req.grantType == GrantTypeRefreshToken {
			switch mode.Load() {
			case "invalid_grant":
				refuse(ErrorInvalidGrant, w)
				return
			case "lost":
				// The server rotated the refresh token, and the answer
				// never arrived.
				hj, _ := w.(http.Hijacker)
				conn, _, _ := hj.Hijack()
				conn.Close()
				return
			}
		}
		issue(n, w)
	}
	file := filepath.Join(t.TempDir(), "token")
	writeTokenFile(t, file, "sa-token-1\n")
	src, clock := newTestSource(t, e, file)
	ctx := context.Background()
	token := func() string {
		t.Helper()
		tok, err := src.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	last := func() tokenRequest { r := e.requests(); return r[len(r)-1] }

	if got := token(); got != "at-1" || last().grantType != GrantTypeTokenExchange || last().subjectToken != "sa-token-1" {
		t.Fatalf("first token %q from %+v, want an exchange of the projected token", got, last())
	}
	bound := last().thumbprint
	if got := token(); got != "at-1" || len(e.requests()) != 1 {
		t.Fatalf("a fresh token was renewed: %q after %d requests", got, len(e.requests()))
	}

	clock.Step(9 * time.Minute) // past 85% of 600 s
	if got := token(); got != "at-2" || last().grantType != GrantTypeRefreshToken || last().refreshToken != "rt-1" || last().thumbprint != bound {
		t.Fatalf("due token: %q from %+v, want a refresh with rt-1 over the same certificate", got, last())
	}

	// invalid_grant on refresh: start over with an exchange, re-reading the
	// projected token, which the kubelet has rotated.
	writeTokenFile(t, file, "sa-token-2")
	mode.Store("invalid_grant")
	clock.Step(9 * time.Minute)
	if got := token(); got != "at-4" {
		t.Fatalf("after invalid_grant got %q, want the exchanged at-4", got)
	}
	if r := e.requests(); r[2].refreshToken != "rt-2" || r[3].grantType != GrantTypeTokenExchange || r[3].subjectToken != "sa-token-2" || r[3].thumbprint != bound {
		t.Fatalf("requests %+v, want the refused refresh then an exchange of the rotated projected token", r[2:])
	}

	// A refresh whose answer is lost is never replayed: not even when the
	// exchange that follows fails too (the projected token is unreadable),
	// the next renewal exchanges instead of sending rt-4 again.
	mode.Store("lost")
	writeTokenFile(t, file, "")
	clock.Step(9 * time.Minute)
	if got := token(); got != "at-4" {
		t.Fatalf("during the failed renewal got %q, want the still-usable at-4", got)
	}
	mode.Store("issue")
	writeTokenFile(t, file, "sa-token-3")
	clock.Step(maxRetryDelay)
	if got := token(); got != "at-6" {
		t.Fatalf("after a lost refresh got %q, want the exchanged at-6", got)
	}
	if r := e.requests(); len(r) != 6 || r[4].refreshToken != "rt-4" || r[5].grantType != GrantTypeTokenExchange || r[5].subjectToken != "sa-token-3" {
		t.Fatalf("requests %+v, want the lost refresh, then an exchange and never rt-4 again", r[4:])
	}

	// The certificate is replaced at 80% of its life: a new key, and an
	// exchange rather than a refresh bound to the old certificate.
	clock.Step(DefaultCertificateLifetime)
	if got := token(); last().grantType != GrantTypeTokenExchange || last().thumbprint == bound {
		t.Fatalf("after the certificate's renewal time: %q from %+v, want an exchange with a new certificate", got, last())
	}
}

func TestAFailedRenewalKeepsAUsableTokenAndBacksOff(t *testing.T) {
	e := newScriptedEndpoint(t)
	var down atomic.Bool
	e.respond = func(n int, _ tokenRequest, w http.ResponseWriter) {
		if down.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"error":"temporarily_unavailable"}`)
			return
		}
		issue(n, w)
	}
	file := filepath.Join(t.TempDir(), "token")
	writeTokenFile(t, file, "sa-token")
	src, clock := newTestSource(t, e, file)
	ctx := context.Background()
	if _, err := src.Token(ctx); err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	clock.Step(9 * time.Minute)
	for range 3 {
		if got, err := src.Token(ctx); err != nil || got != "at-1" {
			t.Fatalf("during an outage: %q, %v; want the still-usable at-1", got, err)
		}
	}
	// One refresh and one exchange, then the backoff holds further tries.
	if n := len(e.requests()); n != 3 {
		t.Fatalf("%d requests, want the first exchange, one refresh and one exchange", n)
	}
	clock.Step(2 * time.Minute) // at-1 has expired
	_, err := src.Token(ctx)
	var oerr *OAuthError
	if !errors.As(err, &oerr) || oerr.Code != "temporarily_unavailable" {
		t.Fatalf("with an expired token during an outage: %v, want the OAuth error", err)
	}
	down.Store(false)
	if got, err := src.Token(ctx); err != nil || !strings.HasPrefix(got, "at-") || got == "at-1" {
		t.Fatalf("after the outage: %q, %v", got, err)
	}
}

func TestErrorsNeverShowTokens(t *testing.T) {
	e := newScriptedEndpoint(t)
	e.respond = func(n int, _ tokenRequest, w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"access_token":"secret-access","refresh_token":"secret-refresh","token_type":"DPoP","expires_in":60}`)
	}
	file := filepath.Join(t.TempDir(), "token")
	writeTokenFile(t, file, "secret-subject")
	src, _ := newTestSource(t, e, file)
	_, err := src.Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), `token_type "DPoP"`) {
		t.Fatalf("error %v, want the token_type refused", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error shows a token: %v", err)
	}
}

func TestParseTokenResponse(t *testing.T) {
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        string
		wantErr     string
	}{
		{"a bound access token is accepted", 200, "application/json;charset=UTF-8", `{"access_token":"a","token_type":"Bearer","expires_in":60,"issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}`, ""},
		{"token_type is case-insensitive", 200, "application/json", `{"access_token":"a","token_type":"bearer","expires_in":60}`, ""},
		{"an OAuth error becomes an OAuthError", 400, "application/json", `{"error":"invalid_grant","error_description":"refresh token reused"}`, "invalid_grant: refresh token reused (HTTP 400)"},
		{"an error without an OAuth body is named by status", 502, "application/json", `{}`, "HTTP 502 without an OAuth error"},
		{"HTML from a proxy is refused by content type", 502, "text/html", `<html>`, `content type "text/html"`},
		{"a response without expires_in is refused", 200, "application/json", `{"access_token":"a","token_type":"Bearer"}`, "no positive expires_in"},
		{"a response without access_token is refused", 200, "application/json", `{"token_type":"Bearer","expires_in":60}`, "no access_token"},
		{"another issued token type is refused", 200, "application/json", `{"access_token":"a","token_type":"Bearer","expires_in":60,"issued_token_type":"urn:ietf:params:oauth:token-type:id_token"}`, "issued_token_type"},
		{"a body that is not JSON is refused", 200, "application/json", `access_token=a`, "not a token response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseTokenResponse(tc.status, tc.contentType, []byte(tc.body))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestAConfigDirWithoutTheServerCAIsReadAgain: a pod that started before
// the operator wrote ca.crt into its config Secret fails verification, and
// succeeds once the kubelet has updated the mounted Secret.
func TestAConfigDirWithoutTheServerCAIsReadAgain(t *testing.T) {
	e := newScriptedEndpoint(t)
	e.respond = func(n int, _ tokenRequest, w http.ResponseWriter) { issue(n, w) }
	dir := t.TempDir()
	for name, v := range map[string]string{
		ConfigFileClientID: "team.worker", ConfigFileIssuer: "https://issuer.example", ConfigFileTokenEndpoint: e.srv.URL + "/token",
	} {
		writeTokenFile(t, filepath.Join(dir, name), v)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeTokenFile(t, tokenFile, "sa-token")
	src, err := New(Options{ConfigDir: dir, TokenFile: tokenFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Token(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without ca.crt: %v, want a certificate verification error", err)
	}
	writeTokenFile(t, filepath.Join(dir, ConfigFileCA), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.srv.Certificate().Raw})))
	tok, err := src.Token(context.Background())
	if err != nil || tok != "at-1" {
		t.Fatalf("after ca.crt appeared: %q, %v; want at-1", tok, err)
	}
}

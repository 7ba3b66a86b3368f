package resourceproxy_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/certbound/certbound/asruntime"
	"github.com/certbound/certbound/asruntime/resourceproxy"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
)

// TestRunWithIntrospectionRefusesRevokedTokens runs the proxy with
// --introspect against a real authorization server, the proxy
// authenticating at the discovered mTLS introspection alias with a
// certificate from files.
func TestRunWithIntrospectionRefusesRevokedTokens(t *testing.T) {
	servingCA, clientCA := rstest.NewCA(t, "AS serving CA"), rstest.NewCA(t, "client CA")
	asServing := servingCA.ServingCertificate(t)
	dir, clients := t.TempDir(), t.TempDir()
	for name, doc := range map[string]map[string]any{
		"billing": {
			"client_id": "billing", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=billing",
			"grant_types": []string{"client_credentials"}, "tls_client_certificate_bound_access_tokens": true, "resources": []string{audience},
		},
		"proxy": {"client_id": "proxy", "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=proxy", "introspection_resources": []string{audience}},
	} {
		data, _ := json.Marshal(doc)
		if err := os.WriteFile(filepath.Join(clients, name+".json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	registry, err := asruntime.NewDirectoryRegistry(clients, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	asCtx, stopAS := context.WithCancel(context.Background())
	defer stopAS()
	as, err := asruntime.Start(asCtx, asruntime.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &asServing, nil },
		TrustAnchors:   clientCA.Pool(),
		Registry:       registry,
		Logger:         slog.New(slog.DiscardHandler),
	}, "127.0.0.1:0", "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}

	proxyCA := rstest.NewCA(t, "proxy serving CA")
	certFile, keyFile := writeKeyPair(t, dir, proxyCA.ServingCertificate(t))
	introCert, introKey := writeKeyPair(t, t.TempDir(), clientCA.ClientCertificate(t, "proxy"))
	issuerCAFile := filepath.Join(dir, "issuer-ca.pem")
	writePEM(t, issuerCAFile, "CERTIFICATE", servingCA.Cert.Raw)
	listen := freeAddress(t)
	up := newUpstream(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- resourceproxy.Run(ctx, []string{
			"--upstream", up.url.String(), "--issuer", as.Issuer, "--audience", audience,
			"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--issuer-ca-file", issuerCAFile, "--listen-address", listen,
			"--introspect", "--introspection-client-id", "proxy", "--introspection-cache-ttl", "0",
			"--introspection-client-cert-file", introCert, "--introspection-client-key-file", introKey,
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	billing := clientCA.ClientCertificate(t, "billing")
	asClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: servingCA.Pool(), Certificates: []tls.Certificate{billing},
	}}, Timeout: 10 * time.Second}
	post := func(path string, form url.Values) *http.Response {
		t.Helper()
		form.Set("client_id", "billing")
		resp, err := asClient.PostForm(as.MTLSBaseURL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
		return resp
	}
	resp := post("/token", url.Values{"grant_type": {"client_credentials"}})
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}

	c := client(proxyCA, &billing)
	get := func() *http.Response {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			resp, err := c.Do(authorized(t, "https://"+listen+"/", tok.AccessToken))
			if err == nil {
				resp.Body.Close()
				return resp
			}
			if time.Now().After(deadline) {
				t.Fatalf("proxy never answered: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if resp := get(); resp.StatusCode != http.StatusOK {
		t.Fatalf("an active token: %s", resp.Status)
	}
	post("/revoke", url.Values{"token": {tok.AccessToken}}).Body.Close()
	resp = get()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != `Bearer error="invalid_token", error_description="the access token is not active"` {
		t.Fatalf("a revoked token: %s %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	if _, hits := up.seen(); hits != 1 {
		t.Fatalf("the upstream saw %d requests, want 1", hits)
	}
}

// Package interop drives the authorization server and the resource proxy
// with third-party clients over real TLS on loopback: the openid-client npm
// package (RFC 8705 tls_client_auth through mtls_endpoint_aliases) obtains
// a certificate-bound token, and curl presents it to the resource proxy with
// the right certificate and with a thief's.
package interop

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certbound/certbound/asruntime"
	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/asruntime/resourceproxy"
	"github.com/certbound/certbound/asruntime/resourceserver"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
)

const resource = "https://payments.example"

// system is an authorization server and a resource proxy in front of an
// upstream that echoes the identity headers it receives.
type system struct {
	dir        string
	issuer     string
	servingCA  *rstest.CA
	clientsCA  *rstest.CA
	proxyURL   string
	servingPEM string
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeKeyPair writes a tls.Certificate as PEM files for curl and node.
func writeKeyPair(t *testing.T, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	var chain []byte
	for _, der := range c.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	key, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, filepath.Join(dir, name+".crt"), chain),
		writeFile(t, filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}))
}

func startSystem(t *testing.T) *system {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := &system{dir: t.TempDir(), servingCA: rstest.NewCA(t, "serving CA"), clientsCA: rstest.NewCA(t, "clients CA")}
	s.servingPEM = writeFile(t, filepath.Join(s.dir, "serving-ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.servingCA.Cert.Raw}))
	serving := s.servingCA.ServingCertificate(t)

	clientsDir := filepath.Join(s.dir, "clients")
	if err := os.Mkdir(clientsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{
		"client_id":                  "billing.worker",
		"token_endpoint_auth_method": "tls_client_auth",
		"tls_client_auth_subject_dn": "CN=billing-worker",
		"grant_types":                []string{"client_credentials"},
		"scope":                      "payments.read payments.write",
		"resources":                  []string{resource},
		"tls_client_certificate_bound_access_tokens": true,
	})
	writeFile(t, filepath.Join(clientsDir, "billing.json"), doc)
	registry, err := asruntime.NewDirectoryRegistry(clientsDir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := asruntime.Listen("127.0.0.1:0", "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ls.Close)
	s.issuer = "https://" + ls.Public.Addr().String()
	srv, err := asruntime.New(asruntime.Config{
		Issuer:         s.issuer,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil },
		TrustAnchors:   s.clientsCA.Pool(),
		Registry:       registry,
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ctx, ls) }()

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "client=%s scope=%s authorization=%q", r.Header.Get(resourceproxy.HeaderClientID), r.Header.Get(resourceproxy.HeaderScope), r.Header.Get("Authorization"))
	}))
	t.Cleanup(upstream.Close)
	upstreamURL, _ := url.Parse(upstream.URL)
	verifier, err := resourceserver.New(resourceserver.Config{Issuer: s.issuer, Audience: resource, RootCAs: s.servingCA.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	proxy, err := resourceproxy.New(resourceproxy.Config{
		Upstream:       upstreamURL,
		Verifier:       verifier,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	proxyListener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = proxy.Serve(ctx, proxyListener) }()
	s.proxyURL = "https://" + proxyListener.Addr().String()
	return s
}

// npmInstall installs the pinned openid-client into the test's package
// directory once (the only download: from the npm registry).
func npmInstall(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "openid-client", "package.json")); err == nil {
		return
	}
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token is not a JWS compact serialization: %d parts", len(parts))
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

func curl(t *testing.T, args ...string) (status int, body string) {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"--silent", "--show-error", "--max-time", "10", "--write-out", "\n%{http_code}"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	text := strings.TrimRight(string(out), "\n")
	i := strings.LastIndex(text, "\n")
	fmt.Sscan(text[i+1:], &status)
	return status, text[:max(i, 0)]
}

func TestOpenIDClientGetsABoundTokenThatOnlyItsCertificateCanUse(t *testing.T) {
	for _, tool := range []string{"node", "npm", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH; the interop tests need it", tool)
		}
	}
	s := startSystem(t)
	worker := s.clientsCA.ClientCertificate(t, "billing-worker")
	workerCert, workerKey := writeKeyPair(t, s.dir, "worker", worker)
	thief := s.clientsCA.ClientCertificate(t, "thief")
	thiefCert, thiefKey := writeKeyPair(t, s.dir, "thief", thief)

	pkg, err := filepath.Abs("openid-client")
	if err != nil {
		t.Fatal(err)
	}
	npmInstall(t, pkg)
	out := runOpenIDClient(t, filepath.Join(pkg, "token.mjs"),
		"CERTBOUND_ISSUER="+s.issuer,
		"CERTBOUND_CLIENT_ID=billing.worker",
		"CERTBOUND_CERT_FILE="+workerCert,
		"CERTBOUND_KEY_FILE="+workerKey,
		"CERTBOUND_CA_FILE="+s.servingPEM,
		"CERTBOUND_SCOPE=payments.read",
	)
	var resp struct {
		TokenEndpoint string `json:"token_endpoint"`
		AccessToken   string `json:"access_token"`
		TokenType     string `json:"token_type"`
		Scope         string `json:"scope"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("openid-client output %q: %v", out, err)
	}
	if !strings.HasSuffix(resp.TokenEndpoint, "/token") || strings.HasPrefix(resp.TokenEndpoint, s.issuer+"/") {
		t.Errorf("openid-client used token endpoint %q, want the mTLS alias (not under %s)", resp.TokenEndpoint, s.issuer)
	}
	if !strings.EqualFold(resp.TokenType, "bearer") {
		t.Errorf("token_type = %q, want Bearer", resp.TokenType)
	}
	claims := jwtClaims(t, resp.AccessToken)
	cnf, _ := claims["cnf"].(map[string]any)
	if got, want := cnf[certbinding.ConfirmationKey], certbinding.Thumbprint(worker.Certificate[0]); got != want {
		t.Fatalf("cnf.x5t#S256 = %v, want the worker certificate's thumbprint %s", got, want)
	}
	if claims["client_id"] != "billing.worker" || claims["scope"] != "payments.read" || claims["aud"] != resource {
		t.Errorf("claims client_id=%v scope=%v aud=%v", claims["client_id"], claims["scope"], claims["aud"])
	}

	bearer := "Authorization: Bearer " + resp.AccessToken
	status, body := curl(t, "--cacert", s.servingPEM, "--cert", workerCert, "--key", workerKey, "-H", bearer, s.proxyURL+"/invoices")
	if status != http.StatusOK || !strings.Contains(body, "client=billing.worker") || !strings.Contains(body, "scope=payments.read") {
		t.Fatalf("the worker's own call: %d %q, want 200 with its identity forwarded", status, body)
	}
	if !strings.Contains(body, `authorization=""`) {
		t.Errorf("the bound token reached the upstream: %q", body)
	}

	// A thief with the token and a certificate from the same CA.
	status, _ = curl(t, "--cacert", s.servingPEM, "--cert", thiefCert, "--key", thiefKey, "-H", bearer,
		"--dump-header", filepath.Join(s.dir, "thief-headers"), s.proxyURL+"/invoices")
	headers, _ := os.ReadFile(filepath.Join(s.dir, "thief-headers"))
	if status != http.StatusUnauthorized || !strings.Contains(string(headers), `error="invalid_token"`) {
		t.Fatalf("the thief's call: %d, headers %q; want 401 with error=\"invalid_token\"", status, headers)
	}
	// The same token with no client certificate at all.
	status, _ = curl(t, "--cacert", s.servingPEM, "-H", bearer, s.proxyURL+"/invoices")
	if status != http.StatusUnauthorized {
		t.Fatalf("a call without a client certificate: %d, want 401", status)
	}
}

// TestCurlGetsABoundTokenAtTheMTLSAlias uses curl as the OAuth client, the
// way a shell script in a workload would.
func TestCurlGetsABoundTokenAtTheMTLSAlias(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is not on PATH; the interop tests need it")
	}
	s := startSystem(t)
	worker := s.clientsCA.ClientCertificate(t, "billing-worker")
	workerCert, workerKey := writeKeyPair(t, s.dir, "worker", worker)

	status, body := curl(t, "--cacert", s.servingPEM, s.issuer+"/.well-known/oauth-authorization-server")
	if status != http.StatusOK {
		t.Fatalf("metadata: %d %s", status, body)
	}
	var md struct {
		Aliases map[string]string `json:"mtls_endpoint_aliases"`
	}
	if err := json.Unmarshal([]byte(body), &md); err != nil || md.Aliases["token_endpoint"] == "" {
		t.Fatalf("metadata has no mTLS token endpoint alias: %v %s", err, body)
	}
	status, body = curl(t, "--cacert", s.servingPEM, "--cert", workerCert, "--key", workerKey,
		"-d", "grant_type=client_credentials", "-d", "client_id=billing.worker", md.Aliases["token_endpoint"])
	if status != http.StatusOK {
		t.Fatalf("token: %d %s", status, body)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(body), &tok); err != nil {
		t.Fatal(err)
	}
	cnf, _ := jwtClaims(t, tok.AccessToken)["cnf"].(map[string]any)
	if cnf[certbinding.ConfirmationKey] != certbinding.Thumbprint(worker.Certificate[0]) {
		t.Fatalf("cnf = %v, want the worker's thumbprint", cnf)
	}
	// Without its certificate the bound client is refused, not given an unbound token.
	status, body = curl(t, "--cacert", s.servingPEM, "-d", "grant_type=client_credentials", "-d", "client_id=billing.worker", md.Aliases["token_endpoint"])
	if status != http.StatusUnauthorized || !strings.Contains(body, "invalid_client") {
		t.Fatalf("token without a certificate: %d %s, want 401 invalid_client", status, body)
	}
}

// runOpenIDClient runs an openid-client script with node and env added to
// this process's environment, and returns its standard output; a failed
// run fails the test with the script's standard error.
func runOpenIDClient(t *testing.T, script string, env ...string) []byte {
	t.Helper()
	node := exec.Command("node", script)
	node.Env = append(os.Environ(), env...)
	out, err := node.Output()
	if err != nil {
		var stderr []byte
		if exitErr, ok := err.(*exec.ExitError); ok {
			stderr = exitErr.Stderr
		}
		t.Fatalf("openid-client %s: %v\n%s", filepath.Base(script), err, stderr)
	}
	return out
}

package asruntime

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certbound/certbound/asruntime/certbinding"
)

func TestGarbageClientCertificateFailsTheHandshakeOnly(t *testing.T) {
	as := startAS(t, map[string]map[string]any{"post.json": secretClient("post", AuthMethodClientSecretPost, nil)})
	garbage := tls.Certificate{Certificate: [][]byte{[]byte("definitely not DER")}, PrivateKey: newKey(t)}
	c := as.client(&garbage)
	req, _ := http.NewRequest(http.MethodPost, as.mtlsURL+tokenPath, strings.NewReader(ccForm("post", "client_secret", "s3cret+/=-correct-horse-battery-staple").Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("a garbage certificate got HTTP %d", resp.StatusCode)
	}
	if resp := as.post(t, as.client(nil), as.mtlsURL, ccForm("post", "client_secret", "s3cret+/=-correct-horse-battery-staple")); resp.status != http.StatusOK {
		t.Fatalf("the server stopped serving: %d %s", resp.status, resp.raw)
	}
}

func TestServingCertificateReload(t *testing.T) {
	as := startAS(t, nil)
	served := func() string {
		conn, err := tls.Dial("tcp", strings.TrimPrefix(as.mtlsURL, "https://"), &tls.Config{RootCAs: as.servingCA.pool()})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if cn := served(); cn != "as" {
		t.Fatalf("served %q", cn)
	}
	key := newKey(t)
	renewed := createCert(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "as renewed"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, as.servingCA.cert, key.Public(), as.servingCA.key)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	// A half-done update (new certificate, old key) keeps the old pair. The
	// watcher reacts to the write by itself; reading here as well makes
	// sure the mismatched pair has been read before the assertion.
	writePEM(t, filepath.Join(as.servingDir, "tls.crt"), "CERTIFICATE", renewed.Raw)
	if err := as.certs.ReadCertificate(); err == nil {
		t.Fatal("a certificate with the previous key loaded as a pair")
	}
	if cn := served(); cn != "as" {
		t.Fatalf("a mismatched pair was served: %q", cn)
	}
	// The key completes the pair; the running watcher picks it up unaided.
	writePEM(t, filepath.Join(as.servingDir, "tls.key"), "PRIVATE KEY", keyDER)
	waitFor(t, "the renewed certificate", func() bool { return served() == "as renewed" })
}

// TestCurlInterop has the real curl obtain a bound token over mTLS.
func TestCurlInterop(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	as := startAS(t, map[string]map[string]any{
		"billing.json": pkiClient("billing", "tls_client_auth_subject_dn", "cn=billing worker,  o=ACME"),
	})
	cert := as.clientCA.leaf(t, x509.Certificate{Subject: pkix.Name{CommonName: "Billing Worker", Organization: []string{"Acme"}}})
	dir := t.TempDir()
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(dir, "client.crt"), "CERTIFICATE", cert.Certificate[0])
	writePEM(t, filepath.Join(dir, "client.key"), "PRIVATE KEY", keyDER)
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", as.servingCA.cert.Raw)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--fail-with-body",
		"--cert", filepath.Join(dir, "client.crt"), "--key", filepath.Join(dir, "client.key"),
		"--cacert", filepath.Join(dir, "ca.crt"),
		"-d", "grant_type=client_credentials", "-d", "client_id=billing",
		as.mtlsURL+tokenPath).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("curl: %v: %s %s", err, out, ee.Stderr)
		}
		t.Fatalf("curl: %v", err)
	}
	var resp struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("curl output %q: %v", out, err)
	}
	parts := strings.Split(resp.AccessToken, ".")
	if len(parts) != 3 || resp.TokenType != "Bearer" {
		t.Fatalf("response %s", out)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Cnf map[string]string `json:"cnf"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Cnf[certbinding.ConfirmationKey] != certbinding.Thumbprint(cert.Certificate[0]) {
		t.Fatalf("cnf %v, want the thumbprint of curl's certificate", claims.Cnf)
	}
	as.claims(t, resp.AccessToken)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestRunAuthorizationServer(t *testing.T) {
	servingCA, clientCA := newCA(t, "serving CA"), newCA(t, "client CA")
	dir, clients := t.TempDir(), t.TempDir()
	key := newKey(t)
	serving := createCert(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "as"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, servingCA.cert, key.Public(), servingCA.key)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	writePEM(t, filepath.Join(dir, "tls.crt"), "CERTIFICATE", serving.Raw)
	writePEM(t, filepath.Join(dir, "tls.key"), "PRIVATE KEY", keyDER)
	writePEM(t, filepath.Join(dir, "ca.crt"), "CERTIFICATE", clientCA.cert.Raw)
	writeClient(t, clients, "pki.json", pkiClient("pki", "tls_client_auth_san_dns", "pki.example"))
	public, mtls, metrics := freePort(t), freePort(t), freePort(t)
	base := []string{
		"--tls-cert-file", filepath.Join(dir, "tls.crt"), "--tls-key-file", filepath.Join(dir, "tls.key"),
		"--client-ca-file", filepath.Join(dir, "ca.crt"), "--clients-dir", clients,
	}

	t.Run("flag errors", func(t *testing.T) {
		with := func(extra ...string) []string {
			return append(append([]string{"--issuer", "https://x"}, base...), extra...)
		}
		for name, c := range map[string]struct {
			args []string
			want string
		}{
			"no issuer":                  {base, "--issuer is required"},
			"an http issuer":             {with("--issuer", "http://x"), "https"},
			"an unknown flag":            {with("--nope"), "not defined"},
			"a stray argument":           {with("extra"), "unexpected arguments"},
			"a missing CA file":          {with("--client-ca-file", filepath.Join(dir, "nope")), "--client-ca-file"},
			"a CA file without PEM":      {with("--client-ca-file", filepath.Join(dir, "tls.key")), "no PEM certificates"},
			"a bad log level":            {with("--log-level", "loud"), "--log-level"},
			"a missing key file":         {with("--tls-key-file", filepath.Join(dir, "nope")), "serving key"},
			"a bad signing key":          {with("--signing-key-file", filepath.Join(dir, "tls.crt")), "signing keys"},
			"two registries":             {with("--registry-namespace", "auth", "--registry-authorization-server", "payments"), "alternatives"},
			"proxies without a header":   {with("--trusted-proxy-cidrs", "10.0.0.0/8"), "needs --client-cert-header"},
			"an unknown header format":   {with("--client-cert-header", "haproxy", "--trusted-proxy-cidrs", "10.0.0.0/8"), "format"},
			"a state dir that is a file": {with("--state-dir", filepath.Join(dir, "tls.crt")), "--state-dir"},
			"a zero revocation limit":    {with("--revocation-max-entries", "0"), "--revocation-max-entries"},
			"two revocation stores": {
				with("--state-dir", t.TempDir(), "--revocation-namespace", "auth", "--revocation-authorization-server", "payments"),
				"alternatives",
			},
			"an in-cluster revocation store without a server": {with("--revocation-namespace", "auth"), "--revocation-authorization-server"},
			"a revocation server without a namespace":         {with("--revocation-authorization-server", "payments"), "needs --revocation-namespace"},
			"half an in-cluster registry": {
				append([]string{"--issuer", "https://x", "--tls-cert-file", "c", "--tls-key-file", "k"}, "--registry-namespace", "auth"),
				"needs both",
			},
			"no registry": {[]string{"--issuer", "https://x", "--tls-cert-file", "c", "--tls-key-file", "k"}, "a registry is required"},
		} {
			err := RunAuthorizationServer(context.Background(), c.args)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s: error %v, want one mentioning %q", name, err, c.want)
			}
		}
	})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	args := append([]string{"--issuer", "https://" + public, "--listen-address", public, "--mtls-listen-address", mtls,
		"--metrics-address", metrics, "--log-level", "error", "--state-dir", t.TempDir(),
		"--client-cert-header", "xfcc", "--trusted-proxy-cidrs", "192.0.2.0/24"}, base...)
	go func() { done <- RunAuthorizationServer(ctx, args) }()
	waitFor(t, "readiness", func() bool {
		resp, err := http.Get("http://" + metrics + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	as := &testAS{servingCA: servingCA, publicURL: "https://" + public, mtlsURL: "https://" + mtls}
	cert := clientCA.leaf(t, x509.Certificate{DNSNames: []string{"pki.example"}})
	if resp := as.post(t, as.client(&cert), as.mtlsURL, ccForm("pki")); resp.status != http.StatusOK {
		t.Fatalf("%d %s", resp.status, resp.raw)
	}
	mdResp, err := as.client(nil).Get(as.publicURL + metadataPath)
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	_, _ = md.ReadFrom(mdResp.Body)
	mdResp.Body.Close()
	if !strings.Contains(md.String(), `"token_endpoint":"https://`+mtls+`/token"`) {
		t.Fatalf("the default mTLS base URL is not the issuer host with the mTLS port: %s", md.String())
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("RunAuthorizationServer did not return after cancellation")
	}
}

// unsyncedRegistry is a registry whose first list has not completed.
type unsyncedRegistry struct{}

func (unsyncedRegistry) Clients() *ClientSet { return &ClientSet{} }
func (unsyncedRegistry) Synced() bool        { return false }

func TestNotReadyUntilTheRegistrySynced(t *testing.T) {
	as := startAS(t, nil)
	reloader := as.srv.getCertificate
	srv, err := New(Config{Issuer: "https://127.0.0.1", GetCertificate: reloader, Registry: unsyncedRegistry{}})
	if err != nil {
		t.Fatal(err)
	}
	ls, err := Listen("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ls) }()
	defer func() {
		cancel()
		<-done
	}()
	waitFor(t, "the listeners", func() bool {
		resp, err := http.Get("http://" + ls.Metrics.Addr().String() + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	resp, err := http.Get("http://" + ls.Metrics.Addr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz = %d before the registry synced", resp.StatusCode)
	}
}

// TestStart runs the one-call API the way another package's test would.
func TestStart(t *testing.T) {
	servingCA, clientCA := newCA(t, "serving CA"), newCA(t, "client CA")
	key := newKey(t)
	serving := createCert(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "as"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, servingCA.cert, key.Public(), servingCA.key)
	servingPair := &tls.Certificate{Certificate: [][]byte{serving.Raw}, PrivateKey: key}
	dir := t.TempDir()
	writeClient(t, dir, "pki.json", pkiClient("pki", "tls_client_auth_san_dns", "pki.example"))
	registry, err := NewDirectoryRegistry(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	st, err := Start(ctx, Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return servingPair, nil },
		TrustAnchors:   clientCA.pool(),
		Registry:       registry,
	}, "127.0.0.1:0", "127.0.0.1:0", "")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if st.Issuer != "https://"+st.Public.String() || st.MTLSBaseURL != "https://"+st.MTLS.String() || st.Metrics != nil {
		t.Fatalf("started %+v", st)
	}
	as := &testAS{servingCA: servingCA, publicURL: st.Issuer, mtlsURL: st.MTLSBaseURL}
	cert := clientCA.leaf(t, x509.Certificate{DNSNames: []string{"pki.example"}})
	resp := as.post(t, as.client(&cert), st.MTLSBaseURL, ccForm("pki"))
	if resp.status != http.StatusOK {
		t.Fatalf("%d %s", resp.status, resp.raw)
	}
	if claims := as.claims(t, resp.body["access_token"].(string)); claims["iss"] != st.Issuer {
		t.Fatalf("iss %v", claims["iss"])
	}
	cancel()
	if err := st.Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(context.Background(), Config{}, "127.0.0.1:0", "127.0.0.1:0", ""); err == nil {
		t.Fatal("Start accepted a config without certificate and registry")
	}
}

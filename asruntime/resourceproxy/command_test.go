package resourceproxy_test

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certbound/certbound/asruntime/resourceproxy"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
	"github.com/certbound/certbound/internal/poll"
)

func TestRunRefusesBadFlags(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeKeyPair(t, dir, rstest.NewCA(t, "CA").ServingCertificate(t))
	secretFile, emptyFile := filepath.Join(dir, "secret"), filepath.Join(dir, "empty")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(emptyFile, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	complete := func(extra ...string) []string {
		return append([]string{
			"--upstream", "http://127.0.0.1:1", "--issuer", "https://as.example", "--audience", audience,
			"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--listen-address", "127.0.0.1:0",
		}, extra...)
	}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no flags name every required one", nil,
			"missing required flags: --upstream, --issuer, --audience, --tls-cert-file, --tls-key-file"},
		{"a missing --upstream is named", []string{"--issuer", "https://as.example", "--audience", audience, "--tls-cert-file", certFile, "--tls-key-file", keyFile},
			"missing required flags: --upstream"},
		{"an unknown flag", complete("--upstreams", "x"), "flag provided but not defined: -upstreams"},
		{"a stray argument", complete("extra"), "unexpected arguments: extra"},
		{"an upstream that is not http", complete("--upstream", "ftp://files.example"), "upstream must be an absolute http or https URL"},
		{"an http issuer", complete("--issuer", "http://as.example"), `issuer: "http://as.example" is not an absolute https URL`},
		{"an unreadable serving certificate", complete("--tls-cert-file", filepath.Join(dir, "missing.crt")), "--tls-cert-file/--tls-key-file: load serving certificate"},
		{"a client CA file without certificates", complete("--client-ca-file", keyFile), "--client-ca-file: " + keyFile + " holds no PEM certificate"},
		{"a missing issuer CA file", complete("--issuer-ca-file", filepath.Join(dir, "missing.pem")), "--issuer-ca-file: open"},
		{"an introspection flag without --introspect", complete("--introspection-client-id", "proxy"), "the --introspection-* flags and --allow-opaque-tokens need --introspect"},
		{"--allow-opaque-tokens without --introspect", complete("--allow-opaque-tokens"), "the --introspection-* flags and --allow-opaque-tokens need --introspect"},
		{"a proxy CA without a proxy subject", complete("--client-cert-header", "xfcc", "--trusted-proxy-cidrs", "10.0.0.0/8", "--trusted-proxy-ca-file", certFile),
			"--trusted-proxy-ca-file and --trusted-proxy-subject go together"},
		{"--introspect without a client_id", complete("--introspect", "--introspection-client-secret-file", secretFile), "--introspect needs --introspection-client-id"},
		{"--introspect without credentials", complete("--introspect", "--introspection-client-id", "proxy"), "exactly one of"},
		{"--introspect with a certificate and a secret", complete("--introspect", "--introspection-client-id", "proxy",
			"--introspection-client-cert-file", certFile, "--introspection-client-key-file", keyFile, "--introspection-client-secret-file", secretFile), "exactly one of"},
		{"--introspect with a certificate but no key", complete("--introspect", "--introspection-client-id", "proxy", "--introspection-client-cert-file", certFile), "go together"},
		{"--introspect with a missing secret file", complete("--introspect", "--introspection-client-id", "proxy",
			"--introspection-client-secret-file", filepath.Join(dir, "missing")), "--introspection-client-secret-file: open"},
		{"--introspect with an empty secret file", complete("--introspect", "--introspection-client-id", "proxy", "--introspection-client-secret-file", emptyFile), "is empty"},
		{"--introspect with an unreadable certificate", complete("--introspect", "--introspection-client-id", "proxy",
			"--introspection-client-cert-file", filepath.Join(dir, "missing.crt"), "--introspection-client-key-file", keyFile), "--introspection-client-cert-file/--introspection-client-key-file"},
		{"--introspect with an http endpoint", complete("--introspect", "--introspection-client-id", "proxy",
			"--introspection-client-secret-file", secretFile, "--introspection-url", "http://as.example/introspect"), "introspection endpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := resourceproxy.Run(t.Context(), tc.args)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Run error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// freeAddress returns a loopback address nothing listens on, for Run,
// which takes an address rather than a listener.
func freeAddress(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestRunServesUntilCancelled(t *testing.T) {
	as := rstest.NewAuthority(t)
	up := newUpstream(t)
	dir := t.TempDir()
	servingCA := rstest.NewCA(t, "serving CA")
	certFile, keyFile := writeKeyPair(t, dir, servingCA.ServingCertificate(t))
	issuerCAFile := filepath.Join(dir, "issuer-ca.pem")
	writePEM(t, issuerCAFile, "CERTIFICATE", as.CA.Cert.Raw)
	listen, metrics := freeAddress(t), freeAddress(t)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- resourceproxy.Run(ctx, []string{
			"--upstream", up.url.String(), "--issuer", as.Issuer, "--audience", audience,
			"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--issuer-ca-file", issuerCAFile,
			"--listen-address", listen, "--metrics-address", metrics,
		})
	}()

	cert := rstest.NewCA(t, "client CA").ClientCertificate(t, "orders-worker")
	c := client(servingCA, &cert)
	var status int
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := c.Do(authorized(t, "https://"+listen+"/", as.Token(t, "orders", audience, &cert)))
		if err == nil {
			resp.Body.Close()
			status = resp.StatusCode
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy never answered: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if status != 200 {
		t.Fatalf("got %d, want 200", status)
	}

	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `certbound_resource_proxy_requests_total{result="Allowed"} 1`) {
		t.Errorf("metrics do not count the allowed request:\n%s", body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancellation, want nil", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}

// TestServingCertificateIsReloadedWhenItsFilesChange rotates the serving
// certificate the way the kubelet updates a mounted Secret — a new
// timestamped directory, an atomic swap of the ..data symlink, the old
// directory removed — first to a half-done pair, then to a complete one.
func TestServingCertificateIsReloadedWhenItsFilesChange(t *testing.T) {
	as := rstest.NewAuthority(t)
	up := newUpstream(t)
	dir := t.TempDir()
	ca := rstest.NewCA(t, "serving CA")
	first, second := ca.ServingCertificate(t), ca.ServingCertificate(t)
	mount := newSecretMount(t, dir, first.Certificate[0], first.PrivateKey)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	listen, metrics := freeAddress(t), freeAddress(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- resourceproxy.Run(ctx, []string{
			"--upstream", up.url.String(), "--issuer", as.Issuer, "--audience", audience,
			"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--listen-address", listen,
			"--metrics-address", metrics,
		})
	}()
	t.Cleanup(func() { cancel(); <-done })

	served := func() []byte {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			conn, err := tls.Dial("tcp", listen, &tls.Config{RootCAs: ca.Pool()})
			if err == nil {
				defer conn.Close()
				return conn.ConnectionState().PeerCertificates[0].Raw
			}
			if time.Now().After(deadline) {
				t.Fatalf("proxy never answered: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	readErrors := func() int {
		t.Helper()
		resp, err := http.Get("http://" + metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, "certwatcher_read_certificate_errors_total "); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("certwatcher_read_certificate_errors_total %q", v)
				}
				return n
			}
		}
		t.Fatalf("/metrics has no certwatcher_read_certificate_errors_total:\n%s", body)
		return 0
	}
	if string(served()) != string(first.Certificate[0]) {
		t.Fatal("the proxy does not serve the certificate from --tls-cert-file")
	}

	// The new certificate with the old key: the pair fails to load, is
	// counted, and the old certificate stays in service.
	before := readErrors()
	mount.update(second.Certificate[0], first.PrivateKey)
	waitUntil(t, "the half-done pair to be read", func() bool { return readErrors() > before })
	if string(served()) != string(first.Certificate[0]) {
		t.Fatal("the proxy stopped serving the previous certificate after a half-done update")
	}

	mount.update(second.Certificate[0], second.PrivateKey)
	waitUntil(t, "the renewed certificate", func() bool { return string(served()) == string(second.Certificate[0]) })
}

// secretMount lays files out as the kubelet does for a Secret volume:
// tls.crt -> ..data/tls.crt, ..data -> ..<version>.
type secretMount struct {
	t       *testing.T
	dir     string
	version int
}

func newSecretMount(t *testing.T, dir string, certDER []byte, key crypto.PrivateKey) *secretMount {
	m := &secretMount{t: t, dir: dir}
	m.update(certDER, key)
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// update writes a new version directory, swaps ..data to it atomically and
// removes the previous version.
func (m *secretMount) update(certDER []byte, key crypto.PrivateKey) {
	t := m.t
	t.Helper()
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	m.version++
	version := fmt.Sprintf("..v%d", m.version)
	if err := os.Mkdir(filepath.Join(m.dir, version), 0o700); err != nil {
		t.Fatal(err)
	}
	writePEM(t, filepath.Join(m.dir, version, "tls.crt"), "CERTIFICATE", certDER)
	writePEM(t, filepath.Join(m.dir, version, "tls.key"), "PRIVATE KEY", keyDER)
	if err := os.Symlink(version, filepath.Join(m.dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(m.dir, "..data_tmp"), filepath.Join(m.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if m.version > 1 {
		if err := os.RemoveAll(filepath.Join(m.dir, fmt.Sprintf("..v%d", m.version-1))); err != nil {
			t.Fatal(err)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	poll.Until(t, 15*time.Second, what, func() (bool, string) { return cond(), "" })
}

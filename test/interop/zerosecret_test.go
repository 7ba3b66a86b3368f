package interop

// Zero-Secret workloads (RFC 8705 §4) with third-party clients: curl with
// a certificate made by the openssl CLI, and openid-client, exchange a
// service account token from a real kube-apiserver for a token bound to
// their self-signed certificate, and refresh it over the same certificate.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/certbound/certbound/asruntime"
	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/asruntime/resourceserver/rstest"
	"github.com/certbound/certbound/test/testenv"
)

const (
	grantTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
)

// zeroSecretSystem is an authorization server that reviews service
// account tokens with a real API server, with the public client
// team.worker for the service account team/worker.
type zeroSecretSystem struct {
	dir          string
	issuer       string
	servingPEM   string
	subjectToken string
}

func startZeroSecretSystem(t *testing.T) *zeroSecretSystem {
	t.Helper()
	env, err := testenv.Start(testenv.Options{WithoutCertManager: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	kube := kubernetes.NewForConfigOrDie(env.Config)
	if err := env.CreateNamespace(ctx, "team"); err != nil {
		t.Fatal(err)
	}
	if _, err := kube.CoreV1().ServiceAccounts("team").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "worker"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	s := &zeroSecretSystem{dir: t.TempDir()}
	servingCA := rstest.NewCA(t, "serving CA")
	s.servingPEM = writeFile(t, filepath.Join(s.dir, "serving-ca.crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: servingCA.Cert.Raw}))
	serving := servingCA.ServingCertificate(t)
	clientsDir := filepath.Join(s.dir, "clients")
	if err := os.Mkdir(clientsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	doc, _ := json.Marshal(map[string]any{
		"client_id":                  "team.worker",
		"token_endpoint_auth_method": "none",
		"service_account":            "system:serviceaccount:team:worker",
		"grant_types":                []string{grantTokenExchange, "refresh_token"},
		"scope":                      "payments.read payments.write",
		"resources":                  []string{resource},
		"tls_client_certificate_bound_access_tokens": true,
	})
	writeFile(t, filepath.Join(clientsDir, "worker.json"), doc)
	registry, err := asruntime.NewDirectoryRegistry(clientsDir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	as, err := asruntime.Start(ctx, asruntime.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &serving, nil },
		Registry:       registry,
		TokenReviewer:  asruntime.NewKubeTokenReviewer(kube),
	}, "127.0.0.1:0", "127.0.0.1:0", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = as.Wait() })
	s.issuer = as.Issuer
	tr, err := kube.CoreV1().ServiceAccounts("team").CreateToken(ctx, "worker", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{s.issuer}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.subjectToken = writeFile(t, filepath.Join(s.dir, "certbound-token"), []byte(tr.Status.Token))
	return s
}

// opensslSelfSigned makes a P-256 key and a self-signed certificate with
// the openssl CLI, as a shell-scripted workload would.
func opensslSelfSigned(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-keyout", keyFile, "-out", certFile, "-days", "1", "-subj", "/CN="+name).CombinedOutput()
	if err != nil {
		t.Fatalf("openssl req: %v\n%s", err, out)
	}
	return certFile, keyFile
}

// pemThumbprint is the x5t#S256 of the certificate in a PEM file.
func pemThumbprint(t *testing.T, certFile string) string {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM block", certFile)
	}
	return certbinding.Thumbprint(block.Bytes)
}

type zeroSecretTokens struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope"`
	RefreshToken    string `json:"refresh_token"`
	Error           string `json:"error"`
}

func boundTo(t *testing.T, accessToken string) any {
	t.Helper()
	cnf, _ := jwtClaims(t, accessToken)["cnf"].(map[string]any)
	return cnf[certbinding.ConfirmationKey]
}

func TestZeroSecretWorkloadsWithCurlAndOpenIDClient(t *testing.T) {
	for _, tool := range []string{"curl", "openssl", "node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not on PATH; the interop tests need it", tool)
		}
	}
	s := startZeroSecretSystem(t)
	status, body := curl(t, "--cacert", s.servingPEM, s.issuer+"/.well-known/oauth-authorization-server")
	var md struct {
		GrantTypes  []string          `json:"grant_types_supported"`
		AuthMethods []string          `json:"token_endpoint_auth_methods_supported"`
		Aliases     map[string]string `json:"mtls_endpoint_aliases"`
	}
	if err := json.Unmarshal([]byte(body), &md); status != http.StatusOK || err != nil {
		t.Fatalf("metadata: %d %v %s", status, err, body)
	}
	if !slices.Contains(md.GrantTypes, grantTokenExchange) || !slices.Contains(md.GrantTypes, "refresh_token") || !slices.Contains(md.AuthMethods, "none") {
		t.Fatalf("metadata advertises grants %v and methods %v, want token exchange, refresh_token and none", md.GrantTypes, md.AuthMethods)
	}
	tokenEndpoint := md.Aliases["token_endpoint"]

	t.Run("curl", func(t *testing.T) {
		cert, key := opensslSelfSigned(t, s.dir, "curl-pod")
		post := func(cert, key string, form ...string) (int, zeroSecretTokens) {
			t.Helper()
			args := []string{"--cacert", s.servingPEM, "--cert", cert, "--key", key}
			for _, f := range form {
				args = append(args, "--data-urlencode", f)
			}
			status, body := curl(t, append(args, tokenEndpoint)...)
			var tok zeroSecretTokens
			if err := json.Unmarshal([]byte(body), &tok); err != nil {
				t.Fatalf("token endpoint answered %d with %q", status, body)
			}
			return status, tok
		}
		status, exchanged := post(cert, key, "grant_type="+grantTokenExchange, "client_id=team.worker",
			"subject_token@"+s.subjectToken, "subject_token_type="+tokenTypeJWT, "requested_token_type="+tokenTypeAccess, "scope=payments.read")
		if status != http.StatusOK || exchanged.IssuedTokenType != tokenTypeAccess || !strings.EqualFold(exchanged.TokenType, "bearer") || exchanged.RefreshToken == "" {
			t.Fatalf("exchange: %d %+v", status, exchanged.Error)
		}
		thumbprint := pemThumbprint(t, cert)
		if boundTo(t, exchanged.AccessToken) != thumbprint {
			t.Fatal("the exchanged token is not bound to curl's openssl certificate")
		}
		if claims := jwtClaims(t, exchanged.AccessToken); claims["scope"] != "payments.read" || claims["sub"] != "system:serviceaccount:team:worker" {
			t.Errorf("claims scope=%v sub=%v", claims["scope"], claims["sub"])
		}

		thiefCert, thiefKey := opensslSelfSigned(t, s.dir, "curl-thief")
		if status, tok := post(thiefCert, thiefKey, "grant_type=refresh_token", "client_id=team.worker", "refresh_token="+exchanged.RefreshToken); status != http.StatusBadRequest || tok.Error != "invalid_grant" {
			t.Fatalf("a refresh over another certificate: %d %q, want 400 invalid_grant", status, tok.Error)
		}
		status, refreshed := post(cert, key, "grant_type=refresh_token", "client_id=team.worker", "refresh_token="+exchanged.RefreshToken)
		if status != http.StatusOK || refreshed.RefreshToken == "" || refreshed.RefreshToken == exchanged.RefreshToken {
			t.Fatalf("refresh: %d %q, want a new access token and a rotated refresh token", status, refreshed.Error)
		}
		if boundTo(t, refreshed.AccessToken) != thumbprint {
			t.Fatal("the refreshed token is not bound to curl's certificate")
		}
	})

	t.Run("openid-client", func(t *testing.T) {
		cert, key := opensslSelfSigned(t, s.dir, "node-pod")
		pkg, err := filepath.Abs("openid-client")
		if err != nil {
			t.Fatal(err)
		}
		npmInstall(t, pkg)
		out := runOpenIDClient(t, filepath.Join(pkg, "token-exchange.mjs"),
			"CERTBOUND_ISSUER="+s.issuer,
			"CERTBOUND_CLIENT_ID=team.worker",
			"CERTBOUND_CERT_FILE="+cert,
			"CERTBOUND_KEY_FILE="+key,
			"CERTBOUND_CA_FILE="+s.servingPEM,
			"CERTBOUND_SUBJECT_TOKEN_FILE="+s.subjectToken,
			"CERTBOUND_SCOPE=payments.read payments.write",
		)
		var resp struct {
			TokenEndpoint string           `json:"token_endpoint"`
			Exchanged     zeroSecretTokens `json:"exchanged"`
			Refreshed     zeroSecretTokens `json:"refreshed"`
		}
		if err := json.Unmarshal(out, &resp); err != nil {
			t.Fatalf("openid-client output is not JSON: %v", err)
		}
		if resp.TokenEndpoint != tokenEndpoint {
			t.Errorf("openid-client used token endpoint %q, want the mTLS alias %q", resp.TokenEndpoint, tokenEndpoint)
		}
		thumbprint := pemThumbprint(t, cert)
		if resp.Exchanged.IssuedTokenType != tokenTypeAccess || boundTo(t, resp.Exchanged.AccessToken) != thumbprint {
			t.Fatalf("the exchanged token (issued_token_type %q) is not an access token bound to the node certificate", resp.Exchanged.IssuedTokenType)
		}
		if resp.Refreshed.AccessToken == "" || resp.Refreshed.RefreshToken == resp.Exchanged.RefreshToken || boundTo(t, resp.Refreshed.AccessToken) != thumbprint {
			t.Fatal("the refresh did not give a token bound to the same certificate with a rotated refresh token")
		}
	})
}

package boundtoken

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certbound/certbound/internal/registration"
)

// TestConfigFilesAreTheConfigSecretKeys keeps this package's file names
// equal to the keys the operator writes.
func TestConfigFilesAreTheConfigSecretKeys(t *testing.T) {
	for ours, theirs := range map[string]string{
		ConfigFileClientID:      registration.ConfigKeyClientID,
		ConfigFileIssuer:        registration.ConfigKeyIssuer,
		ConfigFileTokenEndpoint: registration.ConfigKeyTokenEndpoint,
		ConfigFileCA:            registration.ConfigKeyCA,
	} {
		if ours != theirs {
			t.Errorf("config file %q, but the operator writes %q", ours, theirs)
		}
	}
	if GrantTypeTokenExchange != registration.GrantTypeTokenExchange || GrantTypeRefreshToken != registration.GrantTypeRefreshToken {
		t.Error("grant type identifiers differ from the registration contract's")
	}
}

func caPEM(t *testing.T) []byte {
	t.Helper()
	id, err := newIdentity("ca", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: id.cert.Certificate[0]})
}

func TestLoadConfig(t *testing.T) {
	ca := caPEM(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	valid := map[string]string{
		"client_id":      "team.worker\n",
		"issuer":         "https://as.auth.svc",
		"token_endpoint": "https://as.auth.svc:8443/token",
		"ca.crt":         string(ca),
	}
	with := func(key, value string) map[string]string {
		files := map[string]string{}
		for k, v := range valid {
			files[k] = v
		}
		if value == "<absent>" {
			delete(files, key)
		} else {
			files[key] = value
		}
		return files
	}
	for _, tc := range []struct {
		name    string
		files   map[string]string
		wantErr string
	}{
		{"a complete config Secret loads", valid, ""},
		{"without ca.crt the system roots verify the server", with("ca.crt", "<absent>"), ""},
		{"a missing client_id says to mount the config Secret", with("client_id", "<absent>"), "has no client_id: mount the OAuthClient's config Secret"},
		{"a missing token_endpoint is named", with("token_endpoint", "<absent>"), "has no token_endpoint"},
		{"an empty issuer is refused", with("issuer", " \n"), "issuer is empty"},
		{"a plain-HTTP token endpoint is refused", with("token_endpoint", "http://as.auth.svc/token"), "must be an https URL"},
		{"an issuer that is not a URL is refused", with("issuer", "::garbage"), "is not a URL"},
		{"a ca.crt that is not PEM is refused", with("ca.crt", "garbage"), "ca.crt: holds data that is not PEM"},
		{"a ca.crt with a key in it is refused", with("ca.crt", string(ca)+string(keyPEM)), `PEM block of type "PRIVATE KEY"`},
		{"a ca.crt with a corrupt certificate is refused", with("ca.crt", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("junk")}))), "ca.crt: certificate 1"},
		{"an empty ca.crt is refused", with("ca.crt", ""), "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := LoadConfig(dir)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.ClientID != "team.worker" || cfg.TokenEndpoint != valid["token_endpoint"] {
					t.Errorf("loaded %+v", cfg)
				}
				if _, hasCA := tc.files["ca.crt"]; hasCA != (cfg.RootCAs != nil) {
					t.Errorf("RootCAs = %v with ca.crt present: %v", cfg.RootCAs, hasCA)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the directory", err)
			}
		})
	}
}

func TestLoadConfigOfAMissingDirectory(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "absent"))
	if err == nil || !strings.Contains(err.Error(), "mount the OAuthClient's config Secret") {
		t.Fatalf("error %v", err)
	}
}

package boundtoken

// The client-config Secret the operator writes for an OAuthClient, as the
// workload sees it: a mounted directory with one file per key.

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// File names in the config directory: the data keys of the client-config
// Secret (internal/registration's ConfigKey* names; a test keeps them
// equal, so this package does not pull the operator's API types into every
// workload).
const (
	ConfigFileClientID      = "client_id"
	ConfigFileIssuer        = "issuer"
	ConfigFileTokenEndpoint = "token_endpoint"
	ConfigFileCA            = "ca.crt"
)

// Config says where and as whom a workload gets its tokens.
type Config struct {
	// ClientID is the OAuthClient's client_id.
	ClientID string
	// Issuer is the authorization server's issuer identifier, and the
	// audience the projected service-account token must carry.
	Issuer string
	// TokenEndpoint is the mTLS token endpoint (the server's
	// mtls_endpoint_aliases token_endpoint), an https URL.
	TokenEndpoint string
	// RootCAs verify the authorization server's certificate. Nil: the
	// system roots.
	RootCAs *x509.CertPool
}

// LoadConfig reads a mounted client-config Secret. client_id, issuer and
// token_endpoint are required; ca.crt, when present, must hold at least one
// PEM certificate (absent: the system roots verify the server, for an
// authorization server with a publicly trusted certificate).
func LoadConfig(dir string) (*Config, error) {
	var c Config
	for _, f := range []struct {
		name string
		dst  *string
	}{
		{ConfigFileClientID, &c.ClientID},
		{ConfigFileIssuer, &c.Issuer},
		{ConfigFileTokenEndpoint, &c.TokenEndpoint},
	} {
		b, err := os.ReadFile(filepath.Join(dir, f.name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("config directory %s has no %s: mount the OAuthClient's config Secret there", dir, f.name)
		}
		if err != nil {
			return nil, fmt.Errorf("config directory %s: %w", dir, err)
		}
		*f.dst = strings.TrimSpace(string(b))
		if *f.dst == "" {
			return nil, fmt.Errorf("config directory %s: %s is empty", dir, f.name)
		}
	}
	pemCA, err := os.ReadFile(filepath.Join(dir, ConfigFileCA))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("config directory %s: %w", dir, err)
	default:
		if c.RootCAs, err = parseCertificates(pemCA); err != nil {
			return nil, fmt.Errorf("config directory %s: %s: %w", dir, ConfigFileCA, err)
		}
	}
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("config directory %s: %w", dir, err)
	}
	return &c, nil
}

// equal reports whether c and o name the same client, server and roots.
func (c *Config) equal(o *Config) bool {
	return c.ClientID == o.ClientID && c.Issuer == o.Issuer && c.TokenEndpoint == o.TokenEndpoint && c.RootCAs.Equal(o.RootCAs)
}

// check validates a Config built by hand or loaded.
func (c *Config) check() error {
	if c.ClientID == "" {
		return errors.New("no client_id")
	}
	if err := checkHTTPSURL(c.Issuer); err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	if err := checkHTTPSURL(c.TokenEndpoint); err != nil {
		return fmt.Errorf("token_endpoint: %w", err)
	}
	return nil
}

func checkHTTPSURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL", s)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q must be an https URL with a host, no user info and no fragment", s)
	}
	return nil
}

// parseCertificates reads a PEM bundle that must hold only certificates,
// at least one.
func parseCertificates(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			if len(strings.TrimSpace(string(rest))) > 0 {
				return nil, errors.New("holds data that is not PEM")
			}
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("holds a PEM block of type %q, want only CERTIFICATE", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(cert)
		n++
	}
	if n == 0 {
		return nil, errors.New("holds no PEM certificate")
	}
	return pool, nil
}

package asruntime

// self_signed_tls_client_auth (RFC 8705 §2.2): no chain validation; the
// presented certificate must be byte for byte one the client registered,
// as x5c[0] of a key in its jwks or in the JWK Set behind its jwks_uri.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

const (
	// jwksMaxBytes bounds a fetched JWK Set.
	jwksMaxBytes = 64 << 10
	// jwksFetchTimeout bounds one jwks_uri fetch, connection to last byte.
	jwksFetchTimeout = 5 * time.Second
	// jwksRefetchInterval limits refetches of one jwks_uri after a miss, so
	// clients presenting unknown certificates cannot make the server hammer
	// a third party (or itself wait on one) on every request.
	jwksRefetchInterval = time.Minute
)

type selfSignedAuthenticator struct {
	fetcher *jwksFetcher
}

func (a *selfSignedAuthenticator) authenticate(ctx context.Context, client *Client, leaf *x509.Certificate) authFailure {
	if client.jwksURI == "" {
		if containsCertificate(client.selfSignedCerts, leaf.Raw) {
			return ""
		}
		return failCertNotRegistered
	}
	certs, err := a.fetcher.certificates(ctx, client.jwksURI, leaf.Raw)
	switch {
	case containsCertificate(certs, leaf.Raw):
		return ""
	case err != nil:
		return failJWKSUnavailable
	default:
		return failCertNotRegistered
	}
}

func containsCertificate(certs [][]byte, der []byte) bool {
	for _, c := range certs {
		if bytes.Equal(c, der) {
			return true
		}
	}
	return false
}

// jwksFetcher fetches and caches the certificates of jwks_uri documents.
type jwksFetcher struct {
	client  *http.Client
	clock   clock.PassiveClock
	metrics *Metrics
	log     *slog.Logger

	mu      sync.Mutex
	entries map[string]*jwksEntry
}

type jwksEntry struct {
	mu          sync.Mutex
	certs       [][]byte
	lastErr     error
	lastAttempt time.Time
	attempted   bool
}

// newJWKSFetcher makes the HTTP client for jwks_uri: https only (also after
// redirects), TLS 1.2 or later against roots (nil: the system roots, as for
// any public web PKI endpoint), a timeout, no proxy from the environment.
func newJWKSFetcher(roots *x509.CertPool, clk clock.PassiveClock, metrics *Metrics, log *slog.Logger) *jwksFetcher {
	transport := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: jwksFetchTimeout,
		MaxIdleConns:        4,
		IdleConnTimeout:     time.Minute,
	}
	return &jwksFetcher{
		client: &http.Client{
			Transport: transport,
			Timeout:   jwksFetchTimeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if req.URL.Scheme != "https" {
					return errors.New("jwks_uri redirected to a non-https URL")
				}
				if len(via) >= 3 {
					return errors.New("jwks_uri redirected too often")
				}
				return nil
			},
		},
		clock:   clk,
		metrics: metrics,
		log:     log,
		entries: make(map[string]*jwksEntry),
	}
}

// certificates returns the cached certificates of uri, fetching them first
// if der is not among them and the last attempt is more than
// jwksRefetchInterval ago. After a failed fetch the previous certificates
// stay cached and the failure is returned alongside them until a fetch
// succeeds.
func (f *jwksFetcher) certificates(ctx context.Context, uri string, der []byte) ([][]byte, error) {
	f.mu.Lock()
	e, ok := f.entries[uri]
	if !ok {
		e = &jwksEntry{}
		f.entries[uri] = e
	}
	f.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if containsCertificate(e.certs, der) {
		return e.certs, nil
	}
	now := f.clock.Now()
	if e.attempted && now.Sub(e.lastAttempt) < jwksRefetchInterval {
		return e.certs, e.lastErr
	}
	e.attempted, e.lastAttempt = true, now
	certs, err := f.fetch(ctx, uri)
	if err != nil {
		e.lastErr = err
		f.metrics.jwksFetchError()
		f.log.Warn("jwks_uri fetch failed", "jwks_uri", uri, "error", err)
		return e.certs, err
	}
	e.certs, e.lastErr = certs, nil
	return certs, nil
}

func (f *jwksFetcher) fetch(ctx context.Context, uri string) ([][]byte, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("jwks_uri answered HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read jwks_uri: %w", err)
	}
	if len(body) > jwksMaxBytes {
		return nil, fmt.Errorf("jwks_uri document is larger than %d bytes", jwksMaxBytes)
	}
	certs, err := certificatesFromJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("jwks_uri document: %w", err)
	}
	return certs, nil
}

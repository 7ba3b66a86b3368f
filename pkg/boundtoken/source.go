package boundtoken

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/utils/clock"
)

// DefaultTokenFile is where the pod's projected service-account token for
// the authorization server is read from unless Options.TokenFile says
// otherwise: a projected volume mounted at /var/run/secrets/tokens with a
// serviceAccountToken source of path certbound-token.
const DefaultTokenFile = "/var/run/secrets/tokens/certbound-token"

// maxSubjectTokenBytes bounds the projected token file read.
const maxSubjectTokenBytes = 64 << 10

// Options configure a Source.
type Options struct {
	// Config says where and as whom (LoadConfig reads it from the mounted
	// config Secret). Required unless ConfigDir is given.
	Config *Config
	// ConfigDir, when set, is the mounted config Secret: it is read at New
	// (unless Config is given) and again before every renewal, because the
	// kubelet updates a mounted Secret in place — a pod that started before
	// the operator knew the server's CA (no ca.crt yet) picks it up instead
	// of failing verification until it is restarted.
	ConfigDir string
	// TokenFile is the projected service-account token, audience the
	// issuer; it is re-read for every exchange because the kubelet rotates
	// it. Empty: DefaultTokenFile.
	TokenFile string
	// Scopes requested; none: every scope the client is registered for.
	Scopes []string
	// Resources (RFC 8707) the tokens are for; none: the client's
	// registered audiences.
	Resources []string
	// CertificateLifetime is the validity of each generated certificate;
	// a new key and certificate (and a new exchange) replace it at 80% of
	// it. Zero: DefaultCertificateLifetime.
	CertificateLifetime time.Duration
	// Clock is the time source. Nil: the real clock.
	Clock clock.PassiveClock
}

// Source keeps a certificate-bound access token. Its methods are safe for
// concurrent use; at most one renewal is in flight at a time.
type Source struct {
	cfg       *Config
	configDir string
	tokenFile string
	scope     string
	resources []string
	lifetime  time.Duration
	clock     clock.PassiveClock

	renewals singleflight.Group

	mu sync.Mutex
	// id is the current key and certificate, client the token endpoint
	// connection presenting it.
	id     *identity
	client *endpointClient
	// current is the last token issued for id; refreshToken redeems it
	// once ("" once used or refused, which forces an exchange).
	current      *BoundToken
	refreshToken string
	// failures counts consecutive failed renewals; retryAt is when a
	// renewal is tried again while current is still usable.
	failures int
	retryAt  time.Time
}

// BoundToken is an access token and the certificate it is bound to. Its
// String method never shows the token or the key.
type BoundToken struct {
	// AccessToken is the bearer token; send it only over a connection
	// that presents Certificate.
	AccessToken string
	// Scope granted.
	Scope string
	// Expiry is when the token expires.
	Expiry time.Time
	// RefreshAt is when the Source renews it: at about 80% of its lifetime,
	// or earlier when the certificate is due for renewal.
	RefreshAt time.Time
	// Certificate is the self-signed certificate (and in-memory key) the
	// token is bound to.
	Certificate tls.Certificate
	// Thumbprint is the certificate's SHA-256 thumbprint, the token's
	// cnf.x5t#S256 (RFC 8705 §3.1).
	Thumbprint string

	usableUntil time.Time
	id          *identity
}

// String describes the token without revealing it.
func (t *BoundToken) String() string {
	return fmt.Sprintf("bound token (x5t#S256 %s, expires %s)", t.Thumbprint, t.Expiry.UTC().Format(time.RFC3339))
}

// GoString keeps %#v from printing the token and the key.
func (t *BoundToken) GoString() string { return t.String() }

// New checks opts and returns a Source; the first token is fetched on the
// first call that needs one.
func New(opts Options) (*Source, error) {
	if opts.Config == nil && opts.ConfigDir != "" {
		cfg, err := LoadConfig(opts.ConfigDir)
		if err != nil {
			return nil, fmt.Errorf("boundtoken: %w", err)
		}
		opts.Config = cfg
	}
	if opts.Config == nil {
		return nil, errors.New("boundtoken: Options.Config or Options.ConfigDir is required (LoadConfig reads the mounted config Secret)")
	}
	if err := opts.Config.check(); err != nil {
		return nil, fmt.Errorf("boundtoken: %w", err)
	}
	s := &Source{
		cfg:       opts.Config,
		configDir: opts.ConfigDir,
		tokenFile: opts.TokenFile,
		scope:     strings.Join(opts.Scopes, " "),
		resources: opts.Resources,
		lifetime:  opts.CertificateLifetime,
		clock:     opts.Clock,
	}
	if s.tokenFile == "" {
		s.tokenFile = DefaultTokenFile
	}
	if s.lifetime == 0 {
		s.lifetime = DefaultCertificateLifetime
	}
	if s.lifetime < time.Minute {
		return nil, fmt.Errorf("boundtoken: certificate lifetime %s is shorter than a minute", s.lifetime)
	}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	return s, nil
}

// Token returns a valid access token, renewing it first if it is due.
func (s *Source) Token(ctx context.Context) (string, error) {
	t, err := s.BoundToken(ctx)
	if err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

// BoundToken returns a valid access token with the certificate it is bound
// to, renewing it first if it is due. If a renewal fails while the current
// token is still usable, the current token is returned and the renewal is
// retried with backoff on later calls.
func (s *Source) BoundToken(ctx context.Context) (*BoundToken, error) {
	if t := s.fresh(); t != nil {
		return t, nil
	}
	// The renewal runs on its own context: a caller giving up must not cut
	// a refresh off after the server has rotated the refresh token.
	ch := s.renewals.DoChan("renew", func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*requestTimeout)
		defer cancel()
		return s.renew(rctx)
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*BoundToken), nil
	}
}

// fresh returns the current token if nothing is due.
func (s *Source) fresh() *BoundToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	t := s.current
	if t == nil || !now.Before(t.usableUntil) {
		return nil
	}
	if now.Before(t.RefreshAt) {
		return t
	}
	if now.Before(s.retryAt) {
		return t
	}
	return nil
}

// renew gets a new token: a refresh when a refresh token for the current
// certificate is held, otherwise (or when the refresh fails) an exchange of
// the projected token, with a new key and certificate once the current one
// is due.
func (s *Source) renew(ctx context.Context) (*BoundToken, error) {
	if t := s.fresh(); t != nil {
		return t, nil
	}
	if err := s.reloadConfig(); err != nil {
		return s.store(nil, s.clock.Now(), nil, err)
	}
	s.mu.Lock()
	now := s.clock.Now()
	if s.id == nil || !now.Before(s.id.renewAt) {
		id, err := newIdentity(s.cfg.ClientID, now, s.lifetime)
		if err != nil {
			s.mu.Unlock()
			return nil, err
		}
		if s.client != nil {
			s.client.close()
		}
		s.id, s.client = id, newEndpointClient(s.cfg, id)
		s.refreshToken = ""
	}
	id, client := s.id, s.client
	// A refresh token is used at most once, whatever the outcome: after a
	// lost response the server may already have rotated it, and replaying
	// it would revoke the family.
	refreshToken := s.refreshToken
	s.refreshToken = ""
	s.mu.Unlock()

	var resp *tokenResponse
	var err error
	if refreshToken != "" {
		resp, err = client.refresh(ctx, refreshToken)
	}
	if resp == nil {
		var subject string
		if subject, err = s.readSubjectToken(); err == nil {
			resp, err = client.exchange(ctx, subject, s.scope, s.resources)
		}
	}
	return s.store(id, now, resp, err)
}

// reloadConfig rereads ConfigDir and, when it changed, talks to the token
// endpoint the new way from now on: a new server CA or endpoint keeps the
// key and the refresh token; a new client_id starts over with a new key.
func (s *Source) reloadConfig() error {
	if s.configDir == "" {
		return nil
	}
	cfg, err := LoadConfig(s.configDir)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cfg.equal(s.cfg) {
		return nil
	}
	if cfg.ClientID != s.cfg.ClientID {
		s.id, s.refreshToken = nil, ""
	}
	s.cfg = cfg
	if s.client != nil {
		s.client.close()
		s.client = nil
	}
	if s.id != nil {
		s.client = newEndpointClient(cfg, s.id)
	}
	return nil
}

// store records the outcome of a renewal for id that started at sent (a
// token's lifetime counts from before the request, so latency never
// stretches it).
func (s *Source) store(id *identity, sent time.Time, resp *tokenResponse, err error) (*BoundToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		now := s.clock.Now()
		s.failures++
		// The current token stays usable with the certificate it carries,
		// even when a new certificate is waiting for its first token.
		if t := s.current; t != nil && now.Before(t.usableUntil) {
			s.retryAt = now.Add(retryDelay(s.failures))
			return t, nil
		}
		return nil, err
	}
	expiry := sent.Add(time.Duration(resp.ExpiresIn) * time.Second)
	t := &BoundToken{
		AccessToken: resp.AccessToken,
		Scope:       resp.Scope,
		Expiry:      expiry,
		RefreshAt:   minTime(refreshTime(sent, expiry, jitter()), id.renewAt),
		Certificate: id.cert,
		Thumbprint:  id.thumbprint,
		usableUntil: usableUntil(sent, expiry),
		id:          id,
	}
	s.current, s.failures, s.retryAt = t, 0, time.Time{}
	if id == s.id {
		s.refreshToken = resp.RefreshToken
	}
	return t, nil
}

// readSubjectToken reads the projected service-account token.
func (s *Source) readSubjectToken() (string, error) {
	f, err := os.Open(s.tokenFile)
	if err != nil {
		return "", fmt.Errorf("read projected service-account token: %w (project one with the issuer as audience)", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSubjectTokenBytes+1))
	if err != nil {
		return "", fmt.Errorf("read projected service-account token %s: %w", s.tokenFile, err)
	}
	n := len(b)
	b = bytes.TrimSpace(b)
	switch {
	case n > maxSubjectTokenBytes:
		return "", fmt.Errorf("projected service-account token %s is larger than %d bytes", s.tokenFile, maxSubjectTokenBytes)
	case len(b) == 0:
		return "", fmt.Errorf("projected service-account token %s is empty", s.tokenFile)
	}
	return string(b), nil
}

// GetClientCertificate presents the current certificate, for a
// tls.Config of another protocol. Pair it with the token from BoundToken:
// after a certificate renewal, connections made with the previous
// certificate no longer match new tokens.
func (s *Source) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		return nil, errors.New("boundtoken: no certificate yet: call BoundToken first")
	}
	cert := s.current.Certificate
	return &cert, nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

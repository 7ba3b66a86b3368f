package resourceserver

// Introspection mode (RFC 7662): the verifier asks the authorization server
// whether a token is still active, so a revoked token is refused before it
// expires.
//
// A JWT access token is first verified locally (signature, iss, aud, exp,
// cnf), exactly as without introspection; only a token that passes is
// introspected, so forged or foreign tokens never cost the authorization
// server a request. A token that is not a JWS at all (no two dots) is
// opaque. The certbound authorization server never issues opaque tokens,
// so by default they are refused as invalid without a request: otherwise
// every random bearer string would cost the authorization server an
// introspection. With AllowOpaqueTokens, introspection alone decides, and
// the claims — cnf["x5t#S256"] included (RFC 8705 §3.2) — come from the
// response, whose iss, aud and exp are checked like a JWT's.
//
// Answers are cached under the SHA-256 of the token (the token itself is
// never kept, logged or put in an error), for at most CacheTTL and never
// past the token's exp: a revocation is seen by this resource server within
// CacheTTL. Active and inactive answers are kept in two bounded LRU caches,
// so that inactive answers (junk opaque tokens, when allowed) only ever
// push out other inactive answers, never an active token's. An endpoint
// that cannot be reached or does not answer 200 makes the request fail with
// ErrIntrospectionUnavailable (503): fail closed.

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"k8s.io/utils/lru"
)

// DefaultIntrospectionCacheTTL is how long an introspection answer is
// reused unless configured otherwise: the bound on how late a revocation
// is seen.
const DefaultIntrospectionCacheTTL = 30 * time.Second

// The sizes of the two answer caches, least recently used first out.
// Active answers belong to tokens the authorization server issued and the
// verifier has already checked, so their number is that of the live
// tokens in use; inactive ones are mostly revoked tokens still presented.
const (
	maxActiveCacheEntries   = 10_000
	maxInactiveCacheEntries = 1_000
)

// Introspection configures the introspection mode. The resource server is
// a registered client of the authorization server: give ClientID and
// exactly one of ClientCertificate, GetClientCertificate and ClientSecret.
type Introspection struct {
	// Endpoint is the introspection endpoint. Empty: discovered from the
	// issuer's RFC 8414 metadata — introspection_endpoint, or its
	// mtls_endpoint_aliases entry when the resource server authenticates
	// with a certificate.
	Endpoint string
	// ClientID is the resource server's client_id. Required.
	ClientID string
	// ClientCertificate authenticates the resource server with
	// tls_client_auth or self_signed_tls_client_auth (RFC 8705 §2).
	ClientCertificate *tls.Certificate
	// GetClientCertificate is ClientCertificate for a certificate that
	// changes (renewed by cert-manager, say): called at each handshake
	// with the introspection endpoint.
	GetClientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
	// ClientSecret authenticates the resource server with
	// client_secret_basic (RFC 6749 §2.3.1).
	ClientSecret string
	// CacheTTL is the longest an answer is reused, so a revocation is
	// seen within CacheTTL. Zero: DefaultIntrospectionCacheTTL; negative:
	// every request is introspected.
	CacheTTL time.Duration
	// AllowOpaqueTokens lets tokens that are not JWTs in, on the
	// introspection endpoint's answer. False: they are refused as invalid
	// without asking it, since the certbound authorization server issues
	// JWTs only.
	AllowOpaqueTokens bool
}

func (c *Introspection) check() error {
	if c.ClientID == "" {
		return errors.New("introspection: a client_id is required")
	}
	given := 0
	for _, set := range []bool{c.ClientCertificate != nil, c.GetClientCertificate != nil, c.ClientSecret != ""} {
		if set {
			given++
		}
	}
	if given != 1 {
		return errors.New("introspection: give exactly one of a client certificate and a client secret")
	}
	if c.Endpoint != "" {
		if err := requireHTTPS(c.Endpoint); err != nil {
			return fmt.Errorf("introspection endpoint: %w", err)
		}
	}
	return nil
}

// clientCertificate returns what the TLS client presents to the
// introspection endpoint: nil when authenticating with a secret.
func (c *Introspection) clientCertificate() func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c.ClientCertificate != nil {
		return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return c.ClientCertificate, nil }
	}
	return c.GetClientCertificate
}

// introspectionAnswer is the part of an RFC 7662 §2.2 response this
// verifier uses.
type introspectionAnswer struct {
	Active   bool                       `json:"active"`
	Issuer   string                     `json:"iss"`
	Subject  string                     `json:"sub"`
	ClientID string                     `json:"client_id"`
	Audience jwt.Audience               `json:"aud"`
	Scope    string                     `json:"scope"`
	IssuedAt int64                      `json:"iat"`
	Expiry   int64                      `json:"exp"`
	ID       string                     `json:"jti"`
	Cnf      map[string]json.RawMessage `json:"cnf"`
}

type cachedAnswer struct {
	answer *introspectionAnswer
	until  time.Time
}

// introspector asks the introspection endpoint and caches the answers.
type introspector struct {
	client      *http.Client
	issuer      string
	clientID    string
	secret      string
	mtls        bool
	ttl         time.Duration
	now         func() time.Time
	allowOpaque bool
	// active and inactive cache the answers by the token's SHA-256.
	active, inactive *lru.Cache

	mu       sync.Mutex
	endpoint string // configured or, once found, discovered
}

func newIntrospector(cfg *Introspection, client *http.Client, issuer string, now func() time.Time) *introspector {
	return &introspector{
		client:      client,
		issuer:      issuer,
		clientID:    cfg.ClientID,
		secret:      cfg.ClientSecret,
		mtls:        cfg.ClientSecret == "",
		ttl:         orDefault(cfg.CacheTTL, DefaultIntrospectionCacheTTL),
		now:         now,
		allowOpaque: cfg.AllowOpaqueTokens,
		active:      lru.New(maxActiveCacheEntries),
		inactive:    lru.New(maxInactiveCacheEntries),
		endpoint:    cfg.Endpoint,
	}
}

// answer returns the authorization server's answer about raw, from the
// cache when it is fresh. exp, when known from a verified JWT, also bounds
// the caching of an inactive answer.
func (in *introspector) answer(ctx context.Context, raw string, exp time.Time) (*introspectionAnswer, error) {
	key := sha256.Sum256([]byte(raw))
	if c, ok := in.cached(key); ok {
		return c, nil
	}
	a, err := in.ask(ctx, raw)
	if err != nil {
		return nil, err
	}
	if in.ttl > 0 {
		until := in.now().Add(in.ttl)
		if a.Expiry != 0 && a.Active {
			exp = time.Unix(a.Expiry, 0)
		}
		if !exp.IsZero() && exp.Before(until) {
			until = exp
		}
		c := cachedAnswer{answer: a, until: until}
		if a.Active {
			in.inactive.Remove(key)
			in.active.Add(key, c)
		} else {
			in.active.Remove(key)
			in.inactive.Add(key, c)
		}
	}
	return a, nil
}

// cached returns the fresh answer cached for the token whose SHA-256 is
// key, dropping a stale one.
func (in *introspector) cached(key [sha256.Size]byte) (*introspectionAnswer, bool) {
	for _, cache := range []*lru.Cache{in.active, in.inactive} {
		v, ok := cache.Get(key)
		if !ok {
			continue
		}
		if c := v.(cachedAnswer); in.now().Before(c.until) {
			return c.answer, true
		}
		cache.Remove(key)
	}
	return nil, false
}

// ask posts the token to the introspection endpoint.
func (in *introspector) ask(ctx context.Context, raw string) (*introspectionAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	endpoint, err := in.introspectionEndpoint(ctx)
	if err != nil {
		return nil, err
	}
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	if in.mtls {
		form.Set("client_id", in.clientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if !in.mtls {
		req.SetBasicAuth(url.QueryEscape(in.clientID), url.QueryEscape(in.secret))
	}
	resp, err := in.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspect: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST %s: %s", endpoint, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", endpoint, err)
	}
	if len(body) > maxDocumentBytes {
		return nil, fmt.Errorf("POST %s: response larger than %d bytes", endpoint, maxDocumentBytes)
	}
	var a introspectionAnswer
	if err := json.Unmarshal(body, &a); err != nil {
		return nil, fmt.Errorf("POST %s: %w", endpoint, err)
	}
	return &a, nil
}

// introspectionEndpoint returns the configured endpoint, or discovers it
// from the issuer's metadata (RFC 8414 §2, RFC 8705 §5) until found once.
func (in *introspector) introspectionEndpoint(ctx context.Context) (string, error) {
	in.mu.Lock()
	endpoint := in.endpoint
	in.mu.Unlock()
	if endpoint != "" {
		return endpoint, nil
	}
	metadataURL, err := metadataURL(in.issuer)
	if err != nil {
		return "", err
	}
	var md struct {
		Issuer        string `json:"issuer"`
		Introspection string `json:"introspection_endpoint"`
		MTLSAliases   struct {
			Introspection string `json:"introspection_endpoint"`
		} `json:"mtls_endpoint_aliases"`
	}
	if err := getJSON(ctx, in.client, metadataURL, &md); err != nil {
		return "", fmt.Errorf("fetch authorization server metadata: %w", err)
	}
	if md.Issuer != in.issuer {
		return "", fmt.Errorf("authorization server metadata at %s names issuer %q, want %q", metadataURL, md.Issuer, in.issuer)
	}
	endpoint = md.Introspection
	if in.mtls && md.MTLSAliases.Introspection != "" {
		endpoint = md.MTLSAliases.Introspection
	}
	if err := requireHTTPS(endpoint); err != nil {
		return "", fmt.Errorf("authorization server metadata introspection_endpoint: %w", err)
	}
	in.mu.Lock()
	in.endpoint = endpoint
	in.mu.Unlock()
	return endpoint, nil
}

// isOpaque reports whether raw cannot be a compact JWS.
func isOpaque(raw string) bool { return strings.Count(raw, ".") != 2 }

// confirmActive introspects a locally verified JWT.
func (v *Verifier) confirmActive(ctx context.Context, raw string, exp time.Time) error {
	a, err := v.introspection.answer(ctx, raw, exp)
	if err != nil {
		return ErrIntrospectionUnavailable.with("%w", err)
	}
	if !a.Active {
		return ErrTokenInactive
	}
	return nil
}

// verifyOpaque takes an opaque token's claims from the introspection
// response, checked like a JWT's, if opaque tokens are allowed.
func (v *Verifier) verifyOpaque(ctx context.Context, raw string) (*Claims, error) {
	if !v.introspection.allowOpaque {
		return nil, ErrInvalidToken.with("not a JWT, and opaque tokens are not allowed")
	}
	a, err := v.introspection.answer(ctx, raw, time.Time{})
	if err != nil {
		return nil, ErrIntrospectionUnavailable.with("%w", err)
	}
	switch {
	case !a.Active:
		return nil, ErrTokenInactive
	case a.Issuer != v.issuer:
		return nil, ErrInvalidToken.with("introspection: iss %q is not the issuer", a.Issuer)
	case !slices.Contains(a.Audience, v.audience):
		return nil, ErrInvalidToken.with("introspection: aud does not contain this resource")
	case a.Expiry == 0:
		return nil, ErrInvalidToken.with("introspection: no exp")
	}
	claims := &Claims{
		Issuer:   a.Issuer,
		Subject:  a.Subject,
		ClientID: a.ClientID,
		Audience: a.Audience,
		Scope:    a.Scope,
		Expiry:   time.Unix(a.Expiry, 0),
		ID:       a.ID,
	}
	if a.IssuedAt != 0 {
		claims.IssuedAt = time.Unix(a.IssuedAt, 0)
	}
	if !v.now().Before(claims.Expiry.Add(v.leeway)) {
		return nil, ErrTokenExpired.with("introspection: exp has passed")
	}
	if claims.Thumbprint, err = thumbprint(a.Cnf); err != nil {
		return nil, err
	}
	return claims, nil
}

// Package resourceserver is the protected-resource side of RFC 8705 §3: it
// accepts an access token only over a TLS connection made with the client
// certificate the token is bound to.
//
// Tokens are RFC 9068 JWT access tokens issued by the certbound
// authorization server: signed with a key from the server's JWK Set, typ
// at+jwt, carrying cnf["x5t#S256"], the SHA-256 thumbprint of the client
// certificate (RFC 8705 §3.1). With Config.Introspection the verifier also
// asks the authorization server whether each token is still active (RFC
// 7662); opaque tokens are refused unless Introspection.AllowOpaqueTokens
// lets them in on its answer (see introspection.go).
package resourceserver

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/certbound/certbound/asruntime/certbinding"
	"github.com/certbound/certbound/asruntime/clientcert"
)

// Defaults for the zero values of Config.
const (
	DefaultLeeway             = 30 * time.Second
	DefaultKeyRefreshInterval = 30 * time.Second
	DefaultKeyMaxAge          = 10 * time.Minute
)

// DefaultAlgorithms are the signature algorithms the certbound authorization
// server can sign with.
var DefaultAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256, jose.PS256}

// asymmetricAlgorithms is every algorithm Config.Algorithms may name. "none"
// and the HMAC family are absent on purpose: a resource server holds only
// public keys, and accepting either would let anyone mint tokens.
var asymmetricAlgorithms = []jose.SignatureAlgorithm{
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
}

// Config configures a Verifier.
type Config struct {
	// Issuer is the authorization server's issuer identifier; the token's
	// iss must equal it exactly. Required, https.
	Issuer string
	// Audience identifies this resource; the token's aud must contain it.
	// Required.
	Audience string
	// JWKSURL is where the authorization server publishes its keys. Empty:
	// discovered from the jwks_uri of the issuer's RFC 8414 metadata.
	JWKSURL string
	// RootCAs verifies the authorization server's TLS certificate. Nil: the
	// system roots.
	RootCAs *x509.CertPool
	// DialContext, when set, opens the connections to the authorization
	// server, e.g. to reach a Service name through a port-forward or a
	// local development cluster. Nil: the default dialer.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Algorithms is the allow-list of JWS algorithms. Empty:
	// DefaultAlgorithms. Only asymmetric algorithms are accepted.
	Algorithms []jose.SignatureAlgorithm
	// AllowUnboundTokens accepts tokens without a cnf claim, with no
	// certificate check. Off by default: this resource server exists to
	// demand certificate-bound tokens. A token with a cnf claim is always
	// checked, whatever this says.
	AllowUnboundTokens bool
	// Leeway is the clock skew tolerated on exp, nbf and iat. Zero:
	// DefaultLeeway.
	Leeway time.Duration
	// KeyRefreshInterval is the least time between two fetches of the JWK
	// Set triggered by unknown key IDs. Zero: DefaultKeyRefreshInterval.
	KeyRefreshInterval time.Duration
	// KeyMaxAge is how long a fetched JWK Set is used before it is refreshed
	// in the background. Zero: DefaultKeyMaxAge.
	KeyMaxAge time.Duration
	// Now is the clock. Nil: time.Now.
	Now func() time.Time
	// ClientCertificates, when set, takes the client certificate from the
	// header of a trusted TLS-terminating proxy (RFC 8705 §6.5). Nil: from
	// the request's TLS connection only.
	ClientCertificates *clientcert.Source
	// Introspection, when set, has every token confirmed active at the
	// authorization server's introspection endpoint (RFC 7662), and, with
	// AllowOpaqueTokens, lets opaque tokens in; see Introspection. Nil: tokens are verified
	// locally only, and a revoked token is accepted until it expires.
	Introspection *Introspection
}

// Verifier checks certificate-bound access tokens. It is safe for
// concurrent use.
type Verifier struct {
	issuer       string
	audience     string
	algorithms   []jose.SignatureAlgorithm
	allowUnbound bool
	leeway       time.Duration
	now          func() time.Time
	keys         *keySet
	certs        *clientcert.Source
	// introspection is nil unless Config.Introspection is set.
	introspection *introspector
}

// New checks cfg and returns a Verifier. It does not contact the
// authorization server: keys are fetched on first use, so a resource server
// can start before its authorization server does.
func New(cfg Config) (*Verifier, error) {
	if err := requireHTTPS(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("issuer: %w", err)
	}
	if cfg.Audience == "" {
		return nil, errors.New("audience is required")
	}
	if cfg.JWKSURL != "" {
		if err := requireHTTPS(cfg.JWKSURL); err != nil {
			return nil, fmt.Errorf("JWKS URL: %w", err)
		}
	}
	algorithms := cfg.Algorithms
	if len(algorithms) == 0 {
		algorithms = DefaultAlgorithms
	}
	for _, alg := range algorithms {
		if !slices.Contains(asymmetricAlgorithms, alg) {
			return nil, fmt.Errorf("algorithm %q is not allowed: only asymmetric signature algorithms are", alg)
		}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	newClient := func(clientCertificate func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) *http.Client {
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12, GetClientCertificate: clientCertificate}
		if cfg.DialContext != nil {
			transport.DialContext = cfg.DialContext
		}
		return &http.Client{
			Transport: transport,
			Timeout:   fetchTimeout,
			// A redirect could lead to a plain-http or unexpected host;
			// the issuer's endpoints are known, so none is followed.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	var in *introspector
	if cfg.Introspection != nil {
		if err := cfg.Introspection.check(); err != nil {
			return nil, err
		}
		in = newIntrospector(cfg.Introspection, newClient(cfg.Introspection.clientCertificate()), cfg.Issuer, now)
	}
	return &Verifier{
		introspection: in,
		issuer:        cfg.Issuer,
		audience:      cfg.Audience,
		algorithms:    slices.Clone(algorithms),
		allowUnbound:  cfg.AllowUnboundTokens,
		leeway:        orDefault(cfg.Leeway, DefaultLeeway),
		now:           now,
		certs:         cfg.ClientCertificates,
		keys: &keySet{
			client:      newClient(nil),
			issuer:      cfg.Issuer,
			jwksURL:     cfg.JWKSURL,
			minInterval: orDefault(cfg.KeyRefreshInterval, DefaultKeyRefreshInterval),
			maxAge:      orDefault(cfg.KeyMaxAge, DefaultKeyMaxAge),
			now:         now,
		},
	}, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// Claims are the verified claims of an access token (RFC 9068 §2.2).
type Claims struct {
	Issuer   string
	Subject  string
	ClientID string
	Audience []string
	// Scope is the space-separated scope claim, as issued.
	Scope    string
	IssuedAt time.Time
	Expiry   time.Time
	ID       string
	// Thumbprint is cnf["x5t#S256"], the certificate the token is bound to;
	// empty for an unbound token (only with Config.AllowUnboundTokens).
	Thumbprint string
}

// Scopes returns the scope claim split into its values.
func (c *Claims) Scopes() []string { return strings.Fields(c.Scope) }

// tokenClaims is the JSON shape of an access token's claims.
type tokenClaims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
	// Cnf stays raw: its presence alone matters (a token bound by a method
	// this verifier cannot check must be refused, not treated as unbound).
	Cnf map[string]json.RawMessage `json:"cnf"`
}

// Verify authenticates r: its bearer token must be valid and, when bound,
// bound to the client certificate of r's TLS connection. Failures are an
// *Error; answer them with WriteError.
func (v *Verifier) Verify(ctx context.Context, r *http.Request) (*Claims, error) {
	raw, err := bearerToken(r.Header)
	if err != nil {
		return nil, err
	}
	claims, err := v.verifyToken(ctx, raw)
	if err != nil {
		return nil, err
	}
	certs, _, err := v.certs.Certificates(r)
	if err != nil {
		return nil, ErrMalformedClientCertificate.with("%w", err)
	}
	if err := v.checkBinding(certs, claims); err != nil {
		return nil, err
	}
	return claims, nil
}

// verifyToken checks the JWT's signature, header and claims.
func (v *Verifier) verifyToken(ctx context.Context, raw string) (*Claims, error) {
	if v.introspection != nil && isOpaque(raw) {
		return v.verifyOpaque(ctx, raw)
	}
	token, err := jwt.ParseSigned(raw, v.algorithms)
	if err != nil {
		return nil, ErrInvalidToken.with("parse: %w", err)
	}
	// Compact serialization has exactly one signature; ParseSigned parsed
	// the compact form only.
	header := token.Headers[0]
	if !isAccessTokenType(header.ExtraHeaders[jose.HeaderType]) {
		return nil, ErrInvalidToken.with("typ header is not at+jwt (RFC 9068 §4)")
	}
	if header.KeyID == "" {
		return nil, ErrInvalidToken.with("no kid header")
	}
	keys, err := v.keys.lookup(ctx, header.KeyID)
	switch {
	case errors.Is(err, errKidNotFound):
		return nil, ErrUnknownKey.with("kid %q", header.KeyID)
	case err != nil:
		return nil, ErrKeysUnavailable.with("%w", err)
	}
	var tc tokenClaims
	if err := verifyWithAny(token, header.Algorithm, keys, &tc); err != nil {
		return nil, ErrInvalidToken.with("kid %q: %w", header.KeyID, err)
	}
	if tc.Expiry == nil {
		return nil, ErrInvalidToken.with("no exp claim (RFC 9068 §2.2)")
	}
	err = tc.Claims.ValidateWithLeeway(jwt.Expected{
		Issuer:      v.issuer,
		AnyAudience: jwt.Audience{v.audience},
		Time:        v.now(),
	}, v.leeway)
	if errors.Is(err, jwt.ErrExpired) {
		return nil, ErrTokenExpired.with("%w", err)
	}
	if err != nil {
		return nil, ErrInvalidToken.with("%w", err)
	}
	claims := &Claims{
		Issuer:   tc.Issuer,
		Subject:  tc.Subject,
		ClientID: tc.ClientID,
		Audience: tc.Audience,
		Scope:    tc.Scope,
		IssuedAt: tc.IssuedAt.Time(),
		Expiry:   tc.Expiry.Time(),
		ID:       tc.ID,
	}
	if claims.Thumbprint, err = thumbprint(tc.Cnf); err != nil {
		return nil, err
	}
	if v.introspection != nil {
		if err := v.confirmActive(ctx, raw, claims.Expiry); err != nil {
			return nil, err
		}
	}
	return claims, nil
}

// thumbprint reads cnf["x5t#S256"] (RFC 8705 §3.1 in a token, §3.2 in an
// introspection response); no cnf at all is an unbound token.
func thumbprint(cnf map[string]json.RawMessage) (string, error) {
	if cnf == nil {
		return "", nil
	}
	raw, ok := cnf[certbinding.ConfirmationKey]
	if !ok {
		return "", ErrInvalidToken.with("cnf claim without %s: bound by a method this resource server cannot check", certbinding.ConfirmationKey)
	}
	var tp string
	if err := json.Unmarshal(raw, &tp); err != nil || tp == "" {
		return "", ErrInvalidToken.with("cnf.%s is not a non-empty string", certbinding.ConfirmationKey)
	}
	return tp, nil
}

// verifyWithAny checks the signature with each key that may have made it and
// decodes the claims into dest. A JWK Set may hold several keys with one kid
// (RFC 7517 §4.5 only says SHOULD be distinct).
func verifyWithAny(token *jwt.JSONWebToken, alg string, keys []jose.JSONWebKey, dest *tokenClaims) error {
	err := errors.New("no key of the right algorithm")
	for _, k := range keys {
		// A key pinned to an algorithm signs with that one only, so an RSA
		// key published for PS256 cannot be used to accept RS256.
		if k.Algorithm != "" && k.Algorithm != alg {
			continue
		}
		if err = token.Claims(k.Key, dest); err == nil {
			return nil
		}
	}
	return err
}

// isAccessTokenType reports whether the typ header marks an RFC 9068 access
// token. Media types compare case-insensitively, and RFC 7515 §4.1.9 lets
// the "application/" prefix be omitted.
func isAccessTokenType(typ any) bool {
	s, _ := typ.(string)
	return strings.EqualFold(s, "at+jwt") || strings.EqualFold(s, "application/at+jwt")
}

// checkBinding is RFC 8705 §3: the client certificate (of the TLS
// connection, or forwarded by a trusted proxy) must be the one the token is
// bound to.
func (v *Verifier) checkBinding(peer []*x509.Certificate, claims *Claims) error {
	if claims.Thumbprint == "" {
		if v.allowUnbound {
			return nil
		}
		return ErrUnboundToken
	}
	if len(peer) == 0 {
		return ErrMissingClientCertificate
	}
	if !certbinding.Matches(peer[0].Raw, claims.Thumbprint) {
		return ErrCertificateMismatch
	}
	return nil
}

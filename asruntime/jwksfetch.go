package asruntime

// Fetching and caching the JWK Sets behind self-signed clients' jwks_uri.
//
// A fetched set is trusted for its lifetime: its Cache-Control max-age
// (less its Age) within [MinAge, MaxAge], MaxAge without one. From half its
// lifetime on, a request that the set authenticates starts one background
// refresh and is served from the cache meanwhile; once the lifetime is over
// the set is dropped, and a request waits for a refetch and fails if that
// fails. So a certificate removed from a jwks_uri stops authenticating at
// most MaxAge after its removal. A certificate not in a trusted set makes
// one refetch (a client rotating its key is found at once). Every fetch is
// charged to the client whose request caused it, against a per-client
// token bucket, and one jwks_uri has at most one fetch under way: requests
// that need it wait for it.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

const (
	// DefaultJWKSMinAge is the default JWKSFetchPolicy.MinAge.
	DefaultJWKSMinAge = time.Minute
	// DefaultJWKSMaxAge is the default JWKSFetchPolicy.MaxAge.
	DefaultJWKSMaxAge = 5 * time.Minute
	// DefaultJWKSClientFetchInterval is the default
	// JWKSFetchPolicy.ClientFetchInterval.
	DefaultJWKSClientFetchInterval = 10 * time.Second
	// DefaultJWKSClientFetchBurst is the default
	// JWKSFetchPolicy.ClientFetchBurst.
	DefaultJWKSClientFetchBurst = 3

	// jwksMaxBytes bounds a fetched JWK Set.
	jwksMaxBytes = 64 << 10
	// jwksMaxHeaderBytes bounds the response headers of a fetch.
	jwksMaxHeaderBytes = 16 << 10
	// jwksFetchTimeout bounds one jwks_uri fetch, connection to last byte.
	jwksFetchTimeout = 5 * time.Second
	// jwksRefreshSlots bounds the background refreshes under way at once,
	// over all jwks_uri; a hit finding none free is served from the cache
	// and a later hit tries again.
	jwksRefreshSlots = 4
)

// errJWKSRateLimited: the set was needed, but the client has used up its
// fetches for now.
var errJWKSRateLimited = errors.New("jwks_uri fetch rate-limited for this client")

// Reasons of certbound_as_jwks_uri_fetches_refused_total.
const (
	jwksRefusedRateLimited = "rate_limited"
	jwksRefusedDestination = "destination_not_allowed"
	jwksRefusedRedirect    = "redirect_not_allowed"
)

var jwksRefusalReasons = []string{jwksRefusedRateLimited, jwksRefusedDestination, jwksRefusedRedirect}

// JWKSFetchPolicy bounds the server's fetches of self_signed_tls_client_auth
// clients' jwks_uri. The zero value is the defaults.
type JWKSFetchPolicy struct {
	// MinAge is the shortest time a fetched JWK Set is cached, whatever
	// its Cache-Control says, so that no jwks_uri makes the server fetch it
	// on every request. Zero: DefaultJWKSMinAge.
	MinAge time.Duration
	// MaxAge is the longest time a fetched JWK Set is trusted: a
	// certificate removed from a jwks_uri stops authenticating at most
	// MaxAge after its removal, and a set that cannot be refetched by then
	// authenticates no one. Zero: DefaultJWKSMaxAge.
	MaxAge time.Duration
	// AllowedCIDRs are special-purpose ranges (loopback, private,
	// link-local, ...) that fetches may connect to all the same, for
	// example an in-cluster JWKS service. Nil: none.
	AllowedCIDRs []netip.Prefix
	// ClientFetchInterval and ClientFetchBurst rate-limit the fetches made
	// on one client's behalf: a bucket of ClientFetchBurst fetches, refilled
	// with one every ClientFetchInterval. Zero: the defaults.
	ClientFetchInterval time.Duration
	ClientFetchBurst    int
}

// withDefaults fills in zero fields and checks the policy.
func (p JWKSFetchPolicy) withDefaults() (JWKSFetchPolicy, error) {
	if p.MinAge == 0 {
		p.MinAge = DefaultJWKSMinAge
	}
	if p.MaxAge == 0 {
		p.MaxAge = DefaultJWKSMaxAge
	}
	if p.ClientFetchInterval == 0 {
		p.ClientFetchInterval = DefaultJWKSClientFetchInterval
	}
	if p.ClientFetchBurst == 0 {
		p.ClientFetchBurst = DefaultJWKSClientFetchBurst
	}
	switch {
	case p.MinAge < time.Second:
		return p, fmt.Errorf("jwks_uri minimum age %s is shorter than a second", p.MinAge)
	case p.MaxAge < p.MinAge:
		return p, fmt.Errorf("jwks_uri maximum age %s is shorter than the minimum age %s", p.MaxAge, p.MinAge)
	case p.ClientFetchInterval < 0:
		return p, fmt.Errorf("jwks_uri client fetch interval %s is negative", p.ClientFetchInterval)
	case p.ClientFetchBurst < 0:
		return p, fmt.Errorf("jwks_uri client fetch burst %d is negative", p.ClientFetchBurst)
	}
	for _, c := range p.AllowedCIDRs {
		if err := checkAllowedCIDR(c); err != nil {
			return p, err
		}
	}
	return p, nil
}

// jwksFetcher fetches and caches the certificates of jwks_uri documents.
type jwksFetcher struct {
	client       *http.Client
	policy       JWKSFetchPolicy
	clock        clock.PassiveClock
	metrics      *Metrics
	log          *slog.Logger
	refreshSlots chan struct{}

	mu       sync.Mutex
	entries  map[string]*jwksEntry    // by jwks_uri
	limiters map[string]*rate.Limiter // by client_id
}

// jwksEntry is the cached set of one jwks_uri.
type jwksEntry struct {
	mu sync.Mutex
	// certs are trusted until expiresAt; from refreshAt on a hit starts a
	// background refresh.
	certs                [][]byte
	refreshAt, expiresAt time.Time
	// inflight is the fetch under way, if any.
	inflight *jwksFetchCall
}

// jwksFetchCall is one fetch; its result is set before done is closed.
type jwksFetchCall struct {
	done  chan struct{}
	certs [][]byte
	err   error
}

// newJWKSFetcher makes the HTTP client for jwks_uri: https only (also after
// redirects, which stay on the origin), TLS 1.2 or later against roots
// (nil: the system roots, as for any public web PKI endpoint), connections
// only to globally reachable addresses and policy.AllowedCIDRs, timeouts,
// and no proxy, so that the address checked is the one connected to.
func newJWKSFetcher(roots *x509.CertPool, policy JWKSFetchPolicy, clk clock.PassiveClock, metrics *Metrics, log *slog.Logger) (*jwksFetcher, error) {
	policy, err := policy.withDefaults()
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: jwksFetchTimeout, Control: dialControl(policy.AllowedCIDRs)}
	transport := &http.Transport{
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    jwksFetchTimeout,
		MaxResponseHeaderBytes: jwksMaxHeaderBytes,
		MaxIdleConns:           4,
		IdleConnTimeout:        time.Minute,
	}
	return &jwksFetcher{
		client: &http.Client{
			Transport:     transport,
			Timeout:       jwksFetchTimeout,
			CheckRedirect: checkJWKSRedirect,
		},
		policy:       policy,
		clock:        clk,
		metrics:      metrics,
		log:          log,
		refreshSlots: make(chan struct{}, jwksRefreshSlots),
		entries:      make(map[string]*jwksEntry),
		limiters:     make(map[string]*rate.Limiter),
	}, nil
}

// certificates returns the certificates of uri's JWK Set for a request of
// clientID presenting the certificate der: the cached ones when der is
// among them, else the result of a refetch. With a trusted set and no
// fetch allowed it returns the set; with no trusted set, an error.
func (f *jwksFetcher) certificates(ctx context.Context, clientID, uri string, der []byte) ([][]byte, error) {
	e := f.entry(uri)
	now := f.clock.Now()
	e.mu.Lock()
	trusted := now.Before(e.expiresAt)
	if !trusted {
		e.certs = nil
	}
	if trusted && containsCertificate(e.certs, der) {
		certs := e.certs
		if !now.Before(e.refreshAt) && e.inflight == nil {
			f.refreshInBackground(e, clientID, uri, now)
		}
		e.mu.Unlock()
		return certs, nil
	}
	call := e.inflight
	if call == nil {
		if !f.allowFetch(clientID, now) {
			certs := e.certs
			e.mu.Unlock()
			if trusted {
				return certs, nil
			}
			return nil, errJWKSRateLimited
		}
		call = f.start(e, uri, now, nil)
	}
	e.mu.Unlock()
	select {
	case <-call.done:
		return call.certs, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (f *jwksFetcher) entry(uri string) *jwksEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.entries[uri]
	if !ok {
		e = &jwksEntry{}
		f.entries[uri] = e
	}
	return e
}

// allowFetch takes one fetch from clientID's bucket.
func (f *jwksFetcher) allowFetch(clientID string, now time.Time) bool {
	f.mu.Lock()
	l, ok := f.limiters[clientID]
	if !ok {
		l = rate.NewLimiter(rate.Every(f.policy.ClientFetchInterval), f.policy.ClientFetchBurst)
		f.limiters[clientID] = l
	}
	f.mu.Unlock()
	if l.AllowN(now, 1) {
		return true
	}
	f.metrics.jwksFetchRefused(jwksRefusedRateLimited)
	f.log.Debug("jwks_uri fetch rate-limited", "client_id", clientID)
	return false
}

// refreshInBackground starts a refresh of e if a slot and the client's
// bucket allow one. The caller holds e.mu.
func (f *jwksFetcher) refreshInBackground(e *jwksEntry, clientID, uri string, now time.Time) {
	select {
	case f.refreshSlots <- struct{}{}:
	default:
		return
	}
	if !f.allowFetch(clientID, now) {
		<-f.refreshSlots
		return
	}
	f.start(e, uri, now, func() { <-f.refreshSlots })
}

// start fetches uri into e in the background; started is the clock time
// the lifetime of the fetched set counts from. The caller holds e.mu.
func (f *jwksFetcher) start(e *jwksEntry, uri string, started time.Time, finished func()) *jwksFetchCall {
	call := &jwksFetchCall{done: make(chan struct{})}
	e.inflight = call
	go func() {
		certs, lifetime, err := f.fetch(uri)
		if err != nil {
			f.fetchFailed(uri, err)
		}
		e.mu.Lock()
		if err == nil {
			e.certs, e.refreshAt, e.expiresAt = certs, started.Add(lifetime/2), started.Add(lifetime)
		}
		e.inflight = nil
		e.mu.Unlock()
		call.certs, call.err = certs, err
		close(call.done)
		if finished != nil {
			finished()
		}
	}()
	return call
}

func (f *jwksFetcher) fetchFailed(uri string, err error) {
	switch {
	case errors.Is(err, errJWKSDestinationRefused):
		f.metrics.jwksFetchRefused(jwksRefusedDestination)
	case errors.Is(err, errJWKSRedirectRefused):
		f.metrics.jwksFetchRefused(jwksRefusedRedirect)
	}
	f.metrics.jwksFetchError()
	f.log.Warn("jwks_uri fetch failed", "jwks_uri", uri, "error", err)
}

// fetch gets uri's certificates and how long they may be trusted.
func (f *jwksFetcher) fetch(uri string) ([][]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), jwksFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("jwks_uri answered HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("read jwks_uri: %w", err)
	}
	if len(body) > jwksMaxBytes {
		return nil, 0, fmt.Errorf("jwks_uri document is larger than %d bytes", jwksMaxBytes)
	}
	certs, err := certificatesFromJWKS(body)
	if err != nil {
		return nil, 0, fmt.Errorf("jwks_uri document: %w", err)
	}
	return certs, jwksLifetime(resp.Header, f.policy.MinAge, f.policy.MaxAge), nil
}

// jwksLifetime is how long a JWK Set answered with header h is trusted:
// its Cache-Control max-age less its Age (RFC 9111 §4.2), within
// [minAge, maxAge]; maxAge without a max-age; minAge with no-store,
// no-cache or a max-age that does not parse.
func jwksLifetime(h http.Header, minAge, maxAge time.Duration) time.Duration {
	lifetime, found := maxAge, false
	for _, v := range h.Values("Cache-Control") {
		for _, directive := range strings.Split(v, ",") {
			name, value, _ := strings.Cut(strings.TrimSpace(directive), "=")
			switch strings.ToLower(name) {
			case "no-store", "no-cache":
				return minAge
			case "max-age":
				secs, ok := deltaSeconds(strings.Trim(value, `"`), maxAge)
				if !ok || found {
					// Invalid or repeated: stale (RFC 9111 §4.2.1).
					return minAge
				}
				lifetime, found = secs, true
			}
		}
	}
	if age, ok := deltaSeconds(h.Get("Age"), maxAge); found && ok {
		lifetime -= age
	}
	return min(max(lifetime, minAge), maxAge)
}

// deltaSeconds parses RFC 9111 delta-seconds, capping it at ceiling.
func deltaSeconds(s string, ceiling time.Duration) (time.Duration, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n > int64(ceiling/time.Second) {
		// Only overflow fails here: digits were checked.
		return ceiling, true
	}
	return time.Duration(n) * time.Second, true
}

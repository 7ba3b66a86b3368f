package resourceserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/certbound/certbound/asruntime/oauthurl"
)

// maxDocumentBytes bounds what is read from the authorization server, so a
// broken or hostile endpoint cannot exhaust memory. Real JWK Sets and
// metadata documents are a few kilobytes.
const maxDocumentBytes = 1 << 20

// fetchTimeout bounds one refresh (discovery plus JWKS), independently of the
// request that triggered it: the refresh is shared by every request waiting
// for it, so one impatient client must not cancel it for the others.
const fetchTimeout = 10 * time.Second

// errKidNotFound is internal: lookup turns it into ErrUnknownKey.
var errKidNotFound = errors.New("no key with this kid")

// keySet is the authorization server's published signing keys, cached.
//
// A token whose kid is not cached triggers a refetch, but at most one per
// minInterval: key rotation is picked up at once, while a stream of tokens
// with made-up kids costs the authorization server one request per interval.
// Keys older than maxAge are refreshed in the background on next use, so a
// key the authorization server withdrew stops being accepted.
type keySet struct {
	client      *http.Client
	issuer      string
	jwksURL     string // empty: discover from the issuer's metadata each refresh
	minInterval time.Duration
	maxAge      time.Duration
	now         func() time.Time

	mu          sync.Mutex
	keys        []jose.JSONWebKey
	fetchedAt   time.Time
	lastAttempt time.Time
	lastErr     error
	inflight    chan struct{} // closed when the running refresh ends
}

// lookup returns the keys with the given kid, refreshing the set if the kid
// is unknown and the rate limit allows it.
func (s *keySet) lookup(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	s.mu.Lock()
	if found := keysWithID(s.keys, kid); len(found) > 0 {
		if s.now().Sub(s.fetchedAt) > s.maxAge {
			s.startRefreshLocked()
		}
		s.mu.Unlock()
		return found, nil
	}
	wait := s.startRefreshLocked()
	s.mu.Unlock()

	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if found := keysWithID(s.keys, kid); len(found) > 0 {
		return found, nil
	}
	if s.lastErr != nil {
		return nil, s.lastErr
	}
	return nil, errKidNotFound
}

// startRefreshLocked starts a refresh unless one is running or the last one
// began less than minInterval ago. It returns the channel of the running
// refresh, or nil when none runs. s.mu must be held.
func (s *keySet) startRefreshLocked() <-chan struct{} {
	if s.inflight != nil {
		return s.inflight
	}
	now := s.now()
	if !s.lastAttempt.IsZero() && now.Sub(s.lastAttempt) < s.minInterval {
		return nil
	}
	s.lastAttempt = now
	done := make(chan struct{})
	s.inflight = done
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		defer cancel()
		keys, err := s.fetch(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			// Keep serving the keys we have: a flaky authorization server
			// must not turn every valid token into a refusal.
			s.lastErr = err
		} else {
			s.keys, s.fetchedAt, s.lastErr = keys, s.now(), nil
		}
		s.inflight = nil
		close(done)
	}()
	return done
}

func keysWithID(keys []jose.JSONWebKey, kid string) []jose.JSONWebKey {
	var found []jose.JSONWebKey
	for _, k := range keys {
		if k.KeyID == kid {
			found = append(found, k)
		}
	}
	return found
}

// fetch reads the JWK Set, discovering its URL from the issuer's metadata
// when none is configured.
func (s *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	jwksURL := s.jwksURL
	if jwksURL == "" {
		var err error
		if jwksURL, err = s.discover(ctx); err != nil {
			return nil, err
		}
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := getJSON(ctx, s.client, jwksURL, &doc); err != nil {
		return nil, fmt.Errorf("fetch JWKS: %w", err)
	}
	keys := make([]jose.JSONWebKey, 0, len(doc.Keys))
	for _, raw := range doc.Keys {
		// go-jose parses a JWK even when it holds private or symmetric
		// material; such keys, and keys for another use or of a type go-jose
		// does not know, are skipped one by one rather than failing the set,
		// so one odd entry does not take down verification.
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.KeyID == "" || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("fetch JWKS from %s: no usable public signing keys", jwksURL)
	}
	return keys, nil
}

// discover reads jwks_uri from the issuer's RFC 8414 metadata and checks that
// the document speaks for the configured issuer (RFC 8414 §3.3).
func (s *keySet) discover(ctx context.Context) (string, error) {
	metadataURL, err := metadataURL(s.issuer)
	if err != nil {
		return "", err
	}
	var md struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(ctx, s.client, metadataURL, &md); err != nil {
		return "", fmt.Errorf("fetch authorization server metadata: %w", err)
	}
	if md.Issuer != s.issuer {
		return "", fmt.Errorf("authorization server metadata at %s names issuer %q, want %q", metadataURL, md.Issuer, s.issuer)
	}
	if err := requireHTTPS(md.JWKSURI); err != nil {
		return "", fmt.Errorf("authorization server metadata jwks_uri: %w", err)
	}
	return md.JWKSURI, nil
}

// metadataURL is where the issuer's RFC 8414 metadata lives.
func metadataURL(issuer string) (string, error) {
	return oauthurl.MetadataURL(issuer)
}

func getJSON(ctx context.Context, client *http.Client, target string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	if len(body) > maxDocumentBytes {
		return fmt.Errorf("GET %s: response larger than %d bytes", target, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, into); err != nil {
		return fmt.Errorf("GET %s: %w", target, err)
	}
	return nil
}

// requireHTTPS refuses anything but an absolute https URL: keys fetched in
// the clear could be swapped by anyone on the path.
func requireHTTPS(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an absolute https URL", raw)
	}
	return nil
}

package asruntime

// Refresh tokens (RFC 6749 §6) of the public service-account clients,
// bound to the certificate the token exchange bound their access tokens
// to (RFC 8705 §4), rotated on every use with reuse detection (OAuth 2.0
// Security BCP, RFC 9700 §4.14.2).
//
// Design. A refresh token is opaque: <family>.<secret>, a 128-bit family
// id and a 256-bit secret from crypto/rand, base64url. The store keeps one
// record per family — what every token of the family grants (client,
// service account, certificate thumbprint, scope, audience), the family's
// absolute expiry, and the SHA-256 of its one current token with that
// token's idle expiry. Stored state rather than self-contained signed
// tokens, because rotation with reuse detection needs state anyway (which
// token is current), and a store that holds only hashes gives away nothing
// when read.
//
// Refresh: the family is looked up by id. The request must come from the
// family's client over a connection whose certificate has the family's
// thumbprint (constant-time compare); anything else is invalid_grant and
// changes nothing, so a thief without the private key can neither use nor
// burn a stolen token. Then the presented token's hash is compared with the
// current one (constant time): equal and unexpired, the family rotates to a
// new secret, written with optimistic concurrency (a replica that lost the
// race re-reads and sees the token as already used); not equal, the token
// is an earlier one of the family — family ids are unguessable and appear
// only in tokens — so it was replayed: the whole family is deleted, the
// newest token with it. Deleting is how a family is revoked (at reuse,
// RFC 7009 revocation, quota eviction); an unknown family is invalid_grant.
//
// Limits: each token lives at most RefreshTokenTTL unused, the family at
// most RefreshTokenMaxLifetime from its exchange, whatever the rotations;
// a client (all pods of one service account) keeps at most
// RefreshFamiliesPerClient families, a new exchange evicting its oldest one
// (that pod re-exchanges its service account token, which it always has,
// so eviction never locks a workload out, and a runaway client cannot grow
// the store without bound).
//
// Refreshing does not review the service account token again: a deleted
// service account's families keep working until their limits, unless the
// client's registration goes (each refresh requires the client still
// registered for the grant with the same service account, scope and
// audience) or the tokens are revoked.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Refresh token limits unless configured.
const (
	DefaultRefreshTokenTTL          = time.Hour
	DefaultRefreshTokenMaxLifetime  = 24 * time.Hour
	DefaultRefreshFamiliesPerClient = 1000
)

// RefreshFamily is the stored state of one refresh-token family.
type RefreshFamily struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id"`
	// Subject is the service account user name the family was issued for:
	// the sub of its access tokens.
	Subject    string    `json:"sub"`
	Thumbprint string    `json:"x5t#S256"`
	Scope      string    `json:"scope,omitempty"`
	Audience   []string  `json:"aud"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"exp"`
	// TokenHash is the hex SHA-256 of the family's current token, valid
	// until TokenExpires.
	TokenHash    string    `json:"token_sha256"`
	TokenExpires time.Time `json:"token_exp"`
	Generation   int64     `json:"generation"`

	// version is the store's optimistic-concurrency token of the record
	// as read.
	version string
}

// expiredAt: the family or its current token is past its lifetime.
func (f *RefreshFamily) expiredAt(now time.Time) bool {
	return !now.Before(f.Expires) || !now.Before(f.TokenExpires)
}

// ErrRefreshConflict is returned by Replace when the family changed since
// it was read.
var ErrRefreshConflict = errors.New("the refresh token family changed since it was read")

// RefreshTokenStore keeps refresh-token families. Implementations are safe
// for concurrent use; a store shared by replicas answers Get with what
// was last written by any of them.
type RefreshTokenStore interface {
	// Create stores a new family, first deleting the oldest families of
	// its client so that at most perClient remain with it.
	Create(ctx context.Context, f *RefreshFamily, perClient int) error
	// Get returns the family, or nil if there is none with that id.
	Get(ctx context.Context, id string) (*RefreshFamily, error)
	// Replace writes f over the family as it was read by Get; if it has
	// changed since, it returns ErrRefreshConflict and writes nothing.
	Replace(ctx context.Context, f *RefreshFamily) error
	// Delete removes the family; a missing one is not an error.
	Delete(ctx context.Context, id string) error
	// Prune deletes the families expired at now and returns how many
	// remain.
	Prune(ctx context.Context, now time.Time) (int, error)
}

// Refresh token format: base64url of a 16-byte family id, a dot, and
// base64url of a 32-byte secret.
const (
	refreshFamilyIDLen = 22 // base64url of 16 bytes
	refreshSecretLen   = 43 // base64url of 32 bytes
)

// newRefreshToken returns a token of the family id (a new family when id
// is empty) and the family id.
func newRefreshToken(id string) (token, familyID string, err error) {
	var b [16 + 32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	if id == "" {
		id = base64.RawURLEncoding.EncodeToString(b[:16])
	}
	return id + "." + base64.RawURLEncoding.EncodeToString(b[16:]), id, nil
}

// refreshFamilyID returns the family id of a string shaped like a refresh
// token of this server.
func refreshFamilyID(token string) (string, bool) {
	id, secret, ok := strings.Cut(token, ".")
	if !ok || len(id) != refreshFamilyIDLen || len(secret) != refreshSecretLen || !isBase64URL(id) || !isBase64URL(secret) {
		return "", false
	}
	return id, true
}

func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func refreshTokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// refreshOutcome is what a refresh request does to its family; the
// refusals are also the metric reasons.
type refreshOutcome string

const (
	refreshRotate              refreshOutcome = "rotated"
	refreshUnknown             refreshOutcome = "unknown_token"
	refreshExpired             refreshOutcome = "expired"
	refreshClientMismatch      refreshOutcome = "client_mismatch"
	refreshCertificateMismatch refreshOutcome = "certificate_mismatch"
	// refreshReused: an earlier token of the family was presented; the
	// family is revoked.
	refreshReused refreshOutcome = "reused"
	// refreshNotAllowed: the client's registration no longer grants what
	// the family does (service account, scope, audience, the grant).
	refreshNotAllowed refreshOutcome = "registration_changed"
)

var refreshOutcomes = []refreshOutcome{refreshRotate, refreshUnknown, refreshExpired, refreshClientMismatch,
	refreshCertificateMismatch, refreshReused, refreshNotAllowed}

// decideRefresh is the refresh policy. The checks that a thief without the
// certificate's key could fail come first, so only the key holder can
// cause a rotation or a revocation.
func decideRefresh(f *RefreshFamily, clientID, thumbprint, token string, now time.Time) refreshOutcome {
	switch {
	case f == nil:
		return refreshUnknown
	case f.ClientID != clientID:
		return refreshClientMismatch
	case subtle.ConstantTimeCompare([]byte(f.Thumbprint), []byte(thumbprint)) != 1:
		return refreshCertificateMismatch
	case subtle.ConstantTimeCompare([]byte(f.TokenHash), []byte(refreshTokenHash(token))) != 1:
		return refreshReused
	case f.expiredAt(now):
		return refreshExpired
	}
	return refreshRotate
}

// narrowed returns requested if it is a non-empty subset of granted (RFC
// 6749 §6: a refresh may ask for less scope, never more; the same for RFC
// 8707 resources), or granted when nothing is requested.
func narrowed(granted, requested []string) ([]string, bool) {
	if len(requested) == 0 {
		return granted, true
	}
	for _, r := range requested {
		if !slices.Contains(granted, r) {
			return nil, false
		}
	}
	return requested, true
}

// MemoryRefreshTokenStore keeps families in this process only: they are
// lost on restart and not shared between replicas.
type MemoryRefreshTokenStore struct {
	mu       sync.Mutex
	families map[string]RefreshFamily
}

// NewMemoryRefreshTokenStore returns an empty store.
func NewMemoryRefreshTokenStore() *MemoryRefreshTokenStore {
	return &MemoryRefreshTokenStore{families: make(map[string]RefreshFamily)}
}

func (m *MemoryRefreshTokenStore) Create(_ context.Context, f *RefreshFamily, perClient int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var own []RefreshFamily
	for _, g := range m.families {
		if g.ClientID == f.ClientID {
			own = append(own, g)
		}
	}
	for _, g := range oldestBeyond(own, perClient) {
		delete(m.families, g.ID)
	}
	m.families[f.ID] = *f
	return nil
}

// oldestBeyond returns the oldest families that must go so that a new one
// leaves at most perClient.
func oldestBeyond(families []RefreshFamily, perClient int) []RefreshFamily {
	excess := len(families) - (perClient - 1)
	if excess <= 0 {
		return nil
	}
	sort.Slice(families, func(i, j int) bool {
		if !families[i].Created.Equal(families[j].Created) {
			return families[i].Created.Before(families[j].Created)
		}
		return families[i].ID < families[j].ID
	})
	return families[:excess]
}

func (m *MemoryRefreshTokenStore) Get(_ context.Context, id string) (*RefreshFamily, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.families[id]
	if !ok {
		return nil, nil
	}
	f.version = versionOf(f.Generation)
	return &f, nil
}

// versionOf is the memory store's version: every write of a family
// increments its generation.
func versionOf(generation int64) string { return strconv.FormatInt(generation, 10) }

func (m *MemoryRefreshTokenStore) Replace(_ context.Context, f *RefreshFamily) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, ok := m.families[f.ID]
	if !ok || versionOf(cur.Generation) != f.version {
		return ErrRefreshConflict
	}
	m.families[f.ID] = *f
	return nil
}

func (m *MemoryRefreshTokenStore) Delete(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.families, id)
	return nil
}

func (m *MemoryRefreshTokenStore) Prune(_ context.Context, now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, f := range m.families {
		if f.expiredAt(now) {
			delete(m.families, id)
		}
	}
	return len(m.families), nil
}

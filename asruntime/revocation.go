package asruntime

// Revocation state (RFC 7009): the jti of every revoked access token, kept
// until the token's exp, after which the token is inactive anyway and the
// entry is pruned. Stores fail closed: a store that cannot answer makes
// introspection answer 503, never "active".

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultRevocationMaxEntries bounds a store unless configured otherwise:
// at the default token lifetime it allows a sustained ~1,600 revocations a
// second.
const DefaultRevocationMaxEntries = 1_000_000

// ErrRevocationStoreFull is returned by Revoke when the store holds its
// maximum number of unexpired entries.
var ErrRevocationStoreFull = errors.New("the revocation store is full")

// RevocationStore records revoked access tokens. exp is the token's expiry:
// stores key and expire entries with it (a jti is unique per token, and a
// token's exp never changes). Implementations are safe for concurrent use.
type RevocationStore interface {
	// Revoke records the token as revoked. Revoking a revoked token is not
	// an error. When Revoke returns nil, the revocation is durable (for a
	// durable store) and seen by every later IsRevoked of every server
	// sharing the store, within the store's propagation bound.
	Revoke(ctx context.Context, jti string, exp time.Time) error
	// IsRevoked reports whether the token is revoked. An error means the
	// store could not be read: the caller must fail closed.
	IsRevoked(ctx context.Context, jti string, exp time.Time) (bool, error)
	// Prune drops the entries whose exp is before now and returns how many
	// entries remain.
	Prune(now time.Time) (int, error)
	// Check reports whether the store can be read and written; /readyz
	// answers not ready while it fails.
	Check() error
}

// MemoryRevocationStore keeps revocations in this process only: they are
// lost on restart and not shared between replicas. It is the default when
// no durable store is configured.
type MemoryRevocationStore struct {
	max int

	mu      sync.RWMutex
	revoked map[string]time.Time
}

// NewMemoryRevocationStore returns an empty store holding at most max
// entries (zero: DefaultRevocationMaxEntries).
func NewMemoryRevocationStore(max int) *MemoryRevocationStore {
	if max <= 0 {
		max = DefaultRevocationMaxEntries
	}
	return &MemoryRevocationStore{max: max, revoked: make(map[string]time.Time)}
}

func (m *MemoryRevocationStore) Revoke(_ context.Context, jti string, exp time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.revoked[jti]; ok {
		return nil
	}
	if len(m.revoked) >= m.max {
		return ErrRevocationStoreFull
	}
	m.revoked[jti] = exp
	return nil
}

func (m *MemoryRevocationStore) IsRevoked(_ context.Context, jti string, _ time.Time) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.revoked[jti]
	return ok, nil
}

func (m *MemoryRevocationStore) Prune(now time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for jti, exp := range m.revoked {
		if exp.Before(now) {
			delete(m.revoked, jti)
		}
	}
	return len(m.revoked), nil
}

func (m *MemoryRevocationStore) Check() error { return nil }

// validJTI limits what a store may be asked to record to what this server
// issues (base64url), so a jti can safely name a file or an object.
func validJTI(jti string) error {
	if jti == "" || len(jti) > 64 {
		return fmt.Errorf("jti of %d characters", len(jti))
	}
	for i := 0; i < len(jti); i++ {
		c := jti[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return errors.New("jti is not base64url")
		}
	}
	return nil
}

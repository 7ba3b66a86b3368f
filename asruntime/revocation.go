package asruntime

// Revocation state (RFC 7009): the jti of every revoked access token, kept
// until the token's exp, after which the token is inactive anyway and the
// entry is pruned. Stores fail closed: a store that cannot answer makes
// introspection answer 503, never "active".
//
// Every store is shared by all clients, so each bounds both its whole size
// and what one client may hold in it: a client revoking its own tokens in
// a loop uses up its own quota, never the others' room to revoke.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultRevocationMaxEntries bounds a store unless configured otherwise:
// at the default token lifetime it allows a sustained ~1,600 revocations a
// second.
const DefaultRevocationMaxEntries = 1_000_000

// DefaultRevocationMaxEntriesPerClient bounds what one client may hold in
// a store unless configured otherwise: at the default token lifetime it
// allows one client a sustained ~1.6 revocations a second, and a thousand
// clients together the whole of the in-cluster store's default bound.
const DefaultRevocationMaxEntriesPerClient = 1_000

var (
	// ErrRevocationStoreFull is returned by Revoke when the store holds its
	// maximum number of unexpired entries.
	ErrRevocationStoreFull = errors.New("the revocation store is full")
	// ErrRevocationQuotaExceeded is returned by Revoke when the revoking
	// client holds its maximum number of entries. Entries leave the quota
	// when they are pruned, once their tokens have expired.
	ErrRevocationQuotaExceeded = errors.New("the client's quota of revoked tokens is used up")
)

// RevocationStore records revoked access tokens. exp is the token's expiry:
// stores key and expire entries with it (a jti is unique per token, and a
// token's exp never changes). Implementations are safe for concurrent use.
type RevocationStore interface {
	// Revoke records the token, issued to clientID, as revoked, counting
	// it against that client's quota. Revoking a revoked token is not an
	// error and counts nothing. When Revoke returns nil, the revocation is
	// durable (for a durable store) and seen by every later IsRevoked of
	// every server sharing the store, within the store's propagation
	// bound.
	Revoke(ctx context.Context, clientID, jti string, exp time.Time) error
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
	max, maxPerClient int

	mu       sync.RWMutex
	revoked  map[string]memoryRevocation
	byClient map[string]int
}

type memoryRevocation struct {
	exp      time.Time
	clientID string
}

// NewMemoryRevocationStore returns an empty store holding at most max
// entries (zero: DefaultRevocationMaxEntries), at most maxPerClient of
// them revoked by one client (zero: DefaultRevocationMaxEntriesPerClient).
func NewMemoryRevocationStore(max, maxPerClient int) *MemoryRevocationStore {
	max, maxPerClient = revocationBounds(max, DefaultRevocationMaxEntries, maxPerClient)
	return &MemoryRevocationStore{max: max, maxPerClient: maxPerClient, revoked: make(map[string]memoryRevocation), byClient: make(map[string]int)}
}

// revocationBounds applies the defaults of a store's bounds.
func revocationBounds(max, defaultMax, maxPerClient int) (int, int) {
	if max <= 0 {
		max = defaultMax
	}
	if maxPerClient <= 0 {
		maxPerClient = DefaultRevocationMaxEntriesPerClient
	}
	return max, maxPerClient
}

func (m *MemoryRevocationStore) Revoke(_ context.Context, clientID, jti string, exp time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.revoked[jti]; ok {
		return nil
	}
	if m.byClient[clientID] >= m.maxPerClient {
		return ErrRevocationQuotaExceeded
	}
	if len(m.revoked) >= m.max {
		return ErrRevocationStoreFull
	}
	m.revoked[jti] = memoryRevocation{exp: exp, clientID: clientID}
	m.byClient[clientID]++
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
	for jti, r := range m.revoked {
		if r.exp.Before(now) {
			delete(m.revoked, jti)
			if m.byClient[r.clientID]--; m.byClient[r.clientID] == 0 {
				delete(m.byClient, r.clientID)
			}
		}
	}
	return len(m.revoked), nil
}

func (m *MemoryRevocationStore) Check() error { return nil }

// revokerKey names a client in a store's file and object names and labels:
// 32 hex digits of SHA-256 of its client_id, whatever characters that has.
func revokerKey(clientID string) string {
	sum := sha256.Sum256([]byte(clientID))
	return hex.EncodeToString(sum[:16])
}

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

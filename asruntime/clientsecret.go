package asruntime

// Client secrets of the standalone registry (client_secret_basic and
// client_secret_post). A document registers either the secret itself
// (client_secret, at least MinClientSecretLength characters) or a bcrypt
// hash of it (client_secret_hash), so the registry directory need not hold
// the secret in the clear.

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"k8s.io/utils/lru"
)

// MinClientSecretLength is the shortest client_secret the registry loads:
// 32 characters of a random secret are far beyond online guessing, and a
// short, memorable one is what an attacker tries first.
const MinClientSecretLength = 32

// The bcrypt costs a client_secret_hash may have: below minBcryptCost a
// stolen registry is cheap to crack; above maxBcryptCost every
// verification takes seconds of CPU.
const (
	minBcryptCost = bcrypt.DefaultCost
	maxBcryptCost = 13
)

// maxBcryptSecretBytes is the most bcrypt reads of a password; a longer
// presented secret would match on its first 72 bytes alone, so it is
// refused instead.
const maxBcryptSecretBytes = 72

// bcryptSlots bounds the bcrypt verifications running at once in the
// process, so that wrong secrets sent in parallel cost at most this many
// cores; further verifications wait for a slot (or their request's end).
var bcryptSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))

// verifiedSecrets maps a bcrypt hash to the SHA-256 of the last presented
// secret it accepted, so a client that keeps presenting its secret pays
// for bcrypt once, not once per request. It is keyed by the hash (unique
// by its salt) rather than kept on the Client, because the registry
// builds new Clients at every rescan.
var verifiedSecrets = lru.New(maxVerifiedSecrets)

// maxVerifiedSecrets bounds verifiedSecrets: more hashed-secret clients
// than this in use at once pay for bcrypt more often.
const maxVerifiedSecrets = 10_000

// clientSecret is a registered secret: the SHA-256 of a plain one, or a
// bcrypt hash.
type clientSecret struct {
	digest [sha256.Size]byte
	bcrypt string
}

// parseClientSecret checks the secret members of a client document, one of
// which is given.
func parseClientSecret(plain, hash string) (*clientSecret, error) {
	switch {
	case plain != "" && hash != "":
		return nil, errors.New("client_secret and client_secret_hash are both registered, give one")
	case plain != "":
		if n := utf8.RuneCountInString(plain); n < MinClientSecretLength {
			return nil, fmt.Errorf("client_secret has %d characters, at least %d are required (or register a bcrypt client_secret_hash)", n, MinClientSecretLength)
		}
		return &clientSecret{digest: sha256.Sum256([]byte(plain))}, nil
	case hash != "":
		if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
			return nil, errors.New("client_secret_hash is not a bcrypt hash ($2a$, $2b$ or $2y$)")
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("client_secret_hash: %w", err)
		}
		if cost < minBcryptCost || cost > maxBcryptCost {
			return nil, fmt.Errorf("client_secret_hash has bcrypt cost %d, want %d to %d", cost, minBcryptCost, maxBcryptCost)
		}
		return &clientSecret{bcrypt: hash}, nil
	}
	return nil, errors.New("neither client_secret nor client_secret_hash is registered")
}

// matches reports whether presented is the registered secret. Plain
// secrets are compared as SHA-256 digests in constant time, so neither
// their content nor their length shows in the timing.
func (s *clientSecret) matches(ctx context.Context, presented string) bool {
	digest := sha256.Sum256([]byte(presented))
	if s.bcrypt == "" {
		return subtle.ConstantTimeCompare(s.digest[:], digest[:]) == 1
	}
	if v, ok := verifiedSecrets.Get(s.bcrypt); ok {
		if verified := v.([sha256.Size]byte); subtle.ConstantTimeCompare(verified[:], digest[:]) == 1 {
			return true
		}
	}
	if len(presented) > maxBcryptSecretBytes {
		return false
	}
	select {
	case bcryptSlots <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	err := bcrypt.CompareHashAndPassword([]byte(s.bcrypt), []byte(presented))
	<-bcryptSlots
	if err != nil {
		return false
	}
	verifiedSecrets.Add(s.bcrypt, digest)
	return true
}

package asruntime

// Token revocation (RFC 7009). The caller authenticates as a registered
// client and may revoke only tokens issued to it: RFC 7009 §2.1 has the
// server verify "whether the token was issued to the client making the
// revocation request. If this validation fails, the request is refused and
// the client is informed of the error", with the RFC 6749 §5.2 error
// format (§2.2.1) — here 400 unauthorized_client, and nothing is recorded.
// Tokens that are not this server's, malformed or already expired are
// answered 200 and nothing is recorded (§2.2: "invalid tokens do not cause
// an error response"). A store that cannot record the revocation answers
// 503, which §2.2.1 tells the client to read as "the token still exists,
// retry later".
//
// The store is shared by every client, so one client must not be able to
// deny revocation to the others: each client's requests are rate limited
// (a token bucket per client_id), and each client may hold only so many
// entries in the store. Both refusals are 503 with Retry-After (§2.2.1),
// and the error_description says which limit was hit.

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Defaults of the per-client revocation rate limit: a client may revoke
// DefaultRevocationRate tokens a second on average, in bursts of
// DefaultRevocationBurst, enough for a workload revoking its tokens at
// shutdown and far below what would load the store.
const (
	DefaultRevocationRate  = 10
	DefaultRevocationBurst = 20
)

var (
	errRevocationRateLimited   = &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "this client's revocation rate limit is exceeded; retry after the Retry-After delay"}
	errRevocationQuotaExceeded = &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "this client's quota of revoked, unexpired tokens is used up; entries leave it as their tokens expire: retry after the Retry-After delay"}
	errRevocationStoreFull     = &oauthError{status: http.StatusServiceUnavailable, code: "temporarily_unavailable", description: "the revocation store is full; retry after the Retry-After delay"}
)

// Refusal reasons, the limit label of certbound_as_revocation_refusals_total.
const (
	refusalRateLimit   = "rate_limit"
	refusalClientQuota = "client_quota"
	refusalStoreFull   = "store_full"
)

func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	outcome := s.revoke(w, r)
	s.metrics.revoked(outcome, start)
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) string {
	client, t, outcome, done := s.tokenManagementRequest(w, r)
	if done {
		return outcome
	}
	if wait, ok := s.revocationLimiter.allow(client.ID, s.clock.Now()); !ok {
		s.log.Info("revocation refused: rate limit", "client_id", client.ID)
		return s.refuseRevocation(w, refusalRateLimit, errRevocationRateLimited, wait)
	}
	if t != nil && t.refreshToken != "" {
		return s.revokeRefreshToken(w, r, client, t.refreshToken)
	}
	if t == nil {
		writeRevoked(w)
		return "ignored"
	}
	if t.ClientID != client.ID {
		s.log.Info("revocation of another client's token refused", "client_id", client.ID, "token_client_id", t.ClientID)
		s.writeOAuthError(w, errNotTheClientsToken)
		return errNotTheClientsToken.code
	}
	err := s.revocations.Revoke(r.Context(), client.ID, t.ID, time.Unix(t.Expiry, 0))
	switch {
	case err == nil:
	case errors.Is(err, ErrRevocationQuotaExceeded):
		s.log.Info("revocation refused: the client's quota is used up", "client_id", client.ID)
		return s.refuseRevocation(w, refusalClientQuota, errRevocationQuotaExceeded, revocationPruneInterval)
	case errors.Is(err, ErrRevocationStoreFull):
		s.log.Error("revocation refused: the store is full", "client_id", client.ID)
		return s.refuseRevocation(w, refusalStoreFull, errRevocationStoreFull, revocationPruneInterval)
	default:
		s.log.Error("revocation could not be recorded", "client_id", client.ID, "error", err)
		s.writeOAuthError(w, errRevocationUnavailable)
		return errRevocationUnavailable.code
	}
	s.log.Info("token revoked", "client_id", client.ID, "jti", t.ID)
	writeRevoked(w)
	return "revoked"
}

// refuseRevocation answers a revocation refused by a limit: 503 with
// Retry-After in whole seconds, at least one (RFC 9110 §10.2.3).
func (s *Server) refuseRevocation(w http.ResponseWriter, limit string, e *oauthError, retryAfter time.Duration) string {
	s.metrics.revocationRefused(limit)
	w.Header().Set("Retry-After", strconv.FormatInt(max(1, int64(math.Ceil(retryAfter.Seconds()))), 10))
	s.writeOAuthError(w, e)
	return e.code
}

func writeRevoked(w http.ResponseWriter) {
	h := w.Header()
	h["Cache-Control"] = noStore
	h["Pragma"] = noCache
	w.WriteHeader(http.StatusOK)
}

// clientRateLimiter is a token bucket per client_id. Buckets are made for
// authenticated clients only, so there are at most as many as registered
// clients, plus those unregistered since; full buckets (clients idle long
// enough to be back at their burst) are dropped from time to time.
type clientRateLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	// sweepAt is the number of buckets at which full ones are dropped.
	sweepAt int
}

// minLimiterSweep is the fewest buckets kept before full ones are dropped.
const minLimiterSweep = 1024

// newRevocationLimiter is the limiter of Config.RevocationRate and
// Config.RevocationBurst.
func newRevocationLimiter(perSecond float64, burst int) (*clientRateLimiter, error) {
	if perSecond < 0 || math.IsNaN(perSecond) || math.IsInf(perSecond, 0) || burst < 0 {
		return nil, fmt.Errorf("revocation rate limit %v a second, burst %d: both must be positive", perSecond, burst)
	}
	if perSecond == 0 {
		perSecond = DefaultRevocationRate
	}
	if burst == 0 {
		burst = DefaultRevocationBurst
	}
	return &clientRateLimiter{limit: rate.Limit(perSecond), burst: burst, buckets: make(map[string]*rate.Limiter), sweepAt: minLimiterSweep}, nil
}

// allow takes one token from the client's bucket at now; when the bucket is
// empty it takes nothing and says how long until a token is there.
func (l *clientRateLimiter) allow(clientID string, now time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[clientID]
	if !found {
		if len(l.buckets) >= l.sweepAt {
			for id, other := range l.buckets {
				if other.TokensAt(now) >= float64(l.burst) {
					delete(l.buckets, id)
				}
			}
			l.sweepAt = max(minLimiterSweep, 2*len(l.buckets))
		}
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[clientID] = b
	}
	reservation := b.ReserveN(now, 1)
	if wait := reservation.DelayFrom(now); wait > 0 {
		reservation.CancelAt(now)
		return wait, false
	}
	return 0, true
}

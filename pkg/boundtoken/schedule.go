package boundtoken

// When to renew things: pure functions of the times involved, so that the
// policy has a table test.

import (
	"math/rand/v2"
	"time"
)

const (
	// refreshFraction is the share of a token's lifetime after which it is
	// refreshed; refreshJitter spreads refreshes of many replicas over
	// ±refreshJitter/2 of the lifetime around it.
	refreshFraction = 0.8
	refreshJitter   = 0.1
	// expiryMargin is how long before exp a token stops being handed out:
	// a request must still reach the resource before the token expires.
	expiryMargin = 10 * time.Second
	// minRetryDelay and maxRetryDelay bound the backoff after a failed
	// renewal while the current token is still valid.
	minRetryDelay = time.Second
	maxRetryDelay = time.Minute
)

// refreshTime is when a token issued at issued and expiring at expiry is
// refreshed: at refreshFraction of its lifetime, shifted by jitter (in
// [0,1), a uniform random draw in production) within ±refreshJitter/2.
func refreshTime(issued, expiry time.Time, jitter float64) time.Time {
	lifetime := expiry.Sub(issued)
	if lifetime <= 0 {
		return issued
	}
	fraction := refreshFraction + refreshJitter*(jitter-0.5)
	return issued.Add(time.Duration(float64(lifetime) * fraction))
}

// usableUntil is the last moment a token expiring at expiry is handed out:
// expiryMargin before it, or, for a token that lives less than twice the
// margin, half way through its life.
func usableUntil(issued, expiry time.Time) time.Time {
	lifetime := expiry.Sub(issued)
	if lifetime < 2*expiryMargin {
		return issued.Add(lifetime / 2)
	}
	return expiry.Add(-expiryMargin)
}

// renewalTime is when a certificate valid until notAfter, made at made, is
// replaced: at refreshFraction of its life, so tokens bound to it never
// outlive it.
func renewalTime(made, notAfter time.Time) time.Time {
	return made.Add(time.Duration(float64(notAfter.Sub(made)) * refreshFraction))
}

// retryDelay is the wait after the n-th consecutive failed renewal (n ≥ 1)
// while the current token remains usable: doubling from minRetryDelay,
// capped at maxRetryDelay.
func retryDelay(n int) time.Duration {
	d := minRetryDelay
	for i := 1; i < n && d < maxRetryDelay; i++ {
		d *= 2
	}
	return min(d, maxRetryDelay)
}

// jitter draws the refresh jitter.
func jitter() float64 { return rand.Float64() }

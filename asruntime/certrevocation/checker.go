// Package certrevocation checks whether the certificates of a verified
// client certificate chain have been revoked, from CRLs (RFC 5280 §5) read
// from files and, optionally, fetched from the certificates' CRL
// distribution points. crypto/x509 parses every CRL and checks its
// signature; a CRL counts only if its issuer's key signed it and it is
// current.
package certrevocation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"k8s.io/utils/clock"
)

// Status is the revocation status of a certificate chain.
type Status string

const (
	// Good: a current CRL of each checked certificate's issuer lists none.
	Good Status = "good"
	// Revoked: a current CRL lists one of the certificates.
	Revoked Status = "revoked"
	// Unavailable: for some certificate no usable CRL could be had.
	Unavailable Status = "unavailable"
)

// FailureMode says what an unavailable status means for authentication.
type FailureMode string

const (
	// FailClosed refuses a certificate whose status is unavailable.
	FailClosed FailureMode = "closed"
	// FailOpen accepts it (and counts and logs it).
	FailOpen FailureMode = "open"
)

// ParseFailureMode reads "closed" or "open".
func ParseFailureMode(s string) (FailureMode, error) {
	switch m := FailureMode(s); m {
	case FailClosed, FailOpen:
		return m, nil
	}
	return "", fmt.Errorf("revocation failure mode %q: want closed or open", s)
}

// Defaults of the distribution-point fetcher.
const (
	DefaultMaxCRLBytes  = 8 << 20
	DefaultMaxCacheAge  = time.Hour
	DefaultFetchTimeout = 5 * time.Second
)

// Observer receives the checker's metrics; asruntime's Metrics is one.
type Observer interface {
	RevocationChecked(status Status)
	CRLFetchFailed()
	CRLFileLoadFailed()
}

// Config configures a Checker.
type Config struct {
	// Files are CRL files (DER or PEM), reloaded when they change.
	Files []string
	// DistributionPoints enables fetching the CRLs named in the
	// certificates' CRL distribution points (http and https only), for
	// issuers no file CRL covers.
	DistributionPoints bool
	// FailureMode decides an unavailable status; empty means FailClosed.
	FailureMode FailureMode
	// MaxCRLBytes bounds a fetched or read CRL; zero: DefaultMaxCRLBytes.
	MaxCRLBytes int64
	// MaxCacheAge bounds how long a fetched CRL is used, whatever its
	// NextUpdate says, and the life of a CRL without NextUpdate; zero:
	// DefaultMaxCacheAge.
	MaxCacheAge time.Duration
	// FetchTimeout bounds one distribution-point fetch; zero:
	// DefaultFetchTimeout.
	FetchTimeout time.Duration
	// HTTPClient fetches distribution points; nil: a client whose
	// transport trusts the system roots. Its Timeout is overridden.
	HTTPClient *http.Client
	// Clock is the time CRL validity is judged at; nil: the real clock.
	Clock clock.PassiveClock
	// Logger; nil: slog.Default().
	Logger *slog.Logger
	// Observer receives metrics; nil: none.
	Observer Observer
}

// Checker decides the revocation status of verified chains. It is safe for
// concurrent use; Run keeps its CRLs current.
type Checker struct {
	mode     FailureMode
	clock    clock.PassiveClock
	log      *slog.Logger
	observer Observer
	files    *fileCRLs
	fetcher  *fetcher
}

// New loads every file (each must hold a valid CRL: a typo in a path is
// an error, not a silently unchecked issuer) and prepares the fetcher.
func New(cfg Config) (*Checker, error) {
	if len(cfg.Files) == 0 && !cfg.DistributionPoints {
		return nil, errors.New("revocation checking needs CRL files or distribution points")
	}
	if cfg.FailureMode == "" {
		cfg.FailureMode = FailClosed
	}
	if _, err := ParseFailureMode(string(cfg.FailureMode)); err != nil {
		return nil, err
	}
	if cfg.MaxCRLBytes == 0 {
		cfg.MaxCRLBytes = DefaultMaxCRLBytes
	}
	if cfg.MaxCacheAge == 0 {
		cfg.MaxCacheAge = DefaultMaxCacheAge
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	if cfg.MaxCRLBytes < 0 || cfg.MaxCacheAge < 0 || cfg.FetchTimeout < 0 {
		return nil, errors.New("revocation bounds must be positive")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	c := &Checker{mode: cfg.FailureMode, clock: cfg.Clock, log: cfg.Logger, observer: cfg.Observer}
	if len(cfg.Files) > 0 {
		files, err := loadFiles(cfg.Files, cfg.MaxCRLBytes, cfg.MaxCacheAge, cfg.Logger, cfg.Observer)
		if err != nil {
			return nil, err
		}
		c.files = files
	}
	if cfg.DistributionPoints {
		c.fetcher = newFetcher(cfg)
	}
	return c, nil
}

// Run follows the CRL files and refreshes fetched CRLs before they expire,
// until ctx is done.
func (c *Checker) Run(ctx context.Context) {
	done := make(chan struct{})
	if c.fetcher != nil {
		go func() {
			defer close(done)
			c.fetcher.refreshLoop(ctx)
		}()
	} else {
		close(done)
	}
	if c.files != nil {
		c.files.watch(ctx)
	}
	<-done
}

// Result is the status of a chain and, unless Good, the certificate it is
// about and why.
type Result struct {
	Status Status
	// Cert is the revoked certificate, or one whose status is unavailable.
	Cert *x509.Certificate
	// RevokedAt and ReasonCode are the CRL entry's, when Revoked.
	RevokedAt  time.Time
	ReasonCode int
	// Err says why the status is unavailable.
	Err error
}

// Accepts reports whether the result lets the certificate authenticate:
// Good, or Unavailable under FailOpen.
func (c *Checker) Accepts(r Result) bool {
	return r.Status == Good || (r.Status == Unavailable && c.mode == FailOpen)
}

// FailureMode is the configured failure mode.
func (c *Checker) FailureMode() FailureMode { return c.mode }

// Check decides the status of the verified chains of one certificate
// (each leaf first, its trust anchor last; the anchor is not checked: it is
// trusted by configuration). The leaf is in every chain; of several chains
// the best result counts, so an alternative path around a revoked
// intermediate is as good as it is to crypto/x509.
func (c *Checker) Check(ctx context.Context, chains [][]*x509.Certificate) Result {
	best := Result{Status: Unavailable, Err: errNoVerifiedChain}
	for i, chain := range chains {
		r := c.checkChain(ctx, chain)
		if i == 0 || rank(r.Status) > rank(best.Status) {
			best = r
		}
		if best.Status == Good {
			break
		}
	}
	c.observer.RevocationChecked(best.Status)
	return best
}

var errNoVerifiedChain = errors.New("no verified chain")

func rank(s Status) int {
	switch s {
	case Good:
		return 2
	case Unavailable:
		return 1
	}
	return 0
}

// checkChain checks every certificate but the anchor; the first revoked
// one decides, else the first unavailable one.
func (c *Checker) checkChain(ctx context.Context, chain []*x509.Certificate) Result {
	now := c.clock.Now()
	result := Result{Status: Good}
	for i := 0; i+1 < len(chain); i++ {
		r := c.checkOne(ctx, chain[i], chain[i+1], now)
		switch {
		case r.Status == Revoked:
			return r
		case r.Status == Unavailable && result.Status == Good:
			result = r
		}
	}
	return result
}

// checkOne decides one certificate from the file CRLs of its issuer, else
// from its distribution points.
func (c *Checker) checkOne(ctx context.Context, cert, issuer *x509.Certificate, now time.Time) Result {
	var reasons []error
	if c.files != nil {
		list, err := c.files.find(cert, issuer, now)
		if err == nil {
			return decide(list, cert)
		}
		reasons = append(reasons, err)
	}
	if c.fetcher != nil {
		list, err := c.fetcher.find(ctx, cert, issuer, now)
		if err == nil {
			return decide(list, cert)
		}
		reasons = append(reasons, err)
	}
	return Result{Status: Unavailable, Cert: cert, Err: errors.Join(reasons...)}
}

func decide(list *crl, cert *x509.Certificate) Result {
	if e, ok := list.entry(cert.SerialNumber); ok {
		return Result{Status: Revoked, Cert: cert, RevokedAt: e.RevocationTime, ReasonCode: e.ReasonCode}
	}
	return Result{Status: Good}
}

// SerialHex is a certificate serial number as logged: lower-case hex.
func SerialHex(cert *x509.Certificate) string { return serialHex(cert.SerialNumber) }

type noObserver struct{}

func (noObserver) RevocationChecked(Status) {}
func (noObserver) CRLFetchFailed()          {}
func (noObserver) CRLFileLoadFailed()       {}

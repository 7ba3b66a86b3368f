package certrevocation

// CRLs from the certificates' CRL distribution points. Only certificates
// that already chain to a trust anchor get here, so only URLs a trusted CA
// signed are fetched. Each URL has one cache entry: a CRL is used until its
// NextUpdate, never longer than the maximum age; it is refetched in the
// background before then; one fetch per URL runs at a time and concurrent
// requests wait for it; a failed fetch is not retried for a short while.

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

const (
	// maxCachedURLs bounds the cache; the least recently used entry goes.
	maxCachedURLs = 256
	// maxRedirects bounds redirects of one fetch (http and https only).
	maxRedirects = 3
	// refreshInterval is how often the background refresh looks at the
	// cache.
	refreshInterval = time.Minute
)

type fetcher struct {
	client     *http.Client
	maxBytes   int64
	maxAge     time.Duration
	retryDelay time.Duration
	clock      clock.PassiveClock
	log        *slog.Logger
	observer   Observer

	mu    sync.Mutex
	cache map[string]*fetchedCRL
}

type fetchedCRL struct {
	crl        *crl
	freshUntil time.Time
	// err is the last fetch's failure; no fetch is started before retryAt.
	err     error
	retryAt time.Time
	// inflight is closed when the running fetch ends.
	inflight chan struct{}
	lastUsed time.Time
}

func newFetcher(cfg Config) *fetcher {
	client := &http.Client{}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		client = &c
	}
	client.Timeout = cfg.FetchTimeout
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) >= maxRedirects {
			return fmt.Errorf("more than %d redirects", maxRedirects)
		}
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
		}
		return nil
	}
	return &fetcher{
		client:     client,
		maxBytes:   cfg.MaxCRLBytes,
		maxAge:     cfg.MaxCacheAge,
		retryDelay: min(30*time.Second, cfg.MaxCacheAge),
		clock:      cfg.Clock,
		log:        cfg.Logger,
		observer:   cfg.Observer,
		cache:      map[string]*fetchedCRL{},
	}
}

// distributionPoints are cert's http and https CRL distribution points.
func distributionPoints(cert *x509.Certificate) []string {
	var urls []string
	for _, dp := range cert.CRLDistributionPoints {
		if u, err := url.Parse(dp); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			urls = append(urls, dp)
		}
	}
	return urls
}

// find returns a current CRL of cert's issuer from one of cert's
// distribution points.
func (f *fetcher) find(ctx context.Context, cert, issuer *x509.Certificate, now time.Time) (*crl, error) {
	urls := distributionPoints(cert)
	if len(urls) == 0 {
		return nil, errors.New("no http or https CRL distribution point")
	}
	var reasons []error
	for _, u := range urls {
		c, err := f.get(ctx, u, now)
		if err == nil {
			err = c.covers(cert, issuer, now)
		}
		if err == nil {
			return c, nil
		}
		reasons = append(reasons, fmt.Errorf("%s: %w", u, err))
	}
	return nil, errors.Join(reasons...)
}

// get returns the cached CRL of u while fresh, else fetches it (or waits
// for the fetch already running).
func (f *fetcher) get(ctx context.Context, u string, now time.Time) (*crl, error) {
	for {
		f.mu.Lock()
		e := f.entry(u, now)
		e.lastUsed = now
		switch {
		case e.crl != nil && now.Before(e.freshUntil):
			c := e.crl
			f.mu.Unlock()
			return c, nil
		case e.inflight != nil:
			wait := e.inflight
			f.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		case e.err != nil && now.Before(e.retryAt):
			err := e.err
			f.mu.Unlock()
			return nil, err
		}
		done := make(chan struct{})
		e.inflight = done
		f.mu.Unlock()
		// The fetch outlives a cancelled request: its waiters and the
		// cache still want it; the client's timeout bounds it.
		f.fetch(context.WithoutCancel(ctx), u, e)
		f.mu.Lock()
		c, err := e.crl, e.err
		f.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// entry is u's cache entry, made (evicting the least recently used one if
// the cache is full) if there is none. f.mu is held.
func (f *fetcher) entry(u string, now time.Time) *fetchedCRL {
	if e, ok := f.cache[u]; ok {
		return e
	}
	if len(f.cache) >= maxCachedURLs {
		var oldest string
		for k, e := range f.cache {
			if e.inflight == nil && (oldest == "" || e.lastUsed.Before(f.cache[oldest].lastUsed)) {
				oldest = k
			}
		}
		delete(f.cache, oldest)
	}
	e := &fetchedCRL{lastUsed: now}
	f.cache[u] = e
	return e
}

// fetch downloads u into e and closes e.inflight.
func (f *fetcher) fetch(ctx context.Context, u string, e *fetchedCRL) {
	list, err := f.download(ctx, u)
	now := f.clock.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.observer.CRLFetchFailed()
		f.log.Warn("CRL distribution point fetch failed", "url", u, "error", err)
		e.err, e.retryAt = err, now.Add(f.retryDelay)
	} else {
		e.crl = newCRL(list, f.maxAge)
		e.freshUntil = now.Add(f.maxAge)
		if e.crl.expires.Before(e.freshUntil) {
			e.freshUntil = e.crl.expires
		}
		e.err = nil
	}
	close(e.inflight)
	e.inflight = nil
}

func (f *fetcher) download(ctx context.Context, u string) (*x509.RevocationList, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	if resp.ContentLength > f.maxBytes {
		return nil, fmt.Errorf("CRL of %d bytes is larger than %d", resp.ContentLength, f.maxBytes)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > f.maxBytes {
		return nil, fmt.Errorf("CRL larger than %d bytes", f.maxBytes)
	}
	return ParseCRL(data)
}

// refreshLoop refetches, every refreshInterval, the CRLs that recent
// requests used and that expire within the next quarter of the maximum
// age, so requests rarely wait for a fetch; entries unused for a maximum
// age are dropped.
func (f *fetcher) refreshLoop(ctx context.Context) {
	t := time.NewTicker(refreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f.refresh(ctx)
		}
	}
}

func (f *fetcher) refresh(ctx context.Context) {
	now := f.clock.Now()
	type job struct {
		url string
		e   *fetchedCRL
	}
	var jobs []job
	f.mu.Lock()
	for u, e := range f.cache {
		switch {
		case now.Sub(e.lastUsed) > f.maxAge && e.inflight == nil:
			delete(f.cache, u)
		case e.crl != nil && e.inflight == nil && e.freshUntil.Sub(now) < f.maxAge/4:
			e.inflight = make(chan struct{})
			jobs = append(jobs, job{u, e})
		}
	}
	f.mu.Unlock()
	for _, j := range jobs {
		f.fetch(ctx, j.url, j.e)
	}
}

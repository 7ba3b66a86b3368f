package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	cmmeta "github.com/cert-manager/cert-manager/pkg/apis/meta/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/certbound/certbound/test/devcluster"
)

// tokenRetry is how often a sampled client asks for a token until the
// authorization server knows it: the resolution of the latency figures.
const tokenRetry = 100 * time.Millisecond

// tokenProbe measures, for a sample of clients, the time from the moment
// the client could first present its certificate (its Certificate turned
// Ready, or, for a client that brings its own certificate, its OAuthClient
// was created) to its first successful token at the mTLS token endpoint.
type tokenProbe struct {
	dial          func(ctx context.Context, network, addr string) (net.Conn, error)
	tokenEndpoint string
	serverCAs     *x509.CertPool
	sampled       map[string]bool

	mu        sync.Mutex
	started   map[string]bool
	latencies []time.Duration
	failures  []error
	wg        sync.WaitGroup
}

func newTokenProbe(dial func(ctx context.Context, network, addr string) (net.Conn, error), tokenEndpoint string, serverCAs *x509.CertPool, sampled map[string]bool) *tokenProbe {
	return &tokenProbe{dial: dial, tokenEndpoint: tokenEndpoint, serverCAs: serverCAs, sampled: sampled, started: map[string]bool{}}
}

// start asks for tokens as clientID with cert until one is issued
// or ctx ends; ready is when the client could first have asked. The
// attempts share one kept-alive connection, closed at the end, as a
// workload's client would: a connection per attempt, left open, would
// have the server handshake and hold thousands of idle connections and
// measure that instead of the registry.
func (p *tokenProbe) start(ctx context.Context, clientID string, cert tls.Certificate, ready time.Time) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		hc := devcluster.HTTPClient(p.dial, p.serverCAs, &cert)
		defer hc.CloseIdleConnections()
		for {
			err := requestToken(ctx, hc, p.tokenEndpoint, clientID)
			if err == nil {
				p.mu.Lock()
				p.latencies = append(p.latencies, time.Since(ready))
				p.mu.Unlock()
				return
			}
			select {
			case <-ctx.Done():
				p.mu.Lock()
				p.failures = append(p.failures, fmt.Errorf("%s: no token: %w", clientID, err))
				p.mu.Unlock()
				return
			case <-time.After(tokenRetry):
			}
		}
	}()
}

// requestToken asks for a client_credentials token at the mTLS token
// endpoint; any answer but 200 is an error. The body is read to the end
// so that the connection is kept for the next attempt.
func requestToken(ctx context.Context, hc *http.Client, tokenEndpoint, clientID string) error {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token endpoint answered %d: %s", resp.StatusCode, body)
	}
	return nil
}

// claim reports whether name is sampled and not yet probed, and marks it.
func (p *tokenProbe) claim(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.sampled[name] || p.started[name] {
		return false
	}
	p.started[name] = true
	return true
}

// watchCertificates starts a probe for each sampled OAuthClient the moment
// the Certificate the operator made for it turns Ready, with the key and
// certificate cert-manager wrote. It returns when ctx ends or the watch
// fails.
func (p *tokenProbe) watchCertificates(ctx context.Context, c client.WithWatch, namespace string, clientID func(name string) string) error {
	w, err := c.Watch(ctx, &cmapi.CertificateList{}, client.InNamespace(namespace))
	if err != nil {
		return err
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if ev.Type != watch.Added && ev.Type != watch.Modified {
			continue
		}
		cert, ok := ev.Object.(*cmapi.Certificate)
		if !ok || !certificateReady(cert) {
			continue
		}
		owner := ownerClient(cert)
		if owner == "" || !p.claim(owner) {
			continue
		}
		readyAt := time.Now()
		var secret corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: cert.Spec.SecretName}, &secret); err != nil {
			p.fail(fmt.Errorf("%s: certificate Secret: %w", owner, err))
			continue
		}
		pair, err := tls.X509KeyPair(secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey])
		if err != nil {
			p.fail(fmt.Errorf("%s: certificate Secret: %w", owner, err))
			continue
		}
		p.start(ctx, clientID(owner), pair, readyAt)
	}
	return ctx.Err()
}

func (p *tokenProbe) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures = append(p.failures, err)
}

// wait waits for every started probe and returns the latencies, sorted.
func (p *tokenProbe) wait() ([]time.Duration, []error) {
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	slices.Sort(p.latencies)
	return p.latencies, p.failures
}

func certificateReady(c *cmapi.Certificate) bool {
	for _, cond := range c.Status.Conditions {
		if cond.Type == cmapi.CertificateConditionReady {
			return cond.Status == cmmeta.ConditionTrue
		}
	}
	return false
}

// ownerClient is the name of the OAuthClient that owns a Certificate.
func ownerClient(c *cmapi.Certificate) string {
	for _, ref := range c.OwnerReferences {
		if ref.Kind == "OAuthClient" {
			return ref.Name
		}
	}
	return ""
}

// percentile is the nearest-rank q-quantile of sorted durations.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// sample picks about want of n indexes, evenly spread, so that clients
// created early and late are both measured.
func sample(n, want int) []int {
	step := max(1, n/max(want, 1))
	var idx []int
	for i := 0; i < n && len(idx) < want; i += step {
		idx = append(idx, i)
	}
	return idx
}

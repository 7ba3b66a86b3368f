package main

// The scenarios and the load: workers posting client_credentials token
// requests to the mTLS alias, each over its own transport, for a fixed time.

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// connection is how a worker connects for each token.
type connection int

const (
	keptAlive connection = iota
	fullHandshake
	resumed
)

type scenario struct {
	name   string
	what   string
	conn   connection
	self   bool
	server serverSetup
}

var scenarios = []scenario{
	{name: "keepalive", what: "tls_client_auth, kept-alive mTLS connection", conn: keptAlive, server: serverSetup{alg: jose.ES256}},
	{name: "handshake", what: "tls_client_auth, a new full TLS handshake per token", conn: fullHandshake, server: serverSetup{alg: jose.ES256}},
	{name: "resumption", what: "tls_client_auth, a new connection per token with TLS session resumption", conn: resumed, server: serverSetup{alg: jose.ES256}},
	{name: "selfsigned", what: "self_signed_tls_client_auth, kept-alive", conn: keptAlive, self: true, server: serverSetup{alg: jose.ES256}},
	{name: "crl", what: "tls_client_auth, kept-alive, CRL checking on (--client-crl-file)", conn: keptAlive, server: serverSetup{alg: jose.ES256, crl: true}},
	{name: "eddsa", what: "tls_client_auth, kept-alive, EdDSA (Ed25519) signing key", conn: keptAlive, server: serverSetup{alg: jose.EdDSA}},
}

func scenarioNames() []string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return names
}

func scenarioByName(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

// result is one scenario's figures.
type result struct {
	scenario
	tokens   int
	rate     float64
	ratio    float64
	p50, p99 time.Duration
	errors   int
	// firstError is the first failure, to say what went wrong.
	firstError error
	// resumedConns counts the connections that resumed a session, of
	// newConns made.
	resumedConns, newConns int
	validated              int
	// serverCPU is the server's CPU time over the measured time: near 1
	// pinned means its core was saturated, well below 1 that the load
	// driver, not the server, set the rate.
	serverCPU float64
	// revocationChecks is the server's count of good revocation checks
	// (warm-up included), with CRL checking on.
	revocationChecks float64
}

// workerResult is what one worker measured.
type workerResult struct {
	latencies              []time.Duration
	errors                 int
	firstError             error
	resumedConns, newConns int
	validated              int
}

func runScenario(ctx context.Context, o options, fx *fixture, sc scenario, pinned bool, dir string) (result, error) {
	srv, err := startServer(ctx, o, fx, sc.server, pinned, dir)
	if err != nil {
		return result{}, err
	}
	defer srv.stop()

	cert, clientID := fx.pkiClient, pkiClientID
	if sc.self {
		cert, clientID = fx.selfClient, selfSignedClientID
	}
	signing := fx.signingKeys[sc.server.alg]
	check := validator{key: signing.Public(), clientID: clientID, thumbprint: thumbprint(cert)}
	body := url.Values{"grant_type": {"client_credentials"}, "client_id": {clientID}}.Encode()
	endpoint := srv.mtlsURL + "/token"

	// A short warm-up outside the measurement: first connections, caches.
	warm, cancelWarm := context.WithTimeout(ctx, time.Second)
	runWorkers(warm, o, fx, sc, cert, endpoint, body, check)
	cancelWarm()

	measured, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	cpuBefore, err := srv.cpuTime()
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	workers := runWorkers(measured, o, fx, sc, cert, endpoint, body, check)
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return result{}, ctx.Err()
	}
	cpuAfter, err := srv.cpuTime()
	if err != nil {
		return result{}, err
	}

	res := result{scenario: sc, serverCPU: (cpuAfter - cpuBefore).Seconds() / elapsed.Seconds()}
	var all []time.Duration
	for _, w := range workers {
		all = append(all, w.latencies...)
		res.errors += w.errors
		if res.firstError == nil {
			res.firstError = w.firstError
		}
		res.resumedConns += w.resumedConns
		res.newConns += w.newConns
		res.validated += w.validated
	}
	res.tokens = len(all)
	res.rate = float64(res.tokens) / elapsed.Seconds()
	slices.Sort(all)
	res.p50, res.p99 = percentile(all, 0.50), percentile(all, 0.99)
	if res.tokens > 0 && res.validated == 0 {
		return res, errors.New("no response was validated")
	}
	if sc.server.crl {
		checks, err := srv.goodRevocationChecks(ctx)
		if err != nil {
			return res, err
		}
		if checks == 0 {
			return res, errors.New("the server checked no client certificate against the CRL")
		}
		res.revocationChecks = checks
	}
	return res, nil
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func runWorkers(ctx context.Context, o options, fx *fixture, sc scenario, cert tls.Certificate, endpoint, body string, check validator) []workerResult {
	out := make([]workerResult, o.workers)
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() { out[i] = work(ctx, o, fx, sc, cert, endpoint, body, check) })
	}
	wg.Wait()
	return out
}

// work posts token requests until ctx is done. Latencies of successful
// requests only are kept; a request cut short by the end of the
// measurement is not counted at all.
func work(ctx context.Context, o options, fx *fixture, sc scenario, cert tls.Certificate, endpoint, body string, check validator) workerResult {
	tlsConfig := &tls.Config{
		RootCAs:      fx.servingRoots,
		Certificates: []tls.Certificate{cert},
		// A full handshake per token must not resume.
		SessionTicketsDisabled: sc.conn == fullHandshake,
	}
	if sc.conn == resumed {
		tlsConfig.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	}
	transport := &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: sc.conn != keptAlive, MaxIdleConnsPerHost: 1}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	var w workerResult
	fail := func(err error) {
		w.errors++
		if w.firstError == nil {
			w.firstError = err
		}
	}
	for n := 0; ; n++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
		if err != nil {
			fail(err)
			return w
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return w
			}
			fail(err)
			continue
		}
		payload, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		latency := time.Since(start)
		if err != nil {
			if ctx.Err() != nil {
				return w
			}
			fail(err)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			fail(fmt.Errorf("status %d: %.200s", resp.StatusCode, payload))
			continue
		}
		if sc.conn != keptAlive && resp.TLS != nil {
			w.newConns++
			if resp.TLS.DidResume {
				w.resumedConns++
			}
		}
		if n%o.sample == 0 {
			if err := check.validate(payload); err != nil {
				fail(err)
				continue
			}
			w.validated++
		}
		w.latencies = append(w.latencies, latency)
	}
}

// validator checks that a token response carries an access token the
// server's key signed, for the client, bound to the client's certificate.
type validator struct {
	key        jose.JSONWebKey
	clientID   string
	thumbprint string
}

func (v validator) validate(payload []byte) error {
	var resp struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.Unmarshal(payload, &resp); err != nil {
		return fmt.Errorf("token response: %w", err)
	}
	if resp.AccessToken == "" || !strings.EqualFold(resp.TokenType, "Bearer") {
		return fmt.Errorf("token response without a Bearer access token (token_type %q)", resp.TokenType)
	}
	jws, err := jose.ParseSigned(resp.AccessToken, []jose.SignatureAlgorithm{jose.SignatureAlgorithm(v.key.Algorithm)})
	if err != nil {
		return fmt.Errorf("access token: %w", err)
	}
	claimsJSON, err := jws.Verify(v.key)
	if err != nil {
		return fmt.Errorf("access token signature: %w", err)
	}
	var claims struct {
		ClientID string `json:"client_id"`
		CNF      struct {
			X5tS256 string `json:"x5t#S256"`
		} `json:"cnf"`
	}
	if err := json.Unmarshal(claimsJSON, &claims); err != nil {
		return fmt.Errorf("access token claims: %w", err)
	}
	if claims.ClientID != v.clientID {
		return fmt.Errorf("access token for client %q, want %q", claims.ClientID, v.clientID)
	}
	if subtle.ConstantTimeCompare([]byte(claims.CNF.X5tS256), []byte(v.thumbprint)) != 1 {
		return errors.New("access token not bound to the client certificate's thumbprint (cnf x5t#S256)")
	}
	return nil
}

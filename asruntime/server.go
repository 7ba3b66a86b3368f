package asruntime

// The authorization server's listeners: a conventional TLS listener that
// never asks for a client certificate, an mTLS listener that asks for one on
// every handshake but leaves the decision to the client's registered method
// (RFC 8705 §5: mTLS behaviour isolated on its own port), and a plain HTTP
// listener for metrics and probes.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	"github.com/certbound/certbound/asruntime/certrevocation"
	"github.com/certbound/certbound/asruntime/clientcert"
	"github.com/certbound/certbound/asruntime/oauthurl"
	"github.com/certbound/certbound/internal/httplimits"
)

// DefaultAccessTokenTTL is the lifetime of access tokens unless configured.
const DefaultAccessTokenTTL = 10 * time.Minute

// Config configures a Server. Issuer, GetCertificate and Registry are
// required.
type Config struct {
	// Issuer is the issuer identifier (RFC 8414 §2): an https URL without
	// query or fragment. It is the iss of every token, and the
	// conventional endpoints are below it.
	Issuer string
	// MTLSBaseURL is where the mtls_endpoint_aliases point. Empty: the
	// issuer's scheme, host and path with the mTLS listener's port.
	MTLSBaseURL string
	// GetCertificate supplies the serving certificate of both TLS
	// listeners (for example CertificateReloader.GetCertificate).
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// TrustAnchors are the only roots for tls_client_auth chains (RFC 8705
	// §7.4). Nil: no tls_client_auth client can authenticate.
	TrustAnchors *x509.CertPool
	// Intermediates may complete chains whose clients send only their leaf.
	Intermediates []*x509.Certificate
	// ClientCertificateRevocation, when set, refuses tls_client_auth
	// chains with a revoked certificate (and, failing closed, those whose
	// status is unavailable). The caller runs its Run. Nil: no revocation
	// checking.
	ClientCertificateRevocation *certrevocation.Checker
	// Registry supplies the registered clients.
	Registry Registry
	// SigningKeys sign the tokens. Nil: an ephemeral ES256 key, with a
	// warning in the log.
	SigningKeys *SigningKeys
	// AccessTokenTTL is the token lifetime; zero means
	// DefaultAccessTokenTTL.
	AccessTokenTTL time.Duration
	// JWKSRootCAs verify the servers behind clients' jwks_uri. Nil: the
	// system roots.
	JWKSRootCAs *x509.CertPool
	// JWKSFetch bounds the fetches of clients' jwks_uri: cache ages,
	// allowed special-purpose destinations, per-client rate. Zero value:
	// the defaults.
	JWKSFetch JWKSFetchPolicy
	// Clock is the time for token claims and certificate validity. Nil:
	// the real clock.
	Clock clock.PassiveClock
	// Logger receives structured logs. Nil: slog.Default().
	Logger *slog.Logger
	// Metrics receives the server's metrics. Nil: NewMetrics().
	Metrics *Metrics
	// Revocations records revoked tokens. Nil: a MemoryRevocationStore,
	// lost on restart and not shared between replicas.
	Revocations RevocationStore
	// RevocationRate (requests a second) and RevocationBurst limit each
	// client's revocation requests. Zero: DefaultRevocationRate and
	// DefaultRevocationBurst.
	RevocationRate  float64
	RevocationBurst int
	// ClientCertificates, when set, takes client certificates from the
	// header of a trusted TLS-terminating proxy (RFC 8705 §6.5). Nil: from
	// the TLS connection only. Build it with
	// OnIgnored: Metrics.ClientCertHeaderIgnored to count ignored headers.
	ClientCertificates *clientcert.Source
	// TokenReviewer validates Kubernetes service account tokens for the
	// token exchange grant. Nil: neither token exchange nor refresh_token
	// is offered.
	TokenReviewer TokenReviewer
	// RefreshTokens stores refresh-token families. Nil: a
	// MemoryRefreshTokenStore, lost on restart and not shared.
	RefreshTokens RefreshTokenStore
	// RefreshTokenTTL is how long a refresh token stays valid unused;
	// RefreshTokenMaxLifetime bounds a family from its exchange;
	// RefreshFamiliesPerClient bounds one client's families. Zero: the
	// Default* values.
	RefreshTokenTTL          time.Duration
	RefreshTokenMaxLifetime  time.Duration
	RefreshFamiliesPerClient int
}

// revocationPruneInterval is how often a serving server drops expired
// entries from its revocation store.
const revocationPruneInterval = time.Minute

// Server is an RFC 8705 authorization server.
type Server struct {
	issuer         string
	mtlsBaseURL    string
	getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	registry       Registry
	keys           *SigningKeys
	ttl            time.Duration
	clock          clock.PassiveClock
	log            *slog.Logger
	metrics        *Metrics
	pki            *pkiAuthenticator
	selfSigned     *selfSignedAuthenticator
	revocations    RevocationStore
	certSource     *clientcert.Source
	// reviewer and the refresh fields serve the public clients' grants.
	reviewer           TokenReviewer
	refreshTokens      RefreshTokenStore
	refreshTTL         time.Duration
	refreshMaxLifetime time.Duration
	refreshPerClient   int
	// revocationLimiter limits each client's revocation requests.
	revocationLimiter *clientRateLimiter
	// challenges are the WWW-Authenticate values of a 401.
	challenges challenges

	claimsPrefix   []byte
	issuerAudience []string
	ready          atomic.Bool
}

// New checks cfg and prepares a Server; Serve runs it.
func New(cfg Config) (*Server, error) {
	if err := checkIssuer(cfg.Issuer); err != nil {
		return nil, err
	}
	if cfg.MTLSBaseURL != "" {
		if err := checkIssuer(cfg.MTLSBaseURL); err != nil {
			return nil, fmt.Errorf("mTLS base URL: %w", err)
		}
	}
	if cfg.GetCertificate == nil {
		return nil, errors.New("a serving certificate is required")
	}
	if cfg.Registry == nil {
		return nil, errors.New("a client registry is required")
	}
	s := &Server{
		issuer:         cfg.Issuer,
		mtlsBaseURL:    cfg.MTLSBaseURL,
		getCertificate: cfg.GetCertificate,
		registry:       cfg.Registry,
		keys:           cfg.SigningKeys,
		ttl:            cfg.AccessTokenTTL,
		clock:          cfg.Clock,
		log:            cfg.Logger,
		metrics:        cfg.Metrics,
		revocations:    cfg.Revocations,
		certSource:     cfg.ClientCertificates,
		reviewer:       cfg.TokenReviewer,
		challenges:     newChallenges(cfg.Issuer),
	}
	if s.revocations == nil {
		s.revocations = NewMemoryRevocationStore(0, 0)
	}
	limiter, err := newRevocationLimiter(cfg.RevocationRate, cfg.RevocationBurst)
	if err != nil {
		return nil, err
	}
	s.revocationLimiter = limiter
	if err := s.configureRefreshTokens(cfg); err != nil {
		return nil, err
	}
	if s.ttl == 0 {
		s.ttl = DefaultAccessTokenTTL
	}
	if s.ttl < time.Second {
		return nil, fmt.Errorf("access token TTL %s is shorter than a second", s.ttl)
	}
	if s.clock == nil {
		s.clock = clock.RealClock{}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	if s.keys == nil {
		keys, err := GenerateSigningKeys()
		if err != nil {
			return nil, err
		}
		s.keys = keys
		s.log.Warn("no signing key configured: using an ephemeral ES256 key; tokens will not verify after a restart", "kid", keys.KeyID())
	}
	s.pki = &pkiAuthenticator{roots: cfg.TrustAnchors, intermediates: cfg.Intermediates, clock: s.clock,
		revocation: cfg.ClientCertificateRevocation, log: s.log}
	fetcher, err := newJWKSFetcher(cfg.JWKSRootCAs, cfg.JWKSFetch, s.clock, s.metrics, s.log)
	if err != nil {
		return nil, err
	}
	s.selfSigned = &selfSignedAuthenticator{fetcher: fetcher}
	s.claimsPrefix = appendJSONString([]byte(`{"iss":`), s.issuer)
	s.issuerAudience = []string{s.issuer}
	return s, nil
}

// checkIssuer applies RFC 8414 §2: https, a host, no query or fragment.
func checkIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil {
		return fmt.Errorf("issuer %q: %w", issuer, err)
	}
	if u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("issuer %q must be an https URL with a host and no query, fragment or user info", issuer)
	}
	return nil
}

// Metrics returns the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Listeners are the bound sockets of a Server. Metrics may be nil.
type Listeners struct {
	Public  net.Listener
	MTLS    net.Listener
	Metrics net.Listener
}

// Listen binds the three addresses (":0" picks a free port; read the bound
// address from the listeners).
func Listen(publicAddr, mtlsAddr, metricsAddr string) (*Listeners, error) {
	ls := &Listeners{}
	var err error
	if ls.Public, err = net.Listen("tcp", publicAddr); err != nil {
		return nil, fmt.Errorf("listen %s: %w", publicAddr, err)
	}
	if ls.MTLS, err = net.Listen("tcp", mtlsAddr); err != nil {
		ls.Close()
		return nil, fmt.Errorf("listen %s: %w", mtlsAddr, err)
	}
	if metricsAddr != "" {
		if ls.Metrics, err = net.Listen("tcp", metricsAddr); err != nil {
			ls.Close()
			return nil, fmt.Errorf("listen %s: %w", metricsAddr, err)
		}
	}
	return ls, nil
}

// Close closes the listeners that are open.
func (ls *Listeners) Close() {
	for _, l := range []net.Listener{ls.Public, ls.MTLS, ls.Metrics} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// Serve serves on ls until ctx is done, then shuts down gracefully. It
// returns nil after a shutdown requested by ctx.
func (s *Server) Serve(ctx context.Context, ls *Listeners) error {
	if ls == nil || ls.Public == nil || ls.MTLS == nil {
		return errors.New("serve: the public and the mTLS listener are required")
	}
	mtlsBase := s.mtlsBaseURL
	if mtlsBase == "" {
		var err error
		if mtlsBase, err = defaultMTLSBaseURL(s.issuer, ls.MTLS.Addr()); err != nil {
			return err
		}
	}
	metadata, err := buildMetadata(s.issuer, mtlsBase, s.publicGrantsOffered())
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	issuerURL, _ := url.Parse(s.issuer)
	mtlsURL, _ := url.Parse(mtlsBase)
	wellKnown := oauthurl.MetadataPath(issuerURL.Path)

	servers := []*http.Server{
		s.httpServer(s.routes(wellKnown, issuerURL.Path, metadata), tls.NoClientCert),
		s.httpServer(s.routes(wellKnown, mtlsURL.Path, metadata), tls.RequestClientCert),
	}
	listeners := []net.Listener{ls.Public, ls.MTLS}
	if ls.Metrics != nil {
		servers = append(servers, &http.Server{Handler: s.opsRoutes(), ReadHeaderTimeout: httplimits.ReadHeaderTimeout})
		listeners = append(listeners, ls.Metrics)
	}

	errs := make(chan error, len(servers))
	var wg sync.WaitGroup
	for i, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if srv.TLSConfig != nil {
				err = srv.ServeTLS(listeners[i], "", "")
			} else {
				err = srv.Serve(listeners[i])
			}
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("serve %s: %w", listeners[i].Addr(), err)
			}
		}()
	}
	pruneDone := make(chan struct{})
	pruneCtx, stopPrune := context.WithCancel(ctx)
	go func() {
		defer close(pruneDone)
		s.pruneRevocations(pruneCtx)
	}()
	defer func() {
		stopPrune()
		<-pruneDone
	}()
	s.ready.Store(true)
	s.log.Info("authorization server listening", "issuer", s.issuer, "public", ls.Public.Addr().String(),
		"mtls", ls.MTLS.Addr().String(), "mtls_base_url", mtlsBase)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errs:
	}
	s.ready.Store(false)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, srv := range servers {
		if err := srv.Shutdown(shutdownCtx); err != nil && serveErr == nil {
			serveErr = fmt.Errorf("shutdown: %w", err)
		}
	}
	wg.Wait()
	return serveErr
}

// defaultMTLSBaseURL is the issuer with the port of the mTLS listener.
func defaultMTLSBaseURL(issuer string, addr net.Addr) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", err
	}
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "", fmt.Errorf("mTLS listener address: %w", err)
	}
	u.Host = net.JoinHostPort(u.Hostname(), port)
	return u.String(), nil
}

func (s *Server) httpServer(h http.Handler, clientAuth tls.ClientAuthType) *http.Server {
	return &http.Server{
		Handler: h,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: s.getCertificate,
			// RequestClientCert: the handshake proves possession of the
			// key, but chain validation is the client method's business
			// (the self-signed method has no chain to validate).
			ClientAuth: clientAuth,
			// The server's clock also decides when a session ticket is
			// too old and when its client certificate has expired
			// (crypto/tls then declines to resume it).
			Time: s.clock.Now,
		},
		ConnContext:       withConnState,
		ReadHeaderTimeout: httplimits.ReadHeaderTimeout,
		ReadTimeout:       httplimits.ReadTimeout,
		WriteTimeout:      httplimits.WriteTimeout,
		IdleTimeout:       httplimits.IdleTimeout,
		MaxHeaderBytes:    httplimits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// routes serves the endpoints below base (the issuer's or the mTLS base
// URL's path) and the metadata at its RFC 8414 §3 well-known location.
func (s *Server) routes(wellKnown, base string, metadata []byte) http.Handler {
	base = strings.TrimSuffix(base, "/")
	mux := http.NewServeMux()
	mux.Handle(wellKnown, staticDocument(metadata, "application/json"))
	mux.Handle(base+jwksPath, staticDocument(s.keys.PublicJWKS(), "application/jwk-set+json"))
	mux.HandleFunc(base+tokenPath, s.handleToken)
	mux.HandleFunc(base+introspectionPath, s.handleIntrospect)
	mux.HandleFunc(base+revocationPath, s.handleRevoke)
	return mux
}

// staticDocument serves a document that never changes while the server
// runs.
func staticDocument(body []byte, contentType string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "public, max-age=300")
		if r.Method == http.MethodGet {
			_, _ = w.Write(body)
		}
	})
}

// opsRoutes serves /metrics, /healthz (the process is up) and /readyz (the
// listeners are serving and a client snapshot is loaded; a registry that
// reports Synced, like one fed by an informer, must also have synced; the
// revocation store can be read).
func (s *Server) opsRoutes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.metrics.Handler())
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		synced := true
		if r, ok := s.registry.(interface{ Synced() bool }); ok {
			synced = r.Synced()
		}
		if !s.ready.Load() || !synced || s.registry.Clients() == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		if err := s.revocations.Check(); err != nil {
			s.log.Warn("not ready: revocation store", "error", err)
			http.Error(w, "not ready: revocation store unavailable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// pruneRevocations drops expired revocations (and refresh-token families)
// now and every revocationPruneInterval until ctx is done.
func (s *Server) pruneRevocations(ctx context.Context) {
	t := time.NewTicker(revocationPruneInterval)
	defer t.Stop()
	for {
		s.pruneRefreshTokens(ctx)
		n, err := s.revocations.Prune(s.clock.Now())
		if err != nil {
			s.log.Warn("prune revocation store", "error", err)
		} else {
			s.metrics.revocationStoreSize(n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

package resourceproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/certbound/certbound/asruntime/clientcert"
	"github.com/certbound/certbound/asruntime/resourceserver"
)

// The headers the proxy sets on the upstream request. Any incoming header
// with the identityHeaderPrefix is dropped first, so upstream can trust every
// X-Certbound-* header it sees to come from the proxy.
const (
	identityHeaderPrefix = "X-Certbound-"
	HeaderClientID       = "X-Certbound-Client-Id"
	HeaderScope          = "X-Certbound-Scope"
)

// shutdownTimeout is how long in-flight requests get to finish once the
// proxy is told to stop.
const shutdownTimeout = 10 * time.Second

// Config configures a Proxy.
type Config struct {
	// Upstream is the protected service; request paths are appended to its
	// path. Required.
	Upstream *url.URL
	// Verifier checks the access tokens. Required.
	Verifier *resourceserver.Verifier
	// GetCertificate returns the proxy's serving certificate. Required.
	GetCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	// ClientCAs, when set, must also sign the client certificates. Nil: any
	// client certificate is accepted at the TLS layer, because the binding
	// check (the certificate's thumbprint in the token) is what authenticates
	// the client; the authorization server already validated the
	// certificate when it issued the token, and self-signed client
	// certificates (RFC 8705 §2.2) have no CA to check against.
	ClientCAs *x509.CertPool
	// Logger receives one line per refused request and per upstream
	// failure. Nil: slog.Default().
	Logger *slog.Logger
	// Metrics, when set, registers the proxy's metrics.
	Metrics prometheus.Registerer
	// ClientCertificates is the source the Verifier was configured with,
	// if any: its headers are removed from what is forwarded upstream, so
	// upstream never sees a client certificate claim the proxy did not
	// check.
	ClientCertificates *clientcert.Source
}

// Proxy is an mTLS reverse proxy that lets through only requests with a
// valid access token bound to the connection's client certificate.
type Proxy struct {
	verifier  *resourceserver.Verifier
	upstream  *httputil.ReverseProxy
	tlsConfig *tls.Config
	logger    *slog.Logger
	results   *prometheus.CounterVec
	limits    serverLimits
}

// New checks cfg and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Upstream == nil || (cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https") || cfg.Upstream.Host == "" {
		return nil, errors.New("upstream must be an absolute http or https URL")
	}
	if cfg.Verifier == nil {
		return nil, errors.New("a verifier is required")
	}
	if cfg.GetCertificate == nil {
		return nil, errors.New("a serving certificate is required")
	}
	p := &Proxy{
		verifier: cfg.Verifier,
		logger:   cfg.Logger,
		limits:   defaultLimits,
		tlsConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: cfg.GetCertificate,
			// The certificate is requested on every handshake: RFC 8705 §3
			// leaves no later chance to ask for it.
			ClientAuth: tls.RequestClientCert,
		},
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "certbound_resource_proxy_requests_total",
			Help: "Requests by verification result: Allowed, or the reason of the refusal.",
		}, []string{"result"}),
	}
	if cfg.ClientCAs != nil {
		p.tlsConfig.ClientAuth = tls.VerifyClientCertIfGiven
		p.tlsConfig.ClientCAs = cfg.ClientCAs
	}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(p.results); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	upstream := cfg.Upstream
	certHeaders := cfg.ClientCertificates.Headers()
	p.upstream = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(upstream)
			pr.SetXForwarded()
			dropReserved(pr.Out, certHeaders)
			setIdentityHeaders(pr.In.Context(), pr.Out.Header)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.logger.Error("upstream request failed", "upstream", upstream.Host, "path", r.URL.Path, "error", err)
			http.Error(w, "upstream unavailable", http.StatusBadGateway)
		},
	}
	return p, nil
}

// setIdentityHeaders sets the identity the token proves; dropReserved has
// already removed whatever identity the client claimed.
func setIdentityHeaders(ctx context.Context, h http.Header) {
	// The token is bound to the client's certificate, which upstream does
	// not hold, so upstream could not use it anyway; dropping it keeps a
	// bearer credential out of upstream's logs and out of reach of anything
	// upstream forwards requests to.
	h.Del("Authorization")
	claims, ok := resourceserver.ClaimsFromContext(ctx)
	if !ok {
		return
	}
	if claims.ClientID != "" {
		h.Set(HeaderClientID, claims.ClientID)
	}
	if claims.Scope != "" {
		h.Set(HeaderScope, claims.Scope)
	}
}

// ServeHTTP verifies the request and forwards it upstream.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	claims, err := p.verifier.Verify(r.Context(), r)
	if err != nil {
		var rerr *resourceserver.Error
		reason := resourceserver.ErrInvalidToken.Reason
		if errors.As(err, &rerr) {
			reason = rerr.Reason
		}
		p.results.WithLabelValues(reason).Inc()
		p.logger.Info("request refused", "reason", reason, "remote", r.RemoteAddr, "path", r.URL.Path, "error", err)
		resourceserver.WriteError(w, err)
		return
	}
	p.results.WithLabelValues("Allowed").Inc()
	w, r, extend := p.limits.progressDeadlines(w, r)
	defer extend()
	p.upstream.ServeHTTP(w, r.WithContext(resourceserver.ContextWithClaims(r.Context(), claims)))
}

// TLSConfig returns the proxy's server TLS configuration, for callers that
// run their own http.Server.
func (p *Proxy) TLSConfig() *tls.Config { return p.tlsConfig.Clone() }

// Serve accepts TLS connections on ln until ctx is done, then shuts down
// gracefully. It returns nil after a shutdown asked for by ctx.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	srv := p.limits.server()
	srv.Handler = p
	srv.TLSConfig = p.TLSConfig()
	srv.ErrorLog = slog.NewLogLogger(p.logger.Handler(), slog.LevelWarn)
	shutdownDone := make(chan error, 1)
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		shutdownDone <- srv.Shutdown(sctx)
	})
	err := srv.ServeTLS(ln, "", "")
	if !errors.Is(err, http.ErrServerClosed) {
		stop()
		return err
	}
	return <-shutdownDone
}

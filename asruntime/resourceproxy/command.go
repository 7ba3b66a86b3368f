// Package resourceproxy is `certbound resource-proxy`: an mTLS reverse proxy
// that demands certificate-bound access tokens in front of any HTTP service.
package resourceproxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	certwatchermetrics "sigs.k8s.io/controller-runtime/pkg/certwatcher/metrics"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/certbound/certbound/asruntime/clientcert/clientcertflag"
	"github.com/certbound/certbound/asruntime/resourceserver"
)

// options are the command-line flags.
type options struct {
	upstream       string
	issuer         string
	audience       string
	listenAddress  string
	tlsCertFile    string
	tlsKeyFile     string
	clientCAFile   string
	jwksURL        string
	issuerCAFile   string
	metricsAddress string
	certHeader     clientcertflag.Flags

	introspect              bool
	introspectionURL        string
	introspectionClientID   string
	introspectionCertFile   string
	introspectionKeyFile    string
	introspectionSecretFile string
	introspectionCacheTTL   time.Duration
	allowOpaqueTokens       bool
}

func parseFlags(args []string) (*options, error) {
	var o options
	fs := flag.NewFlagSet("resource-proxy", flag.ContinueOnError)
	fs.StringVar(&o.upstream, "upstream", "", "URL of the protected service (required)")
	fs.StringVar(&o.issuer, "issuer", "", "issuer identifier of the authorization server, https (required)")
	fs.StringVar(&o.audience, "audience", "", "this resource's identifier; tokens must name it in aud (required)")
	fs.StringVar(&o.listenAddress, "listen-address", ":8443", "address of the mTLS listener")
	fs.StringVar(&o.tlsCertFile, "tls-cert-file", "", "PEM serving certificate, reloaded when it changes (required)")
	fs.StringVar(&o.tlsKeyFile, "tls-key-file", "", "PEM key of the serving certificate (required)")
	fs.StringVar(&o.clientCAFile, "client-ca-file", "", "PEM CA bundle that client certificates must also chain to (default: no chain check, the token binding authenticates the client)")
	fs.StringVar(&o.jwksURL, "jwks-url", "", "JWK Set URL of the authorization server (default: jwks_uri from the issuer's RFC 8414 metadata)")
	fs.StringVar(&o.issuerCAFile, "issuer-ca-file", "", "PEM CA bundle to verify the authorization server's TLS certificate (default: system roots)")
	fs.StringVar(&o.metricsAddress, "metrics-address", "", "address of a plain-HTTP listener for /metrics and /healthz (default: none)")
	o.certHeader.Register(fs)
	fs.BoolVar(&o.introspect, "introspect", false, "also ask the authorization server's introspection endpoint (RFC 7662) whether each token is active, so revoked tokens are refused (within --introspection-cache-ttl)")
	fs.StringVar(&o.introspectionURL, "introspection-url", "", "introspection endpoint (default: introspection_endpoint from the issuer's RFC 8414 metadata, its mtls_endpoint_aliases entry when authenticating with a certificate)")
	fs.StringVar(&o.introspectionClientID, "introspection-client-id", "", "this proxy's client_id at the authorization server (required with --introspect)")
	fs.StringVar(&o.introspectionCertFile, "introspection-client-cert-file", "", "PEM client certificate for tls_client_auth or self_signed_tls_client_auth at the introspection endpoint, reloaded when it changes (with --introspection-client-key-file)")
	fs.StringVar(&o.introspectionKeyFile, "introspection-client-key-file", "", "PEM key of --introspection-client-cert-file")
	fs.StringVar(&o.introspectionSecretFile, "introspection-client-secret-file", "", "file holding the client secret for client_secret_basic at the introspection endpoint (instead of a certificate)")
	fs.BoolVar(&o.allowOpaqueTokens, "allow-opaque-tokens", false, "with --introspect, accept tokens that are not JWTs on the introspection endpoint's word (default: refused without asking, as the certbound authorization server issues JWTs only)")
	fs.DurationVar(&o.introspectionCacheTTL, "introspection-cache-ttl", resourceserver.DefaultIntrospectionCacheTTL, "longest time an introspection answer is reused (never past the token's exp): a revoked token is refused at most this long after its revocation; 0 or less: introspect every request")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"--upstream", o.upstream}, {"--issuer", o.issuer}, {"--audience", o.audience},
		{"--tls-cert-file", o.tlsCertFile}, {"--tls-key-file", o.tlsKeyFile},
	} {
		if f.value == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing required flags: %s", strings.Join(missing, ", "))
	}
	if err := o.checkIntrospectionFlags(); err != nil {
		return nil, err
	}
	return &o, nil
}

func (o *options) checkIntrospectionFlags() error {
	withCert := o.introspectionCertFile != "" || o.introspectionKeyFile != ""
	switch {
	case !o.introspect:
		if o.introspectionURL != "" || o.introspectionClientID != "" || withCert || o.introspectionSecretFile != "" || o.allowOpaqueTokens {
			return errors.New("the --introspection-* flags and --allow-opaque-tokens need --introspect")
		}
	case o.introspectionClientID == "":
		return errors.New("--introspect needs --introspection-client-id")
	case withCert && (o.introspectionCertFile == "" || o.introspectionKeyFile == ""):
		return errors.New("--introspection-client-cert-file and --introspection-client-key-file go together")
	case withCert == (o.introspectionSecretFile != ""):
		return errors.New("--introspect needs exactly one of --introspection-client-cert-file/--introspection-client-key-file and --introspection-client-secret-file")
	}
	return nil
}

// introspection builds the verifier's introspection settings from the
// flags; nil without --introspect.
func (o *options) introspection(ctx context.Context, logger *slog.Logger) (*resourceserver.Introspection, error) {
	if !o.introspect {
		return nil, nil
	}
	in := &resourceserver.Introspection{Endpoint: o.introspectionURL, ClientID: o.introspectionClientID, CacheTTL: o.introspectionCacheTTL, AllowOpaqueTokens: o.allowOpaqueTokens}
	if in.CacheTTL == 0 {
		in.CacheTTL = -1 // the flag's 0 means no cache, not the default
	}
	if o.introspectionSecretFile != "" {
		secret, err := os.ReadFile(o.introspectionSecretFile)
		if err != nil {
			return nil, fmt.Errorf("--introspection-client-secret-file: %w", err)
		}
		if in.ClientSecret = strings.TrimRight(string(secret), "\r\n"); in.ClientSecret == "" {
			return nil, errors.New("--introspection-client-secret-file is empty")
		}
		return in, nil
	}
	cert, err := watchKeyPair(ctx, o.introspectionCertFile, o.introspectionKeyFile, logger)
	if err != nil {
		return nil, fmt.Errorf("--introspection-client-cert-file/--introspection-client-key-file: load client certificate: %w", err)
	}
	in.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert.GetCertificate(nil) }
	return in, nil
}

// Run runs `certbound resource-proxy` with args (the arguments after the
// subcommand name) until ctx is done.
func Run(ctx context.Context, args []string) error {
	o, err := parseFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := slog.Default()
	// The certificate watchers log through controller-runtime's logger.
	ctrllog.SetLogger(logr.FromSlogHandler(logger.Handler()))
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		certwatchermetrics.ReadCertificateTotal, certwatchermetrics.ReadCertificateErrors)
	ctx, cancel := context.WithCancel(ctx) // stops the certificate watchers when Run returns
	defer cancel()
	proxy, err := o.newProxy(ctx, logger, registry)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listenAddress)
	if err != nil {
		return fmt.Errorf("--listen-address: %w", err)
	}
	if o.metricsAddress != "" {
		if err := serveMetrics(ctx, o.metricsAddress, registry, logger); err != nil {
			ln.Close()
			return err
		}
	}
	logger.Info("resource proxy listening", "address", ln.Addr().String(), "upstream", o.upstream, "issuer", o.issuer, "audience", o.audience, "introspect", o.introspect)
	return proxy.Serve(ctx, ln)
}

func (o *options) newProxy(ctx context.Context, logger *slog.Logger, registry prometheus.Registerer) (*Proxy, error) {
	upstream, err := url.Parse(o.upstream)
	if err != nil {
		return nil, fmt.Errorf("--upstream: %w", err)
	}
	cfg := resourceserver.Config{Issuer: o.issuer, Audience: o.audience, JWKSURL: o.jwksURL}
	ignored := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "certbound_resource_proxy_client_cert_header_ignored_total",
		Help: "Requests carrying the forwarded client certificate header from an address outside --trusted-proxy-cidrs, or without the --trusted-proxy-subject certificate when one is required; the header was ignored.",
	})
	if cfg.ClientCertificates, err = o.certHeader.Source(func(*http.Request) { ignored.Inc() }, logger); err != nil {
		return nil, err
	}
	if cfg.ClientCertificates != nil && registry != nil {
		if err := registry.Register(ignored); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	if o.issuerCAFile != "" {
		if cfg.RootCAs, err = loadCertPool(o.issuerCAFile); err != nil {
			return nil, fmt.Errorf("--issuer-ca-file: %w", err)
		}
	}
	if cfg.Introspection, err = o.introspection(ctx, logger); err != nil {
		return nil, err
	}
	verifier, err := resourceserver.New(cfg)
	if err != nil {
		return nil, err
	}
	serving, err := watchKeyPair(ctx, o.tlsCertFile, o.tlsKeyFile, logger)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert-file/--tls-key-file: load serving certificate: %w", err)
	}
	var clientCAs *x509.CertPool
	if o.clientCAFile != "" {
		if clientCAs, err = loadCertPool(o.clientCAFile); err != nil {
			return nil, fmt.Errorf("--client-ca-file: %w", err)
		}
	}
	return New(Config{
		Upstream:       upstream,
		Verifier:       verifier,
		GetCertificate: serving.GetCertificate,
		ClientCAs:      clientCAs,
		Logger:         logger,
		Metrics:        registry,

		ClientCertificates: cfg.ClientCertificates,
	})
}

func loadCertPool(file string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// serveMetrics starts the plain-HTTP metrics listener; it stops with ctx.
func serveMetrics(ctx context.Context, address string, registry *prometheus.Registry, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("--metrics-address: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics listener stopped", "error", err)
		}
	}()
	return nil
}

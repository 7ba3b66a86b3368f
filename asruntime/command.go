package asruntime

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/certwatcher"
	certwatchermetrics "sigs.k8s.io/controller-runtime/pkg/certwatcher/metrics"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/certbound/certbound/asruntime/certrevocation"
	"github.com/certbound/certbound/asruntime/clientcert/clientcertflag"
	"github.com/certbound/certbound/internal/registration"
)

// RunAuthorizationServer runs `certbound authorization-server` with args
// (the arguments after the subcommand name) until ctx is done.
func RunAuthorizationServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("authorization-server", flag.ContinueOnError)
	issuer := fs.String("issuer", "", "issuer identifier, an https URL (required)")
	listen := fs.String("listen-address", ":8443", "TLS listener of the conventional endpoints (no client certificate requested)")
	mtlsListen := fs.String("mtls-listen-address", ":9443", "TLS listener of the mTLS endpoint aliases (client certificate requested)")
	mtlsBase := fs.String("mtls-base-url", "", "base URL advertised in mtls_endpoint_aliases (default: the issuer with the mTLS listener's port)")
	certFile := fs.String("tls-cert-file", "", "serving certificate chain, PEM (reloaded when it changes) (required)")
	keyFile := fs.String("tls-key-file", "", "serving private key, PEM (reloaded when it changes) (required)")
	caFile := fs.String("client-ca-file", "", "PEM bundle of the only trust anchors for tls_client_auth")
	intermediatesFile := fs.String("client-intermediates-file", "", "PEM bundle of intermediates that may complete tls_client_auth chains")
	clientsDir := fs.String("clients-dir", "", "directory of RFC 7591 client metadata documents, one *.json per client (standalone registry)")
	registryNamespace := fs.String("registry-namespace", "", "namespace of the ClientRegistrations (in-cluster registry; with --registry-authorization-server)")
	registryServer := fs.String("registry-authorization-server", "", "AuthorizationServer whose ClientRegistrations (label "+registration.LabelAuthorizationServer+", same spec.authorizationServerName) make the registry")
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig for the in-cluster registry, revocation and refresh token stores and TokenReviews (default: $KUBECONFIG, else the pod's service account); with --clients-dir, giving it enables the token exchange grant")
	signingKeyFile := fs.String("signing-key-file", "", "private JWK Set; the first key signs (default: an ephemeral ES256 key)")
	ttl := fs.Duration("access-token-ttl", DefaultAccessTokenTTL, "access token lifetime")
	metricsAddr := fs.String("metrics-address", ":8080", "plain HTTP listener for /metrics, /healthz and /readyz (empty: none)")
	jwksCAFile := fs.String("jwks-uri-ca-file", "", "PEM roots for fetching clients' jwks_uri (default: the system roots)")
	jwksMinAge := fs.Duration("jwks-uri-min-age", DefaultJWKSMinAge, "shortest time a fetched jwks_uri JWK Set is cached, whatever its Cache-Control max-age says")
	jwksMaxAge := fs.Duration("jwks-uri-max-age", DefaultJWKSMaxAge, "longest time a fetched jwks_uri JWK Set is trusted: a certificate removed from a jwks_uri stops authenticating within it")
	jwksAllowedCIDRs := fs.String("jwks-uri-allowed-cidrs", "", "comma-separated special-purpose ranges (loopback, private, link-local, ...) that jwks_uri fetches may connect to (default: none)")
	jwksFetchInterval := fs.Duration("jwks-uri-client-fetch-interval", DefaultJWKSClientFetchInterval, "after a burst, at most one jwks_uri fetch per this interval on one client's behalf")
	jwksFetchBurst := fs.Int("jwks-uri-client-fetch-burst", DefaultJWKSClientFetchBurst, "jwks_uri fetches one client's requests may cause in a burst")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	stateDir := fs.String("state-dir", "", "directory of the durable revocation state, shareable by several authorization server processes (default: in memory, lost on restart, not shared)")
	revocationNamespace := fs.String("revocation-namespace", "", "namespace (the server's own) of the in-cluster revocation store: one ConfigMap per revoked token, labelled "+RevocationOfLabel+", shared by every replica; an alternative to --state-dir")
	revocationServer := fs.String("revocation-authorization-server", "", "AuthorizationServer whose revocation ConfigMaps make the in-cluster store (default: --registry-authorization-server)")
	revocationMax := fs.Int("revocation-max-entries", DefaultRevocationMaxEntries, fmt.Sprintf("most unexpired revoked tokens the revocation store holds; further revocations answer 503 (the in-cluster store defaults to %d)", DefaultKubeRevocationMaxEntries))
	revocationMaxPerClient := fs.Int("revocation-max-entries-per-client", DefaultRevocationMaxEntriesPerClient, "most revoked, unexpired tokens one client may hold in the revocation store; its further revocations answer 503 until its entries expire, so one client cannot fill the store shared by all")
	revocationRate := fs.Float64("revocation-rate-limit", DefaultRevocationRate, "revocation requests a second one client may make on average; beyond it (and --revocation-burst) /revoke answers 503 with Retry-After")
	revocationBurst := fs.Int("revocation-burst", DefaultRevocationBurst, "revocation requests one client may make in a burst, above --revocation-rate-limit")
	var certHeader clientcertflag.Flags
	certHeader.Register(fs)
	var publicClients publicClientFlags
	publicClients.register(fs)
	var crlFlags certrevocation.Flags
	crlFlags.Register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	for name, v := range map[string]string{"issuer": *issuer, "tls-cert-file": *certFile, "tls-key-file": *keyFile} {
		if v == "" {
			return fmt.Errorf("--%s is required", name)
		}
	}
	inCluster := *registryNamespace != "" || *registryServer != ""
	switch {
	case inCluster && *clientsDir != "":
		return errors.New("--clients-dir and --registry-namespace/--registry-authorization-server are alternatives: give one registry")
	case inCluster && (*registryNamespace == "" || *registryServer == ""):
		return errors.New("the in-cluster registry needs both --registry-namespace and --registry-authorization-server")
	case !inCluster && *clientsDir == "":
		return errors.New("a registry is required: --clients-dir, or --registry-namespace with --registry-authorization-server")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	metrics := NewMetrics()
	cfg := Config{Issuer: *issuer, MTLSBaseURL: *mtlsBase, AccessTokenTTL: *ttl, Logger: log, Metrics: metrics}
	var err error
	if cfg.ClientCertificates, err = certHeader.Source(metrics.ClientCertHeaderIgnored, log); err != nil {
		return err
	}
	if *revocationMax <= 0 {
		return errors.New("--revocation-max-entries must be positive")
	}
	if *revocationMaxPerClient <= 0 || *revocationRate <= 0 || *revocationBurst <= 0 {
		return errors.New("--revocation-max-entries-per-client, --revocation-rate-limit and --revocation-burst must be positive")
	}
	cfg.RevocationRate, cfg.RevocationBurst = *revocationRate, *revocationBurst
	if *revocationServer != "" && *revocationNamespace == "" {
		return errors.New("--revocation-authorization-server needs --revocation-namespace")
	}
	if *revocationServer == "" {
		*revocationServer = *registryServer
	}
	var kubeRevocations *KubeRevocationStore
	switch {
	case *revocationNamespace != "" && *stateDir != "":
		return errors.New("--state-dir and --revocation-namespace are alternatives: give one revocation store")
	case *revocationNamespace != "":
		if *revocationServer == "" {
			return errors.New("the in-cluster revocation store needs --revocation-authorization-server (or --registry-authorization-server)")
		}
		max := DefaultKubeRevocationMaxEntries
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "revocation-max-entries" {
				max = *revocationMax
			}
		})
		kube, err := kubernetesClient(*kubeconfig)
		if err != nil {
			return err
		}
		if kubeRevocations, err = NewKubeRevocationStore(kube, *revocationNamespace, *revocationServer, max, *revocationMaxPerClient, log); err != nil {
			return err
		}
		cfg.Revocations = kubeRevocations
	case *stateDir != "":
		if cfg.Revocations, err = OpenDirectoryRevocationStore(*stateDir, *revocationMax, *revocationMaxPerClient, time.Now()); err != nil {
			return fmt.Errorf("--state-dir: %w", err)
		}
	default:
		cfg.Revocations = NewMemoryRevocationStore(*revocationMax, *revocationMaxPerClient)
		log.Warn("no --state-dir or --revocation-namespace: revocations are kept in memory, lost on restart and not shared with other replicas")
	}
	if *caFile != "" {
		if cfg.TrustAnchors, err = LoadCertPool(*caFile); err != nil {
			return fmt.Errorf("--client-ca-file: %w", err)
		}
	} else {
		log.Warn("no --client-ca-file: tls_client_auth clients cannot authenticate")
	}
	if cfg.ClientCertificateRevocation, err = crlFlags.Checker(fs, log, metrics); err != nil {
		return err
	}
	if *intermediatesFile != "" {
		if cfg.Intermediates, err = LoadCertificates(*intermediatesFile); err != nil {
			return fmt.Errorf("--client-intermediates-file: %w", err)
		}
	}
	if *jwksCAFile != "" {
		if cfg.JWKSRootCAs, err = LoadCertPool(*jwksCAFile); err != nil {
			return fmt.Errorf("--jwks-uri-ca-file: %w", err)
		}
	}
	if *jwksMinAge <= 0 || *jwksMaxAge <= 0 || *jwksFetchInterval <= 0 || *jwksFetchBurst <= 0 {
		return errors.New("--jwks-uri-min-age, --jwks-uri-max-age, --jwks-uri-client-fetch-interval and --jwks-uri-client-fetch-burst must be positive")
	}
	cfg.JWKSFetch = JWKSFetchPolicy{MinAge: *jwksMinAge, MaxAge: *jwksMaxAge, ClientFetchInterval: *jwksFetchInterval, ClientFetchBurst: *jwksFetchBurst}
	if cfg.JWKSFetch.AllowedCIDRs, err = parseAllowedCIDRs(*jwksAllowedCIDRs); err != nil {
		return fmt.Errorf("--jwks-uri-allowed-cidrs: %w", err)
	}
	if *signingKeyFile != "" {
		if cfg.SigningKeys, err = LoadSigningKeys(*signingKeyFile); err != nil {
			return err
		}
	}
	setup := publicClientSetup{inCluster: inCluster, kubeconfig: *kubeconfig, explicitKubeconfig: *kubeconfig != "",
		storeNamespace: *revocationNamespace, storeServer: *revocationServer}
	if setup.storeNamespace == "" && inCluster {
		setup.storeNamespace = *registryNamespace
	}
	if err := publicClients.configure(&cfg, setup, log); err != nil {
		return err
	}
	var registry interface {
		Registry
		follow(ctx context.Context)
	}
	if inCluster {
		restCfg, err := kubernetesConfig(*kubeconfig)
		if err != nil {
			return err
		}
		dyn, err := dynamic.NewForConfig(restCfg)
		if err != nil {
			return fmt.Errorf("Kubernetes client: %w", err)
		}
		regs, err := NewClientRegistrationRegistry(dyn, *registryNamespace, *registryServer, log, metrics)
		if err != nil {
			return err
		}
		registry = followedClientRegistrations{regs, log}
	} else {
		dir, err := NewDirectoryRegistry(*clientsDir, log, metrics)
		if err != nil {
			return err
		}
		registry = followedDirectory{dir}
	}
	cfg.Registry = registry
	// controller-runtime's certwatcher follows the serving key pair:
	// fsnotify for prompt reloads (a kubelet symlink swap included), a 10s
	// poll as the backstop; a pair that fails to load keeps the previous one
	// in service. It is loaded last because its inotify instance is released
	// only by Start, below.
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	certs, err := certwatcher.New(*certFile, *keyFile)
	if err != nil {
		return fmt.Errorf("serving key pair (--tls-cert-file, --tls-key-file): %w", err)
	}
	metrics.registry.MustRegister(certwatchermetrics.ReadCertificateTotal, certwatchermetrics.ReadCertificateErrors)
	cfg.GetCertificate = certs.GetCertificate
	srv, err := New(cfg)
	if err != nil {
		return err
	}
	ls, err := Listen(*listen, *mtlsListen, *metricsAddr)
	if err != nil {
		return err
	}
	defer ls.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var watching sync.WaitGroup
	watching.Go(func() { registry.follow(ctx) })
	if revocation := cfg.ClientCertificateRevocation; revocation != nil {
		watching.Go(func() { revocation.Run(ctx) })
	}
	watching.Go(func() {
		if err := certs.Start(ctx); err != nil {
			log.Error("serving certificate files could not be watched; the loaded certificate is served until restart", "error", err)
		}
	})
	if kubeRevocations != nil {
		watching.Go(func() {
			if err := kubeRevocations.Run(ctx); err != nil {
				log.Error("revocation ConfigMaps could not be followed", "error", err)
			}
		})
	}
	err = srv.Serve(ctx, ls)
	cancel()
	watching.Wait()
	return err
}

// followedDirectory and followedClientRegistrations give the two registries
// one way to be followed for the life of the server.
type followedDirectory struct{ *DirectoryRegistry }

func (d followedDirectory) follow(ctx context.Context) { d.Watch(ctx) }

type followedClientRegistrations struct {
	*ClientRegistrationRegistry
	log *slog.Logger
}

func (s followedClientRegistrations) follow(ctx context.Context) {
	if err := s.Run(ctx); err != nil {
		s.log.Error("ClientRegistrations could not be followed", "error", err)
	}
}

// kubeClientQPS and kubeClientBurst bound the requests one server sends to
// the API server.
const (
	kubeClientQPS   = 50
	kubeClientBurst = 100
)

// kubernetesClient is the typed client of the revocation store.
func kubernetesClient(kubeconfig string) (kubernetes.Interface, error) {
	cfg, err := kubernetesConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// kubernetesConfig uses the kubeconfig file if one is named (flag or
// $KUBECONFIG), else the pod's in-cluster service account.
func kubernetesConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("Kubernetes client configuration: %w", err)
	}
	cfg.UserAgent = "certbound-authorization-server"
	// Above client-go's default of 5: each revocation is a create, and
	// each expired one a delete.
	cfg.QPS, cfg.Burst = kubeClientQPS, kubeClientBurst
	return cfg, nil
}

// LoadCertificates reads every CERTIFICATE block of a PEM file.
func LoadCertificates(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM certificates", path)
	}
	return certs, nil
}

// LoadCertPool reads a PEM bundle into a pool of its own; the system roots
// are never added.
func LoadCertPool(path string) (*x509.CertPool, error) {
	certs, err := LoadCertificates(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

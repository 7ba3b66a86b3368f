package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/certbound/certbound/controllers"
	"github.com/certbound/certbound/internal/kubescheme"
	"github.com/certbound/certbound/webhook"
)

// managerFlags are the flags of `certbound manager`.
type managerFlags struct {
	metricsAddress     string
	healthProbeAddress string
	leaderElect        bool
	leaderElectionNS   string
	kubeconfig         string
	enableWebhooks     bool
	webhookHost        string
	webhookPort        int
	webhookCertDir     string
	controllers        controllers.Options
}

func parseManagerFlags(args []string) (*managerFlags, *zap.Options, error) {
	f := &managerFlags{}
	fs := flag.NewFlagSet("certbound manager", flag.ContinueOnError)
	fs.StringVar(&f.metricsAddress, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint (plain HTTP); 0 disables it")
	fs.StringVar(&f.healthProbeAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	fs.BoolVar(&f.leaderElect, "leader-elect", false, "elect a leader among manager replicas, so only one reconciles at a time")
	fs.StringVar(&f.leaderElectionNS, "leader-election-namespace", "", "namespace of the leader-election Lease (default: the pod's namespace)")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig file; default in-cluster config or $KUBECONFIG")
	fs.StringVar(&f.controllers.AuthorizationServerImage, "authorization-server-image", os.Getenv("CERTBOUND_IMAGE"),
		"image of the authorization-server pods; defaults to $CERTBOUND_IMAGE, which the manager Deployment sets to its own image")
	fs.BoolVar(&f.enableWebhooks, "enable-webhooks", true, "serve the admission webhooks (needs a serving certificate in --webhook-cert-dir)")
	fs.StringVar(&f.webhookHost, "webhook-host", "", "address the webhook server binds (default: all)")
	fs.IntVar(&f.webhookPort, "webhook-port", 9443, "port of the webhook server")
	fs.DurationVar(&f.controllers.TrustAnchorResyncPeriod, "trust-anchor-resync-period", time.Minute,
		"how often an AuthorizationServer re-reads its client trust-anchor Secrets, which are not watched; 0 only on other changes to the server")
	fs.IntVar(&f.controllers.ClientWorkers, "oauthclient-workers", controllers.DefaultClientWorkers,
		"how many OAuthClients are reconciled at once")
	fs.StringVar(&f.webhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "directory with the webhook server's tls.crt and tls.key")
	zapOpts := &zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if fs.NArg() > 0 {
		return nil, nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if f.controllers.ClientWorkers < 1 {
		return nil, nil, fmt.Errorf("--oauthclient-workers must be at least 1, got %d", f.controllers.ClientWorkers)
	}
	if f.controllers.TrustAnchorResyncPeriod < 0 {
		return nil, nil, fmt.Errorf("--trust-anchor-resync-period must not be negative, got %s", f.controllers.TrustAnchorResyncPeriod)
	}
	return f, zapOpts, nil
}

func runManager(ctx context.Context, args []string) error {
	f, zapOpts, err := parseManagerFlags(args)
	if err != nil {
		return err
	}
	logger := zap.New(zap.UseFlagOptions(zapOpts))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)

	if f.kubeconfig != "" {
		if err := os.Setenv("KUBECONFIG", f.kubeconfig); err != nil {
			return err
		}
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load Kubernetes client configuration: %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  kubescheme.New(),
		Cache:                   controllers.CacheOptions(),
		Metrics:                 metricsserver.Options{BindAddress: f.metricsAddress},
		HealthProbeBindAddress:  f.healthProbeAddress,
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        "certbound-manager.oauth.certbound.io",
		LeaderElectionNamespace: f.leaderElectionNS,
		WebhookServer:           crwebhook.NewServer(crwebhook.Options{Host: f.webhookHost, Port: f.webhookPort, CertDir: f.webhookCertDir}),
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := controllers.Setup(mgr, f.controllers); err != nil {
		return err
	}
	if f.enableWebhooks {
		if err := webhook.Setup(mgr); err != nil {
			return err
		}
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	// Ready only once our own webhook server has bound its port and
	// completes a TLS handshake: a connection to the port alone could reach
	// another process holding it.
	ready := healthz.Ping
	if f.enableWebhooks {
		ready = mgr.GetWebhookServer().StartedChecker()
	}
	if err := mgr.AddReadyzCheck("readyz", ready); err != nil {
		return err
	}
	logger.Info("starting manager")
	return mgr.Start(ctx)
}

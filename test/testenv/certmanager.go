package testenv

import (
	"context"
	"fmt"
	"time"

	cmcontroller "github.com/cert-manager/cert-manager/pkg/controller"
	crapprover "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/approver"
	crca "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/ca"
	crselfsigned "github.com/cert-manager/cert-manager/pkg/controller/certificaterequests/selfsigned"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/issuing"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/keymanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/readiness"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/requestmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/revisionmanager"
	"github.com/cert-manager/cert-manager/pkg/controller/certificates/trigger"
	"github.com/cert-manager/cert-manager/pkg/controller/clusterissuers"
	"github.com/cert-manager/cert-manager/pkg/controller/issuers"
	// The CA and SelfSigned issuer backends register themselves on import;
	// without them the issuers controllers cannot set issuers Ready.
	_ "github.com/cert-manager/cert-manager/pkg/issuer/ca"
	_ "github.com/cert-manager/cert-manager/pkg/issuer/selfsigned"
)

// CertManagerOptions configure the in-process cert-manager controllers.
type CertManagerOptions struct {
	// MinimumBackoff is how long cert-manager waits before retrying a failed
	// issuance (its own default is one hour, too long for tests).
	MinimumBackoff time.Duration
	// MaximumBackoff caps the retry backoff.
	MaximumBackoff time.Duration
}

// certManagerControllers are the controllers a CA/SelfSigned installation of
// cert-manager runs, named as cert-manager's controller binary names them.
var certManagerControllers = []string{
	issuers.ControllerName,
	clusterissuers.ControllerName,
	trigger.ControllerName,
	issuing.ControllerName,
	keymanager.ControllerName,
	requestmanager.ControllerName,
	readiness.ControllerName,
	revisionmanager.ControllerName,
	crapprover.ControllerName,
	crca.CRControllerName,
	crselfsigned.CRControllerName,
}

// StartCertManager runs cert-manager's controllers against the API server
// in kubeconfigPath until ctx is done; the returned channel closes when they
// have all returned.
func StartCertManager(ctx context.Context, kubeconfigPath string, opts CertManagerOptions) (<-chan struct{}, error) {
	if opts.MinimumBackoff == 0 {
		opts.MinimumBackoff = 2 * time.Second
	}
	if opts.MaximumBackoff == 0 {
		opts.MaximumBackoff = 30 * time.Second
	}
	factory, err := cmcontroller.NewContextFactory(ctx, cmcontroller.ContextOptions{
		Kubeconfig:         kubeconfigPath,
		KubernetesAPIQPS:   200,
		KubernetesAPIBurst: 400,
		IssuerOptions:      cmcontroller.IssuerOptions{ClusterResourceNamespace: ClusterResourceNamespace},
		CertificateOptions: cmcontroller.CertificateOptions{
			CertificateRequestMinimumBackoffDuration: opts.MinimumBackoff,
			CertificateRequestMaximumBackoffDuration: opts.MaximumBackoff,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cert-manager context: %w", err)
	}
	known := cmcontroller.Known()
	controllers := make([]cmcontroller.Interface, 0, len(certManagerControllers))
	for _, name := range certManagerControllers {
		construct, ok := known[name]
		if !ok {
			return nil, fmt.Errorf("cert-manager controller %q is not registered", name)
		}
		c, err := construct(factory)
		if err != nil {
			return nil, fmt.Errorf("construct cert-manager controller %q: %w", name, err)
		}
		controllers = append(controllers, c)
	}
	// The informers are shared by all controllers: start them only once
	// every constructor has registered the informers it needs.
	shared, err := factory.Build()
	if err != nil {
		return nil, fmt.Errorf("cert-manager context: %w", err)
	}
	shared.KubeSharedInformerFactory.Start(ctx.Done())
	shared.SharedInformerFactory.Start(ctx.Done())

	done := make(chan struct{})
	finished := make(chan struct{}, len(controllers))
	for _, c := range controllers {
		go func() {
			_ = c.Run(2, ctx)
			finished <- struct{}{}
		}()
	}
	go func() {
		for range controllers {
			<-finished
		}
		shared.KubeSharedInformerFactory.Shutdown()
		close(done)
	}()
	return done, nil
}

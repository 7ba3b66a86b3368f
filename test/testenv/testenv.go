// Package testenv starts a real control plane for tests and for the local
// development cluster: kube-apiserver and etcd from bin/ through
// controller-runtime's envtest, certbound's and cert-manager's CRDs, and the
// real cert-manager controllers running in-process against that API server.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/certbound/certbound/internal/kubescheme"
)

// ClusterResourceNamespace is where cert-manager looks for the Secrets of
// ClusterIssuers (its --cluster-resource-namespace).
const ClusterResourceNamespace = "cert-manager"

// Options configure Start.
type Options struct {
	// CertManager configures the in-process cert-manager controllers.
	CertManager CertManagerOptions
	// WebhookInstallOptions, when it names webhook manifests, has envtest
	// install them pointing at a local webhook server.
	WebhookInstallOptions envtest.WebhookInstallOptions
	// WithoutCertManager starts only the API server and CRDs, for tests of
	// what happens when cert-manager is absent.
	WithoutCertManager bool
	// APIServerFlags are set on kube-apiserver (flag name without dashes →
	// value), e.g. an audit policy for a benchmark that counts writes.
	APIServerFlags map[string]string
}

// Environment is a running control plane.
type Environment struct {
	// Config authenticates as a cluster administrator.
	Config *rest.Config
	// Client is a controller-runtime client with Scheme.
	Client client.Client
	// Scheme knows core, certbound and cert-manager types.
	Scheme *runtime.Scheme
	// KubeconfigPath is a kubeconfig file for the same administrator, for
	// processes (kubectl, the operator binary) started by the test.
	KubeconfigPath string
	// Webhook are the options envtest installed webhooks with.
	Webhook *envtest.WebhookInstallOptions

	env       *envtest.Environment
	stopCM    context.CancelFunc
	cmStopped <-chan struct{}
	dir       string
}

// Start starts etcd, kube-apiserver, installs the CRDs and, unless told
// otherwise, starts cert-manager's controllers. Call Stop when done.
func Start(opts Options) (_ *Environment, err error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin")
	}
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, statErr := os.Stat(filepath.Join(assets, bin)); statErr != nil {
			return nil, fmt.Errorf("%s is missing from %s: run `make tools` (it builds the control-plane binaries from the Go module proxy)", bin, assets)
		}
	}
	cmCRDs, err := CertManagerCRDDir()
	if err != nil {
		return nil, err
	}
	e := &Environment{Scheme: kubescheme.New()}
	e.env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases"), cmCRDs},
		ErrorIfCRDPathMissing: true,
		// kube-apiserver can take its full grace period to close open
		// watches; a test that is done with it has no use for the wait.
		ControlPlaneStopTimeout: 5 * time.Second,
		WebhookInstallOptions:   opts.WebhookInstallOptions,
		Scheme:                  e.Scheme,
		CRDInstallOptions:       envtest.CRDInstallOptions{Scheme: e.Scheme},
	}
	apiServerArgs := e.env.ControlPlane.GetAPIServer().Configure()
	for name, value := range opts.APIServerFlags {
		apiServerArgs.Set(name, value)
	}
	if e.Config, err = e.env.Start(); err != nil {
		return nil, fmt.Errorf("start envtest control plane: %w", err)
	}
	defer func() {
		if err != nil {
			_ = e.Stop()
		}
	}()
	e.Webhook = &e.env.WebhookInstallOptions
	if e.Client, err = client.New(e.Config, client.Options{Scheme: e.Scheme}); err != nil {
		return nil, fmt.Errorf("build client: %w", err)
	}
	if e.dir, err = os.MkdirTemp("", "certbound-testenv-"); err != nil {
		return nil, err
	}
	if e.KubeconfigPath, err = e.writeAdminKubeconfig(); err != nil {
		return nil, err
	}
	if err = e.CreateNamespace(context.Background(), ClusterResourceNamespace); err != nil {
		return nil, err
	}
	if opts.WithoutCertManager {
		return e, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stopCM = cancel
	if e.cmStopped, err = StartCertManager(ctx, e.KubeconfigPath, opts.CertManager); err != nil {
		return nil, err
	}
	return e, nil
}

// writeAdminKubeconfig writes a kubeconfig for a system:masters user; the
// cert-manager controllers and child processes load their config from it.
func (e *Environment) writeAdminKubeconfig() (string, error) {
	user, err := e.env.AddUser(envtest.User{Name: "certbound-admin", Groups: []string{"system:masters"}}, e.Config)
	if err != nil {
		return "", fmt.Errorf("add envtest admin user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return "", fmt.Errorf("render admin kubeconfig: %w", err)
	}
	path := filepath.Join(e.dir, "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// CreateNamespace creates a namespace if it does not exist.
func (e *Environment) CreateNamespace(ctx context.Context, name string) error {
	err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// Stop stops cert-manager and the control plane and removes temp files.
func (e *Environment) Stop() error {
	if e.stopCM != nil {
		e.stopCM()
		select {
		case <-e.cmStopped:
		case <-time.After(10 * time.Second):
		}
	}
	var errs []error
	if e.env != nil {
		errs = append(errs, e.env.Stop())
	}
	if e.dir != "" {
		errs = append(errs, os.RemoveAll(e.dir))
	}
	return errors.Join(errs...)
}

// RepoRoot is the directory of the project's go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(data), "module github.com/certbound/certbound\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the certbound repository root (go.mod) above the working directory")
		}
		dir = parent
	}
}

// CertManagerCRDDir is deploy/crds of the cert-manager module version in
// go.mod, from the module cache (the go command downloads it if needed).
func CertManagerCRDDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/cert-manager/cert-manager")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			return "", fmt.Errorf("locate the cert-manager module: %w: %s", err, exitErr.Stderr)
		}
		return "", fmt.Errorf("locate the cert-manager module: %w", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "deploy", "crds")
	if _, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("cert-manager CRDs not found: %w", err)
	}
	return dir, nil
}

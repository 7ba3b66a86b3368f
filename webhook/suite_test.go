package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/yaml"

	"github.com/certbound/certbound/test/testenv"
)

// One control plane and one manager serving the webhooks for the whole
// package: the API server calls them through the configurations generated
// into config/webhook, exactly as installed.
var (
	env      *testenv.Environment
	k8s      client.Client
	warnings = &warningRecorder{}
	// namespaces numbers the namespaces tests create.
	namespaces atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	root, err := testenv.RepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env, err = testenv.Start(testenv.Options{
		WithoutCertManager: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths: []string{filepath.Join(root, "config", "webhook")},
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	defer func() { _ = env.Stop() }()

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:  env.Scheme,
		Metrics: metricsserver.Options{BindAddress: "0"},
		WebhookServer: crwebhook.NewServer(crwebhook.Options{
			Host:    env.Webhook.LocalServingHost,
			Port:    env.Webhook.LocalServingPort,
			CertDir: env.Webhook.LocalServingCertDir,
		}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		return 1
	}
	if err := Setup(mgr); err != nil {
		fmt.Fprintln(os.Stderr, "webhook setup:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	if err := waitForWebhookServer(env.Webhook, done); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandlerWithContext = warnings
	if k8s, err = client.New(cfg, client.Options{Scheme: env.Scheme}); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	return m.Run()
}

// waitForWebhookServer returns once the webhook server accepts TLS
// connections, or when the manager has stopped.
func waitForWebhookServer(opts *envtest.WebhookInstallOptions, stopped <-chan error) error {
	addr := net.JoinHostPort(opts.LocalServingHost, strconv.Itoa(opts.LocalServingPort))
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-stopped:
			return fmt.Errorf("manager stopped: %v", err)
		default:
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only probing that the port is up
		if err == nil {
			_ = conn.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("webhook server at %s did not come up", addr)
}

// warningRecorder keeps the Warning headers the API server sends, which is
// how admission warnings reach a client (kubectl prints them).
type warningRecorder struct {
	mu       sync.Mutex
	messages []string
}

func (r *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages = append(r.messages, message)
}

// since returns the warnings recorded after mark (a previous len).
func (r *warningRecorder) since(mark int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.messages[mark:]...)
}

func (r *warningRecorder) mark() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.messages)
}

// manifest parses a YAML manifest the way kubectl would send it. A
// namespace, if given, replaces every NAMESPACE in doc.
func manifest(t *testing.T, doc string, ns ...string) *unstructured.Unstructured {
	t.Helper()
	if len(ns) > 0 {
		doc = strings.ReplaceAll(doc, "NAMESPACE", ns[0])
	}
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &obj.Object); err != nil {
		t.Fatalf("bad test manifest: %v", err)
	}
	return obj
}

// namespace creates a fresh namespace for one test.
func namespace(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("webhook-test-%d", namespaces.Add(1))
	if err := env.CreateNamespace(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

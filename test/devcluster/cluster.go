// Package devcluster runs the whole certbound system on one machine with no
// container engine: a real control plane and the real cert-manager
// controllers (package testenv), the operator as a `certbound manager`
// process, and a pod runner that runs the authorization-server pods the
// operator's Deployments describe as local processes. `make demo` and the
// end-to-end tests are built on it.
package devcluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/certbound/certbound/test/testenv"
)

// Image is the image name the operator is told to deploy; the pod runner
// runs every container with this image as bin/certbound.
const Image = "certbound.local/certbound:dev"

// Options configure Start.
type Options struct {
	// Binary is the certbound binary (default bin/certbound).
	Binary string
	// Dir holds logs, volumes and the kubeconfig (default: a new temp dir,
	// removed by Stop).
	Dir string
	// OperatorArgs are appended to the operator's arguments (later flags
	// win), e.g. to expose its metrics.
	OperatorArgs []string
	// APIServerFlags are set on kube-apiserver (flag name without dashes →
	// value), e.g. an audit log.
	APIServerFlags map[string]string
}

// Cluster is a running local system.
type Cluster struct {
	Env    *testenv.Environment
	Runner *PodRunner
	// Dir holds the logs and the kubeconfig.
	Dir string

	binary       string
	operatorArgs []string
	removeDir    bool
	operator     *exec.Cmd
	operatorEnd  chan struct{}
	cancel       context.CancelFunc
	runnerDone   chan struct{}
}

// Start brings the system up. Call Stop to tear it down.
func Start(opts Options) (_ *Cluster, err error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	c := &Cluster{binary: opts.Binary, Dir: opts.Dir, operatorArgs: opts.OperatorArgs}
	if c.binary == "" {
		c.binary = filepath.Join(root, "bin", "certbound")
	}
	if _, err := os.Stat(c.binary); err != nil {
		return nil, fmt.Errorf("%s is missing: run `make build`", c.binary)
	}
	if c.Dir == "" {
		if c.Dir, err = os.MkdirTemp("", "certbound-devcluster-"); err != nil {
			return nil, err
		}
		c.removeDir = true
	}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	// cert-manager runs in this process and logs through klog: keep its
	// log in a file beside the others, out of the transcript.
	cmLog, err := os.OpenFile(filepath.Join(c.Dir, "cert-manager.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	_ = klogFlags.Set("logtostderr", "false")
	_ = klogFlags.Set("stderrthreshold", "FATAL")
	klog.SetOutput(cmLog)
	// The webhook configurations of config/webhook are installed pointing
	// at the operator's webhook server on loopback, with envtest's CA.
	webhooks := envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "config", "webhook")}}
	if c.Env, err = testenv.Start(testenv.Options{WebhookInstallOptions: webhooks, APIServerFlags: opts.APIServerFlags}); err != nil {
		return nil, err
	}
	if c.Runner, err = NewPodRunner(c.Env.Client, c.Env.Config, Image, c.binary, filepath.Join(c.Dir, "pods")); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.runnerDone = make(chan struct{})
	go func() {
		defer close(c.runnerDone)
		c.Runner.Run(ctx)
	}()
	if err = c.StartOperator(); err != nil {
		return nil, err
	}
	return c, nil
}

// KubeconfigPath is an administrator kubeconfig for kubectl.
func (c *Cluster) KubeconfigPath() string { return c.Env.KubeconfigPath }

// OperatorLog is the operator's log file.
func (c *Cluster) OperatorLog() string { return filepath.Join(c.Dir, "operator.log") }

// StartOperator runs `certbound manager` against the cluster.
func (c *Cluster) StartOperator() error {
	if c.operator != nil {
		return errors.New("the operator is already running")
	}
	probePort, err := freePort()
	if err != nil {
		return err
	}
	log, err := os.OpenFile(c.OperatorLog(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.binary, "manager",
		"--kubeconfig="+c.Env.KubeconfigPath,
		"--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:"+strconv.Itoa(probePort),
		"--authorization-server-image="+Image,
		"--webhook-host="+c.Env.Webhook.LocalServingHost,
		"--webhook-port="+strconv.Itoa(c.Env.Webhook.LocalServingPort),
		"--webhook-cert-dir="+c.Env.Webhook.LocalServingCertDir,
	)
	cmd.Args = append(cmd.Args, c.operatorArgs...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start the operator: %w", err)
	}
	end := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(end)
	}()
	c.operator, c.operatorEnd = cmd, end
	return c.waitForOperator(probePort)
}

// waitForOperator waits until the operator reports ready, so that nothing
// applied next meets a webhook that is not there yet: the operator is ready
// only once its own webhook server has bound its port and serves TLS (a
// connection to the port from here could reach another process holding
// it). If the operator exits first (a port in use, a bad flag), the error
// carries the end of its log.
func (c *Cluster) waitForOperator(probePort int) error {
	ready := "http://127.0.0.1:" + strconv.Itoa(probePort) + "/readyz"
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-c.operatorEnd:
			c.operator = nil
			return fmt.Errorf("the operator exited during start-up; its log ends:\n%s", tail(c.OperatorLog(), 20))
		case <-time.After(200 * time.Millisecond):
		}
		resp, err := http.Get(ready)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
	}
	return fmt.Errorf("the operator was not ready after 60 s; its log ends:\n%s", tail(c.OperatorLog(), 20))
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// OperatorPID is the operator's process id (0 when it is not running).
func (c *Cluster) OperatorPID() int {
	if c.operator == nil {
		return 0
	}
	return c.operator.Process.Pid
}

// StopOperator stops the operator process; kill skips the graceful
// shutdown, as a crash or an OOM kill would.
func (c *Cluster) StopOperator(kill bool) {
	if c.operator == nil {
		return
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	_ = syscall.Kill(-c.operator.Process.Pid, sig)
	select {
	case <-c.operatorEnd:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-c.operator.Process.Pid, syscall.SIGKILL)
		<-c.operatorEnd
	}
	c.operator = nil
}

// Dialer connects to Service names the way a pod would, through the local
// pods behind them: <svc>.<ns>.svc[.cluster.local]:<port>. Other addresses
// are dialled as they are.
func (c *Cluster) Dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, portText, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		parts := strings.Split(strings.TrimSuffix(host, ".cluster.local"), ".")
		if len(parts) == 3 && parts[2] == "svc" {
			port, err := strconv.Atoi(portText)
			if err != nil {
				return nil, err
			}
			local, err := c.Runner.ServiceAddress(parts[1], parts[0], int32(port))
			if err != nil {
				return nil, err
			}
			addr = local
		}
		return d.DialContext(ctx, network, addr)
	}
}

// Stop stops the operator, the local pods and the control plane.
func (c *Cluster) Stop() {
	c.StopOperator(false)
	if c.cancel != nil {
		c.cancel()
		<-c.runnerDone
	}
	if c.Env != nil {
		_ = c.Env.Stop()
	}
	if c.removeDir {
		_ = os.RemoveAll(c.Dir)
	}
}

// FreezeAPIServer stops the kube-apiserver process (SIGSTOP) so that every
// request to it hangs, as in a network partition; resume continues it.
func (c *Cluster) FreezeAPIServer() (resume func(), err error) {
	u, err := url.Parse(c.Env.Config.Host)
	if err != nil {
		return nil, err
	}
	pid, err := findProcess("kube-apiserver", "--secure-port="+u.Port())
	if err != nil {
		return nil, err
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		return nil, err
	}
	return func() { _ = syscall.Kill(pid, syscall.SIGCONT) }, nil
}

// findProcess finds the process whose command line has name and arg.
func findProcess(name, arg string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if len(args) > 0 && filepath.Base(args[0]) == name && slices.Contains(args, arg) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %s process with %s", name, arg)
}

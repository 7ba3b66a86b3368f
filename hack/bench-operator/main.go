// Command bench-operator measures the operator at scale on the local dev
// cluster (real kube-apiserver and etcd, cert-manager's controllers in this
// process, the operator binary, the authorization server as a local
// process). For every number of clients and every mode it starts a fresh
// cluster, applies the samples, creates the clients at once and reports
// the time until all are Ready, the operator's API writes per client (from
// its client-go metrics, and by verb and resource from the API server's
// audit log), the operator's peak resident memory, the authorization
// server's resident memory with the clients registered, and, for a sample
// of clients, the time from certificate Ready to their first token. It
// prints one Markdown section on stdout; progress goes to stderr.
//
// Modes:
//   - certmanager: the Certificates the operator would request, created
//     directly; no OAuthClients. cert-manager's own pace: the floor.
//   - operator: tls_client_auth OAuthClients whose certificates the
//     operator requests from cert-manager.
//   - selfsigned: self_signed_tls_client_auth OAuthClients that bring
//     their own certificate in spec.jwks; cert-manager issues nothing.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	cmapi "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/internal/registration"
	"github.com/certbound/certbound/test/devcluster"
)

type mode string

const (
	modeCertManager mode = "certmanager"
	modeOperator    mode = "operator"
	modeSelfSigned  mode = "selfsigned"
)

// probeGrace is how long the sampled clients may still take to get their
// first token once every client is Ready.
const probeGrace = 60 * time.Second

type config struct {
	clients          []int
	modes            []mode
	unrelatedSecrets int
	tokenSample      int
	timeout          time.Duration
}

func main() {
	clients := flag.String("clients", "1000", "numbers of clients, comma-separated (e.g. 100,1000): one run per number and mode")
	modes := flag.String("modes", string(modeOperator), "modes, comma-separated: certmanager (Certificates alone, the floor), operator (tls_client_auth OAuthClients), selfsigned (self_signed_tls_client_auth OAuthClients with their own jwks)")
	unrelated := flag.Int("unrelated-secrets", 0, "tenant Secrets of 4 KiB, in namespaces of their own, created before the clients")
	tokenSample := flag.Int("token-sample", 100, "clients whose certificate Ready → first token time is measured")
	timeout := flag.Duration("timeout", 20*time.Minute, "how long one run may take")
	flag.Parse()
	cfg, err := parseConfig(*clients, *modes, *unrelated, *tokenSample, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench-operator: %v\n", err)
		flag.Usage()
		os.Exit(2)
	}
	var results []result
	for _, n := range cfg.clients {
		for _, m := range cfg.modes {
			fmt.Fprintf(os.Stderr, "bench-operator: %s, %d clients, %d unrelated Secrets\n", m, n, cfg.unrelatedSecrets)
			r, err := runOne(m, n, cfg)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench-operator: %s with %d clients: %v\n", m, n, err)
				os.Exit(1)
			}
			fmt.Fprintf(os.Stderr, "bench-operator: %s\n", r.row())
			results = append(results, r)
		}
	}
	printReport(os.Stdout, "go run ./hack/bench-operator "+strings.Join(os.Args[1:], " "), results)
}

func parseConfig(clients, modes string, unrelated, tokenSample int, timeout time.Duration) (config, error) {
	cfg := config{unrelatedSecrets: unrelated, tokenSample: tokenSample, timeout: timeout}
	for _, field := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n < 1 {
			return cfg, fmt.Errorf("--clients %q: want positive numbers separated by commas", clients)
		}
		cfg.clients = append(cfg.clients, n)
	}
	for _, field := range strings.Split(modes, ",") {
		switch m := mode(strings.TrimSpace(field)); m {
		case modeCertManager, modeOperator, modeSelfSigned:
			cfg.modes = append(cfg.modes, m)
		default:
			return cfg, fmt.Errorf("--modes: unknown mode %q (want certmanager, operator or selfsigned)", field)
		}
	}
	if unrelated < 0 || tokenSample < 0 {
		return cfg, errors.New("--unrelated-secrets and --token-sample cannot be negative")
	}
	return cfg, nil
}

// result is what one run measured.
type result struct {
	mode             mode
	clients          int
	unrelatedSecrets int
	created          time.Duration
	allReady         time.Duration
	// operatorWrites are the operator's client-go write requests.
	operatorWrites float64
	audit          auditCounts
	operatorPeak   int // KiB
	asBefore       int // KiB, before the clients
	asAfter        int // KiB, with every client registered
	tokenLatencies []time.Duration
	tokenFailures  []error
}

func runOne(m mode, n int, cfg config) (result, error) {
	r := result{mode: m, clients: n, unrelatedSecrets: cfg.unrelatedSecrets}
	dir, err := os.MkdirTemp("", "bench-operator-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	auditArgs, auditLog, err := auditFlags(dir)
	if err != nil {
		return r, err
	}
	metricsPort, err := freePort()
	if err != nil {
		return r, err
	}
	c, err := devcluster.Start(devcluster.Options{
		OperatorArgs:   []string{"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(metricsPort)},
		APIServerFlags: auditArgs,
	})
	if err != nil {
		return r, err
	}
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	t := &devcluster.Transcript{W: os.Stderr}
	kube, err := client.NewWithWatch(c.Env.Config, client.Options{Scheme: c.Env.Scheme})
	if err != nil {
		return r, err
	}

	if _, err := devcluster.ApplyDir(ctx, kube, "config/samples"); err != nil {
		return r, err
	}
	as := &oauthv1alpha1.AuthorizationServer{ObjectMeta: metav1.ObjectMeta{Namespace: benchNamespace, Name: "payments"}}
	if err := devcluster.WaitReady(ctx, kube, as, func() []metav1.Condition { return as.Status.Conditions }, t); err != nil {
		return r, err
	}
	// Let the samples settle so their writes are not counted.
	if err := waitClientsReady(ctx, kube, len(devcluster.SampleClients), t); err != nil {
		return r, err
	}
	if err := createUnrelatedSecrets(ctx, c, cfg.unrelatedSecrets); err != nil {
		return r, err
	}

	probeCtx, stopProbes := context.WithCancel(ctx)
	defer stopProbes()
	var probe *tokenProbe
	if m != modeCertManager {
		if probe, err = newProbe(ctx, c, kube, n, cfg.tokenSample); err != nil {
			return r, err
		}
	}
	if m == modeOperator {
		go func() {
			if err := probe.watchCertificates(probeCtx, kube, benchNamespace, clientID); err != nil && probeCtx.Err() == nil {
				probe.fail(fmt.Errorf("watch Certificates: %w", err))
			}
		}()
	}

	writesBefore, err := operatorWrites(metricsPort)
	if err != nil {
		return r, err
	}
	auditOffset, err := fileSize(auditLog)
	if err != nil {
		return r, err
	}
	asPID := c.Runner.PID(benchNamespace, as.Name)
	if r.asBefore, err = statusKiB(asPID, "VmRSS:"); err != nil {
		return r, err
	}

	start := time.Now()
	if err := createClients(ctx, probeCtx, kube, m, n, probe); err != nil {
		return r, err
	}
	r.created = time.Since(start)
	if m == modeCertManager {
		err = waitCertificatesReady(ctx, kube, n, t)
	} else {
		err = waitClientsReady(ctx, kube, n+len(devcluster.SampleClients), t)
	}
	if err != nil {
		return r, err
	}
	r.allReady = time.Since(start)

	after, err := operatorWrites(metricsPort)
	if err != nil {
		return r, err
	}
	r.operatorWrites = after - writesBefore
	if r.audit, err = countWrites(auditLog, auditOffset); err != nil {
		return r, err
	}
	if r.operatorPeak, err = statusKiB(c.OperatorPID(), "VmHWM:"); err != nil {
		return r, err
	}
	if probe != nil {
		done := make(chan struct{})
		go func() {
			r.tokenLatencies, r.tokenFailures = probe.wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(probeGrace):
			stopProbes()
			<-done
		}
	}
	// The server's memory once it has served the sampled clients, which
	// it could only do with their registrations loaded.
	if r.asAfter, err = statusKiB(asPID, "VmRSS:"); err != nil {
		return r, err
	}
	return r, nil
}

// newProbe prepares token probes for a sample of the n bench clients, with
// the token endpoint and server CAs a sample client was configured with.
func newProbe(ctx context.Context, c *devcluster.Cluster, kube client.Client, n, want int) (*tokenProbe, error) {
	oc := &oauthv1alpha1.OAuthClient{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: benchNamespace, Name: devcluster.SampleClients[0]}, oc); err != nil {
		return nil, err
	}
	w, err := devcluster.LoadWorkload(ctx, kube, oc)
	if err != nil {
		return nil, err
	}
	sampled := map[string]bool{}
	for _, i := range sample(n, want) {
		sampled[benchName(i)] = true
	}
	return newTokenProbe(c.Dialer(), w.TokenEndpoint, w.ServerCAs, sampled), nil
}

func clientID(name string) string { return registration.ClientID(benchNamespace, name) }

// createClients creates the n objects of mode m; for self-signed clients
// it starts the sampled clients' token probes as soon as each is created,
// their certificate being ready before.
func createClients(ctx, probeCtx context.Context, kube client.Client, m mode, n int, probe *tokenProbe) error {
	switch m {
	case modeCertManager:
		return createAll(ctx, kube, n, func(i int) (client.Object, error) { return floorCertificate(i), nil }, nil)
	case modeOperator:
		return createAll(ctx, kube, n, func(i int) (client.Object, error) { return pkiClient(i), nil }, nil)
	}
	own := make([]ownKeyClient, n)
	for i := range own {
		var err error
		if own[i], err = selfSignedClient(i); err != nil {
			return err
		}
	}
	return createAll(ctx, kube, n, func(i int) (client.Object, error) { return own[i].object, nil }, func(i int) {
		if probe.claim(benchName(i)) {
			probe.start(probeCtx, clientID(benchName(i)), own[i].cert, time.Now())
		}
	})
}

func createUnrelatedSecrets(ctx context.Context, c *devcluster.Cluster, n int) error {
	if n == 0 {
		return nil
	}
	for i := 0; i < n; i += 100 {
		if err := c.Env.CreateNamespace(ctx, tenantNamespace(i)); err != nil {
			return err
		}
	}
	return createAll(ctx, c.Env.Client, n, func(i int) (client.Object, error) { return unrelatedSecret(i) }, nil)
}

func waitClientsReady(ctx context.Context, c client.Client, want int, t *devcluster.Transcript) error {
	return waitCount(ctx, "OAuthClients", want, t, func() (int, error) {
		var list oauthv1alpha1.OAuthClientList
		if err := c.List(ctx, &list, client.InNamespace(benchNamespace)); err != nil {
			return 0, err
		}
		ready := 0
		for _, oc := range list.Items {
			if apimeta.IsStatusConditionTrue(oc.Status.Conditions, oauthv1alpha1.ConditionReady) {
				ready++
			}
		}
		return ready, nil
	})
}

func waitCertificatesReady(ctx context.Context, c client.Client, want int, t *devcluster.Transcript) error {
	return waitCount(ctx, "Certificates", want, t, func() (int, error) {
		var list cmapi.CertificateList
		if err := c.List(ctx, &list, client.InNamespace(benchNamespace)); err != nil {
			return 0, err
		}
		ready := 0
		for i := range list.Items {
			if strings.HasPrefix(list.Items[i].Name, "bench-") && certificateReady(&list.Items[i]) {
				ready++
			}
		}
		return ready, nil
	})
}

// waitCount polls count once a second until it reaches want.
func waitCount(ctx context.Context, what string, want int, t *devcluster.Transcript, count func() (int, error)) error {
	last := time.Now()
	for {
		ready, err := count()
		if err != nil {
			return err
		}
		if ready >= want {
			return nil
		}
		if time.Since(last) > 10*time.Second {
			t.Progress("%d/%d %s Ready", ready, want, what)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("only %d/%d %s Ready", ready, want, what)
		case <-time.After(time.Second):
		}
	}
}

// operatorWrites sums the operator's client-go requests that change
// something (rest_client_requests_total with a write method).
func operatorWrites(port int) (float64, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "rest_client_requests_total{") {
			continue
		}
		if !strings.Contains(line, `method="POST"`) && !strings.Contains(line, `method="PUT"`) &&
			!strings.Contains(line, `method="PATCH"`) && !strings.Contains(line, `method="DELETE"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, sc.Err()
}

// statusKiB reads a memory field of /proc/<pid>/status (VmHWM: peak
// resident, VmRSS: resident now), in KiB.
func statusKiB(pid int, field string) (int, error) {
	if pid == 0 {
		return 0, fmt.Errorf("no process to read %s of", field)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, field) {
			return strconv.Atoi(strings.Fields(line)[1])
		}
	}
	return 0, fmt.Errorf("no %s for process %d", field, pid)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

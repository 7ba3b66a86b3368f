// Command bench-operator measures the operator at scale on the local dev
// cluster: N OAuthClients applied at once against one AuthorizationServer,
// then the time until all are Ready, the operator's API writes per client
// (from its own client-go metrics) and its peak resident memory. `make
// bench` runs it and prints a Markdown table row.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	oauthv1alpha1 "github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/test/devcluster"
)

func main() {
	n := flag.Int("clients", 1000, "OAuthClients to create")
	timeout := flag.Duration("timeout", 20*time.Minute, "how long all may take to become Ready")
	flag.Parse()
	if err := run(*n, *timeout); err != nil {
		fmt.Fprintf(os.Stderr, "bench-operator: %v\n", err)
		os.Exit(1)
	}
}

func run(n int, timeout time.Duration) error {
	metricsPort := 18080
	c, err := devcluster.Start(devcluster.Options{OperatorArgs: []string{"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(metricsPort)}})
	if err != nil {
		return err
	}
	defer c.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	t := &devcluster.Transcript{W: os.Stderr}
	if _, err := devcluster.ApplyDir(ctx, c.Env.Client, "config/samples"); err != nil {
		return err
	}
	as := &oauthv1alpha1.AuthorizationServer{ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: "payments"}}
	if err := devcluster.WaitReady(ctx, c.Env.Client, as, func() []metav1.Condition { return as.Status.Conditions }, t); err != nil {
		return err
	}
	// Let the samples settle so their writes are not counted.
	if err := waitAllReady(ctx, c.Env.Client, len(devcluster.SampleClients), t); err != nil {
		return err
	}
	writesBefore, err := operatorWrites(metricsPort)
	if err != nil {
		return err
	}

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			oc := &oauthv1alpha1.OAuthClient{
				ObjectMeta: metav1.ObjectMeta{Namespace: "auth", Name: fmt.Sprintf("bench-%04d", i)},
				Spec: oauthv1alpha1.OAuthClientSpec{
					AuthorizationServerRef: oauthv1alpha1.AuthorizationServerReference{Name: "payments"},
					AuthenticationMethod:   oauthv1alpha1.TLSClientAuth,
					Subject:                &oauthv1alpha1.ClientSubject{URI: fmt.Sprintf("spiffe://cluster.local/ns/auth/sa/bench-%04d", i)},
					Scopes:                 []string{"payments.read"},
				},
			}
			if err := c.Env.Client.Create(ctx, oc); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("create clients: %w", err)
	}
	created := time.Since(start)
	if err := waitAllReady(ctx, c.Env.Client, n+len(devcluster.SampleClients), t); err != nil {
		return err
	}
	allReady := time.Since(start)
	writesAfter, err := operatorWrites(metricsPort)
	if err != nil {
		return err
	}
	peak, err := peakRSS(c.OperatorPID())
	if err != nil {
		return err
	}
	fmt.Printf("| %d | %.1f s | %.1f s | %.1f | %.0f MiB |\n", n, created.Seconds(), allReady.Seconds(),
		float64(writesAfter-writesBefore)/float64(n), float64(peak)/1024)
	return nil
}

func waitAllReady(ctx context.Context, c client.Client, want int, t *devcluster.Transcript) error {
	last := time.Now()
	for {
		var list oauthv1alpha1.OAuthClientList
		if err := c.List(ctx, &list, client.InNamespace("auth")); err != nil {
			return err
		}
		ready := 0
		for _, oc := range list.Items {
			if apimeta.IsStatusConditionTrue(oc.Status.Conditions, oauthv1alpha1.ConditionReady) {
				ready++
			}
		}
		if ready >= want {
			return nil
		}
		if time.Since(last) > 10*time.Second {
			t.Progress("%d/%d OAuthClients Ready", ready, want)
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("only %d/%d OAuthClients Ready", ready, want)
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

// peakRSS is VmHWM of a process, in KiB.
func peakRSS(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			return strconv.Atoi(strings.Fields(line)[1])
		}
	}
	return 0, fmt.Errorf("no VmHWM for process %d", pid)
}

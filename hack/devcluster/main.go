// Command devcluster is `make demo`: it runs the whole certbound system on
// this machine (control plane, cert-manager, the operator, the
// authorization-server pods as local processes), plays the demo story on
// the samples, and keeps running for kubectl until Ctrl-C (or exits after
// the story with --once).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/certbound/certbound/test/devcluster"
	"github.com/certbound/certbound/test/testenv"
)

func main() {
	once := flag.Bool("once", false, "exit after the story (status 0 only if every step passed)")
	timeout := flag.Duration("timeout", 5*time.Minute, "how long the story may take")
	flag.Parse()
	os.Exit(run(*once, *timeout))
}

func run(once bool, timeout time.Duration) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t := &devcluster.Transcript{W: os.Stdout}
	t.Progress("starting kube-apiserver, etcd, the cert-manager controllers and the certbound operator")
	c, err := devcluster.Start(devcluster.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v\n", err)
		return 1
	}
	defer c.Stop()
	root, _ := testenv.RepoRoot()
	kubeconfig := filepath.Join(root, "bin", "demo.kubeconfig")
	if data, err := os.ReadFile(c.KubeconfigPath()); err == nil {
		_ = os.WriteFile(kubeconfig, data, 0o600)
	}
	t.Step("control plane and operator up (operator log: %s)", c.OperatorLog())

	storyCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := devcluster.RunStory(storyCtx, c, t); err != nil {
		fmt.Fprintf(os.Stdout, "✘ %v\n\noperator log: %s\nlocal pods:\n", err, c.OperatorLog())
		for _, p := range c.Runner.Pods() {
			fmt.Fprintf(os.Stdout, "  %s\n", p)
		}
		return 1
	}
	fmt.Fprintf(os.Stdout, "\nevery step passed.\n")
	if once {
		return 0
	}
	fmt.Fprintf(os.Stdout, "\nThe system keeps running until Ctrl-C. Explore it with kubectl:\n  export KUBECONFIG=%s\n  kubectl get certbound -A\n  kubectl get oauthclients -n auth\n  kubectl describe authorizationserver -n auth payments\nlocal pods:\n", kubeconfig)
	for _, p := range c.Runner.Pods() {
		fmt.Fprintf(os.Stdout, "  %s\n", p)
	}
	<-ctx.Done()
	fmt.Fprintln(os.Stdout, "stopping")
	return 0
}

// Command bench-token measures the token endpoint of the real authorization
// server binary with the server pinned to one core and this load driver to
// another, so that the figures are the server's alone, and compares them
// with the raw signing rate of the server's core measured in the same run.
// It prints a Markdown section on stdout (progress goes to stderr) and
// exits non-zero if any request failed.
//
//	go run ./hack/bench-token [--duration 10s] [--workers 16] [--certbound bin/certbound]
//
// With taskset (util-linux) and at least two cores, the driver re-executes
// itself under `taskset -c 1` and starts the server and the raw signing
// loop under `taskset -c 0`; otherwise it runs unpinned and says so in
// the output.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Cores the server and the load run on when pinned.
const (
	serverCore = "0"
	loadCore   = "1"
)

// pinnedEnv marks the re-executed, pinned driver; its value is the
// placement label.
const pinnedEnv = "CERTBOUND_BENCH_TOKEN_PINNED"

func main() {
	if len(os.Args) > 1 && os.Args[1] == signRateCommand {
		if err := runSignRate(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench-token:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-token:", err)
		os.Exit(1)
	}
}

type options struct {
	certbound string
	workers   int
	duration  time.Duration
	sample    int
	scenarios []string
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench-token", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.certbound, "certbound", "bin/certbound", "the certbound binary (make build)")
	fs.IntVar(&o.workers, "workers", 16, "concurrent clients in each scenario")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each scenario (and of each raw signing measurement)")
	fs.IntVar(&o.sample, "validate-every", 64, "each worker fully validates its first response and every n-th after it (signature, client_id, cnf thumbprint)")
	scenarios := fs.String("scenarios", strings.Join(scenarioNames(), ","), "comma-separated scenarios to run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.workers <= 0 || o.duration <= 0 || o.sample <= 0 {
		return errors.New("--workers, --duration and --validate-every must be positive")
	}
	for _, name := range strings.Split(*scenarios, ",") {
		if _, ok := scenarioByName(name); !ok {
			return fmt.Errorf("--scenarios: unknown scenario %q (known: %s)", name, strings.Join(scenarioNames(), ", "))
		}
		o.scenarios = append(o.scenarios, name)
	}
	if _, err := os.Stat(o.certbound); err != nil {
		return fmt.Errorf("--certbound: %w (run make build)", err)
	}

	placement, pinned := os.LookupEnv(pinnedEnv)
	if !pinned {
		label, canPin := pinningPossible()
		if canPin {
			return reexecPinned(ctx, label)
		}
		placement = label
	}
	return measure(ctx, o, placement, placement == pinnedLabel)
}

const pinnedLabel = "pinned: server on core " + serverCore + ", load driver on core " + loadCore

// pinningPossible says whether taskset and a second core are available,
// and the placement label otherwise.
func pinningPossible() (string, bool) {
	if _, err := exec.LookPath("taskset"); err != nil {
		return "UNPINNED (taskset not found): server and load driver share all cores", false
	}
	if runtime.NumCPU() < 2 {
		return fmt.Sprintf("UNPINNED (%d core available): server and load driver share it", runtime.NumCPU()), false
	}
	return pinnedLabel, true
}

// reexecPinned runs this driver again under taskset on the load core; the
// Go runtime of the child sizes GOMAXPROCS to that one core.
func reexecPinned(ctx context.Context, label string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "taskset", append([]string{"-c", loadCore, self}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), pinnedEnv+"="+label)
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pinned driver: %w", err)
	}
	return nil
}

// onServerCore prefixes a command with taskset for the server's core when
// pinned.
func onServerCore(pinned bool, name string, args ...string) (string, []string) {
	if !pinned {
		return name, args
	}
	return "taskset", append([]string{"-c", serverCore, name}, args...)
}

func measure(ctx context.Context, o options, placement string, pinned bool) error {
	dir, err := os.MkdirTemp("", "bench-token-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fx, err := newFixture(dir)
	if err != nil {
		return fmt.Errorf("fixture: %w", err)
	}

	raw := map[jose.SignatureAlgorithm]float64{}
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA} {
		fmt.Fprintf(os.Stderr, "raw %s signing rate of the server's core (%s)...\n", alg, o.duration)
		if raw[alg], err = measureSignRate(ctx, pinned, fx.keyFiles[alg], o.duration); err != nil {
			return fmt.Errorf("raw %s signing rate: %w", alg, err)
		}
	}

	var results []result
	failed := 0
	for _, name := range o.scenarios {
		sc, _ := scenarioByName(name)
		fmt.Fprintf(os.Stderr, "scenario %s: %s (%d workers, %s)...\n", sc.name, sc.what, o.workers, o.duration)
		res, err := runScenario(ctx, o, fx, sc, pinned, dir)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", sc.name, err)
		}
		res.ratio = res.rate / raw[sc.server.alg]
		failed += res.errors
		results = append(results, res)
	}
	printReport(os.Stdout, o, placement, pinned, raw, results)
	if failed > 0 {
		return fmt.Errorf("%d requests failed; the figures are not valid", failed)
	}
	return nil
}

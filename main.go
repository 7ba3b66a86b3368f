// Command certbound is the one binary of certbound: the operator
// (`certbound manager`), the RFC 8705 authorization server it deploys
// (`certbound authorization-server`), the certificate-bound-token
// reverse proxy for protected resources (`certbound resource-proxy`) and
// the sidecar that keeps a zero-Secret workload's bound token
// (`certbound token-agent`).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/certbound/certbound/asruntime"
	"github.com/certbound/certbound/asruntime/resourceproxy"
	"github.com/certbound/certbound/internal/diagnose"
	"github.com/certbound/certbound/pkg/boundtoken/agent"
)

type subcommand struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var subcommands = map[string]subcommand{
	"manager":              {"run the operator (OAuthClient and AuthorizationServer controllers, webhooks)", runManager},
	"authorization-server": {"run the RFC 8705 authorization server", asruntime.RunAuthorizationServer},
	"resource-proxy":       {"run an mTLS reverse proxy that demands certificate-bound access tokens", resourceproxy.Run},
	"token-agent":          {"run a workload sidecar that keeps a certificate-bound token from the pod's service-account token", agent.Run},
	"diagnose":             {"explain why an OAuthClient cannot get a token (diagnose oauthclient NAMESPACE/NAME)", diagnose.Run},
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: certbound <subcommand> [flags]\n\nsubcommands:\n")
	for _, name := range []string{"manager", "authorization-server", "resource-proxy", "token-agent", "diagnose"} {
		fmt.Fprintf(os.Stderr, "  %-22s %s\n", name, subcommands[name].summary)
	}
	fmt.Fprintf(os.Stderr, "\n`certbound <subcommand> --help` lists a subcommand's flags.\n")
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, ok := subcommands[os.Args[1]]
	if !ok {
		if os.Args[1] != "-h" && os.Args[1] != "--help" && os.Args[1] != "help" {
			fmt.Fprintf(os.Stderr, "certbound: unknown subcommand %q\n\n", os.Args[1])
		}
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "certbound %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

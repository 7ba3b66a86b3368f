// Command generate refreshes the files generated from config/ and the Helm
// chart: the chart's copies of the CRDs, ClusterRole and webhook
// configurations, the static manifest deploy/certbound.yaml and
// deploy/monitoring/prometheusrule.yaml. Run it from anywhere in the
// repository (make static-manifest).
package main

import (
	"fmt"
	"os"

	"github.com/certbound/certbound/test/helm"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := helm.RepoRoot()
	if err != nil {
		return err
	}
	files, err := helm.Generated(root)
	if err != nil {
		return err
	}
	changed, err := helm.Write(root, files)
	if err != nil {
		return err
	}
	for _, path := range changed {
		fmt.Println("wrote", path)
	}
	return nil
}

// Command bundle writes certbound's OLM bundle (bundle/) from config/:
//
//	go run ./hack/bundle [--image ghcr.io/certbound/certbound:v0.1.0] [--version 0.1.0]
//
// Run it from anywhere inside the repository (make bundle does). The output
// depends only on config/ and the flags, so test/bundle can check that the
// committed bundle is current.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/certbound/certbound/hack/bundle/olmbundle"
)

func main() {
	var opts olmbundle.Options
	flag.StringVar(&opts.Version, "version", olmbundle.DefaultVersion, "operator version (semver, no leading v); the CSV is certbound.v<version>")
	flag.StringVar(&opts.Image, "image", "", "operator image the CSV deploys (default: config/manager's image repository tagged v<version>)")
	flag.Parse()
	if err := run(opts); err != nil {
		fmt.Fprintln(os.Stderr, "bundle:", err)
		os.Exit(1)
	}
}

func run(opts olmbundle.Options) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	opts.Root = root
	files, err := olmbundle.Generate(opts)
	if err != nil {
		return err
	}
	if err := olmbundle.Write(root, files); err != nil {
		return err
	}
	fmt.Printf("wrote %d files to %s/\n", len(files), olmbundle.Dir)
	return nil
}

// repoRoot is the nearest directory above the working directory whose go.mod
// declares the certbound module.
func repoRoot() (string, error) {
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
			return "", errors.New("not inside the certbound repository (no go.mod declaring github.com/certbound/certbound)")
		}
		dir = parent
	}
}

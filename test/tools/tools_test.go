// Package tools checks hack/build-tools.sh, which every `make test` runs
// first: a broken binary in bin/ is rebuilt alone, and a tool that cannot
// be built fails loudly with the reason rather than leaving envtest to fail
// confusingly later.
package tools

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certbound/certbound/test/testenv"
)

// scratchRoot lays out a copy of the repository parts the script uses, with
// bin/ holding the real tools (symlinked) and the current stamp.
func scratchRoot(t *testing.T) (root, scratch string) {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	scratch = t.TempDir()
	for _, dir := range []string{"hack/tools", "bin"} {
		if err := os.MkdirAll(filepath.Join(scratch, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"hack/build-tools.sh", "hack/tools/go.mod", "hack/tools/go.sum", "hack/tools/tools.go", "bin/.tools-stamp"} {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			t.Fatalf("%s: %v (run make tools first)", f, err)
		}
		if err := os.WriteFile(filepath.Join(scratch, f), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range []string{"etcd", "kube-apiserver", "controller-gen"} {
		if err := os.Symlink(filepath.Join(root, "bin", tool), filepath.Join(scratch, "bin", tool)); err != nil {
			t.Fatal(err)
		}
	}
	return root, scratch
}

func runScript(t *testing.T, scratch string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(scratch, "hack", "build-tools.sh"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestABrokenToolIsRebuiltAlone(t *testing.T) {
	_, scratch := scratchRoot(t)
	broken := filepath.Join(scratch, "bin", "controller-gen")
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(broken, []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := runScript(t, scratch)
	if err != nil {
		t.Fatalf("build-tools.sh: %v\n%s", err, out)
	}
	if !strings.Contains(out, "building bin/controller-gen") || strings.Contains(out, "building bin/kube-apiserver") || strings.Contains(out, "building bin/etcd") {
		t.Fatalf("want only controller-gen rebuilt, got:\n%s", out)
	}
	if version, err := exec.Command(broken, "--version").Output(); err != nil || !strings.Contains(string(version), "v0.") {
		t.Fatalf("the rebuilt controller-gen does not run: %v %s", err, version)
	}
	if out, err := runScript(t, scratch); err != nil || strings.Contains(out, "building") {
		t.Fatalf("a second run rebuilt something: %v\n%s", err, out)
	}
}

func TestAToolThatCannotBeBuiltFailsLoudly(t *testing.T) {
	_, scratch := scratchRoot(t)
	if err := os.Remove(filepath.Join(scratch, "bin", "controller-gen")); err != nil {
		t.Fatal(err)
	}
	// A pin that no longer matches its checksums: the build must fail.
	gomod := filepath.Join(scratch, "hack", "tools", "go.mod")
	data, _ := os.ReadFile(gomod)
	if err := os.WriteFile(gomod, []byte(strings.Replace(string(data), "sigs.k8s.io/controller-tools v0.23.0", "sigs.k8s.io/controller-tools v0.0.0-does-not-exist", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runScript(t, scratch)
	if err == nil {
		t.Fatalf("build-tools.sh succeeded with an unbuildable pin:\n%s", out)
	}
	if !strings.Contains(out, "FAILED to build bin/controller-gen") {
		t.Fatalf("the failure does not say which tool failed:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(scratch, "bin", ".tools-stamp")); err == nil {
		t.Fatal("the stamp survived a failed build, so the next run would not retry")
	}
}

// Package tools checks hack/build-tools.sh, which every `make test` runs
// first. The script builds controller-gen, etcd and kube-apiserver into a
// per-user cache keyed by the hash of hack/tools/go.mod and go.sum and links
// them into bin/: a tool is built only when it is missing from the cache for
// the current pins or does not run, a second clone or run reuses the cache,
// and a tool that cannot be built fails loudly with the reason and leaves no
// half-written binary behind.
//
// The tests run the real script in a scratch copy of the repository parts it
// reads, with CERTBOUND_TOOLS_CACHE pointing at a scratch cache. Builds go to
// a fake `go` first on PATH that logs each package it is asked to build and
// writes a small executable in its place: kube-apiserver alone takes minutes
// and gigabytes to build, and the real build command is exercised by every
// `make tools`. TestAnUnbuildablePinFailsWithTheRealToolchain runs the real
// go, but only on a pin that cannot resolve, so it fails fast and offline.
package tools

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The tools in the order the script builds them, with their packages.
var tools = []struct{ name, pkg string }{
	{"controller-gen", "sigs.k8s.io/controller-tools/cmd/controller-gen"},
	{"etcd", "go.etcd.io/etcd/server/v3"},
	{"kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"},
}

// fakeGo stands in for `go build -o OUT PKG`: it appends PKG to
// $FAKE_GO_LOG and writes to OUT a script that answers --version, or, for a
// package listed in $FAKE_GO_FAIL, writes a half of OUT, says why on stderr
// and fails, as a build that dies part-way does.
const fakeGo = `#!/bin/sh
out= pkg=
while [ $# -gt 0 ]; do
  case $1 in
    -o) out=$2; shift 2 ;;
    *) pkg=$1; shift ;;
  esac
done
echo "$pkg" >> "$FAKE_GO_LOG"
case " $FAKE_GO_FAIL " in
  *" $pkg "*)
    printf '#!/bin/sh\necho half' > "$out"
    echo "fake go: cannot build $pkg" >&2
    exit 1 ;;
esac
n=$(wc -l < "$FAKE_GO_LOG")
printf '#!/bin/sh\necho "%s fake build %s"\n' "$pkg" "$n" > "$out"
chmod +x "$out"
`

// guardGo runs the real go ($REAL_GO) for controller-gen only, so that a
// test using the real toolchain can never start a real kube-apiserver or
// etcd build.
const guardGo = `#!/bin/sh
for last; do :; done
if [ "$last" != sigs.k8s.io/controller-tools/cmd/controller-gen ]; then
  echo "test guard: refusing to really build $last" >&2
  exit 1
fi
exec "$REAL_GO" "$@"
`

// repoRoot is the directory of the certbound go.mod above the working
// directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(data), "module github.com/certbound/certbound\n") {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("cannot find the certbound repository root above the working directory")
		}
		dir = parent
	}
}

// scratch is a copy of the repository parts the script uses, run with a
// scratch tools cache and a fake go.
type scratch struct {
	t     *testing.T
	root  string   // the scratch repository
	cache string   // CERTBOUND_TOOLS_CACHE
	goLog string   // the packages the fake go was asked to build, one a line
	env   []string // the script's environment
}

func newScratch(t *testing.T, cache string) *scratch {
	t.Helper()
	repo := repoRoot(t)
	s := &scratch{t: t, root: t.TempDir(), cache: cache}
	if err := os.MkdirAll(filepath.Join(s.root, "hack", "tools"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"hack/build-tools.sh", "hack/tools/go.mod", "hack/tools/go.sum", "hack/tools/tools.go"} {
		data, err := os.ReadFile(filepath.Join(repo, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.root, f), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fakeDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(fakeDir, "go"), []byte(fakeGo), 0o755); err != nil {
		t.Fatal(err)
	}
	s.goLog = filepath.Join(fakeDir, "go.log")
	s.env = append(os.Environ(),
		"PATH="+fakeDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"CERTBOUND_TOOLS_CACHE="+cache,
		"FAKE_GO_LOG="+s.goLog,
		"FAKE_GO_FAIL=",
	)
	return s
}

// run runs the script with extra environment settings.
func (s *scratch) run(env ...string) (string, error) {
	s.t.Helper()
	cmd := exec.Command("bash", filepath.Join(s.root, "hack", "build-tools.sh"))
	cmd.Env = append(slices.Clone(s.env), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustRun runs the script and fails the test if it fails.
func (s *scratch) mustRun() string {
	s.t.Helper()
	out, err := s.run()
	if err != nil {
		s.t.Fatalf("build-tools.sh: %v\n%s", err, out)
	}
	return out
}

// builds is every package the fake go was asked to build so far.
func (s *scratch) builds() []string {
	s.t.Helper()
	data, err := os.ReadFile(s.goLog)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.Fields(string(data))
}

// pinsDir is the cache directory for the scratch's current pins: the first
// 16 hex digits of the SHA-256 of go.mod followed by go.sum.
func (s *scratch) pinsDir() string {
	s.t.Helper()
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(s.root, "hack", "tools", f))
		if err != nil {
			s.t.Fatal(err)
		}
		h.Write(data)
	}
	return filepath.Join(s.cache, hex.EncodeToString(h.Sum(nil))[:16])
}

// appendPin changes the pins by appending text to go.sum and returns a
// function that restores them.
func (s *scratch) appendPin(text string) (restore func()) {
	s.t.Helper()
	sum := filepath.Join(s.root, "hack", "tools", "go.sum")
	old, err := os.ReadFile(sum)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(sum, append(slices.Clone(old), text...), 0o644); err != nil {
		s.t.Fatal(err)
	}
	return func() {
		if err := os.WriteFile(sum, old, 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
}

// checkInstalled checks that every tool is a complete executable in dir,
// that bin/ links to it there, and that dir holds nothing else.
func (s *scratch) checkInstalled(dir string) {
	s.t.Helper()
	var want []string
	for _, tool := range tools {
		want = append(want, tool.name)
		cached := filepath.Join(dir, tool.name)
		link := filepath.Join(s.root, "bin", tool.name)
		if target, err := os.Readlink(link); err != nil || target != cached {
			s.t.Fatalf("bin/%s links to %q (%v), want %s", tool.name, target, err, cached)
		}
		if out, err := exec.Command(link, "--version").Output(); err != nil || !strings.HasPrefix(string(out), tool.pkg+" fake build ") {
			s.t.Fatalf("bin/%s --version: %v %q", tool.name, err, out)
		}
	}
	if got := entries(s.t, dir); !slices.Equal(got, sortedCopy(want)) {
		s.t.Fatalf("%s holds %v, want exactly %v", dir, got, want)
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range list {
		names = append(names, e.Name())
	}
	return names // os.ReadDir sorts by name
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func allPackages() []string {
	var pkgs []string
	for _, tool := range tools {
		pkgs = append(pkgs, tool.pkg)
	}
	return pkgs
}

func TestToolsAreBuiltIntoTheCacheOnceAndLinkedFromBin(t *testing.T) {
	s := newScratch(t, t.TempDir())
	out := s.mustRun()
	if got := s.builds(); !slices.Equal(got, allPackages()) {
		t.Fatalf("the first run built %v, want each tool once: %v\n%s", got, allPackages(), out)
	}
	dir := s.pinsDir()
	for _, tool := range tools {
		if want := "building " + tool.name + " from " + tool.pkg; !strings.Contains(out, want) || !strings.Contains(out, dir) {
			t.Fatalf("the output does not say %q into %s:\n%s", want, dir, out)
		}
	}
	s.checkInstalled(dir)

	out = s.mustRun()
	if got := s.builds(); len(got) != len(tools) || strings.Contains(out, "building") {
		t.Fatalf("a second run rebuilt something (builds so far %v):\n%s", got, out)
	}
	if !strings.Contains(out, "reusing "+dir) {
		t.Fatalf("a second run does not say it reuses %s:\n%s", dir, out)
	}
	s.checkInstalled(dir)
}

func TestAnotherCloneReusesTheCache(t *testing.T) {
	cache := t.TempDir()
	first := newScratch(t, cache)
	first.mustRun()
	second := newScratch(t, cache)
	out := second.mustRun()
	if got := second.builds(); len(got) != 0 {
		t.Fatalf("a second clone with the same pins built %v:\n%s", got, out)
	}
	second.checkInstalled(first.pinsDir())
}

func TestTheDefaultCacheIsPerUser(t *testing.T) {
	xdg, home := t.TempDir(), t.TempDir()
	for _, c := range []struct {
		name string
		env  []string
		dir  string
	}{
		{"XDG_CACHE_HOME", []string{"CERTBOUND_TOOLS_CACHE=", "XDG_CACHE_HOME=" + xdg, "HOME=" + home}, filepath.Join(xdg, "certbound", "tools")},
		{"HOME", []string{"CERTBOUND_TOOLS_CACHE=", "XDG_CACHE_HOME=", "HOME=" + home}, filepath.Join(home, ".cache", "certbound", "tools")},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newScratch(t, c.dir)
			// An empty setting counts as unset, as ${X:-default} reads it.
			if out, err := s.run(c.env...); err != nil {
				t.Fatalf("build-tools.sh: %v\n%s", err, out)
			}
			s.checkInstalled(s.pinsDir())
		})
	}
}

func TestOnlyChangedPinsRebuild(t *testing.T) {
	s := newScratch(t, t.TempDir())
	s.mustRun()
	oldDir := s.pinsDir()

	restore := s.appendPin("example.com/changed v1.0.0 h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
	newDir := s.pinsDir()
	if newDir == oldDir {
		t.Fatal("changing go.sum did not change the cache key")
	}
	out := s.mustRun()
	if got := s.builds(); !slices.Equal(got[len(tools):], allPackages()) {
		t.Fatalf("after a pin change the builds were %v, want every tool rebuilt once more:\n%s", got, out)
	}
	s.checkInstalled(newDir)
	// The tools of the old pins stay for a checkout that still uses them.
	for _, tool := range tools {
		if _, err := os.Stat(filepath.Join(oldDir, tool.name)); err != nil {
			t.Fatalf("the tools of the old pins were removed: %v", err)
		}
	}

	// Back on the old pins (another branch): nothing is built, bin/ links
	// to the old pins' tools again.
	restore()
	out = s.mustRun()
	if got := s.builds(); len(got) != 2*len(tools) {
		t.Fatalf("going back to cached pins built something (builds %v):\n%s", got, out)
	}
	s.checkInstalled(oldDir)
}

func TestABrokenOrMissingToolIsRebuiltAlone(t *testing.T) {
	s := newScratch(t, t.TempDir())
	s.mustRun()
	dir := s.pinsDir()
	// A truncated controller-gen that does not run, and no etcd.
	if err := os.WriteFile(filepath.Join(dir, "controller-gen"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "etcd")); err != nil {
		t.Fatal(err)
	}
	out := s.mustRun()
	want := append(allPackages(), tools[0].pkg, tools[1].pkg)
	if got := s.builds(); !slices.Equal(got, want) {
		t.Fatalf("builds %v, want %v (controller-gen and etcd again, not kube-apiserver):\n%s", got, want, out)
	}
	if strings.Contains(out, "building kube-apiserver") {
		t.Fatalf("kube-apiserver was rebuilt:\n%s", out)
	}
	s.checkInstalled(dir)
}

func TestAFailedBuildFailsLoudlyAndLeavesNoHalfWrittenTool(t *testing.T) {
	s := newScratch(t, t.TempDir())
	dir := s.pinsDir()
	etcd := tools[1]
	out, err := s.run("FAKE_GO_FAIL=" + etcd.pkg)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("build-tools.sh with etcd failing to build: %v, want a non-zero exit:\n%s", err, out)
	}
	if !strings.Contains(out, "FAILED to build etcd from "+etcd.pkg) {
		t.Fatalf("the failure does not say which tool failed:\n%s", out)
	}
	if !strings.Contains(out, "fake go: cannot build "+etcd.pkg) {
		t.Fatalf("the failure hides go's own output:\n%s", out)
	}
	// controller-gen was built before; etcd is not there at all, not even
	// part-written; kube-apiserver was not attempted.
	if got, want := s.builds(), allPackages()[:2]; !slices.Equal(got, want) {
		t.Fatalf("builds %v, want %v", got, want)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{"controller-gen"}) {
		t.Fatalf("after the failed build the cache holds %v, want only controller-gen", got)
	}
	if _, err := os.Lstat(filepath.Join(s.root, "bin", "etcd")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bin/etcd exists after its build failed: %v", err)
	}

	// The next run retries what is missing and keeps what was built.
	out = s.mustRun()
	if got, want := s.builds(), append(allPackages()[:2], allPackages()[1:]...); !slices.Equal(got, want) {
		t.Fatalf("builds %v, want %v (etcd retried, controller-gen kept):\n%s", got, want, out)
	}
	s.checkInstalled(dir)
}

func TestAnUnbuildablePinFailsWithTheRealToolchain(t *testing.T) {
	realGo, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go on PATH")
	}
	s := newScratch(t, t.TempDir())
	guardDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(guardDir, "go"), []byte(guardGo), 0o755); err != nil {
		t.Fatal(err)
	}
	// A pin that does not exist: the real go must fail to resolve it.
	gomod := filepath.Join(s.root, "hack", "tools", "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	const pin, bad = "sigs.k8s.io/controller-tools v0.23.0", "sigs.k8s.io/controller-tools v0.0.0-does-not-exist"
	if !strings.Contains(string(data), pin) {
		t.Fatalf("hack/tools/go.mod no longer pins %q; update this test", pin)
	}
	if err := os.WriteFile(gomod, []byte(strings.Replace(string(data), pin, bad, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := s.run(
		"PATH="+guardDir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"REAL_GO="+realGo,
		"GOPROXY=off", // fail on the missing version at once, without the network
	)
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() == 0 {
		t.Fatalf("build-tools.sh succeeded with an unbuildable pin: %v\n%s", err, out)
	}
	if !strings.Contains(out, "FAILED to build controller-gen from "+tools[0].pkg) || !strings.Contains(out, "does-not-exist") {
		t.Fatalf("the failure does not name the tool and show go's reason:\n%s", out)
	}
	if strings.Contains(out, "test guard") {
		t.Fatalf("the script went on to build another tool:\n%s", out)
	}
	if got := entries(t, s.pinsDir()); len(got) != 0 {
		t.Fatalf("the failed build left %v in the cache", got)
	}
	if _, err := os.Lstat(filepath.Join(s.root, "bin", "controller-gen")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("bin/controller-gen exists after its build failed: %v", err)
	}
}

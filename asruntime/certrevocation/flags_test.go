package certrevocation

import (
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	root := newCA(t, "root", nil)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.crl"), filepath.Join(dir, "b.crl")
	writeFile(t, a, current(t, root))
	writeFile(t, b, current(t, root))
	cases := map[string]struct {
		args    []string
		enabled bool
		mode    FailureMode
		errHas  string
	}{
		"no source leaves revocation checking off": {},
		"repeated and comma-separated files are all read": {
			args: []string{"--client-crl-file=" + a + "," + b, "--client-crl-file", a}, enabled: true, mode: FailClosed},
		"distribution points alone, failing open": {
			args: []string{"--client-crl-distribution-points", "--client-revocation-failure-mode=open"}, enabled: true, mode: FailOpen},
		"a failure mode without a source is refused": {
			args: []string{"--client-revocation-failure-mode=open"}, errHas: "needs --client-crl-file or --client-crl-distribution-points"},
		"an unknown failure mode is refused": {
			args: []string{"--client-crl-distribution-points", "--client-revocation-failure-mode=maybe"}, errHas: "want closed or open"},
		"a missing file is refused": {
			args: []string{"--client-crl-file=" + filepath.Join(dir, "absent.crl")}, errHas: "absent.crl"},
		"a non-positive bound is refused": {
			args: []string{"--client-crl-distribution-points", "--client-crl-cache-max-age=0s"}, errHas: "must be positive"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var f Flags
			f.Register(fs)
			if err := fs.Parse(c.args); err != nil {
				t.Fatal(err)
			}
			checker, err := f.Checker(fs, nil, nil)
			if c.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err = %v, want one containing %q", err, c.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (checker != nil) != c.enabled {
				t.Fatalf("checker %v, want enabled %v", checker, c.enabled)
			}
			if checker != nil && checker.FailureMode() != c.mode {
				t.Fatalf("mode %s, want %s", checker.FailureMode(), c.mode)
			}
		})
	}
}

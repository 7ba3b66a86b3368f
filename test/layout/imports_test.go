// Package layout checks the import direction of the tree: the API at the
// bottom, the registration contract and validation above it, and webhook,
// controllers and the authorization server side by side on top.
package layout

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/certbound/certbound/"

// forbidden lists, per package, the packages it must never depend on,
// directly or not.
var forbidden = map[string][]string{
	"controllers":             {"webhook", "asruntime"},
	"webhook":                 {"controllers", "asruntime"},
	"asruntime":               {"controllers", "webhook"},
	"internal/registration":   {"controllers", "webhook", "asruntime", "api/v1alpha1/validation"},
	"api/v1alpha1/validation": {"controllers", "webhook", "asruntime"},
	"api/v1alpha1":            {"controllers", "webhook", "asruntime", "internal/registration", "api/v1alpha1/validation"},
	"pkg/boundtoken":          {"controllers", "webhook", "asruntime", "internal/registration", "api/v1alpha1"},
	"pkg/boundtoken/agent":    {"controllers", "webhook", "asruntime", "internal/registration", "api/v1alpha1"},
}

func TestImportDirection(t *testing.T) {
	for pkg, bad := range forbidden {
		out, err := exec.Command("go", "list", "-deps", module+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, b := range bad {
				if dep == module+b {
					t.Errorf("%s depends on %s", pkg, b)
				}
			}
		}
	}
}

// workloadLibraries are imported by workloads, so they stay small: besides
// the standard library and the module's own pkg/, only these.
var workloadLibraries = map[string][]string{
	"pkg/boundtoken":       {"golang.org/x/sync/singleflight", "k8s.io/utils/clock"},
	"pkg/boundtoken/agent": {"golang.org/x/sync/singleflight", "k8s.io/utils/clock"},
}

func TestWorkloadLibrariesDependOnlyOnTheStandardLibraryAndAFewPackages(t *testing.T) {
	for pkg, allowed := range workloadLibraries {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", module+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if !strings.HasPrefix(dep, module+"pkg/") && !slices.Contains(allowed, dep) {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}

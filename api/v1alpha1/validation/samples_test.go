package validation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"github.com/certbound/certbound/api/v1alpha1"
	"github.com/certbound/certbound/test/testenv"
)

// TestSamplesPassWithoutWarnings: the manifests users copy from are valid
// and model no risky choice.
func TestSamplesPassWithoutWarnings(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(data), "\n---") {
			var meta struct{ Kind string }
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			var warnings []string
			var errs field.ErrorList
			switch meta.Kind {
			case "OAuthClient":
				var obj v1alpha1.OAuthClient
				if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				w, e := ValidateOAuthClient(&obj, nil)
				warnings, errs = w, e
			case "AuthorizationServer":
				var obj v1alpha1.AuthorizationServer
				if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				w, e := ValidateAuthorizationServer(&obj, nil)
				warnings, errs = w, e
			default:
				continue
			}
			checked++
			if len(errs) > 0 || len(warnings) > 0 {
				t.Errorf("%s: errors %v, warnings %q", filepath.Base(file), errs, warnings)
			}
		}
	}
	if checked == 0 {
		t.Fatal("config/samples holds no OAuthClient or AuthorizationServer")
	}
}

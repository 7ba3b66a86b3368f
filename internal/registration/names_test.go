package registration

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// TestObjectNameIsCollisionFree: namespaces are DNS labels (no dots), so the
// first dot of a client_id separates namespace and name, and a digest has
// no dot at all.
func TestObjectNameIsCollisionFree(t *testing.T) {
	long := strings.Repeat("n", 253)
	clients := []struct{ namespace, name string }{
		{"a", "b-c"},
		{"a-b", "c"},
		{"a", "b.c"},
		{"a", "bc"},
		{"ab", "c"},
		{"team", long},
		{"team", long[:252]},
		{"team", long[:252] + "m"},
		{"other", long},
		{strings.Repeat("t", 63), long},
		{"team", strings.Repeat("n", 253-len("team."))},                              // exactly 253: kept
		{"team", strings.Repeat("n", 253-len("team.")+1)},                            // 254: hashed
		{"team", strings.Repeat("n", 64)},                                            // as long as a digest
		{"team", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}, // a digest-looking name
	}
	seen := map[string]struct{ namespace, name string }{}
	for _, c := range clients {
		got := ObjectName(c.namespace, c.name)
		if prev, dup := seen[got]; dup {
			t.Errorf("%s/%s and %s/%s share the object name %q", prev.namespace, prev.name, c.namespace, c.name, got)
		}
		seen[got] = c
		if len(got) > 253 {
			t.Errorf("%s/%s: object name is %d characters", c.namespace, c.name, len(got))
		}
		if msgs := validation.IsDNS1123Subdomain(got); len(msgs) > 0 {
			t.Errorf("%s/%s: %q is not an object name: %v", c.namespace, c.name, got, msgs)
		}
		if id := ClientID(c.namespace, c.name); len(id) <= 253 {
			if got != id {
				t.Errorf("%s/%s: object name %q, want the client_id %q", c.namespace, c.name, got, id)
			}
		} else if strings.Contains(got, ".") || len(got) != 64 {
			t.Errorf("%s/%s: a long client_id becomes %q, want a 64-character hex digest", c.namespace, c.name, got)
		}
	}
	if ObjectName("team", long) != ObjectName("team", long) {
		t.Error("ObjectName is not deterministic")
	}
}

func TestClientIDSeparatesNamespaceAndName(t *testing.T) {
	if ClientID("a", "b-c") == ClientID("a-b", "c") {
		t.Error("a/b-c and a-b/c share a client_id")
	}
	if got := ClientID("billing", "worker"); got != "billing.worker" {
		t.Errorf("ClientID = %q", got)
	}
}

package helm

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestGeneratedFilesAreFresh fails when a committed generated file (the
// chart's copies of config/ files, deploy/certbound.yaml,
// deploy/monitoring/prometheusrule.yaml) differs from what the generator
// writes, e.g. after make manifests or a chart change.
func TestGeneratedFilesAreFresh(t *testing.T) {
	root := repoRoot(t)
	files, err := Generated(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range slices.Sorted(maps.Keys(files)) {
		committed, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Errorf("%s: %v; run make static-manifest", path, err)
			continue
		}
		if !bytes.Equal(committed, files[path]) {
			t.Errorf("%s is stale; run make static-manifest", path)
		}
	}
}

// TestStaticManifestInstallsTheChart: deploy/certbound.yaml holds the
// chart's default objects, its namespace and the CRDs.
func TestStaticManifestInstallsTheChart(t *testing.T) {
	root := repoRoot(t)
	objs, err := DecodeObjects(readFile(t, filepath.Join(root, StaticManifestPath)))
	if err != nil {
		t.Fatal(err)
	}
	got := byKey(objs)
	for _, obj := range render(t, DefaultRelease, StaticManifestValues()) {
		if _, ok := got[objectKey(obj)]; !ok {
			t.Errorf("%s lacks %s", StaticManifestPath, objectKey(obj))
		}
	}
	if len(ofKind(objs, "CustomResourceDefinition")) == 0 || len(ofKind(objs, "Namespace")) != 1 {
		t.Errorf("%s lacks the CRDs or the namespace", StaticManifestPath)
	}
	if objs[0].GetKind() != "CustomResourceDefinition" {
		t.Errorf("%s starts with %s; the CRDs must come first", StaticManifestPath, objectKey(objs[0]))
	}
}

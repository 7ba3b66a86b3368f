// Package olmbundle derives certbound's OLM bundle (registry+v1) from the
// kustomize configuration a user installs with `kubectl apply -k`: it renders
// config/default and config/samples, turns the manager Deployment, its RBAC
// and the webhook configurations into a ClusterServiceVersion, and returns
// every file of bundle/ as bytes, so `go run ./hack/bundle` writes them and a
// test can compare them with what is committed.
//
// Nothing in the bundle is written by hand: an object config/default renders
// that the bundle cannot carry is an error, not a silent omission.
package olmbundle

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	// Package is the OLM package name.
	Package = "certbound"
	// Channel is the only channel, and the default one.
	Channel = "alpha"
	// DefaultVersion is the bundle version when Options.Version is empty.
	DefaultVersion = "0.1.0"

	// Dir is where the bundle lives, relative to the repository root.
	Dir = "bundle"
	// ManifestsDir and MetadataDir are the bundle's two directories.
	ManifestsDir = "manifests"
	MetadataDir  = "metadata"
	// DockerfileName is the bundle image's Dockerfile, inside Dir; its build
	// context is Dir.
	DockerfileName = "bundle.Dockerfile"
)

// Options says where the configuration is and what to call the result.
type Options struct {
	// Root is the repository root (holding config/).
	Root string
	// Version is the operator's semantic version (no leading v);
	// DefaultVersion when empty.
	Version string
	// Image is the operator image the CSV deploys and lists in
	// relatedImages. When empty it is the repository of the image
	// config/manager sets, tagged v<Version>.
	Image string
}

// Generate renders the configuration and returns the bundle's files, keyed by
// their slash-separated path relative to Dir.
func Generate(opts Options) (map[string][]byte, error) {
	if opts.Root == "" {
		return nil, errors.New("olmbundle: Options.Root is empty")
	}
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	install, err := render(filepath.Join(opts.Root, "config", "default"))
	if err != nil {
		return nil, err
	}
	samples, err := render(filepath.Join(opts.Root, "config", "samples"))
	if err != nil {
		return nil, err
	}
	b, err := build(install, samples, opts)
	if err != nil {
		return nil, err
	}

	files := map[string][]byte{}
	add := func(name string, obj any) error {
		data, err := yaml.Marshal(obj)
		if err != nil {
			return fmt.Errorf("marshal %s: %w", name, err)
		}
		files[name] = data
		return nil
	}
	for _, crd := range b.crds {
		if err := add(ManifestsDir+"/"+crdFileName(crd), crd.Object); err != nil {
			return nil, err
		}
	}
	for _, obj := range b.extra {
		name := fmt.Sprintf("%s/%s_%s_%s.yaml", ManifestsDir, obj.GetName(), obj.GroupVersionKind().Version, strings.ToLower(obj.GetKind()))
		if err := add(name, obj.Object); err != nil {
			return nil, err
		}
	}
	if err := add(ManifestsDir+"/"+Package+".clusterserviceversion.yaml", b.csv); err != nil {
		return nil, err
	}
	if err := add(MetadataDir+"/annotations.yaml", map[string]any{"annotations": annotationMap()}); err != nil {
		return nil, err
	}
	files[DockerfileName] = dockerfile()
	return files, nil
}

// Write replaces Dir under root with files: the manifests and metadata
// directories are emptied first, so an object dropped from config/ leaves
// the bundle too.
func Write(root string, files map[string][]byte) error {
	dir := filepath.Join(root, Dir)
	for _, sub := range []string{ManifestsDir, MetadataDir} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(files) {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Diff compares files with what is under root's Dir and names every file
// that is missing, different or not generated. An empty result means the
// committed bundle is current.
func Diff(root string, files map[string][]byte) ([]string, error) {
	dir := filepath.Join(root, Dir)
	var problems []string
	onDisk := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		onDisk[filepath.ToSlash(rel)] = true
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, name := range sortedKeys(files) {
		if !onDisk[name] {
			problems = append(problems, name+": missing")
			continue
		}
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(got, files[name]) {
			problems = append(problems, name+": differs from what config/ generates")
		}
	}
	for _, name := range sortedKeys(onDisk) {
		if _, ok := files[name]; !ok {
			problems = append(problems, name+": not generated from config/")
		}
	}
	return problems, nil
}

// render builds a kustomization the way `kubectl kustomize` does.
func render(dir string) ([]*unstructured.Unstructured, error) {
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, res := range resMap.Resources() {
		data, err := res.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
		}
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("kustomize build %s: no objects", dir)
	}
	return objs, nil
}

func crdFileName(crd *unstructured.Unstructured) string {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	return group + "_" + plural + ".yaml"
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

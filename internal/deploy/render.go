package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/slipwayci/slipway/internal/cli"
)

// kustomizationFiles are the names kustomize recognises, Tutor's
// kustomization.yml among them.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// Render reads the manifests at path: a kustomize directory (built with
// kustomize's own library, configMapGenerator and all), a directory of plain
// .yaml/.yml/.json manifests, or one manifest file. Errors are usage errors
// naming the file.
func Render(path string) ([]*unstructured.Unstructured, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, cli.Usagef("reading manifests: %w", err)
	}
	if !st.IsDir() {
		return readManifestFile(path)
	}
	for _, k := range kustomizationFiles {
		if _, err := os.Stat(filepath.Join(path, k)); err == nil {
			return buildKustomization(path)
		}
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, cli.Usagef("reading manifests: %w", err)
	}
	var objs []*unstructured.Unstructured
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.IsDir() || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		got, err := readManifestFile(filepath.Join(path, e.Name()))
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	if len(objs) == 0 {
		return nil, cli.Usagef("%s: no kustomization and no .yaml/.yml/.json manifests", path)
	}
	return objs, nil
}

func buildKustomization(dir string) ([]*unstructured.Unstructured, error) {
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	k := krusty.MakeKustomizer(opts)
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, cli.Usagef("building kustomization %s: %w", dir, err)
	}
	objs := make([]*unstructured.Unstructured, 0, m.Size())
	for _, r := range m.Resources() {
		// Through JSON, so numbers become the int64/float64 that
		// unstructured objects hold (kyaml yields int).
		data, err := r.MarshalJSON()
		if err != nil {
			return nil, cli.Usagef("building kustomization %s: object %s: %w", dir, r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return nil, cli.Usagef("building kustomization %s: object %s: %w", dir, r.CurId(), err)
		}
		objs = append(objs, u)
	}
	return objs, nil
}

func readManifestFile(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, cli.Usagef("reading manifests: %w", err)
	}
	objs, err := ParseManifests(bytes.NewReader(data))
	if err != nil {
		return nil, cli.Usagef("%s: %w", path, err)
	}
	return objs, nil
}

// ParseManifests decodes a stream of YAML documents (or JSON objects), each
// one Kubernetes object or a List of them. Empty documents are skipped. Every
// object needs apiVersion, kind and metadata.name; errors name the document
// (counting from 1).
func ParseManifests(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var objs []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
			continue
		}
		if raw[0] != '{' {
			return nil, fmt.Errorf("document %d: not an object", doc)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if tmp := (&unstructured.Unstructured{Object: m}); !tmp.IsList() {
			if err := checkObject(tmp); err != nil {
				return nil, fmt.Errorf("document %d: %w", doc, err)
			}
		}
		// Decoded again by apimachinery so numbers are int64, as in objects
		// read from the server.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", doc, err)
			}
			for i := range list.Items {
				item := list.Items[i]
				if err := checkObject(&item); err != nil {
					return nil, fmt.Errorf("document %d item %d: %w", doc, i+1, err)
				}
				objs = append(objs, &item)
			}
			continue
		}
		objs = append(objs, u)
	}
}

func checkObject(u *unstructured.Unstructured) error {
	switch {
	case u.GetAPIVersion() == "":
		return fmt.Errorf("field apiVersion is missing (kind %q, name %q)", u.GetKind(), u.GetName())
	case u.GetKind() == "":
		return fmt.Errorf("field kind is missing (apiVersion %q, name %q)", u.GetAPIVersion(), u.GetName())
	case u.GetName() == "":
		return fmt.Errorf("%s: field metadata.name is missing", u.GetKind())
	}
	if _, ok, err := unstructured.NestedFieldNoCopy(u.Object, "metadata"); !ok || err != nil {
		return fmt.Errorf("%s %s: field metadata is not an object", u.GetKind(), u.GetName())
	}
	return nil
}

// objectID names an object in errors and results: Kind.group/name.
func objectID(u *unstructured.Unstructured) string {
	gk := u.GroupVersionKind().GroupKind()
	return gk.String() + "/" + u.GetName()
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

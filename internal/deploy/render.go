package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/usererr"
)

// kustomizationFiles are the names kustomize recognises, Tutor's
// kustomization.yml among them.
var kustomizationFiles = []string{"kustomization.yaml", "kustomization.yml", "Kustomization"}

// Render reads the manifests at path: a kustomize directory (built with
// kustomize's own library, configMapGenerator and all), a directory of plain
// .yaml/.yml/.json manifests, or one manifest file. Errors are user errors
// naming the file.
func Render(path string) ([]*unstructured.Unstructured, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, usererr.Errorf("reading manifests: %w", err)
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
		return nil, usererr.Errorf("reading manifests: %w", err)
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
		return nil, usererr.Errorf("%s: no kustomization and no .yaml/.yml/.json manifests", path)
	}
	return objs, nil
}

func buildKustomization(dir string) ([]*unstructured.Unstructured, error) {
	opts := krusty.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsRootOnly
	k := krusty.MakeKustomizer(opts)
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, usererr.Errorf("building kustomization %s: %w", dir, err)
	}
	objs := make([]*unstructured.Unstructured, 0, m.Size())
	for _, r := range m.Resources() {
		// Through JSON, so numbers become the int64/float64 that
		// unstructured objects hold (kyaml yields int).
		data, err := r.MarshalJSON()
		if err != nil {
			return nil, usererr.Errorf("building kustomization %s: object %s: %w", dir, r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			return nil, usererr.Errorf("building kustomization %s: object %s: %w", dir, r.CurId(), err)
		}
		objs = append(objs, u)
	}
	return objs, nil
}

func readManifestFile(path string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, usererr.Errorf("reading manifests: %w", err)
	}
	defer f.Close()
	return ParseManifests(f, path)
}

// ParseManifests decodes a stream of YAML documents (or JSON objects), each
// one Kubernetes object or a List of them; name is the file in errors. Empty
// documents are skipped. Values are decoded as Kubernetes decodes them; the
// head of every object (apiVersion, kind and metadata, with a name) goes
// through the one strict decoder, so a problem there reads
// FILE:LINE: field.path: what is wrong. The rest of an object is the API
// server's to check (strict field validation). Every error is a user error.
func ParseManifests(r io.Reader, name string) ([]*unstructured.Unstructured, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, usererr.Errorf("reading %s: %w", name, err)
	}
	docs, err := splitDocuments(data)
	if err != nil {
		return nil, usererr.Errorf("%s: %w", name, err)
	}
	var objs []*unstructured.Unstructured
	for k, d := range docs {
		if err := d.check(name, func() *yaml.Node { return fileDocument(data, len(docs), k) }); err != nil {
			return nil, err
		}
		// Decoded again by apimachinery so numbers are int64, as in objects
		// read from the server.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(d.raw); err != nil {
			return nil, usererr.Errorf("%s: document %d: %w", name, d.n, err)
		}
		if !d.list {
			objs = append(objs, u)
			continue
		}
		list, err := u.ToList()
		if err != nil {
			return nil, usererr.Errorf("%s: document %d: %w", name, d.n, err)
		}
		for i := range list.Items {
			objs = append(objs, &list.Items[i])
		}
	}
	return objs, nil
}

// document is one non-empty document of a manifest file.
type document struct {
	n    int // counting every document from 1
	raw  []byte
	obj  map[string]any
	list bool
}

// splitDocuments decodes data as Kubernetes does (YAML 1.1 values, or a
// stream of JSON objects) and returns its non-empty documents as JSON.
func splitDocuments(data []byte) ([]document, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var docs []document
	for n := 1; ; n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return docs, nil
			}
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
			continue
		}
		if raw[0] != '{' {
			return nil, fmt.Errorf("document %d: not an object", n)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		docs = append(docs, document{n: n, raw: raw, obj: m, list: (&unstructured.Unstructured{Object: m}).IsList()})
	}
}

// objectHead is the part of an object deploy-k8s reads itself.
type objectHead struct {
	APIVersion any         `yaml:"apiVersion"`
	Kind       any         `yaml:"kind"`
	Metadata   *objectMeta `yaml:"metadata"`
}

// objectMeta holds the fields of Kubernetes' ObjectMeta, so that a misspelt
// one (lables) is named with its line; the server checks their values.
type objectMeta struct {
	Name                       any            `yaml:"name"`
	GenerateName               any            `yaml:"generateName"`
	Namespace                  any            `yaml:"namespace"`
	Labels                     map[string]any `yaml:"labels"`
	Annotations                map[string]any `yaml:"annotations"`
	UID                        any            `yaml:"uid"`
	ResourceVersion            any            `yaml:"resourceVersion"`
	Generation                 any            `yaml:"generation"`
	CreationTimestamp          any            `yaml:"creationTimestamp"`
	DeletionTimestamp          any            `yaml:"deletionTimestamp"`
	DeletionGracePeriodSeconds any            `yaml:"deletionGracePeriodSeconds"`
	OwnerReferences            []any          `yaml:"ownerReferences"`
	Finalizers                 []any          `yaml:"finalizers"`
	ManagedFields              []any          `yaml:"managedFields"`
	SelfLink                   any            `yaml:"selfLink"`
}

// documentHead is a document's head: one object's, or each item's of a List.
type documentHead struct {
	Object objectHead   `yaml:",inline"`
	Items  []objectHead `yaml:"items"`
}

// check checks the head of d and of each item when d is a List. Errors point
// into the file's own YAML (fileDoc) when it reads as the same documents,
// else name the document.
func (d *document) check(name string, fileDoc func() *yaml.Node) error {
	var n yaml.Node
	if err := yaml.Unmarshal(d.raw, &n); err != nil { // JSON is YAML
		return usererr.Errorf("%s: document %d: %w", name, d.n, err)
	}
	err := d.checkHead(name, &n)
	var cerr *config.Error
	if !errors.As(err, &cerr) {
		return err
	}
	// The JSON has neither the file's lines nor its order of keys: report
	// the problem where the file writes it.
	var ferr *config.Error
	if f := fileDoc(); f != nil && errors.As(d.checkHead(name, f), &ferr) {
		return ferr
	}
	cerr.File, cerr.Line = fmt.Sprintf("%s (document %d)", name, d.n), 0
	return cerr
}

// checkHead decodes the head of document node n strictly and checks that
// every object has an apiVersion, a kind and a name.
func (d *document) checkHead(name string, n *yaml.Node) error {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	var head documentHead
	doc, err := config.DecodeNode(name, headOnly(n, d.list), &head)
	if err != nil {
		return err
	}
	if !d.list {
		return checkObjectHead(doc, "", n.Line, d.obj)
	}
	items, _ := d.obj["items"].([]any)
	for i, item := range items {
		m, _ := item.(map[string]any)
		if err := checkObjectHead(doc, fmt.Sprintf("items[%d].", i), n.Line, m); err != nil {
			return err
		}
	}
	return nil
}

// headOnly returns mapping n with only the keys of documentHead (items only
// in a List), each item of a List cut the same way.
func headOnly(n *yaml.Node, list bool) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return n
	}
	out := *n
	out.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case k.Value == "apiVersion" || k.Value == "kind" || k.Value == "metadata":
		case k.Value == "items" && list && v.Kind == yaml.SequenceNode:
			items := *v
			items.Content = make([]*yaml.Node, len(v.Content))
			for j, item := range v.Content {
				items.Content[j] = headOnly(item, false)
			}
			v = &items
		default:
			continue
		}
		out.Content = append(out.Content, k, v)
	}
	return &out
}

// checkObjectHead checks that object obj, at path (with its dot) in doc,
// names its apiVersion, kind and name, as apimachinery reads them.
func checkObjectHead(doc *config.Doc, path string, line int, obj map[string]any) error {
	u := &unstructured.Unstructured{Object: obj}
	for _, f := range []struct{ field, value string }{{"apiVersion", u.GetAPIVersion()}, {"kind", u.GetKind()}, {"metadata.name", u.GetName()}} {
		switch {
		case f.value != "":
			continue
		case doc.Has(path + f.field):
			return doc.Errorf(path+f.field, "must be a non-empty string")
		}
		e := doc.Errorf(path+f.field, "missing (every object needs apiVersion, kind and metadata.name)")
		if e.Line == 0 {
			e.Line = line
		}
		return e
	}
	if _, err := schema.ParseGroupVersion(u.GetAPIVersion()); err != nil {
		return doc.Errorf(path+"apiVersion", "%q is not a group/version or a version (e.g. apps/v1, v1)", u.GetAPIVersion())
	}
	return nil
}

// fileDocument returns the k-th of the n non-empty documents of data as
// YAML reads it, or nil when YAML does not see the same n documents (a
// stream of JSON objects).
func fileDocument(data []byte, n, k int) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		var d yaml.Node
		if err := dec.Decode(&d); err != nil {
			if !errors.Is(err, io.EOF) {
				return nil
			}
			break
		}
		if len(d.Content) == 0 || isEmptyNode(d.Content[0]) {
			continue
		}
		docs = append(docs, &d)
	}
	if len(docs) != n {
		return nil
	}
	return docs[k]
}

func isEmptyNode(n *yaml.Node) bool {
	return (n.Kind == yaml.ScalarNode && n.Tag == "!!null") || (n.Kind == yaml.MappingNode && len(n.Content) == 0)
}

// objectID names an object in errors and results: Kind.group/name.
func objectID(u *unstructured.Unstructured) string {
	gk := u.GroupVersionKind().GroupKind()
	return gk.String() + "/" + u.GetName()
}

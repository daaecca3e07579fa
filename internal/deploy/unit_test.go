package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
)

// userErrorCase checks err against a table case's wantErr and reports
// whether the case ends there: with wantErr, err must be a user error (exit
// 2) containing it; without, err must be nil.
func userErrorCase(t *testing.T, err error, wantErr string) bool {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Fatal(err)
	case wantErr == "":
		return false
	case err == nil || !strings.Contains(err.Error(), wantErr) || !usererr.Is(err):
		t.Fatalf("error = %v, want a user error (exit 2) containing %q", err, wantErr)
	}
	return true
}

func TestNamespaceFor(t *testing.T) {
	tests := []struct {
		name, branch, nsPrefix string
		want                   string
		wantErr                string
	}{
		{name: "simple", branch: "platform/acme", want: "acme"},
		{name: "prefix", branch: "platform/acme", nsPrefix: "edx-", want: "edx-acme"},
		{name: "upper and punctuation", branch: "platform/Acme_Corp/EU", want: "acme-corp-eu"},
		{name: "trim dashes", branch: "platform/--acme--", want: "acme"},
		{name: "not a platform branch", branch: "main", wantErr: `branch "main" does not start with "platform/"`},
		{name: "empty rest", branch: "platform/", wantErr: "nothing usable"},
		{name: "only symbols", branch: "platform/___", wantErr: "nothing usable"},
		{name: "empty", branch: "", wantErr: "branch is empty"},
		{name: "reserved default", branch: "platform/default", wantErr: `namespace "default", which is reserved`},
		{name: "reserved kube-system", branch: "platform/kube-system", wantErr: "reserved"},
		{name: "too long", branch: "platform/" + strings.Repeat("a", 64), wantErr: "more than 63"},
		{name: "bad prefix", branch: "platform/acme", nsPrefix: "Edx_", wantErr: "not a valid DNS-1123 label"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NamespaceFor(tt.branch, DefaultBranchPrefix, tt.nsPrefix)
			if userErrorCase(t, err, tt.wantErr) {
				return
			}
			if got != tt.want {
				t.Errorf("NamespaceFor(%q) = %q, want %q", tt.branch, got, tt.want)
			}
		})
	}
}

func FuzzNamespaceFor(f *testing.F) {
	for _, s := range []string{"platform/acme", "platform/Acme_Corp", "platform/", "main", "platform/kube-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, branch string) {
		ns, err := NamespaceFor(branch, DefaultBranchPrefix, "")
		if err != nil {
			return
		}
		if !dns1123Label.MatchString(ns) || len(ns) > 63 || ns == "default" || strings.HasPrefix(ns, "kube-") {
			t.Fatalf("NamespaceFor(%q) = %q: not a valid, unreserved namespace", branch, ns)
		}
	})
}

func TestParseImageRef(t *testing.T) {
	d := "sha256:" + strings.Repeat("a", 64)
	tests := []struct {
		in      string
		want    ImageRef
		path    string
		wantErr bool
	}{
		{in: "openedx", want: ImageRef{Repository: "openedx"}, path: "openedx"},
		{in: "docker.io/overhangio/openedx:18.0.0", want: ImageRef{Repository: "docker.io/overhangio/openedx", Tag: "18.0.0"}, path: "overhangio/openedx"},
		{in: "127.0.0.1:5000/acme/lms@" + d, want: ImageRef{Repository: "127.0.0.1:5000/acme/lms", Digest: d}, path: "acme/lms"},
		{in: "localhost/x:1@" + d, want: ImageRef{Repository: "localhost/x", Tag: "1", Digest: d}, path: "x"},
		{in: "acme/lms:2", want: ImageRef{Repository: "acme/lms", Tag: "2"}, path: "acme/lms"},
		{in: "acme/lms@sha256:abc", wantErr: true},
		{in: "acme/lms:", wantErr: true},
		{in: "", wantErr: true},
		{in: "a//b", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseImageRef(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseImageRef(%q) = %+v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseImageRef(%q) (-want +got):\n%s", tt.in, diff)
			}
			if got.Path() != tt.path {
				t.Errorf("Path() = %q, want %q", got.Path(), tt.path)
			}
		})
	}
}

func deploymentWith(name string, images ...string) *unstructured.Unstructured {
	var cs []any
	for i, img := range images {
		cs = append(cs, map[string]any{"name": "c" + string(rune('0'+i)), "image": img})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"containers": cs}}},
	}}
}

func TestPin(t *testing.T) {
	dOpenedx := "sha256:" + strings.Repeat("1", 64)
	dMFE := "sha256:" + strings.Repeat("2", 64)
	push := deploytest.PushResult(map[string]string{"overhangio/openedx": dOpenedx, "overhangio/openedx-mfe": dMFE})
	nodePush := deploytest.PushResult(map[string]string{"overhangio/openedx": dOpenedx, "overhangio/openedx-mfe": dMFE})
	deploytest.NodeRegistry(nodePush, "A", "localhost:5000")
	tests := []struct {
		name    string
		push    *result.PushResult
		region  string
		address string
		allow   []string
		images  []string
		want    []string
		wantErr string
	}{
		{name: "by path with other host and tag", region: "A", images: []string{"docker.io/overhangio/openedx:18.0.0"},
			want: []string{"registry-a.example:5000/overhangio/openedx@" + dOpenedx}},
		{name: "region B", region: "B", images: []string{"overhangio/openedx-mfe:18.0.0", "docker.io/overhangio/openedx"},
			want: []string{"registry-b.example:5000/overhangio/openedx-mfe@" + dMFE, "registry-b.example:5000/overhangio/openedx@" + dOpenedx}},
		{name: "allowed external image kept", region: "A", allow: []string{"docker.io/redis"}, images: []string{"docker.io/redis:7"},
			want: []string{"docker.io/redis:7"}},
		{name: "unpushed image", region: "A", images: []string{"docker.io/redis:7"}, wantErr: `Deployment.apps/web container "c0": image "docker.io/redis:7" was not pushed`},
		{name: "wrong pinned digest", region: "A", images: []string{"overhangio/openedx@" + dMFE}, wantErr: "but push-registry pushed"},
		{name: "unknown region", region: "C", images: []string{"overhangio/openedx"}, wantErr: `not pushed to region "C"`},
		{name: "node address by default", push: nodePush, region: "A", images: []string{"docker.io/overhangio/openedx:18.0.0", "registry-a.example:5000/overhangio/openedx-mfe"},
			want: []string{"localhost:5000/overhangio/openedx@" + dOpenedx, "localhost:5000/overhangio/openedx-mfe@" + dMFE}},
		{name: "node address named in the manifests", push: nodePush, region: "A", address: PullNode, images: []string{"localhost:5000/overhangio/openedx:18.0.0"},
			want: []string{"localhost:5000/overhangio/openedx@" + dOpenedx}},
		{name: "CI address chosen", push: nodePush, region: "A", address: PullCI, images: []string{"localhost:5000/overhangio/openedx", "overhangio/openedx-mfe"},
			want: []string{"registry-a.example:5000/overhangio/openedx@" + dOpenedx, "registry-a.example:5000/overhangio/openedx-mfe@" + dMFE}},
		{name: "no node address in the region", push: nodePush, region: "B", images: []string{"overhangio/openedx"},
			want: []string{"registry-b.example:5000/overhangio/openedx@" + dOpenedx}},
		{name: "unknown pull address", region: "A", address: "nodes", images: []string{"overhangio/openedx"}, wantErr: `pull address "nodes": want node`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := deploymentWith("web", tt.images...)
			if tt.push == nil {
				tt.push = push
			}
			p, err := NewPinner(tt.push, tt.region, tt.address, tt.allow)
			if err == nil {
				_, err = p.Pin([]*unstructured.Unstructured{obj})
			}
			if userErrorCase(t, err, tt.wantErr) {
				return
			}
			cs, _, _ := unstructured.NestedSlice(obj.Object, "spec", "template", "spec", "containers")
			var got []string
			for _, c := range cs {
				got = append(got, c.(map[string]any)["image"].(string))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("pinned images (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseManifests(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "two docs and empty", in: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b}\n", want: []string{"ConfigMap/a", "Service/b"}},
		{name: "list", in: `{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}]}`, want: []string{"ConfigMap/x"}},
		{name: "no kind", in: "apiVersion: v1\nmetadata: {name: a}\n", wantErr: "m.yaml:1: kind: missing (every object needs apiVersion, kind and metadata.name)"},
		{name: "no name", in: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {}\n", wantErr: "m.yaml:7: metadata.name: missing (every object needs apiVersion, kind and metadata.name)"},
		{name: "bad yaml", in: "apiVersion: v1\nkind: [\n", wantErr: "document 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := ParseManifests(strings.NewReader(tt.in), "m.yaml")
			if userErrorCase(t, err, tt.wantErr) {
				return
			}
			var got []string
			for _, o := range objs {
				got = append(got, objectID(o))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConfigErrorFormat pins the whole message of each kind of problem in a
// manifest file's head (what deploy-k8s decodes itself; the rest is the
// server's strict field validation): FILE:LINE: field.path: what is wrong.
func TestConfigErrorFormat(t *testing.T) {
	const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n"
	for _, tc := range []struct {
		name, in, want string
	}{
		{
			"unknown key", cm + "apiVersion: v1\nkind: Secret\nmetadata:\n  name: b\n  lables: {app: x}\n",
			"m.yaml:9: metadata.lables: unknown field (known: annotations, creationTimestamp, deletionGracePeriodSeconds, deletionTimestamp, finalizers, generateName, generation, labels, managedFields, name, namespace, ownerReferences, resourceVersion, selfLink, uid)",
		},
		{
			"wrong type", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: [app]\n",
			"m.yaml:5: metadata.labels: must be a mapping of key: value, not a list",
		},
		{
			"bad value", "apiVersion: apps/v1/beta1\nkind: Deployment\nmetadata: {name: a}\n",
			`m.yaml:1: apiVersion: "apps/v1/beta1" is not a group/version or a version (e.g. apps/v1, v1)`,
		},
		{
			"missing in a List item", `{"apiVersion": "v1", "kind": "List", "items": [` + "\n" + `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}]}`,
			"m.yaml:2: items[0].metadata.name: missing (every object needs apiVersion, kind and metadata.name)",
		},
		{
			"JSON stream (no lines)", `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}} {"kind": "Secret", "metadata": {"name": "b"}}`,
			"m.yaml (document 2): apiVersion: missing (every object needs apiVersion, kind and metadata.name)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseManifests(strings.NewReader(tc.in), "m.yaml")
			if err == nil || err.Error() != tc.want || !usererr.Is(err) {
				t.Errorf("error:\n got %v\nwant %s (a user error)", err, tc.want)
			}
		})
	}
}

// TestConfigErrorFormatSecretsFile pins the whole message of each kind of
// problem in a secrets file, which goes through the one strict decoder:
// FILE:LINE: field.path: what is wrong, never a value.
func TestConfigErrorFormatSecretsFile(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"unknown key", "secrets: {a: {k: v1}}\nsecret: {}\n", "F:2: secret: unknown field (known: secrets)"},
		{"wrong type", "secrets:\n  a:\n    k: {nested: s3cret}\n", "F:3: secrets.a.k: must be a string, not a mapping"},
		{"bad value", "secrets:\n  a:\n    'k y': s3cret\n", `F:3: secrets.a.k y: "k y" is not a Secret key (letters, digits, '-', '_' and '.')`},
		{"bad name", "secrets:\n  A: {k: s3cret}\n", `F:2: secrets.A: "A" is not a Secret name (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)`},
		{"repeated key", "secrets:\n  a: {k: s3cret, k: s3cret}\n", "F:2: secrets.a.k: given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "F")
			if err := os.WriteFile(file, []byte(tc.in), 0o600); err != nil {
				t.Fatal(err)
			}
			_, _, err := ReadSecretsFile(file)
			want := strings.Replace(tc.want, "F", file, 1)
			if err == nil || err.Error() != want || !usererr.Is(err) {
				t.Errorf("error:\n got %v\nwant %s (a user error)", err, want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error shows a value: %v", err)
			}
		})
	}
}

func FuzzParseManifests(f *testing.F) {
	f.Add("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
	f.Add(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}]}`)
	f.Add("---\n---\n")
	f.Fuzz(func(t *testing.T, in string) {
		objs, err := ParseManifests(strings.NewReader(in), "fuzz.yaml")
		if err != nil {
			return
		}
		for _, o := range objs {
			if o.GetAPIVersion() == "" || o.GetKind() == "" || o.GetName() == "" {
				t.Fatalf("accepted an object without apiVersion, kind or name: %v", o.Object)
			}
		}
	})
}

func TestRenderExample(t *testing.T) {
	objs, err := Render(deploytest.ExampleDir())
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	var cmNames []string
	for _, o := range objs {
		kinds[o.GetKind()]++
		if o.GetKind() == "ConfigMap" {
			cmNames = append(cmNames, o.GetName())
		}
		if o.GetKind() != "Namespace" && o.GetNamespace() != "openedx" {
			t.Errorf("%s: namespace %q, want the kustomization's openedx", objectID(o), o.GetNamespace())
		}
	}
	want := map[string]int{"Namespace": 1, "Deployment": 7, "Job": 2, "Service": 5, "PersistentVolumeClaim": 2, "ConfigMap": 4}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("kinds (-want +got):\n%s", diff)
	}
	// configMapGenerator appends a content hash to each name.
	for _, n := range cmNames {
		if !strings.Contains(n, "-") || len(n) < len("caddy-config-")+5 {
			t.Errorf("ConfigMap %q has no generated hash suffix", n)
		}
	}
	if got := kustomizationNamespace(deploytest.ExampleDir()); got != "openedx" {
		t.Errorf("kustomizationNamespace = %q, want openedx", got)
	}
}

func TestRenderErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kdir := filepath.Join(dir, "k")
	os.Mkdir(kdir, 0o755)
	os.WriteFile(filepath.Join(kdir, "kustomization.yml"), []byte("resources: [missing.yml]\n"), 0o644)
	for _, tc := range []struct{ path, want string }{
		{bad, bad + ":3: metadata.name: missing (every object needs apiVersion, kind and metadata.name)"},
		{filepath.Join(dir, "nope"), "nope"},
		{kdir, "building kustomization " + kdir},
		{t.TempDir(), "no kustomization and no .yaml/.yml/.json manifests"},
	} {
		_, err := Render(tc.path)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !usererr.Is(err) {
			t.Errorf("Render(%s) error = %v, want a usage error containing %q", tc.path, err, tc.want)
		}
	}
}

func TestApplySetID(t *testing.T) {
	// The value kubectl computes for `--applyset=secret/slipway -n acme`:
	// base64url(sha256("slipway.acme.Secret.")).
	got := applySetID("acme")
	if !strings.HasPrefix(got, "applyset-") || !strings.HasSuffix(got, "-v1") || len(got) != len("applyset-")+43+len("-v1") {
		t.Fatalf("applySetID = %q: not applyset-<43 chars base64url>-v1", got)
	}
	if got == applySetID("acme2") {
		t.Errorf("two namespaces share ApplySet id %s", got)
	}
}

func TestPickRollback(t *testing.T) {
	revs := []Revision{{Number: 4, Status: statusGood}, {Number: 3, Status: statusFailed}, {Number: 2, Status: statusGood}, {Number: 1, Status: statusGood}}
	tests := []struct {
		name    string
		revs    []Revision
		want    int
		to      int
		wantErr string
	}{
		{name: "previous good skips failed", revs: revs, want: 2},
		{name: "explicit", revs: revs, to: 1, want: 1},
		{name: "explicit missing", revs: revs, to: 9, wantErr: "revision 9 is not recorded"},
		{name: "only one", revs: revs[:1], wantErr: "no good revision before revision 4"},
		{name: "none", wantErr: "no deploy revisions"},
		// A rollback killed half-way (revision 5 left deploying, back to 1)
		// is resumed with its target, not the good revision before it.
		{name: "resumed rollback", revs: append([]Revision{{Number: 5, Status: statusDeploying, RolledBackTo: 1}}, revs...), want: 1},
		{name: "resumed rollback, same target asked", revs: append([]Revision{{Number: 5, Status: statusDeploying, RolledBackTo: 1}}, revs...), to: 1, want: 1},
		{name: "interrupted rollback, other target asked", revs: append([]Revision{{Number: 5, Status: statusDeploying, RolledBackTo: 1}}, revs...), to: 2, want: 2},
		// A deploy killed half-way: back to the newest good revision before it.
		{name: "interrupted deploy", revs: append([]Revision{{Number: 5, Status: statusDeploying}}, revs...), want: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pickRollback(tt.revs, tt.to)
			if userErrorCase(t, err, tt.wantErr) {
				return
			}
			if got.Number != tt.want {
				t.Errorf("picked %d, want %d", got.Number, tt.want)
			}
		})
	}
}

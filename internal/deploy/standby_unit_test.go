package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/usererr"
)

func workload(kind, name string, labels map[string]string) *unstructured.Unstructured {
	u := deploymentWith(name, "docker.io/x:1")
	u.SetKind(kind)
	u.SetLabels(labels)
	_ = unstructured.SetNestedField(u.Object, int64(2), "spec", "replicas")
	return u
}

func hpa(name, target string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": map[string]any{"name": name},
		"spec": map[string]any{"scaleTargetRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": target}},
	}}
}

func TestScaleDown(t *testing.T) {
	objs := func() []*unstructured.Unstructured {
		return []*unstructured.Unstructured{
			workload("Deployment", "lms", nil), workload("Deployment", "cms-worker", nil),
			workload("Deployment", "mysql", nil), workload("StatefulSet", "mongodb", nil),
			workload("StatefulSet", "notes", map[string]string{labelComponent: "app"}),
			workload("Deployment", "forum", map[string]string{"tier": "web"}),
			hpa("lms", "lms"), hpa("mysql", "mysql"),
		}
	}
	tests := []struct {
		name      string
		selectors []string
		standby   bool
		wantApps  []string
		wantZero  []string
		wantHPAs  []string
		wantErr   string
	}{
		{name: "default, active", wantApps: []string{"Deployment.apps/cms-worker", "Deployment.apps/lms", "StatefulSet.apps/notes"}, wantHPAs: []string{"lms", "mysql"}},
		{name: "default, standby", standby: true, wantApps: []string{"Deployment.apps/cms-worker", "Deployment.apps/lms", "StatefulSet.apps/notes"},
			wantZero: []string{"lms", "cms-worker", "notes"}, wantHPAs: []string{"mysql"}},
		{name: "glob and label", selectors: []string{"*-worker", "tier=web"}, standby: true, wantApps: []string{"Deployment.apps/cms-worker", "Deployment.apps/forum"},
			wantZero: []string{"cms-worker", "forum"}, wantHPAs: []string{"lms", "mysql"}},
		{name: "bad glob", selectors: []string{"lms["}, wantErr: `standby scale-down selector "lms[": not a workload name glob`},
		{name: "empty", selectors: []string{""}, wantErr: `standby scale-down selector ""`},
		{name: "bad label key", selectors: []string{"a b=c"}, wantErr: `standby scale-down selector "a b=c": label key "a b"`},
		{name: "bad label value", selectors: []string{"tier=we b"}, wantErr: `standby scale-down selector "tier=we b": label value "we b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseScaleDown(tt.selectors)
			if userErrorCase(t, err, tt.wantErr) {
				return
			}
			in := objs()
			apps := s.appsOf(in)
			scaled := (&plan{site: site{mode: ModeActive, apps: apps}}).scaledDown()
			if tt.standby {
				scaled = (&plan{site: site{mode: ModeStandby, apps: apps}}).scaledDown()
			}
			var out []*unstructured.Unstructured
			for _, u := range in {
				c, err := standbyCopy(u, scaled, logging.Discard())
				if err != nil {
					t.Fatal(err)
				}
				if r, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); r != 2 && u.GetKind() != "HorizontalPodAutoscaler" {
					t.Errorf("%s: the object itself was changed (replicas %d); want a scaled copy", objectID(u), r)
				}
				if c != nil {
					out = append(out, c)
				}
			}
			if diff := cmp.Diff(tt.wantApps, apps); diff != "" {
				t.Errorf("apps (-want +got):\n%s", diff)
			}
			var zero, hpas []string
			for _, u := range out {
				if u.GetKind() == "HorizontalPodAutoscaler" {
					hpas = append(hpas, u.GetName())
				} else if r, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas"); r == 0 {
					zero = append(zero, u.GetName())
				}
			}
			if diff := cmp.Diff(tt.wantZero, zero); diff != "" {
				t.Errorf("workloads at 0 replicas (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantHPAs, hpas); diff != "" {
				t.Errorf("autoscalers kept (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSiteHash(t *testing.T) {
	const h = "sha256:abc"
	if got := (site{mode: ModeActive}).siteHash(h); got != h {
		t.Errorf("active hash = %s, want the manifests' %s (records from before standby deploys stay current)", got, h)
	}
	if got := (site{}).siteHash(h); got != h {
		t.Errorf("no-mode hash = %s, want %s", got, h)
	}
	if got := (site{mode: ModeStandby}).siteHash(h); got == h || !strings.HasPrefix(got, "sha256:") {
		t.Errorf("standby hash = %s, want another sha256 than the active one", got)
	}
}

// TestReadSecretsFile: the file's mode and content are checked, every
// error is a user error naming the file, line and field, and no error
// shows a value.
func TestReadSecretsFile(t *testing.T) {
	const value = "v3ry-s3cret-value"
	tests := []struct {
		name, in string
		mode     os.FileMode
		want     []string // Secret/key pairs
		wantErr  string
	}{
		{name: "two secrets", in: "secrets:\n  backup-s3: {AWS_ACCESS_KEY_ID: ak, AWS_SECRET_ACCESS_KEY: " + value + "}\n  mysql-root: {password: '12345'}\n",
			want: []string{"backup-s3/AWS_ACCESS_KEY_ID", "backup-s3/AWS_SECRET_ACCESS_KEY", "mysql-root/password"}},
		{name: "group-readable", in: "secrets: {a: {k: " + value + "}}\n", mode: 0o640, wantErr: "mode 0640 lets group or others read it: chmod 600"},
		{name: "world-readable", in: "secrets: {a: {k: " + value + "}}\n", mode: 0o604, wantErr: "mode 0604"},
		{name: "unknown key", in: "secret: {a: {k: " + value + "}}\n", wantErr: ":1: secret: unknown field (known: secrets)"},
		{name: "value not a string", in: "secrets:\n  a:\n    k: [" + value + "]\n", wantErr: ":3: secrets.a.k: must be a string, not a list"},
		{name: "bad name", in: "secrets:\n  Bad_Name: {k: " + value + "}\n", wantErr: `:2: secrets.Bad_Name: "Bad_Name" is not a Secret name`},
		{name: "reserved name", in: "secrets:\n  slipway: {k: " + value + "}\n", wantErr: `secrets.slipway: "slipway" is a name deploy-k8s keeps`},
		{name: "bad key", in: "secrets:\n  a: {'k/x': " + value + "}\n", wantErr: `secrets.a.k/x: "k/x" is not a Secret key`},
		{name: "no keys", in: "secrets:\n  a: {}\n", wantErr: ":2: secrets.a: no keys"},
		{name: "empty", in: "", wantErr: "empty file: it needs secrets"},
		{name: "no secrets", in: "secrets: {}\n", wantErr: ":1: secrets: no Secrets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "secrets.yaml")
			if err := os.WriteFile(file, []byte(tt.in), 0o600); err != nil {
				t.Fatal(err)
			}
			if tt.mode != 0 {
				os.Chmod(file, tt.mode)
			}
			objs, hash, err := ReadSecretsFile(file)
			if err != nil && strings.Contains(err.Error(), value) {
				t.Errorf("error shows a value: %v", err)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "secrets file "+file) && !strings.HasPrefix(err.Error(), file) {
				t.Errorf("error %q does not start with the file", err)
			}
			if userErrorCase(t, err, tt.wantErr) {
				return
			}
			var got []string
			for _, u := range objs {
				data, _, _ := unstructured.NestedStringMap(u.Object, "data")
				for k := range data {
					got = append(got, u.GetName()+"/"+k)
				}
				if u.GetKind() != "Secret" || u.Object["type"] != "Opaque" {
					t.Errorf("%s: not an Opaque Secret", objectID(u))
				}
			}
			slices.Sort(got)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("secrets (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(hash, "sha256:") || strings.Contains(hash, value) {
				t.Errorf("hash %q", hash)
			}
			// Another value, another hash.
			os.WriteFile(file, []byte(strings.ReplaceAll(tt.in, value, value+"2")), 0o600)
			if _, hash2, err := ReadSecretsFile(file); err != nil || hash2 == hash {
				t.Errorf("changed value: hash %s (was %s), err %v; want another hash", hash2, hash, err)
			}
		})
	}
	// A missing file is a user error too.
	if _, _, err := ReadSecretsFile(filepath.Join(t.TempDir(), "nope.yaml")); err == nil || !usererr.Is(err) {
		t.Errorf("missing file: %v, want a user error", err)
	}
}

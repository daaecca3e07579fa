package zuul

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		want    *Context
		kind    Kind
		wantErr string
	}{
		{
			name: "check change",
			doc: `zuul:
  pipeline: check
  project: {name: acme/platform, short_name: platform}
  branch: platform/acme
  change: "123"
  patchset: "4"
  change_url: https://review.example/c/acme/platform/+/123
  items: [{change: "123"}]
  executor: {work_root: /w, log_root: /w/logs}
`,
			want: &Context{Pipeline: "check", Project: Project{Name: "acme/platform", ShortName: "platform"},
				Branch: "platform/acme", Change: "123", Patchset: "4",
				ChangeURL: "https://review.example/c/acme/platform/+/123",
				Executor:  Executor{WorkRoot: "/w", LogRoot: "/w/logs"}},
			kind: KindChange,
		},
		{
			name: "post branch as JSON with numbers",
			doc:  `{"zuul": {"pipeline": "post", "branch": "platform/acme", "newrev": "0123456789abcdef0123456789abcdef01234567", "buildset": "b1"}}`,
			want: &Context{Pipeline: "post", Branch: "platform/acme", Newrev: "0123456789abcdef0123456789abcdef01234567", Buildset: "b1"},
			kind: KindBranch,
		},
		{
			name: "tag",
			doc:  "zuul: {pipeline: release, tag: v1.2.0}\n",
			want: &Context{Pipeline: "release", Tag: "v1.2.0"},
			kind: KindTag,
		},
		{name: "no zuul key", doc: "other: 1\n", wantErr: "no top-level `zuul` key"},
		{name: "not yaml", doc: "zuul: [\n", wantErr: "bad zuul vars"},
		{name: "change not numeric", doc: "zuul: {change: abc, patchset: '1'}\n", wantErr: `zuul.change "abc" is not a number`},
		{name: "change without patchset", doc: "zuul: {change: '12'}\n", wantErr: "has no zuul.patchset"},
		{name: "bad newrev", doc: "zuul: {newrev: 'xyz; rm -rf'}\n", wantErr: `zuul.newrev "xyz; rm -rf" is not a commit hash`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(strings.NewReader(tt.doc), "vars.yaml")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load() error = %v, want it to contain %q", err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "vars.yaml") {
					t.Errorf("error %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Load() mismatch (-want +got):\n%s", diff)
			}
			if got.Kind() != tt.kind {
				t.Errorf("Kind() = %q, want %q", got.Kind(), tt.kind)
			}
		})
	}
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{"ZUUL_PIPELINE": "gate", "ZUUL_CHANGE": "77", "ZUUL_PATCHSET": "2", "ZUUL_BRANCH": "platform/x"}
	got, err := FromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	want := &Context{Pipeline: "gate", Change: "77", Patchset: "2", Branch: "platform/x"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("FromEnv mismatch (-want +got):\n%s", diff)
	}
	if _, err := FromEnv(func(k string) (string, bool) {
		if k == "ZUUL_CHANGE" {
			return "x", true
		}
		return "", false
	}); err == nil {
		t.Error("FromEnv accepted a non-numeric change")
	}
	empty, err := FromEnv(func(string) (string, bool) { return "", false })
	if err != nil || empty.Kind() != KindNone {
		t.Errorf("FromEnv with no vars = %v, %v; want KindNone", empty, err)
	}
}

func TestExpand(t *testing.T) {
	change := &Context{Pipeline: "check", Branch: "platform/acme", Change: "123", Patchset: "4"}
	post := &Context{Pipeline: "post", Branch: "platform/acme", Newrev: "0123456789abcdef0123456789abcdef01234567", Buildset: "bs"}
	tests := []struct {
		name    string
		ctx     *Context
		tmpl    string
		want    string
		wantErr string
	}{
		{"change tag", change, "change_{change}_{patchset}", "change_123_4", ""},
		{"branch slash", change, "{branch}-latest", "platform-acme-latest", ""},
		{"short sha", post, "{branch}-{short_sha}", "platform-acme-0123456789ab", ""},
		{"literal", post, "latest", "latest", ""},
		{"empty in context", post, "change_{change}", "", "{change} is empty in this branch (pipeline post) context"},
		{"unknown", post, "{nope}", "", "unknown placeholder {nope}"},
		{"unclosed", post, "x{sha", "", "unclosed {"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.ctx.Expand(tt.tmpl)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Expand(%q) error = %v, want %q", tt.tmpl, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Expand(%q) = %q, %v; want %q", tt.tmpl, got, err, tt.want)
			}
		})
	}
}

func TestReturnWriteFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "zuul-return.json")
	r := Return{
		Artifacts: []Artifact{{Name: "openedx", URL: "docker://reg/acme/openedx@sha256:abc", Metadata: map[string]any{"type": "container_image"}}},
		Vars:      map[string]any{"slipway_push": map[string]any{"result": "push.json"}},
	}
	if err := r.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"artifacts"`, `"docker://reg/acme/openedx@sha256:abc"`, `"slipway_push"`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("zuul_return file lacks %s:\n%s", want, data)
		}
	}
	if err := (Return{Vars: map[string]any{"zuul": 1}}).WriteFile(path); err == nil {
		t.Error("WriteFile accepted the reserved variable name zuul")
	}
}

func FuzzLoad(f *testing.F) {
	f.Add("zuul: {pipeline: check, change: '1', patchset: '2'}\n")
	f.Add(`{"zuul": {"newrev": "abcdef0"}}`)
	f.Fuzz(func(t *testing.T, doc string) {
		c, err := Load(strings.NewReader(doc), "fuzz.yaml")
		if err != nil {
			return
		}
		// Whatever loads must be usable without panicking.
		_ = c.Kind()
		_, _ = c.Expand("{branch}-{short_sha}")
		_ = c.ResultRef()
	})
}

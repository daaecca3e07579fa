package buildimage

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

const goodFile = `source: https://review.example.org/acme/platform
args:
  BASE_IMAGE: reg.example:5000/base:1
tags:
  change: pr_{change}
images:
  - name: openedx
    context: openedx
    dockerfile: docker/Dockerfile
    target: production
    repository: acme/openedx
    build_args: {EDX_RELEASE: "redwood.3", N: 1}
    tags: [latest, "{branch}"]
    labels: {a: b}
  - name: mfe
    context: mfe
    depends_on: [openedx]
  - name: static
    native:
      base: ${BASE_IMAGE}
      layers:
        - {src: site, dest: /srv}
      env: {PORT: "8080"}
      entrypoint: [/bin/httpd, -f]
      cmd: [-p, "8080"]
      user: "65534"
      workdir: /srv
`

func TestParse(t *testing.T) {
	f, err := Parse(strings.NewReader(goodFile), "dir/build.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := &File{
		Path: "dir/build.yaml", Dir: "dir", Source: "https://review.example.org/acme/platform",
		Args: map[string]string{"BASE_IMAGE": "reg.example:5000/base:1"},
		Tags: TagPolicy{Change: "pr_{change}", Commit: DefaultCommitTag},
		Images: []*Image{
			{Name: "openedx", Context: "openedx", Dockerfile: "docker/Dockerfile", Target: "production", Repository: "acme/openedx",
				BuildArgs: map[string]string{"EDX_RELEASE": "redwood.3", "N": "1"}, Tags: []string{"latest", "{branch}"}, Labels: map[string]string{"a": "b"}},
			{Name: "mfe", Context: "mfe", DependsOn: []string{"openedx"}, index: 1},
			{Name: "static", index: 2, Native: &Native{Base: "${BASE_IMAGE}", Layers: []NativeLayer{{Src: "site", Dest: "/srv"}},
				Env: map[string]string{"PORT": "8080"}, Entrypoint: []string{"/bin/httpd", "-f"}, Cmd: []string{"-p", "8080"}, User: "65534", Workdir: "/srv"}},
		},
	}
	if diff := cmp.Diff(want, f, cmp.AllowUnexported(Image{}), cmpopts.IgnoreUnexported(File{})); diff != "" {
		t.Errorf("Parse (-want +got):\n%s", diff)
	}
	if got := f.line("images[1].depends_on[0]"); got != 17 {
		t.Errorf("line of images[1].depends_on[0] = %d, want 17", got)
	}
}

// TestParseErrors: every bad file gives one FieldError naming the file, the
// line, the field path and the offending value.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top-level field", "images: []\nimagez: 1\n", `b.yaml:2: imagez: unknown field "imagez" (known: args, images, source, tags)`},
		{"empty images", "images: []\n", `b.yaml:1: images: must be a non-empty list`},
		{"unknown image field", "images:\n  - name: a\n    contxt: .\n", `b.yaml:3: images[0].contxt: unknown field "contxt"`},
		{"unknown native field", "images:\n  - name: a\n    native:\n      layer: []\n", `b.yaml:4: images[0].native.layer: unknown field "layer"`},
		{"unknown layer field", "images:\n  - name: a\n    native:\n      layers: [{src: a, dst: /b}]\n", `b.yaml:4: images[0].native.layers[0].dst: unknown field "dst"`},
		{"unknown tags field", "tags: {pr: x}\nimages: [{name: a}]\n", `b.yaml:1: tags.pr: unknown field "pr"`},
		{"unknown secret field", "images:\n  - name: a\n    secrets: [{id: a, value: x}]\n", `b.yaml:3: images[0].secrets[0].value: unknown field "value" (known: env, file, id)`},
		{"repeated field", "images:\n  - name: a\n    name: b\n", `b.yaml:3: images[0].name: repeated field "name"`},
		{"tags not a list", "images:\n  - name: a\n    tags: latest\n", `b.yaml:3: images[0].tags: must be a list of strings, not "latest"`},
		{"tag not a string", "images:\n  - name: a\n    tags: [[x]]\n", `b.yaml:3: images[0].tags[0]: must be a string, not a list`},
		{"build_args not a map", "images:\n  - name: a\n    build_args: [A=1]\n", `b.yaml:3: images[0].build_args: must be a mapping of strings, not a list`},
		{"null value", "images:\n  - name: a\n    context:\n", `b.yaml:3: images[0].context: must be a string, not empty`},
		{"missing name", "images:\n  - context: a\n", `b.yaml:2: images[0].name: missing`},
		{"missing images", "source: x\n", `b.yaml:1: images: missing`},
		{"empty file", "", `b.yaml: empty build file`},
		{"not a mapping", "- a\n", `b.yaml:1: must be a mapping, not a list`},
		{"bad yaml", "images:\n  - name: [\n", `b.yaml:2: invalid YAML`},
		{"repeated arg", "args: {A: 1, A: 2}\nimages: [{name: a}]\n", `b.yaml:1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.yaml), "b.yaml")
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Parse error = %v, want a *FieldError", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Parse error = %q, want prefix %q", err, tc.want)
			}
		})
	}
}

// FuzzParse: any input either parses or yields a FieldError naming the
// file; it never panics.
func FuzzParse(f *testing.F) {
	f.Add(goodFile)
	f.Add("images:\n  - name: a\n    native: {layers: [{src: a, dest: /b}]}\n")
	f.Add("images: &x [*x]\n")
	f.Add("a: &a {b: *a}\nimages: [{name: *a}]\n")
	f.Fuzz(func(t *testing.T, data string) {
		file, err := Parse(strings.NewReader(data), "fuzz.yaml")
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q is not a FieldError naming the file", err)
			}
			return
		}
		if len(file.Images) == 0 {
			t.Fatal("parsed a file without images")
		}
		for _, im := range file.Images {
			if im.Name == "" {
				t.Fatal("parsed an image without a name")
			}
		}
	})
}

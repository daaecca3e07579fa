package buildimage

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/slipwayci/slipway/internal/config"
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
	if got := f.doc.Line("images[1].depends_on[0]"); got != 17 {
		t.Errorf("line of images[1].depends_on[0] = %d, want 17", got)
	}
}

// TestParseErrors: every bad file gives one config.Error naming the file,
// the line, the field path and the offending value.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top-level field", "images: []\nimagez: 1\n", `b.yaml:2: imagez: unknown field (known: args, images, source, tags)`},
		{"empty images", "images: []\n", `b.yaml:1: images: must be a non-empty list`},
		{"unknown image field", "images:\n  - name: a\n    contxt: .\n", `b.yaml:3: images[0].contxt: unknown field (known: build_args, context,`},
		{"unknown native field", "images:\n  - name: a\n    native:\n      layer: []\n", `b.yaml:4: images[0].native.layer: unknown field (known: base, base_image,`},
		{"unknown layer field", "images:\n  - name: a\n    native:\n      layers: [{src: a, dst: /b}]\n", `b.yaml:4: images[0].native.layers[0].dst: unknown field (known: debian, dest, src)`},
		{"unknown tags field", "tags: {pr: x}\nimages: [{name: a}]\n", `b.yaml:1: tags.pr: unknown field (known: change, commit)`},
		{"unknown secret field", "images:\n  - name: a\n    secrets: [{id: a, value: x}]\n", `b.yaml:3: images[0].secrets[0].value: unknown field (known: env, file, id)`},
		{"repeated field", "images:\n  - name: a\n    name: b\n", `b.yaml:3: images[0].name: given twice`},
		{"tags not a list", "images:\n  - name: a\n    tags: latest\n", `b.yaml:3: images[0].tags: must be a list, not "latest"`},
		{"tag not a string", "images:\n  - name: a\n    tags: [[x]]\n", `b.yaml:3: images[0].tags[0]: must be a string, not a list`},
		{"build_args not a map", "images:\n  - name: a\n    build_args: [A=1]\n", `b.yaml:3: images[0].build_args: must be a mapping of key: value, not a list`},
		{"null value", "images:\n  - name: a\n    context:\n", `b.yaml:3: images[0].context: must be a string, not empty`},
		{"null native", "images:\n  - name: a\n    native:\n", `b.yaml:3: images[0].native: must be a mapping of fields, not empty`},
		{"null image", "images:\n  -\n", `b.yaml:2: images[0]: must be a mapping of fields, not empty`},
		{"missing name", "images:\n  - context: a\n", `b.yaml:2: images[0].name: missing`},
		{"missing images", "source: x\n", `b.yaml:1: images: missing`},
		{"empty file", "", "b.yaml: empty file: it needs an `images` list"},
		{"not a mapping", "- a\n", `b.yaml:1: must be a mapping`},
		{"bad yaml", "images:\n  - name: [\n", `b.yaml:2: not valid YAML`},
		{"repeated arg", "args: {A: 1, A: 2}\nimages: [{name: a}]\n", `b.yaml:1: args.A: given twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.yaml), "b.yaml")
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse error = %v, want a *config.Error", err)
			}
			if !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Parse error = %q, want prefix %q", err, tc.want)
			}
		})
	}
}

// TestConfigErrorFormat: the build file's errors, from the decoder and from
// the stage's own checks, read FILE:LINE: field.path: what is wrong (what
// is allowed), in full.
func TestConfigErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "images:\n  - name: a\n    contxt: .\n",
			"build.yaml:3: images[0].contxt: unknown field (known: build_args, context, depends_on, dockerfile, labels, name, native, repository, secrets, tags, target)"},
		{"wrong type", "images:\n  - name: a\n    depends_on: b\n", `build.yaml:3: images[0].depends_on: must be a list, not "b"`},
		{"bad value", "images:\n  - name: Open_EdX\n", `build.yaml:2: images[0].name: "Open_EdX" is not a valid image name (lowercase letters, digits, '.', '_', '-')`},
		{"bad value in a map key", "args: {A-B: x}\nimages: [{name: a}]\n", `build.yaml:1: args.A-B: "A-B" is not a valid build arg name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(strings.NewReader(tc.yaml), "build.yaml")
			if err == nil {
				_, err = Plan(f, PlanOptions{})
			}
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v\nwant    %s", err, tc.want)
			}
		})
	}
}

// FuzzParse: any input either parses or yields a config.Error naming the
// file; it never panics.
func FuzzParse(f *testing.F) {
	f.Add(goodFile)
	f.Add("images:\n  - name: a\n    native: {layers: [{src: a, dest: /b}]}\n")
	f.Add("images: &x [*x]\n")
	f.Add("a: &a {b: *a}\nimages: [{name: *a}]\n")
	f.Fuzz(func(t *testing.T, data string) {
		file, err := Parse(strings.NewReader(data), "fuzz.yaml")
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) || !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q is not a config.Error naming the file", err)
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

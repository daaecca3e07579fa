package buildimage

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/buildimage/buildtest"
	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/zuul"
)

func parseIn(t *testing.T, dir, yaml string) *File {
	t.Helper()
	path := filepath.Join(dir, "build.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	return f
}

var (
	checkCtx = &zuul.Context{Pipeline: "check", Project: zuul.Project{Name: "acme/platform", CanonicalName: "review.example.org/acme/platform"},
		Branch: "platform/acme", Change: "123", Patchset: "4", ChangeURL: "https://review.example.org/c/acme/platform/+/123",
		CommitID: "0123456789abcdef0123456789abcdef01234567"}
	gateCtx = &zuul.Context{Pipeline: "gate", Branch: "master", Change: "77", Patchset: "2"}
	postCtx = &zuul.Context{Pipeline: "post", Project: zuul.Project{CanonicalName: "review.example.org/acme/platform"},
		Branch: "platform/acme", Newrev: "fedcba9876543210fedcba9876543210fedcba98"}
	tagCtx = &zuul.Context{Pipeline: "release", Tag: "v1.2.3", Newrev: "fedcba9876543210fedcba9876543210fedcba98"}
)

// TestTagsPerPipeline: check and gate get only the temporary change tag,
// post the declared tags plus the merged commit, tag pipelines the declared
// tags plus the git tag, manual runs the declared tags or latest.
func TestTagsPerPipeline(t *testing.T) {
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{"ctx/Dockerfile": "FROM scratch\n"})
	const file = `images:
  - name: a
    context: ctx
    tags: [latest, "{branch}-{short_sha}"]
  - name: b
    context: ctx
`
	for _, tc := range []struct {
		name   string
		z      *zuul.Context
		policy *TagPolicy
		want   map[string][]string
	}{
		{"check", checkCtx, nil, map[string][]string{"a": {"change_123_4"}, "b": {"change_123_4"}}},
		{"gate", gateCtx, nil, map[string][]string{"a": {"change_77_2"}, "b": {"change_77_2"}}},
		{"check with template", checkCtx, &TagPolicy{Change: "{branch}-c{change}.{patchset}", Commit: DefaultCommitTag},
			map[string][]string{"a": {"platform-acme-c123.4"}, "b": {"platform-acme-c123.4"}}},
		{"post", postCtx, nil, map[string][]string{
			"a": {"latest", "platform-acme-fedcba987654", "fedcba9876543210fedcba9876543210fedcba98"},
			"b": {"fedcba9876543210fedcba9876543210fedcba98"}}},
		{"post short commit tag", postCtx, &TagPolicy{Change: DefaultChangeTag, Commit: "git-{short_sha}"}, map[string][]string{
			"a": {"latest", "platform-acme-fedcba987654", "git-fedcba987654"}, "b": {"git-fedcba987654"}}},
		{"periodic without newrev", &zuul.Context{Pipeline: "periodic", Branch: "main"}, nil, nil},
		{"tag", tagCtx, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := parseIn(t, dir, file)
			if tc.policy != nil {
				f.Tags = *tc.policy
			}
			plans, err := Plan(f, PlanOptions{Zuul: tc.z, Now: time.Unix(0, 0)})
			if tc.want == nil {
				// Templates needing values this item lacks are bad input.
				if err == nil || !strings.Contains(err.Error(), "images[0].tags[1]") {
					t.Fatalf("Plan error = %v, want one naming images[0].tags[1]", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, tagsOf(plans)); diff != "" {
				t.Errorf("tags (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("tag pipeline and manual", func(t *testing.T) {
		const simple = "images:\n  - {name: a, context: ctx, tags: [stable]}\n  - {name: b, context: ctx}\n"
		for _, tc := range []struct {
			z    *zuul.Context
			want map[string][]string
		}{
			{tagCtx, map[string][]string{"a": {"stable", "v1.2.3"}, "b": {"v1.2.3"}}},
			{nil, map[string][]string{"a": {"stable"}, "b": {"latest"}}},
		} {
			plans, err := Plan(parseIn(t, dir, simple), PlanOptions{Zuul: tc.z})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, tagsOf(plans)); diff != "" {
				t.Errorf("tags (-want +got):\n%s", diff)
			}
		}
	})
}

// tagsOf maps each planned image to its tags.
func tagsOf(plans []*Planned) map[string][]string {
	got := map[string][]string{}
	for _, p := range plans {
		got[p.Name] = p.Tags
	}
	return got
}

// TestLabels: the standard OCI labels and the Zuul change URL come from the
// Zuul context and SOURCE_DATE_EPOCH; the image's own labels win.
func TestLabels(t *testing.T) {
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{"ctx/Dockerfile": "FROM scratch\n"})
	f := parseIn(t, dir, "images:\n  - {name: a, context: ctx, labels: {team: learning}}\n")
	epoch := time.Unix(1700000000, 0)
	plans, err := Plan(f, PlanOptions{Zuul: checkCtx, Epoch: &epoch, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		LabelSource:    "https://review.example.org/acme/platform",
		LabelRevision:  "0123456789abcdef0123456789abcdef01234567",
		LabelCreated:   "2023-11-14T22:13:20Z",
		LabelChangeURL: "https://review.example.org/c/acme/platform/+/123",
		"team":         "learning",
	}
	if diff := cmp.Diff(want, plans[0].Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
}

// TestOrder: images come after the images they depend on, otherwise in
// file order.
func TestOrder(t *testing.T) {
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{"ctx/Dockerfile": "FROM scratch\n", "site/index.html": "hi"})
	f := parseIn(t, dir, `images:
  - {name: plugin, context: ctx, depends_on: [openedx]}
  - {name: mfe, context: ctx, depends_on: [openedx, plugin]}
  - {name: openedx, context: ctx, depends_on: [base]}
  - {name: base, native: {layers: [{src: site, dest: /srv}]}}
  - {name: other, context: ctx}
  - {name: static, native: {base_image: openedx}}
`)
	plans, err := Plan(f, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range plans {
		got = append(got, p.Name)
	}
	if diff := cmp.Diff([]string{"base", "openedx", "plugin", "mfe", "other", "static"}, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"openedx"}, plans[5].DependsOn); diff != "" {
		t.Errorf("base_image adds a dependency (-want +got):\n%s", diff)
	}
}

// TestPlanErrors: every kind of bad input is a config.Error naming the file,
// line, field and value, found before anything is built.
func TestPlanErrors(t *testing.T) {
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{"ctx/Dockerfile": "FROM scratch\n", "ctx/sub/": "", "site/a": "a"})
	for _, tc := range []struct {
		name, yaml, want string
		z                *zuul.Context
	}{
		{"missing context", "images:\n  - name: a\n    context: nope\n", `build.yaml:3: images[0].context: "nope": no such directory`, nil},
		{"context is a file", "images:\n  - name: a\n    context: ctx/Dockerfile\n", `build.yaml:3: images[0].context: "ctx/Dockerfile" is not a directory`, nil},
		{"no context", "images:\n  - name: a\n", `build.yaml:2: images[0].context: missing`, nil},
		{"missing dockerfile", "images:\n  - name: a\n    context: ctx\n    dockerfile: Dockerfile.prod\n", `build.yaml:4: images[0].dockerfile: "Dockerfile.prod": no such file in the context`, nil},
		{"dockerfile is a dir", "images:\n  - name: a\n    context: ctx\n    dockerfile: sub\n", `build.yaml:4: images[0].dockerfile: "sub" is a directory`, nil},
		{"cycle", "images:\n  - {name: a, context: ctx, depends_on: [c]}\n  - {name: b, context: ctx, depends_on: [a]}\n  - {name: c, context: ctx, depends_on: [b]}\n",
			`build.yaml:2: images[0].depends_on: dependency cycle between images: a -> c -> b -> a`, nil},
		{"self dependency", "images:\n  - {name: a, context: ctx, depends_on: [a]}\n", `images[0].depends_on: dependency cycle between images: a -> a`, nil},
		{"unknown dependency", "images:\n  - name: a\n    context: ctx\n    depends_on:\n      - b\n", `build.yaml:5: images[0].depends_on[0]: "b" is not an image of this build file (images: a)`, nil},
		{"invalid tag", "images:\n  - name: a\n    context: ctx\n    tags: [ok, \"bad tag!\"]\n", `build.yaml:4: images[0].tags[1]: "bad tag!" is not a valid tag`, nil},
		{"invalid tag after expansion", "images:\n  - name: a\n    context: ctx\n    tags: [\"{branch}\"]\n", `images[0].tags[0]: ".hidden" is not a valid tag`, &zuul.Context{Pipeline: "post", Branch: ".hidden"}},
		{"tag too long", "images:\n  - name: a\n    context: ctx\n    tags: [\"" + strings.Repeat("x", 129) + "\"]\n", `build.yaml:4: images[0].tags[0]: "xxx`, nil},
		{"invalid change template", "tags: {change: \"pr {change}\"}\nimages:\n  - {name: a, context: ctx}\n", `build.yaml:1: tags.change: "pr 123" is not a valid tag`, checkCtx},
		{"unknown placeholder", "images:\n  - name: a\n    context: ctx\n    tags: [\"{user}\"]\n", `build.yaml:4: images[0].tags[0]: template "{user}": unknown placeholder {user}`, nil},
		{"invalid repository", "images:\n  - name: a\n    context: ctx\n    repository: Acme/OpenEdx\n", `build.yaml:4: images[0].repository: "Acme/OpenEdx" is not a valid repository`, nil},
		{"repository with registry", "images:\n  - name: a\n    context: ctx\n    repository: reg:5000/acme/a\n", `images[0].repository: "reg:5000/acme/a" is not a valid repository`, nil},
		{"invalid name", "images:\n  - name: Open_EdX\n    context: ctx\n", `build.yaml:2: images[0].name: "Open_EdX" is not a valid image name`, nil},
		{"duplicate name", "images:\n  - {name: a, context: ctx}\n  - {name: a, context: ctx}\n", `build.yaml:3: images[1].name: "a" is already the name of images[0]`, nil},
		{"invalid build arg", "images:\n  - name: a\n    context: ctx\n    build_args: {\"A-B\": x}\n", `build.yaml:4: images[0].build_args.A-B: "A-B" is not a valid build arg name`, nil},
		{"native with dockerfile", "images:\n  - name: a\n    dockerfile: D\n    native: {}\n", `build.yaml:3: images[0].dockerfile: "D" is not used by a native image`, nil},
		{"native missing src", "images:\n  - name: a\n    native:\n      layers:\n        - {src: nope, dest: /x}\n", `build.yaml:5: images[0].native.layers[0].src: "nope": no such file or directory`, nil},
		{"native relative dest", "images:\n  - name: a\n    native:\n      layers:\n        - {src: site, dest: srv}\n", `build.yaml:5: images[0].native.layers[0].dest: "srv" must be an absolute path`, nil},
		{"native unknown var", "images:\n  - name: a\n    native:\n      base: ${NOPE}/x\n", `build.yaml:4: images[0].native.base: "${NOPE}/x": ${NOPE} is not a build arg`, nil},
		{"native bad base", "images:\n  - name: a\n    native:\n      base: \"UPPER/Case::x\"\n", `build.yaml:4: images[0].native.base: "UPPER/Case::x" is not a valid image reference`, nil},
		{"native both bases", "images:\n  - {name: b, native: {}}\n  - name: a\n    native:\n      base: x/y:1\n      base_image: b\n", `build.yaml:6: images[1].native.base_image: "b": set base or base_image, not both`, nil},
		{"secret without source", "images:\n  - name: a\n    context: ctx\n    secrets:\n      - {id: pip}\n", `build.yaml:5: images[0].secrets[0]: secret "pip" needs exactly one of env or file`, nil},
		{"secret with both sources", "images:\n  - name: a\n    context: ctx\n    secrets:\n      - {id: pip, env: A, file: b}\n", `build.yaml:5: images[0].secrets[0]: secret "pip" needs exactly one of env or file`, nil},
		{"secret env unset", "images:\n  - name: a\n    context: ctx\n    secrets:\n      - id: pip\n        env: SLIPWAY_NOT_SET\n", `build.yaml:6: images[0].secrets[0].env: secret "pip": the environment variable SLIPWAY_NOT_SET is not set`, nil},
		{"secret file missing", "images:\n  - name: a\n    context: ctx\n    secrets:\n      - {id: pip, file: nope.txt}\n", `build.yaml:5: images[0].secrets[0].file: secret "pip": "nope.txt" is not a readable file`, nil},
		{"secret bad id", "images:\n  - name: a\n    context: ctx\n    secrets:\n      - {id: \"a b\", file: site/a}\n", `build.yaml:5: images[0].secrets[0].id: "a b" is not a valid secret id`, nil},
		{"secret repeated id", "images:\n  - name: a\n    context: ctx\n    secrets:\n      - {id: s, file: site/a}\n      - {id: s, file: site/a}\n", `build.yaml:6: images[0].secrets[1].id: "s" is already the id`, nil},
		{"secret on native", "images:\n  - name: a\n    secrets: [{id: s, file: site/a}]\n    native: {}\n", `build.yaml:3: images[0].secrets: native images run no RUN steps`, nil},
		{"native relative workdir", "images:\n  - name: a\n    native:\n      workdir: srv\n", `build.yaml:4: images[0].native.workdir: "srv" must be an absolute path`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := parseIn(t, dir, tc.yaml)
			_, err := Plan(f, PlanOptions{Zuul: tc.z})
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("Plan error = %v, want a *config.Error", err)
			}
			got := strings.TrimPrefix(err.Error(), dir+string(filepath.Separator))
			if !strings.Contains(got, tc.want) {
				t.Errorf("Plan error = %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

func TestDependencyArg(t *testing.T) {
	for in, want := range map[string]string{"openedx": "OPENEDX_IMAGE", "notes-plugin": "NOTES_PLUGIN_IMAGE", "a.b_c": "A_B_C_IMAGE"} {
		if got := DependencyArg(in); got != want {
			t.Errorf("DependencyArg(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestExampleZuulVars: the example build file plans with the example Zuul
// vars into the tags the docs promise.
func TestExampleZuulVars(t *testing.T) {
	for vars, want := range map[string][]string{
		"zuul-vars.check.yaml": {"change_4711_3"},
		"zuul-vars.post.yaml":  {"latest", "3f2c1d0e9b8a7f6e5d4c3b2a1f0e9d8c7b6a5f4e"},
	} {
		t.Run(vars, func(t *testing.T) {
			z, err := zuul.LoadFile(filepath.Join("..", "..", "examples", "images", vars))
			if err != nil {
				t.Fatal(err)
			}
			f, err := LoadFile(filepath.Join("..", "..", "examples", "images", "build.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			plans, err := Plan(f, PlanOptions{Zuul: z, Now: time.Now()})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range plans {
				if diff := cmp.Diff(want, p.Tags); diff != "" {
					t.Errorf("%s tags (-want +got):\n%s", p.Name, diff)
				}
			}
		})
	}
}

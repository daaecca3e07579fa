package buildimage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/buildimage/buildtest"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
)

// testLog sends build output to the test log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func realOptions(t *testing.T, registry string) Options {
	work := t.TempDir()
	return Options{
		OutputDir: filepath.Join(work, "out"),
		Insecure:  []string{registry},
		Buildah:   BuildahBackend{WorkDir: work},
		Output:    testLog{t},
	}
}

// skopeoInspect is the independent view of an image in a layout.
type skopeoImage struct {
	Digest string
	Labels map[string]string
	Layers []string
	Raw    struct {
		MediaType string
		Config    struct {
			Digest string
			Size   int64
		}
		Layers []struct{ Size int64 }
	}
	RawSize int64
}

func skopeoInspect(t *testing.T, layoutDir, tag string) skopeoImage {
	t.Helper()
	ref := "oci:" + layoutDir + ":" + tag
	run := func(args ...string) []byte {
		cmd := exec.Command("skopeo", append([]string{"inspect"}, append(args, ref)...)...)
		cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("skopeo inspect %s %s: %v", strings.Join(args, " "), ref, err)
		}
		return out
	}
	var img skopeoImage
	if err := json.Unmarshal(run(), &img); err != nil {
		t.Fatal(err)
	}
	raw := run("--raw")
	img.RawSize = int64(len(raw))
	if err := json.Unmarshal(raw, &img.Raw); err != nil {
		t.Fatal(err)
	}
	return img
}

// checkAgainstSkopeo: every image of the result, under every tag, is what
// skopeo sees in its layout: digest, config digest, size, labels.
func checkAgainstSkopeo(t *testing.T, res *result.BuildResult) {
	t.Helper()
	for _, im := range res.Images {
		for _, tag := range im.Tags {
			s := skopeoInspect(t, im.Layout, tag)
			size := s.RawSize + s.Raw.Config.Size
			for _, l := range s.Raw.Layers {
				size += l.Size
			}
			want := result.BuiltImage{Name: im.Name, Repository: im.Repository, Tags: im.Tags, Backend: im.Backend, Layout: im.Layout,
				ManifestDigest: s.Digest, ConfigDigest: s.Raw.Config.Digest, MediaType: s.Raw.MediaType, Size: size, Labels: s.Labels}
			if diff := cmp.Diff(want, im); diff != "" {
				t.Errorf("result entry of %s vs skopeo inspect of %s:%s (-skopeo +result):\n%s", im.Name, im.Layout, tag, diff)
			}
		}
	}
}

const multiStage = `ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS build
ARG GREETING=hello
RUN mkdir /out && echo "$GREETING from the build stage" >/out/greeting && for i in 1 2 3; do echo "step $i"; done
FROM ${BASE_IMAGE} AS final
COPY --from=build /out/greeting /greeting
COPY app.txt /app/app.txt
RUN cat /greeting /app/app.txt >/app/combined
CMD ["cat", "/app/combined"]
FROM final AS debug
RUN echo debug >/debug
`

// TestBuildahMultiStage: a multi-stage Dockerfile with RUN steps, a target
// and build args builds with chroot isolation; the result matches skopeo's
// view of the layout; the check pipeline tag and labels are set.
func TestBuildahMultiStage(t *testing.T) {
	base, registry := buildtest.RealEnv(t)
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{"app/Dockerfile": multiStage, "app/app.txt": "app payload\n"})
	path := filepath.Join(dir, "build.yaml")
	buildtest.WriteTree(t, dir, map[string]string{"build.yaml": `images:
  - name: app
    context: app
    target: final
    repository: acme/app
    build_args: {GREETING: bonjour}
    tags: [latest]
`})
	o := realOptions(t, registry)
	o.BuildFile, o.Zuul, o.Args = path, checkCtx, map[string]string{"BASE_IMAGE": base}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstSkopeo(t, res)
	im := res.Images[0]
	if diff := cmp.Diff([]string{"change_123_4"}, im.Tags); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	for k, want := range map[string]string{LabelChangeURL: checkCtx.ChangeURL, LabelRevision: checkCtx.CommitID, LabelSource: "https://review.example.org/acme/platform"} {
		if im.Labels[k] != want {
			t.Errorf("label %s = %q, want %q", k, im.Labels[k], want)
		}
	}
	files := buildtest.ImageFiles(t, im.Layout, im.ManifestDigest)
	if got, want := files["app/combined"], "bonjour from the build stage\napp payload\n"; got != want {
		t.Errorf("/app/combined = %q, want %q", got, want)
	}
	if _, ok := files["debug"]; ok {
		t.Error("/debug exists: the stage after the target was built")
	}
	if _, ok := files["out/greeting"]; ok {
		t.Error("/out/greeting exists: the build stage leaked into the final image")
	}
	// The result names the Zuul item (the command writes it: cmd/build-image).
	if res.Zuul == nil || res.Zuul.Change != "123" {
		t.Errorf("result zuul = %+v, want change 123", res.Zuul)
	}
	// The run's buildah storage is gone.
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(o.OutputDir), "slipway-buildah-*")); len(left) > 0 {
		t.Errorf("buildah work directories left behind: %v", left)
	}
}

// TestBuildahDependentImages builds examples/images: openedx (multi-stage,
// RUN), mfe and a plugin FROM this run's openedx, and a native image. The
// dependents start with openedx's layers and see its files; zuul_return
// data lists every image.
func TestBuildahDependentImages(t *testing.T) {
	base, registry := buildtest.RealEnv(t)
	o := realOptions(t, registry)
	o.BuildFile = filepath.Join("..", "..", "examples", "images", "build.yaml")
	o.Args = map[string]string{"BASE_IMAGE": base}
	o.Zuul = postCtx
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	zuulReturn := filepath.Join(t.TempDir(), "zuul-return.json")
	if err := ZuulReturn(res, filepath.Join(o.OutputDir, "build-result.json")).WriteFile(zuulReturn); err != nil {
		t.Fatal(err)
	}
	checkAgainstSkopeo(t, res)
	byName := map[string]result.BuiltImage{}
	var names []string
	for _, im := range res.Images {
		byName[im.Name] = im
		names = append(names, im.Name+"/"+im.Backend)
	}
	if diff := cmp.Diff([]string{"openedx/buildah", "mfe/buildah", "notes-plugin/buildah", "static/native"}, names); diff != "" {
		t.Errorf("images built (-want +got):\n%s", diff)
	}
	openedx := skopeoInspect(t, byName["openedx"].Layout, "latest")
	for _, dep := range []string{"mfe", "notes-plugin"} {
		s := skopeoInspect(t, byName[dep].Layout, "latest")
		if len(s.Layers) <= len(openedx.Layers) || !cmp.Equal(s.Layers[:len(openedx.Layers)], openedx.Layers) {
			t.Errorf("%s layers %v do not start with openedx's %v", dep, s.Layers, openedx.Layers)
		}
	}
	files := buildtest.ImageFiles(t, byName["notes-plugin"].Layout, byName["notes-plugin"].ManifestDigest)
	if got, want := files["openedx/plugins/notes/INSTALLED"], "notes plugin for redwood.3\n"; got != want {
		t.Errorf("plugin's INSTALLED = %q, want %q (built on openedx's RELEASE file)", got, want)
	}
	if diff := cmp.Diff([]string{"latest", postCtx.Newrev}, byName["openedx"].Tags); diff != "" {
		t.Errorf("post tags (-want +got):\n%s", diff)
	}
	data, err := os.ReadFile(zuulReturn)
	if err != nil {
		t.Fatal(err)
	}
	var zr struct {
		Zuul struct {
			Artifacts []struct{ Name, URL string }
		}
		SlipwayBuild struct {
			Result string
			Images map[string]struct{ Digest string }
		} `json:"slipway_build"`
	}
	if err := json.Unmarshal(data, &zr); err != nil {
		t.Fatal(err)
	}
	if len(zr.Zuul.Artifacts) != 5 || zr.SlipwayBuild.Images["mfe"].Digest != byName["mfe"].ManifestDigest {
		t.Errorf("zuul_return data = %s", data)
	}
}

// TestBuildahFailingRun: a failing RUN is exit 1 naming the image, the step
// and its last output lines; nothing of the run is kept and the previous
// result stays as it was.
func TestBuildahFailingRun(t *testing.T) {
	base, registry := buildtest.RealEnv(t)
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{
		"ok/Dockerfile":  "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo fine >/fine\n",
		"bad/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo fine\nRUN echo compiling assets; echo 'webpack: out of memory' >&2; exit 3\nRUN echo never\n",
		"build.yaml":     "images:\n  - {name: ok, context: ok}\n  - {name: bad, context: bad, depends_on: [ok]}\n",
	})
	o := realOptions(t, registry)
	o.BuildFile, o.Args = filepath.Join(dir, "build.yaml"), map[string]string{"BASE_IMAGE": base}
	// A previous result and layout, which a failed run must not touch.
	buildtest.WriteTree(t, o.OutputDir, map[string]string{"build-result.json": "previous\n", "ok/index.json": "previous\n"})
	_, err := Run(context.Background(), o)
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("Run error = %v, want a StepError", err)
	}
	want := &StepError{Image: "bad", Step: "RUN echo compiling assets; echo 'webpack: out of memory' >&2; exit 3", Status: 3,
		Output: []string{"compiling assets", "webpack: out of memory"}}
	if diff := cmp.Diff(want, se, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Err" }, cmp.Ignore())); diff != "" {
		t.Errorf("StepError (-want +got):\n%s", diff)
	}
	if usererr.Is(err) {
		t.Errorf("a failed step is a user error (exit 2), want a failure (exit 1): %v", err)
	}
	for _, p := range []string{"build-result.json", "ok/index.json"} {
		if data, _ := os.ReadFile(filepath.Join(o.OutputDir, p)); string(data) != "previous\n" {
			t.Errorf("%s changed by a failed run: %q", p, data)
		}
	}
	entries, _ := os.ReadDir(o.OutputDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"build-result.json", "ok"}, names); diff != "" {
		t.Errorf("output dir after a failed run (-want +got):\n%s", diff)
	}
}

// TestBuildahInterrupted: cancelling a run mid-RUN stops buildah, keeps no
// layout and leaves no buildah state (containers, mounts) behind.
func TestBuildahInterrupted(t *testing.T) {
	base, registry := buildtest.RealEnv(t)
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{"slow/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo started; sleep 60\n"})
	o := realOptions(t, registry)
	o.Image = &Image{Name: "slow", Repository: "acme/slow", Context: filepath.Join(dir, "slow")}
	o.Args = map[string]string{"BASE_IMAGE": base}
	var log bytes.Buffer
	o.Output = &syncBuffer{buf: &log}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		deadline := time.Now().Add(2 * time.Minute)
		for !strings.Contains(o.Output.(*syncBuffer).String(), "started") && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	_, err := Run(ctx, o)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 45*time.Second {
		t.Errorf("an interrupted build took %v: the RUN was not stopped", took)
	}
	entries, _ := os.ReadDir(o.OutputDir)
	if len(entries) != 0 {
		t.Errorf("output dir after an interrupted run holds %v", entries)
	}
	if left, _ := filepath.Glob(filepath.Join(o.Buildah.WorkDir, "slipway-buildah-*")); len(left) > 0 {
		t.Errorf("buildah work directories left behind: %v", left)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); bytes.Contains(mounts, []byte(o.Buildah.WorkDir)) {
		t.Errorf("mounts left under %s", o.Buildah.WorkDir)
	}
}

type syncBuffer struct {
	mu  chan struct{}
	buf *bytes.Buffer
}

func (s *syncBuffer) lock() {
	if s.mu == nil {
		s.mu = make(chan struct{}, 1)
	}
	s.mu <- struct{}{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.lock()
	defer func() { <-s.mu }()
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.lock()
	defer func() { <-s.mu }()
	return s.buf.String()
}

// TestReproducibleAcrossDirectories: with SOURCE_DATE_EPOCH, the same
// inputs in two directories give the same digests, for a native image on a
// base from the registry and for a buildah Dockerfile build.
func TestReproducibleAcrossDirectories(t *testing.T) {
	base, registry := buildtest.RealEnv(t)
	epoch := time.Unix(1700000000, 0)
	build := func() map[string]string {
		dir := filepath.Join(t.TempDir(), "checkout")
		buildtest.SampleTree(t, filepath.Join(dir, "site"), 0o644, time.Now())
		buildtest.WriteTree(t, dir, map[string]string{
			"app/Dockerfile": multiStage, "app/app.txt": "payload\n",
			"build.yaml": `images:
  - {name: app, context: app, target: final}
  - name: site
    native:
      base: ${BASE_IMAGE}
      layers: [{src: site, dest: /srv/www}]
      entrypoint: [/bin/httpd, -f, -h, /srv/www]
`})
		o := realOptions(t, registry)
		o.BuildFile, o.Epoch, o.Zuul = filepath.Join(dir, "build.yaml"), &epoch, postCtx
		o.Args = map[string]string{"BASE_IMAGE": base}
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		checkAgainstSkopeo(t, res)
		out := map[string]string{}
		for _, im := range res.Images {
			out[im.Name] = im.ManifestDigest
		}
		return out
	}
	first, second := build(), build()
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("digests of two runs in different directories (-first +second):\n%s", diff)
	}
}

// TestBuildahKeptRoot: with a storage root kept between runs, a build with
// SOURCE_DATE_EPOCH does not reuse cache entries made without it (buildah's
// layer cache ignores --timestamp): the image is created at the epoch, and
// a second reproducible run gives the same digest.
func TestBuildahKeptRoot(t *testing.T) {
	base, registry := buildtest.RealEnv(t)
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{"app/Dockerfile": multiStage, "app/app.txt": "payload\n"})
	root, runroot := filepath.Join(dir, "storage", "root"), filepath.Join(dir, "storage", "run")
	t.Cleanup(func() {
		g := []string{"--root", root, "--runroot", runroot, "--storage-driver", "overlay"}
		exec.Command("buildah", append(g, "rm", "--all")...).Run()
		exec.Command("buildah", append(g, "rmi", "--all", "--force")...).Run()
	})
	epoch := time.Unix(1700000000, 0)
	build := func(epoch *time.Time) result.BuiltImage {
		o := realOptions(t, registry)
		o.Buildah.Root, o.Buildah.RunRoot = root, runroot
		o.Image = &Image{Name: "app", Repository: "acme/app", Context: filepath.Join(dir, "app"), Target: "final"}
		o.Args, o.Epoch = map[string]string{"BASE_IMAGE": base}, epoch
		res, err := Run(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return res.Images[0]
	}
	build(nil) // fills the layer cache with wall-clock entries
	first := build(&epoch)
	second := build(&epoch)
	if first.ManifestDigest != second.ManifestDigest {
		t.Errorf("two reproducible builds in a kept root: %s and %s", first.ManifestDigest, second.ManifestDigest)
	}
	cmd := exec.Command("skopeo", "inspect", "--format", "{{.Created}}", "oci:"+first.Layout+":latest")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); !strings.HasPrefix(got, "2023-11-14 22:13:20 +0000") {
		t.Errorf("created = %q, want the SOURCE_DATE_EPOCH 2023-11-14 22:13:20 +0000 UTC", got)
	}
}

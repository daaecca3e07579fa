package buildimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/zuul"
)

// Options are the inputs of Run, bound from flags by cmd/build-image.
type Options struct {
	// BuildFile is the build file; when empty, Image is built alone.
	BuildFile string
	// Image is the single image given by flags (Context, Dockerfile...).
	Image *Image
	// OutputDir receives one OCI layout per image, OutputDir/<name>.
	OutputDir string
	// ResultFile is the build result (default OutputDir/build-result.json).
	ResultFile string
	// ZuulReturn, when set, is where zuul_return data is written.
	ZuulReturn string
	Zuul       *zuul.Context
	// Backend builds Dockerfile images: buildah (default) or docker.
	Backend string
	// Args override build args of every image.
	Args map[string]string
	// Epoch is SOURCE_DATE_EPOCH: the creation time of images and files.
	Epoch *time.Time
	// Buildah and Docker configure those backends; Native the native one.
	Buildah BuildahBackend
	Docker  DockerBackend
	Native  NativeBackend
	// Insecure lists plain-HTTP registries (host:port) for base images.
	Insecure []string
	// Tool is "build-image <version>", recorded in the result.
	Tool string
	// Output receives the build tools' output; Log the stage's logs.
	Output io.Writer
	Log    *slog.Logger
	// LookupEnv reads the environment variables secrets name.
	LookupEnv func(string) (string, bool)
	// now replaces time.Now in tests.
	now func() time.Time
}

// Run validates everything, builds the images in dependency order, and only
// when all are built moves their layouts into OutputDir and writes the
// result: a failed or interrupted run leaves earlier outputs as they were.
// Bad input returns a cli.UsageError before anything is built.
func Run(ctx context.Context, o Options) (*result.BuildResult, error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	if o.Zuul == nil {
		o.Zuul = &zuul.Context{}
	}
	if o.OutputDir == "" {
		return nil, cli.Usagef("--output: missing: the directory for the images' OCI layouts")
	}
	if o.ResultFile == "" {
		o.ResultFile = filepath.Join(o.OutputDir, "build-result.json")
	}
	var f *File
	switch {
	case o.BuildFile != "" && o.Image != nil:
		return nil, cli.Usagef("--file %s and single-image flags (--context, --repository...) exclude each other: use one", o.BuildFile)
	case o.BuildFile != "":
		var err error
		if f, err = LoadFile(o.BuildFile); err != nil {
			return nil, cli.AsUsage(err)
		}
	case o.Image != nil:
		f = &File{Dir: ".", Tags: TagPolicy{Change: DefaultChangeTag, Commit: DefaultCommitTag}, Images: []*Image{o.Image}, lines: map[string]int{}}
		o.Image.index = -1
	default:
		return nil, cli.Usagef("nothing to build: give --file BUILD.yaml, or --context DIR and --repository NAME for one image")
	}
	plans, err := Plan(f, PlanOptions{Zuul: o.Zuul, Args: o.Args, Epoch: o.Epoch, Now: o.now(), LookupEnv: o.LookupEnv})
	if err != nil {
		return nil, cli.AsUsage(err)
	}
	out, err := filepath.Abs(o.OutputDir)
	if err != nil {
		return nil, cli.Usagef("--output %q: %v", o.OutputDir, err)
	}
	for _, p := range plans {
		if p.Native == nil {
			continue
		}
		for i, l := range p.Native.Layers {
			if rel, err := filepath.Rel(l.Src, out); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return nil, cli.AsUsage(f.errAt(p.field(fmt.Sprintf("native.layers[%d].src", i)),
					"%q contains the output directory %s: the image would contain its own layout (choose another --output)", l.Src, out))
			}
		}
	}
	backends, err := o.backends(ctx, plans, log)
	if err != nil {
		return nil, cli.AsUsage(err)
	}
	defer func() {
		for _, b := range backends {
			if err := b.Close(ctx); err != nil {
				log.Warn("cleaning up", "err", err)
			}
		}
	}()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("creating output directory: %w", err)
	}

	built := map[string]*Built{}
	var order []*Built
	defer func() { // temp layouts of a failed run
		for _, b := range order {
			if b.Layout != filepath.Join(out, b.Name) {
				removeAll(b.Layout)
			}
		}
	}()
	for i, p := range plans {
		backend := p.Backend(o.backendName())
		start := time.Now()
		log.Info("building image", "image", p.Name, "backend", backend, "n", fmt.Sprintf("%d/%d", i+1, len(plans)), "tags", p.Tags)
		tmp, err := os.MkdirTemp(out, "."+p.Name+".tmp-")
		if err != nil {
			return nil, fmt.Errorf("creating layout directory for %s: %w", p.Name, err)
		}
		b := &Built{Planned: p, Backend: backend, Layout: tmp}
		order = append(order, b)
		if err := backends[backend].Build(ctx, p, built, tmp); err != nil {
			return nil, err
		}
		if b.Manifest, err = finalizeLayout(tmp, p.Tags); err != nil {
			return nil, fmt.Errorf("finishing layout of %s: %w", p.Name, err)
		}
		built[p.Name] = b
		log.Info("built image", "image", p.Name, "digest", b.Manifest.Digest.String(), "took", time.Since(start).Round(time.Millisecond))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("building images: %w", err)
	}

	res := &result.BuildResult{Header: result.Header{Tool: o.Tool}, Zuul: o.Zuul.ResultRef()}
	previous := previousDigests(o.ResultFile)
	for _, b := range order {
		final := filepath.Join(out, b.Name)
		if err := replaceDir(b.Layout, final); err != nil {
			return nil, fmt.Errorf("moving layout of %s into place: %w", b.Name, err)
		}
		b.Layout = final
		img, err := describeBuilt(b)
		if err != nil {
			return nil, err
		}
		if previous[b.Name] == img.ManifestDigest {
			log.Info("image unchanged since the last run", "image", b.Name, "digest", img.ManifestDigest)
		}
		res.Images = append(res.Images, img)
	}
	if err := result.WriteFile(o.ResultFile, res, 0o644); err != nil {
		return nil, fmt.Errorf("writing build result: %w", err)
	}
	if o.ZuulReturn != "" {
		if err := zuulReturn(o.ResultFile, res).WriteFile(o.ZuulReturn); err != nil {
			return nil, fmt.Errorf("writing zuul_return data: %w", err)
		}
	}
	return res, nil
}

func (o *Options) backendName() string {
	if o.Backend == "" {
		return BackendBuildah
	}
	return o.Backend
}

// backends sets up the backends the plans need and checks them before any
// build.
func (o *Options) backends(ctx context.Context, plans []*Planned, log *slog.Logger) (map[string]Backend, error) {
	switch o.backendName() {
	case BackendBuildah, BackendDocker:
	default:
		return nil, fmt.Errorf("--backend: %q is not buildah or docker (native images say so in the build file)", o.Backend)
	}
	reproducible := o.Epoch != nil
	all := map[string]Backend{}
	for _, p := range plans {
		name := p.Backend(o.backendName())
		if all[name] != nil {
			continue
		}
		var b Backend
		switch name {
		case BackendNative:
			n := o.Native
			n.Insecure = append(n.Insecure, o.Insecure...)
			n.Log = log
			b = &n
		case BackendBuildah:
			bb := &o.Buildah
			bb.Insecure = append(bb.Insecure, o.Insecure...)
			bb.Reproducible, bb.Output, bb.Log = reproducible, o.Output, log
			b = bb
		case BackendDocker:
			d := &o.Docker
			d.Reproducible, d.Output, d.Log = reproducible, o.Output, log
			b = d
		}
		if pf, ok := b.(preflighter); ok {
			if err := pf.Preflight(ctx); err != nil {
				return nil, err
			}
		}
		all[name] = b
	}
	return all, nil
}

// replaceDir moves tmp to final, replacing a previous layout. The old one is
// moved aside first and removed last, so a crash leaves one of the two.
func replaceDir(tmp, final string) error {
	old := ""
	if _, err := os.Lstat(final); err == nil {
		old = final + ".old"
		removeAll(old)
		if err := os.Rename(final, old); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		if old != "" {
			_ = os.Rename(old, final)
		}
		return err
	}
	removeAll(old)
	return nil
}

func previousDigests(path string) map[string]string {
	out := map[string]string{}
	var prev result.BuildResult
	if err := result.ReadFile(path, &prev); err != nil {
		return out
	}
	for _, im := range prev.Images {
		out[im.Name] = im.ManifestDigest
	}
	return out
}

// zuulReturn is the data later jobs of the buildset find: the result file
// as an artifact, each image's layout, and slipway_build variables.
func zuulReturn(resultFile string, res *result.BuildResult) zuul.Return {
	abs, err := filepath.Abs(resultFile)
	if err != nil {
		abs = resultFile
	}
	r := zuul.Return{Vars: map[string]any{}}
	r.Artifacts = append(r.Artifacts, zuul.Artifact{Name: "slipway build result", URL: abs, Metadata: map[string]any{"type": "slipway_build_result"}})
	images := map[string]any{}
	for _, im := range res.Images {
		r.Artifacts = append(r.Artifacts, zuul.Artifact{
			Name: im.Name + " image layout",
			URL:  "oci:" + im.Layout,
			Metadata: map[string]any{
				"type": "oci_layout", "repository": im.Repository, "tags": im.Tags, "digest": im.ManifestDigest,
			},
		})
		images[im.Name] = map[string]any{"repository": im.Repository, "tags": im.Tags, "digest": im.ManifestDigest, "layout": im.Layout}
	}
	r.Vars["slipway_build"] = map[string]any{"result": abs, "images": images}
	return r
}

// IsBuildFailure reports whether err is a failed Dockerfile step.
func IsBuildFailure(err error) bool {
	var se *StepError
	return errors.As(err, &se)
}

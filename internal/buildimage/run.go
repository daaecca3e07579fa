package buildimage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
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
	// PreviousResult is the result of the last run, when there is one:
	// images it lists with the same digest are logged as unchanged.
	PreviousResult string
	Zuul           *zuul.Context
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
	// Output receives the build tools' output; Log the stage's logs.
	Output io.Writer
	Log    *slog.Logger
	// LookupEnv reads the environment variables secrets name.
	LookupEnv func(string) (string, bool)
	// now replaces time.Now in tests.
	now func() time.Time
}

// Run validates everything, builds the images in dependency order, and only
// when all are built moves their layouts into OutputDir and returns the
// result (which the caller writes): a failed or interrupted run leaves
// earlier outputs as they were. Bad input returns a user error
// (internal/usererr) before anything is built; errors about an option or
// the image built alone are *config.Error without a file, whose Field
// names the option (output, backend, storage_driver, tags[0]...).
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
	f, err := o.file()
	if err != nil {
		return nil, err
	}
	plans, err := Plan(f, PlanOptions{Zuul: o.Zuul, Args: o.Args, Epoch: o.Epoch, Now: o.now(), LookupEnv: o.LookupEnv})
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(o.OutputDir)
	if err != nil {
		return nil, &config.Error{Field: "output", Msg: fmt.Sprintf("%q: %v", o.OutputDir, err)}
	}
	if err := outsideLayers(f, plans, out); err != nil {
		return nil, err
	}
	backends, err := o.backends(ctx, plans, log)
	if err != nil {
		return nil, usererr.Wrap(err)
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
	lock, err := lockOutput(out, log)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	var built []*Built
	defer func() { // temp layouts of a failed run
		for _, b := range built {
			if b.Layout != filepath.Join(out, b.Name) {
				removeAll(b.Layout)
			}
		}
	}()
	built, err = o.build(ctx, plans, backends, out, log)
	if err != nil {
		return nil, err
	}
	return o.place(built, out, log)
}

// place moves the built layouts into out and describes them in the result.
func (o *Options) place(built []*Built, out string, log *slog.Logger) (*result.BuildResult, error) {
	res := &result.BuildResult{Zuul: o.Zuul.ResultRef()}
	previous := previousDigests(o.PreviousResult)
	for _, b := range built {
		final := filepath.Join(out, b.Name)
		crashpoint.Hit("build-image.place")
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
	return res, nil
}

// file is the build file, or the one image of the options as a file.
func (o *Options) file() (*File, error) {
	switch {
	case o.OutputDir == "":
		return nil, &config.Error{Field: "output", Msg: "missing: the directory for the images' OCI layouts"}
	case o.BuildFile != "" && o.Image != nil:
		return nil, usererr.Errorf("the build file %s and a single image exclude each other: give one", o.BuildFile)
	case o.BuildFile != "":
		return LoadFile(o.BuildFile)
	case o.Image != nil:
		o.Image.index = -1
		return &File{Dir: ".", Tags: TagPolicy{Change: DefaultChangeTag, Commit: DefaultCommitTag}, Images: []*Image{o.Image}, doc: &config.Doc{}}, nil
	}
	return nil, usererr.New("nothing to build: give a build file, or one image")
}

// outsideLayers makes sure no native layer holds the output directory,
// which would put the image's own layout into it.
func outsideLayers(f *File, plans []*Planned, out string) error {
	for _, p := range plans {
		if p.Native == nil {
			continue
		}
		for i, l := range p.Native.Layers {
			if l.Debian != nil {
				continue
			}
			if rel, err := filepath.Rel(l.Src, out); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return f.doc.Errorf(p.field(fmt.Sprintf("native.layers[%d].src", i)),
					"%q contains the output directory %s: the image would contain its own layout (choose another output directory)", l.Src, out)
			}
		}
	}
	return nil
}

// build builds the plans in order, each into a temporary layout under out.
// It returns what it built, also on failure, so the caller removes it.
func (o *Options) build(ctx context.Context, plans []*Planned, backends map[string]Backend, out string, log *slog.Logger) ([]*Built, error) {
	built := map[string]*Built{}
	var order []*Built
	for i, p := range plans {
		backend := p.Backend(o.backendName())
		start := time.Now()
		crashpoint.Hit("build-image.build")
		log.Info("building image", "image", p.Name, "backend", backend, "n", fmt.Sprintf("%d/%d", i+1, len(plans)), "tags", p.Tags)
		tmp, err := os.MkdirTemp(out, "."+p.Name+".tmp-")
		if err != nil {
			return order, fmt.Errorf("creating layout directory for %s: %w", p.Name, err)
		}
		b := &Built{Planned: p, Backend: backend, Layout: tmp}
		order = append(order, b)
		if err := backends[backend].Build(ctx, p, built, tmp); err != nil {
			return order, err
		}
		if b.Manifest, err = finalizeLayout(tmp, p.Tags); err != nil {
			return order, fmt.Errorf("finishing layout of %s: %w", p.Name, err)
		}
		built[p.Name] = b
		crashpoint.Hit("build-image.built")
		log.Info("built image", "image", p.Name, "digest", b.Manifest.Digest.String(), "took", time.Since(start).Round(time.Millisecond))
	}
	if err := ctx.Err(); err != nil {
		return order, fmt.Errorf("building images: %w", err)
	}
	return order, nil
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
		return nil, &config.Error{Field: "backend", Msg: fmt.Sprintf("%q is not buildah or docker (native images say so in the build file)", o.Backend)}
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
// moved aside first and removed last, so a crash leaves one of the two
// (and the next run's lockOutput puts the old one back if final is gone).
func replaceDir(tmp, final string) error {
	old := ""
	if _, err := os.Lstat(final); err == nil {
		old = asideName(final)
		removeAll(old)
		if err := os.Rename(final, old); err != nil {
			return err
		}
		crashpoint.Hit("build-image.replace")
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

// ZuulReturn is the data later jobs of the buildset find: the result file
// (written at resultFile) as an artifact, each image's layout, and
// slipway_build variables.
func ZuulReturn(res *result.BuildResult, resultFile string) zuul.Return {
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

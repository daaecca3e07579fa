package push

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
)

// Options configure Run. Exactly one of BuildResult and Source is set.
type Options struct {
	// BuildResult is a build-image result file: every image in it is pushed
	// to its repository with its tags (plus Tags).
	BuildResult string
	// FromRegistry, with BuildResult, reads each image from this registry
	// (host[:port][/namespace]) by its manifest digest instead of its
	// layout: the gate→post promotion from the buildset registry.
	FromRegistry string
	// Source is one image: oci:DIR[:REF|@DIGEST], docker-archive:FILE[:TAG],
	// or a registry reference (docker://host/repo:tag, host/repo@sha256:...).
	Source string
	// Repository is where Source goes in every region (below the region's
	// namespace). Default for a registry source: its repository path.
	Repository string
	// Tags are moved to the pushed image in every region.
	Tags []string
	// RequireDigest refuses sources not pinned by digest (promote).
	RequireDigest bool

	Regions []Region
	Auth    Auth

	// Jobs is how many blobs are copied at once (default 4).
	Jobs int
	// StallTimeout aborts (and retries) an upload with no progress for this
	// long (default 60s).
	StallTimeout time.Duration
	// ResponseTimeout aborts (and retries) an upload whose registry did not
	// answer this long after the last byte was sent (default 5m).
	ResponseTimeout time.Duration
	// Attempts is how many times one blob upload is tried per region
	// (default 4); HTTP requests are also retried by Retry.
	Attempts int
	// NoVerify skips reading everything back before tags move.
	NoVerify bool

	Conn

	// Zuul identifies the change or ref, recorded in the result.
	Zuul *result.ZuulRef

	Log      *slog.Logger
	Progress *progress.Printer
}

func (o *Options) defaults() {
	if o.Jobs <= 0 {
		o.Jobs = 4
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = 60 * time.Second
	}
	if o.ResponseTimeout == 0 {
		o.ResponseTimeout = 5 * time.Minute
	}
	if o.Attempts <= 0 {
		o.Attempts = 4
	}

	if o.Retry == nil {
		// A request is tried as often as a blob upload: a region that
		// never answers fails within about Attempts request timeouts.
		r := httpx.DefaultRetry()
		r.Attempts = o.Attempts
		o.Retry = &r
	}
	o.Conn.defaults()
	if o.Log == nil {
		o.Log = logging.Discard()
	}
	if o.Progress == nil {
		o.Progress = progress.Discard()
	}
}

// Conn says how push-registry reaches the regions, for every command.
type Conn struct {
	// Retry is the per-request retry policy (default httpx.DefaultRetry).
	Retry *httpx.RetryPolicy
	// RequestTimeout bounds every registry request but blob upload bodies
	// (those have a stall timeout): a registry that accepts connections and
	// never answers fails the request, and a response body that stops
	// coming for this long fails its read (default 30s).
	RequestTimeout time.Duration
	// RegistryBinary is the distribution 2.8 binary run for storage-backed
	// regions (default DefaultRegistryBinary).
	RegistryBinary string
	// StateDir holds the state of those registries (default
	// DefaultStateDir()).
	StateDir string
	// StartTimeout bounds a registry's start (default 30s).
	StartTimeout time.Duration
}

func (c *Conn) defaults() {
	if c.Retry == nil {
		r := httpx.DefaultRetry()
		c.Retry = &r
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.RegistryBinary == "" {
		c.RegistryBinary = DefaultRegistryBinary
	}
	if c.StateDir == "" {
		c.StateDir = DefaultStateDir()
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
}

// The errors of Options that name no single option.
var (
	ErrNoRegions  = usererr.New("no regions to push to")
	ErrNoSource   = usererr.New("nothing to push (no build result, no source image)")
	ErrTwoSources = usererr.New("a build result and a source image exclude each other")
)

// optionError is a bad value of one option. field names it as Options
// does, in lower camel case with list indexes (source, repository, tags[1],
// fromRegistry), so that a command line can say which of its flags set it.
func optionError(field, format string, args ...any) error {
	return &config.Error{Field: field, Msg: fmt.Sprintf(format, args...)}
}

func (o *Options) validate() error {
	switch {
	case o.BuildResult == "" && o.Source == "":
		return ErrNoSource
	case o.BuildResult != "" && o.Source != "":
		return ErrTwoSources
	case o.FromRegistry != "" && o.BuildResult == "":
		return optionError("fromRegistry", "needs a build result (it lists the images to read by digest)")
	case o.Source != "" && o.Repository == "" && (strings.HasPrefix(o.Source, "oci:") || strings.HasPrefix(o.Source, "docker-archive:")):
		return optionError("repository", "required with source %s (a layout or an archive does not say where the image goes)", o.Source)
	}
	if o.FromRegistry != "" {
		if _, err := name.NewRepository(strings.TrimSuffix(o.FromRegistry, "/")+"/x", name.StrictValidation); err != nil {
			return optionError("fromRegistry", "%q is not a registry HOST[:PORT][/NAMESPACE]", o.FromRegistry)
		}
	}
	if o.Repository != "" {
		if _, err := name.NewRepository("example.invalid/"+o.Repository, name.StrictValidation); err != nil {
			return optionError("repository", "%q is not a valid repository path (lowercase letters and digits, separated by . _ - or /)", o.Repository)
		}
	}
	for i, t := range o.Tags {
		if _, err := name.NewTag("example.invalid/x:"+t, name.StrictValidation); err != nil || strings.ContainsAny(t, "/@:") {
			return optionError(fmt.Sprintf("tags[%d]", i), "%q is not a valid tag (letters, digits, '_', '.', '-'; at most 128)", t)
		}
	}
	return checkRegions(o.Regions)
}

// resolve turns the options into the list of images, reading every source's
// manifests (not its layers) up front so bad input stops before any push.
func resolve(ctx context.Context, o *Options) ([]image, error) {
	images := []image{{Source: o.Source, Repository: o.Repository, Tags: slices.Clone(o.Tags)}}
	if o.BuildResult != "" {
		var err error
		if images, err = buildImages(o.BuildResult); err != nil {
			return nil, err
		}
		for i := range images {
			images[i].Tags = append(slices.Clone(images[i].Tags), o.Tags...)
			if o.FromRegistry != "" {
				_, digest, _ := strings.Cut(images[i].Source, "@")
				images[i].Source = "docker://" + strings.TrimSuffix(o.FromRegistry, "/") + "/" + images[i].Repository + "@" + digest
			}
		}
	}
	for i := range images {
		if err := load(ctx, o, &images[i]); err != nil {
			return nil, err
		}
	}
	return images, nil
}

// load reads the manifests of img from its source.
func load(ctx context.Context, o *Options, img *image) error {
	spec, err := parseSource(img.Source)
	if err != nil {
		return err
	}
	switch spec.Kind {
	case "oci":
		if o.RequireDigest && !strings.HasPrefix(spec.Ref, "sha256:") {
			return usererr.Errorf("source %s is not pinned by digest: give oci:DIR@sha256:...", img.Source)
		}
		img.Root, err = loadLayout(spec.Path, spec.Ref)
	case "docker-archive":
		if o.RequireDigest {
			return usererr.Errorf("source %s: promote copies from a registry or layout by digest", img.Source)
		}
		img.Root, err = loadArchive(spec.Path, spec.Ref)
	case "docker":
		img.Root, err = loadFromRegistry(ctx, o, img, spec.Path)
	}
	if err != nil {
		return err
	}
	if img.Repository == "" {
		return optionError("repository", "required for %s", img.Source)
	}
	if img.Name == "" {
		img.Name = img.Repository
	}
	return nil
}

func loadFromRegistry(ctx context.Context, o *Options, img *image, ref string) (*manifest, error) {
	r, err := name.ParseReference(ref, name.StrictValidation)
	if err != nil {
		return nil, usererr.Errorf("source %q: %w", ref, err)
	}
	if _, pinned := r.(name.Digest); o.RequireDigest && !pinned {
		return nil, usererr.Errorf("source %s is not pinned by digest: give host/repo@sha256:... (a tag in the intermediate registry may move)", ref)
	}
	if img.Repository == "" {
		img.Repository = r.Context().RepositoryStr()
	}
	src := Region{Name: "source", Registry: r.Context().RegistryStr()}
	cred, err := o.Auth.credential(src)
	if err != nil {
		return nil, err
	}
	inner, err := baseTransport(src, &o.Conn)
	if err != nil {
		return nil, err
	}
	m, err := loadRemote(ctx, r, remote.WithAuth(cred.authenticator()), remote.WithTransport(inner))
	if err != nil {
		return nil, err
	}
	if d, ok := r.(name.Digest); ok && m.Digest.String() != d.DigestStr() {
		return nil, fmt.Errorf("source %s: registry returned manifest %s", ref, m.Digest)
	}
	img.Source = r.Context().String() + "@" + m.Digest.String()
	return m, nil
}

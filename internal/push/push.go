// Package push copies container images to the registries of every region:
// each blob read once and streamed to all regions in parallel, manifests by
// digest everywhere first, tags moved only when every region has every
// manifest and every blob checks out.
package push

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/zuul"
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
	// Retry is the per-request retry policy (default httpx.DefaultRetry).
	Retry *httpx.RetryPolicy
	// NoVerify skips reading everything back before tags move.
	NoVerify bool

	// ResultFile, if set, receives the PushResult.
	ResultFile string
	// ZuulReturnFile, if set, receives zuul_return artifacts data.
	ZuulReturnFile string
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
		r := httpx.DefaultRetry()
		o.Retry = &r
	}
	if o.Log == nil {
		o.Log = logging.Discard()
	}
	if o.Progress == nil {
		o.Progress = progress.Discard()
	}
}

func (o *Options) validate() error {
	switch {
	case o.BuildResult == "" && o.Source == "":
		return badInput("nothing to push: give --build-result FILE or --source IMAGE")
	case o.BuildResult != "" && o.Source != "":
		return badInput("--build-result and --source exclude each other")
	case o.FromRegistry != "" && o.BuildResult == "":
		return badInput("--from-registry needs --build-result")
	case o.Source != "" && o.Repository == "" && !strings.HasPrefix(o.Source, "oci:") && !strings.HasPrefix(o.Source, "docker-archive:"):
		// a registry source defaults to its own repository path
	case o.Source != "" && o.Repository == "":
		return badInput("--repository is required with --source %s", o.Source)
	}
	if o.Repository != "" {
		if _, err := name.NewRepository("example.invalid/"+o.Repository, name.StrictValidation); err != nil {
			return badInput("--repository %q is not a valid repository path", o.Repository)
		}
	}
	for _, t := range o.Tags {
		if _, err := name.NewTag("example.invalid/x:"+t, name.StrictValidation); err != nil || strings.ContainsAny(t, "/@:") {
			return badInput("--tag %q is not a valid tag", t)
		}
	}
	return checkRegions(o.Regions)
}

// regionState is one region's connection and bookkeeping during a run.
type regionState struct {
	Region
	c *client
	// landed maps a blob digest to a repository where it is known to be
	// complete in this region: later images mount from there.
	mu     sync.Mutex
	landed map[v1.Hash]string
	failed error
	task   *progress.Task
}

func (r *regionState) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failed == nil {
		r.failed = err
	}
}

func (r *regionState) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// stats counts what happened to one image in one region.
type stats struct {
	mu                         sync.Mutex
	uploaded, mounted, present int
	bytes                      int64
	tagsMoved, tagsUnchanged   []string
	verified                   bool
}

// pusher is one Run.
type pusher struct {
	opts    *Options
	regions []*regionState
	stats   map[string]map[string]*stats // image repo → region → stats
}

// Run pushes the images Options name to every region and returns what
// landed. On error no tag was moved unless the error says otherwise.
func Run(ctx context.Context, opts Options) (*result.PushResult, error) {
	opts.defaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := opts.Auth.load(opts.Regions); err != nil {
		return nil, err
	}
	images, err := resolve(ctx, &opts)
	if err != nil {
		return nil, err
	}
	p := &pusher{opts: &opts, stats: map[string]map[string]*stats{}}
	if err := p.connect(ctx, images); err != nil {
		return nil, err
	}
	for _, img := range images {
		p.stats[img.Repository] = map[string]*stats{}
		for _, r := range p.regions {
			p.stats[img.Repository][r.Name] = &stats{}
		}
	}
	start := time.Now()
	var total int64
	for _, img := range images {
		total += img.Root.totalSize()
	}
	for _, r := range p.regions {
		r.task = opts.Progress.Start("region "+r.Name, total)
	}
	// Phase 1: blobs and manifests by digest, everywhere.
	for _, img := range images {
		if err := p.pushImage(ctx, img); err != nil {
			p.endTasks("failed")
			return nil, p.phase1Error(ctx, err)
		}
	}
	// Read everything back before any tag moves.
	if !opts.NoVerify {
		if err := p.verifyAll(ctx, images); err != nil {
			p.endTasks("verify failed")
			return nil, fmt.Errorf("%w; no tag was moved in any region", err)
		}
	}
	// Phase 2: every region has every manifest: move the tags.
	if err := p.moveTags(ctx, images); err != nil {
		p.endTasks("tagging failed")
		return nil, err
	}
	p.endTasks("done")
	res := p.result(images)
	opts.Log.Info("pushed", "images", len(images), "regions", len(p.regions), "elapsed", time.Since(start).Round(time.Millisecond).String())
	if err := writeOutputs(&opts, res); err != nil {
		return res, err
	}
	return res, nil
}

func (p *pusher) endTasks(status string) {
	for _, r := range p.regions {
		if r.task != nil {
			r.task.Done("%s", status)
		}
	}
}

// phase1Error explains a failed first phase: which region and blob, what
// landed, and that a rerun finishes the job.
func (p *pusher) phase1Error(ctx context.Context, err error) error {
	var landed []string
	for _, r := range p.regions {
		r.mu.Lock()
		landed = append(landed, fmt.Sprintf("%s: %d blobs", r.Name, len(r.landed)))
		r.mu.Unlock()
	}
	msg := "no tag was moved in any region; landed " + strings.Join(landed, ", ") + "; rerun to finish (what landed is not uploaded again)"
	if ctx.Err() != nil {
		return fmt.Errorf("%w (interrupted: %w); %s", err, ctx.Err(), msg)
	}
	return fmt.Errorf("%w; %s", err, msg)
}

// resolve turns the options into the list of images, reading every source's
// manifests (not its layers) up front so bad input stops before any push.
func resolve(ctx context.Context, o *Options) ([]image, error) {
	var images []image
	if o.BuildResult != "" {
		imgs, err := buildImages(o.BuildResult)
		if err != nil {
			return nil, err
		}
		images = imgs
		for i := range images {
			images[i].Tags = append(slices.Clone(images[i].Tags), o.Tags...)
			if o.FromRegistry != "" {
				_, digest, _ := strings.Cut(images[i].Source, "@")
				images[i].Source = "docker://" + strings.TrimSuffix(o.FromRegistry, "/") + "/" + images[i].Repository + "@" + digest
			}
		}
	} else {
		images = []image{{Source: o.Source, Repository: o.Repository, Tags: slices.Clone(o.Tags)}}
	}
	for i := range images {
		img := &images[i]
		spec, err := parseSource(img.Source)
		if err != nil {
			return nil, err
		}
		switch spec.Kind {
		case "oci":
			if o.RequireDigest && !strings.HasPrefix(spec.Ref, "sha256:") {
				return nil, badInput("source %s is not pinned by digest: give oci:DIR@sha256:...", img.Source)
			}
			img.Root, err = loadLayout(spec.Path, spec.Ref)
		case "docker-archive":
			if o.RequireDigest {
				return nil, badInput("source %s: promote copies from a registry or layout by digest", img.Source)
			}
			img.Root, err = loadArchive(spec.Path, spec.Ref)
		case "docker":
			img.Root, err = loadFromRegistry(ctx, o, img, spec.Path)
		}
		if err != nil {
			return nil, err
		}
		if img.Repository == "" {
			return nil, badInput("no repository for %s: give --repository", img.Source)
		}
		if img.Name == "" {
			img.Name = img.Repository
		}
	}
	return images, nil
}

func loadFromRegistry(ctx context.Context, o *Options, img *image, ref string) (*manifest, error) {
	r, err := name.ParseReference(ref, name.StrictValidation)
	if err != nil {
		return nil, badInput("source %q: %v", ref, err)
	}
	if _, pinned := r.(name.Digest); o.RequireDigest && !pinned {
		return nil, badInput("source %s is not pinned by digest: give host/repo@sha256:... (a tag in the intermediate registry may move)", ref)
	}
	if img.Repository == "" {
		img.Repository = r.Context().RepositoryStr()
	}
	src := Region{Name: "source", Registry: r.Context().RegistryStr()}
	cred, err := o.Auth.credential(src)
	if err != nil {
		return nil, err
	}
	inner, err := baseTransport(src, *o.Retry)
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

// connect opens a client per region, in parallel. A region that is down
// stops the run before anything is pushed anywhere.
func (p *pusher) connect(ctx context.Context, images []image) error {
	p.regions = make([]*regionState, len(p.opts.Regions))
	errs := make([]error, len(p.opts.Regions))
	var wg sync.WaitGroup
	for i, r := range p.opts.Regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cred, err := p.opts.Auth.credential(r)
			if err != nil {
				errs[i] = err
				return
			}
			var repos []string
			for _, img := range images {
				repos = append(repos, r.Path(img.Repository))
			}
			c, err := newClient(ctx, r, cred, *p.opts.Retry, repos)
			if err != nil {
				errs[i] = err
				return
			}
			p.opts.Log.Debug("connected", "region", r.Name, "registry", r.Registry, "auth", cred.String())
			p.regions[i] = &regionState{Region: r, c: c, landed: map[v1.Hash]string{}}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		if errors.Is(err, ErrBadInput) {
			return err
		}
		return fmt.Errorf("%w; nothing was pushed: check the registry is reachable and rerun", err)
	}
	return nil
}

// pushImage runs phase 1 for one image: all blobs (Jobs at a time), then
// the manifests, children first, by digest.
func (p *pusher) pushImage(ctx context.Context, img image) error {
	blobs := img.Root.allBlobs()
	sem := make(chan struct{}, p.opts.Jobs)
	var wg sync.WaitGroup
	for _, b := range blobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			p.pushBlob(ctx, img, b)
		}()
	}
	wg.Wait()
	if err := p.regionErrors(); err != nil {
		return err
	}
	var wg2 sync.WaitGroup
	for _, r := range p.regions {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			repo := r.Path(img.Repository)
			var err error
			img.Root.walk(func(m *manifest) {
				if err != nil {
					return
				}
				err = putManifestOnce(ctx, r.c, repo, m)
			})
			if err != nil {
				r.fail(fmt.Errorf("region %s: repository %s: %w", r.Name, repo, err))
			}
		}()
	}
	wg2.Wait()
	return p.regionErrors()
}

func putManifestOnce(ctx context.Context, c *client, repo string, m *manifest) error {
	have, err := c.headManifest(ctx, repo, m.Digest.String())
	if err != nil {
		return fmt.Errorf("checking manifest %s: %w", m.Digest, err)
	}
	if have == m.Digest.String() {
		return nil
	}
	if err := c.putManifest(ctx, repo, m.Digest.String(), m.MediaType, m.Raw); err != nil {
		return fmt.Errorf("putting manifest %s: %w", m.Digest, err)
	}
	return nil
}

func (p *pusher) regionErrors() error {
	var errs []error
	for _, r := range p.regions {
		if err := r.err(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pushBlob gets one blob into every healthy region: skip what is there,
// mount what is in another repository of the region, stream the rest from
// one read of the source.
func (p *pusher) pushBlob(ctx context.Context, img image, b blob) {
	type pending struct {
		r   *regionState
		loc string
	}
	var mu sync.Mutex
	var need []pending
	var wg sync.WaitGroup
	for _, r := range p.regions {
		if r.err() != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := p.stats[img.Repository][r.Name]
			repo := r.Path(img.Repository)
			loc, done, err := p.prepare(ctx, r, repo, b, st)
			if err != nil {
				r.fail(fmt.Errorf("region %s: repository %s: blob %s: %w", r.Name, repo, b.Digest, err))
				return
			}
			if !done {
				mu.Lock()
				need = append(need, pending{r, loc})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for attempt := 1; len(need) > 0; attempt++ {
		uploads := make([]uploadFunc, len(need))
		counters := make([]func(int64), len(need))
		for i, n := range need {
			uploads[i] = func(ctx context.Context, body io.ReadCloser) error {
				return n.r.c.putBlob(ctx, n.loc, b.Digest, b.Size, body)
			}
			counters[i] = func(k int64) { n.r.task.Add(k) }
		}
		errs := fanOut(ctx, b, p.opts.StallTimeout, p.opts.ResponseTimeout, uploads, counters)
		var retry []pending
		for i, n := range need {
			repo := n.r.Path(img.Repository)
			st := p.stats[img.Repository][n.r.Name]
			if errs[i] == nil {
				st.mu.Lock()
				st.uploaded++
				st.bytes += b.Size
				st.mu.Unlock()
				n.r.mu.Lock()
				n.r.landed[b.Digest] = repo
				n.r.mu.Unlock()
				continue
			}
			n.r.c.cancelUpload(n.loc)
			if !retryable(ctx, errs[i]) || attempt >= p.opts.Attempts {
				n.r.fail(fmt.Errorf("region %s: repository %s: blob %s: uploading (attempt %d of %d): %w", n.r.Name, repo, b.Digest, attempt, p.opts.Attempts, errs[i]))
				continue
			}
			p.opts.Log.Warn("retrying blob upload", "region", n.r.Name, "blob", b.Digest.String(), "attempt", attempt, "error", logging.Scrub(errs[i].Error()))
			loc, _, err := n.r.c.startUpload(ctx, repo, "", b.Digest)
			if err != nil {
				n.r.fail(fmt.Errorf("region %s: repository %s: blob %s: restarting upload: %w", n.r.Name, repo, b.Digest, err))
				continue
			}
			retry = append(retry, pending{n.r, loc})
		}
		need = retry
		if len(need) > 0 {
			wait := time.Duration(200<<(attempt-1))*time.Millisecond + rand.N(200*time.Millisecond)
			select {
			case <-ctx.Done():
				for _, n := range need {
					n.r.c.cancelUpload(n.loc)
					n.r.fail(fmt.Errorf("region %s: blob %s: %w", n.r.Name, b.Digest, ctx.Err()))
				}
				return
			case <-time.After(wait):
			}
		}
	}
}

// prepare checks one region for a blob. done is true when nothing needs to
// be uploaded (present or mounted); otherwise loc is an open upload session.
func (p *pusher) prepare(ctx context.Context, r *regionState, repo string, b blob, st *stats) (loc string, done bool, err error) {
	r.mu.Lock()
	from, known := r.landed[b.Digest]
	r.mu.Unlock()
	if known && from == repo {
		p.count(r, st, b, "present")
		return "", true, nil
	}
	size, err := r.c.headBlob(ctx, repo, b.Digest)
	if err != nil {
		return "", false, fmt.Errorf("checking: %w", err)
	}
	if size == b.Size {
		p.count(r, st, b, "present")
		r.mu.Lock()
		r.landed[b.Digest] = repo
		r.mu.Unlock()
		return "", true, nil
	}
	if size >= 0 {
		// Distribution never replaces a blob it believes it has: a
		// zero-byte object left by a failed Swift/Ceph upload must be
		// removed from storage by an operator.
		return "", false, fmt.Errorf("the registry has it with %s bytes, want %d (a truncated object in the registry's storage): remove docker/registry/v2/blobs/%s/%s/%s/data from the region's storage, then rerun",
			sizeString(size), b.Size, b.Digest.Algorithm, b.Digest.Hex[:2], b.Digest.Hex)
	}
	if !known {
		from = ""
	}
	loc, mounted, err := r.c.startUpload(ctx, repo, from, b.Digest)
	if err != nil {
		return "", false, fmt.Errorf("starting upload: %w", err)
	}
	if mounted {
		p.count(r, st, b, "mounted")
		return "", true, nil
	}
	return loc, false, nil
}

func (p *pusher) count(r *regionState, st *stats, b blob, how string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	switch how {
	case "present":
		st.present++
	case "mounted":
		st.mounted++
	}
	r.task.Add(b.Size)
}

// retryable reports whether an upload error may go away on another try.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, errSourceCorrupt) {
		return false
	}
	if errors.Is(err, errStalled) {
		return true
	}
	var he *httpError
	if errors.As(err, &he) {
		return he.Status >= 500 || he.Status == http.StatusTooManyRequests || he.Status == http.StatusRequestTimeout
	}
	// Transport errors: resets, EOFs, timeouts.
	return true
}

// moveTags is phase 2: every region has every manifest; point the tags at
// them, all regions in parallel.
func (p *pusher) moveTags(ctx context.Context, images []image) error {
	var wg sync.WaitGroup
	errs := make([]error, len(p.regions))
	for i, r := range p.regions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, img := range images {
				st := p.stats[img.Repository][r.Name]
				repo := r.Path(img.Repository)
				for _, tag := range img.Tags {
					have, err := r.c.headManifest(ctx, repo, tag)
					if err == nil && have == img.Root.Digest.String() {
						st.tagsUnchanged = append(st.tagsUnchanged, tag)
						continue
					}
					if err == nil {
						err = r.c.putManifest(ctx, repo, tag, img.Root.MediaType, img.Root.Raw)
					}
					if err == nil {
						have, err = r.c.headManifest(ctx, repo, tag)
						if err == nil && have != img.Root.Digest.String() {
							err = fmt.Errorf("tag resolves to %q after the update, want %s", have, img.Root.Digest)
						}
					}
					if err != nil {
						errs[i] = fmt.Errorf("region %s: moving tag %s:%s: %w", r.Name, repo, tag, err)
						return
					}
					st.tagsMoved = append(st.tagsMoved, tag)
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		var moved []string
		for _, img := range images {
			for _, r := range p.regions {
				st := p.stats[img.Repository][r.Name]
				for _, t := range st.tagsMoved {
					moved = append(moved, r.Name+":"+r.Path(img.Repository)+":"+t)
				}
			}
		}
		sort.Strings(moved)
		if len(moved) == 0 {
			moved = []string{"none"}
		}
		return fmt.Errorf("%w; every region has every manifest by digest; tags moved: %s; rerun to move the rest", err, strings.Join(moved, ", "))
	}
	for _, img := range images {
		for _, r := range p.regions {
			st := p.stats[img.Repository][r.Name]
			p.opts.Log.Info("tags", "image", img.Name, "region", r.Name, "moved", strings.Join(st.tagsMoved, ","), "unchanged", strings.Join(st.tagsUnchanged, ","))
		}
	}
	return nil
}

func (p *pusher) result(images []image) *result.PushResult {
	res := &result.PushResult{Zuul: p.opts.Zuul}
	res.Tool = "push-registry"
	for _, img := range images {
		pi := result.PushedImage{Name: img.Name, Source: img.Source, Digest: img.Root.Digest.String()}
		for _, r := range p.regions {
			st := p.stats[img.Repository][r.Name]
			tags := slices.Clone(img.Tags)
			if tags == nil {
				tags = []string{}
			}
			pi.Regions = append(pi.Regions, result.RegionPushed{
				Region:        r.Name,
				Repository:    r.Repository(img.Repository),
				Tags:          tags,
				Digest:        img.Root.Digest.String(),
				BlobsUploaded: st.uploaded,
				BlobsMounted:  st.mounted,
				BlobsPresent:  st.present,
				BytesUploaded: st.bytes,
				Verified:      st.verified,
			})
		}
		res.Images = append(res.Images, pi)
	}
	return res
}

// writeOutputs writes the result file and the zuul_return data.
func writeOutputs(o *Options, res *result.PushResult) error {
	if o.ResultFile != "" {
		if err := result.WriteFile(o.ResultFile, res, 0o644); err != nil {
			return fmt.Errorf("writing push result: %w", err)
		}
	}
	if o.ZuulReturnFile != "" {
		if err := ZuulReturn(res).WriteFile(o.ZuulReturnFile); err != nil {
			return fmt.Errorf("writing zuul_return data: %w", err)
		}
	}
	return nil
}

// ZuulReturn is the zuul_return data for a push: one artifact per image and
// region, so later jobs of the buildset find the pinned references.
func ZuulReturn(res *result.PushResult) zuul.Return {
	var z zuul.Return
	for _, img := range res.Images {
		for _, r := range img.Regions {
			z.Artifacts = append(z.Artifacts, zuul.Artifact{
				Name: img.Name + " (" + r.Region + ")",
				URL:  "docker://" + r.Repository + "@" + r.Digest,
				Metadata: map[string]any{
					"type":       "container_image",
					"region":     r.Region,
					"repository": r.Repository,
					"digest":     r.Digest,
					"tags":       r.Tags,
				},
			})
		}
	}
	return z
}

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
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/fanout"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
	"github.com/slipwayci/slipway/internal/zuul"
)

// regionState is one region's connection and bookkeeping during a run.
type regionState struct {
	Region
	c *client
	// st is the storage of a storage-backed region (nil for a registry
	// region): damaged blobs there are repaired.
	st *storage
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
	// journal records the run's open upload sessions (uploads.go).
	journal *uploadJournal
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
	logins, err := swiftLogins(opts.Regions, &opts.Auth)
	if err != nil {
		return nil, err
	}
	images, err := resolve(ctx, &opts)
	if err != nil {
		return nil, err
	}
	regions, stores, stop, err := openStorage(ctx, &opts.Conn, opts.Log, opts.Regions, logins)
	if err != nil {
		return nil, err
	}
	p := &pusher{opts: &opts, journal: newUploadJournal(opts.StateDir, opts.Log)}
	defer func() { stop(); p.journal.close() }()
	if err := p.connect(ctx, images, regions, stores); err != nil {
		return nil, err
	}
	cancelLeftUploads(ctx, &opts.Conn, &opts.Auth, opts.Log, regions, stores)
	start := time.Now()
	if err := p.push(ctx, images); err != nil {
		return nil, err
	}
	opts.Log.Info("pushed", "images", len(images), "regions", len(p.regions), "elapsed", time.Since(start).Round(time.Millisecond).String())
	return p.result(images), nil
}

// push runs both phases, with a progress task per region.
func (p *pusher) push(ctx context.Context, images []image) error {
	var total int64
	for _, img := range images {
		total += img.Root.totalSize()
	}
	for _, r := range p.regions {
		r.task = p.opts.Progress.Start("region "+r.Name, total)
	}
	status := "done"
	defer func() {
		for _, r := range p.regions {
			r.task.Done("%s", status)
		}
	}()
	// Phase 1: blobs and manifests by digest, everywhere.
	for _, img := range images {
		crashpoint.Hit("push.image")
		if err := p.pushImage(ctx, img); err != nil {
			status = "failed"
			return p.phase1Error(ctx, err)
		}
	}
	crashpoint.Hit("push.phase1-done")
	// Read everything back before any tag moves.
	if !p.opts.NoVerify {
		if err := p.verifyAll(ctx, images); err != nil {
			status = "verify failed"
			return fmt.Errorf("%w; no tag was moved in any region", err)
		}
	}
	crashpoint.Hit("push.verified")
	// Phase 2: every region has every manifest: move the tags.
	if err := p.moveTags(ctx, images); err != nil {
		status = "tagging failed"
		return err
	}
	return nil
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

// connect opens a client per region, in parallel. A region that is down
// stops the run before anything is pushed anywhere.
func (p *pusher) connect(ctx context.Context, images []image, regions []Region, stores map[string]*storage) error {
	p.regions = make([]*regionState, len(regions))
	err := fanout.All(ctx, 0, regions, func(ctx context.Context, i int, r Region) error {
		var repos []string
		for _, img := range images {
			repos = append(repos, r.Path(img.Repository))
		}
		c, cred, err := dial(ctx, &p.opts.Auth, &p.opts.Conn, r, stores[r.Name], repos, p.journal)
		if err != nil {
			return err
		}
		p.opts.Log.Debug("connected", "region", r.Name, "registry", r.Registry, "auth", cred.String())
		p.regions[i] = &regionState{Region: r, c: c, st: stores[r.Name], landed: map[v1.Hash]string{}}
		return nil
	})
	if err != nil {
		if usererr.Is(err) {
			return err
		}
		return fmt.Errorf("%w; nothing was pushed: check the registry is reachable and rerun", err)
	}
	p.stats = map[string]map[string]*stats{}
	for _, img := range images {
		p.stats[img.Repository] = map[string]*stats{}
		for _, r := range p.regions {
			p.stats[img.Repository][r.Name] = &stats{}
		}
	}
	return nil
}

// pushImage runs phase 1 for one image: all blobs (Jobs at a time), then
// the manifests, children first, by digest.
func (p *pusher) pushImage(ctx context.Context, img image) error {
	// A failing region does not stop the others: pushBlob records its
	// error and later blobs skip it, so the healthy regions get everything.
	err := fanout.Each(ctx, p.opts.Jobs, img.Root.allBlobs(), func(ctx context.Context, _ int, b blob) error {
		p.pushBlob(ctx, img, b)
		return nil
	})
	if rerr := p.regionErrors(); rerr != nil {
		return rerr
	}
	if err != nil {
		return err
	}
	return fanout.All(ctx, 0, p.regions, func(ctx context.Context, _ int, r *regionState) error {
		repo := r.Path(img.Repository)
		var err error
		img.Root.walk(func(m *manifest) {
			if err == nil {
				err = putManifestOnce(ctx, r.c, repo, m)
			}
		})
		if err != nil {
			return fmt.Errorf("region %s: repository %s: %w", r.Name, repo, err)
		}
		return nil
	})
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
	crashpoint.Hit("push.manifest")
	return nil
}

func (p *pusher) regionErrors() error {
	var errs []error
	for _, r := range p.regions {
		errs = append(errs, r.err())
	}
	return errors.Join(errs...)
}

// pending is a region still waiting for a blob, with its upload session.
type pending struct {
	r   *regionState
	loc string
}

// uploadBackoff spaces the tries of one blob upload: 200-400 ms after the
// first, doubling from there.
var uploadBackoff = poll.Backoff{Initial: 400 * time.Millisecond, Max: 30 * time.Second, Jitter: true}

// pushBlob gets one blob into every healthy region: skip what is there,
// mount what is in another repository of the region, stream the rest from
// one read of the source, and try again where an upload failed.
func (p *pusher) pushBlob(ctx context.Context, img image, b blob) {
	need := p.prepareAll(ctx, img, b)
	if len(need) == 0 {
		return
	}
	attempt := 0
	err := poll.Until(ctx, uploadBackoff, func(ctx context.Context) (bool, error) {
		attempt++
		need = p.upload(ctx, img, b, need, attempt)
		return len(need) == 0, nil
	})
	if err != nil {
		for _, n := range need {
			n.r.c.cancelUpload(n.loc)
			n.r.fail(fmt.Errorf("region %s: blob %s: %w", n.r.Name, b.Digest, err))
		}
	}
}

// prepareAll asks every healthy region about b in parallel and returns the
// regions that need an upload.
func (p *pusher) prepareAll(ctx context.Context, img image, b blob) []pending {
	found := make([]*pending, len(p.regions))
	_ = fanout.All(ctx, 0, p.regions, func(ctx context.Context, i int, r *regionState) error {
		if r.err() != nil {
			return nil
		}
		repo := r.Path(img.Repository)
		loc, done, err := p.prepare(ctx, r, repo, b, p.stats[img.Repository][r.Name])
		if err != nil {
			r.fail(fmt.Errorf("region %s: repository %s: blob %s: %w", r.Name, repo, b.Digest, err))
		} else if !done {
			found[i] = &pending{r, loc}
		}
		return nil
	})
	var need []pending
	for _, n := range found {
		if n != nil {
			need = append(need, *n)
		}
	}
	return need
}

// upload streams b once to every region of need (try attempt) and returns
// the regions to try again, each with a new upload session.
func (p *pusher) upload(ctx context.Context, img image, b blob, need []pending, attempt int) []pending {
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
		if errs[i] == nil {
			crashpoint.Hit("push.blob-uploaded")
			p.count(n.r, p.stats[img.Repository][n.r.Name], b, "uploaded")
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
	return retry
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
	damage := ""
	switch {
	case size == b.Size && !p.opts.NoVerify && !known:
		// The registry did not get these bytes from this run: read them
		// back before trusting them (the storage may hold a damaged copy).
		// A blob this run landed in another repository of the region
		// shares that storage and was checked there.
		if damage, err = checkBlob(ctx, r.c, repo, b.Digest, b.Size); err != nil {
			return "", false, fmt.Errorf("reading back: %w", err)
		}
	case size >= 0 && size != b.Size:
		damage = fmt.Sprintf("the registry has it with %d bytes, want %d", size, b.Size)
	}
	if size == b.Size && damage == "" {
		p.count(r, st, b, "present")
		r.mu.Lock()
		r.landed[b.Digest] = repo
		r.mu.Unlock()
		return "", true, nil
	}
	if damage != "" {
		// Distribution never replaces a blob it believes it has: the
		// damaged copy must leave the storage first.
		if err := repairStorage(ctx, r.Region, r.st, b.Digest, damage); err != nil {
			return "", false, err
		}
		p.opts.Log.Warn("repairing a damaged blob", "region", r.Name, "repository", repo, "blob", b.Digest.String(), "damage", damage)
		known = false
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

// storagePath is where distribution keeps a blob in its storage.
func storagePath(d v1.Hash) string {
	return "docker/registry/v2/blobs/" + d.Algorithm + "/" + d.Hex[:2] + "/" + d.Hex + "/data"
}

// count records what happened to b in region r.
func (p *pusher) count(r *regionState, st *stats, b blob, how string) {
	st.mu.Lock()
	switch how {
	case "present":
		st.present++
	case "mounted":
		st.mounted++
	case "uploaded":
		st.uploaded++
		st.bytes += b.Size
	}
	st.mu.Unlock()
	if how != "uploaded" {
		r.task.Add(b.Size) // uploads count their bytes as they stream
	}
}

// retryable reports whether an upload error may go away on another try.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, errSourceCorrupt) {
		return false
	}
	if errors.Is(err, errStalled) {
		return true
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode >= 500 || te.StatusCode == http.StatusTooManyRequests || te.StatusCode == http.StatusRequestTimeout
	}
	// Transport errors: resets, EOFs, timeouts.
	return true
}

// moveTags is phase 2: every region has every manifest; point the tags at
// them, all regions in parallel.
func (p *pusher) moveTags(ctx context.Context, images []image) error {
	err := fanout.All(ctx, 0, p.regions, func(ctx context.Context, _ int, r *regionState) error {
		for _, img := range images {
			if err := p.tagImage(ctx, r, img); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w; every region has every manifest by digest; tags moved: %s; rerun to move the rest", err, p.movedTags(images))
	}
	for _, img := range images {
		for _, r := range p.regions {
			st := p.stats[img.Repository][r.Name]
			p.opts.Log.Info("tags", "image", img.Name, "region", r.Name, "moved", strings.Join(st.tagsMoved, ","), "unchanged", strings.Join(st.tagsUnchanged, ","))
		}
	}
	return nil
}

// tagImage moves the tags of img in region r.
func (p *pusher) tagImage(ctx context.Context, r *regionState, img image) error {
	st := p.stats[img.Repository][r.Name]
	repo := r.Path(img.Repository)
	for _, tag := range img.Tags {
		crashpoint.Hit("push.tag")
		moved, err := moveTag(ctx, r.c, repo, tag, img.Root)
		if err != nil {
			return fmt.Errorf("region %s: moving tag %s:%s: %w", r.Name, repo, tag, err)
		}
		if moved {
			st.tagsMoved = append(st.tagsMoved, tag)
		} else {
			st.tagsUnchanged = append(st.tagsUnchanged, tag)
		}
	}
	return nil
}

// moveTag points tag at m unless it already does, and checks it then does.
func moveTag(ctx context.Context, c *client, repo, tag string, m *manifest) (moved bool, err error) {
	want := m.Digest.String()
	have, err := c.headManifest(ctx, repo, tag)
	if err != nil || have == want {
		return false, err
	}
	if err := c.putManifest(ctx, repo, tag, m.MediaType, m.Raw); err != nil {
		return false, err
	}
	if have, err = c.headManifest(ctx, repo, tag); err != nil {
		return false, err
	}
	if have != want {
		return false, fmt.Errorf("tag resolves to %q after the update, want %s", have, want)
	}
	return true, nil
}

// movedTags lists the tags phase 2 moved, for the error when it failed.
func (p *pusher) movedTags(images []image) string {
	var moved []string
	for _, img := range images {
		for _, r := range p.regions {
			for _, t := range p.stats[img.Repository][r.Name].tagsMoved {
				moved = append(moved, r.Name+":"+r.Path(img.Repository)+":"+t)
			}
		}
	}
	if len(moved) == 0 {
		return "none"
	}
	sort.Strings(moved)
	return strings.Join(moved, ", ")
}

func (p *pusher) result(images []image) *result.PushResult {
	res := &result.PushResult{Zuul: p.opts.Zuul}
	for _, img := range images {
		pi := result.PushedImage{Name: img.Name, Source: img.Source, Digest: img.Root.Digest.String()}
		for _, r := range p.regions {
			st := p.stats[img.Repository][r.Name]
			tags := slices.Clone(img.Tags)
			if tags == nil {
				tags = []string{}
			}
			pi.Regions = append(pi.Regions, result.RegionPushed{
				Region:         r.Name,
				Repository:     r.Repository(img.Repository),
				NodeRepository: r.NodeRepository(img.Repository),
				Tags:           tags,
				Digest:         img.Root.Digest.String(),
				BlobsUploaded:  st.uploaded,
				BlobsMounted:   st.mounted,
				BlobsPresent:   st.present,
				BytesUploaded:  st.bytes,
				Verified:       st.verified,
			})
		}
		res.Images = append(res.Images, pi)
	}
	return res
}

// ZuulReturn is the zuul_return data for a push: one artifact per image and
// region, so later jobs of the buildset find the pinned references. The
// artifact's URL is the reference the region's nodes pull (the CI address
// of a storage-backed region lived only as long as the push).
func ZuulReturn(res *result.PushResult) zuul.Return {
	var z zuul.Return
	for _, img := range res.Images {
		for _, r := range img.Regions {
			ref, _ := img.NodeReference(r.Region)
			md := map[string]any{
				"type":       "container_image",
				"region":     r.Region,
				"repository": r.Repository,
				"digest":     r.Digest,
				"tags":       r.Tags,
			}
			if r.NodeRepository != "" {
				md["nodeRepository"] = r.NodeRepository
			}
			z.Artifacts = append(z.Artifacts, zuul.Artifact{Name: img.Name + " (" + r.Region + ")", URL: "docker://" + ref, Metadata: md})
		}
	}
	return z
}

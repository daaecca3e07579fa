package push

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipwayci/slipway/internal/fanout"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
)

// ErrMismatch marks a verify failure: a manifest or blob in a region is
// missing or differs from what was pushed.
var ErrMismatch = errors.New("registry content does not match")

// verifyAll reads back every manifest and HEADs every blob of every image
// in every region, the regions in parallel.
func (p *pusher) verifyAll(ctx context.Context, images []image) error {
	return fanout.All(ctx, 0, p.regions, func(ctx context.Context, _ int, r *regionState) error {
		for _, img := range images {
			repo := r.Path(img.Repository)
			tc := treeCheck{jobs: p.opts.Jobs, where: fmt.Sprintf("verifying region %s: repository %s", r.Name, repo)}
			if err := verifyTree(ctx, r.c, repo, img.Root.Digest.String(), tc); err != nil {
				return err
			}
			p.stats[img.Repository][r.Name].verified = true
		}
		return nil
	})
}

type manifestDoc struct {
	MediaType string          `json:"mediaType"`
	Config    *v1.Descriptor  `json:"config"`
	Layers    []v1.Descriptor `json:"layers"`
	Manifests []v1.Descriptor `json:"manifests"`
}

// treeCheck says how verifyTree checks blobs: HEAD for the size, or (deep)
// GET for the size and digest, jobs at a time; damaged (may be nil) hears
// of every damaged blob, good of every good one. where (region and
// repository) starts every error, so each bad blob reads on its own.
type treeCheck struct {
	where   string
	deep    bool
	jobs    int
	damaged func(b v1.Descriptor, damage string)
	good    func(b v1.Descriptor)
}

// verifyTree checks the manifest digest in repo and everything it refers
// to. Every bad blob is reported (errors joined), not only the first.
func verifyTree(ctx context.Context, c *client, repo, digest string, tc treeCheck) error {
	raw, err := c.getManifest(ctx, repo, digest)
	if err != nil {
		return fmt.Errorf("%s: reading manifest %s: %w", tc.where, digest, err)
	}
	if raw == nil {
		return fmt.Errorf("%s: %w: manifest %s is missing", tc.where, ErrMismatch, digest)
	}
	sum := sha256.Sum256(raw)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return fmt.Errorf("%s: %w: manifest %s reads back as %s", tc.where, ErrMismatch, digest, got)
	}
	var doc manifestDoc
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&doc); err != nil {
		return fmt.Errorf("%s: %w: manifest %s: %w", tc.where, ErrMismatch, digest, err)
	}
	var errs []error
	for _, m := range doc.Manifests {
		errs = append(errs, verifyTree(ctx, c, repo, m.Digest.String(), tc))
	}
	blobs := doc.Layers
	if doc.Config != nil {
		blobs = append([]v1.Descriptor{*doc.Config}, blobs...)
	}
	errs = append(errs, fanout.All(ctx, max(tc.jobs, 1), blobs, func(ctx context.Context, _ int, b v1.Descriptor) error {
		damage, err := tc.blob(ctx, c, repo, b)
		if err != nil {
			return fmt.Errorf("%s: checking blob %s: %w", tc.where, b.Digest, err)
		}
		if damage == "" {
			if tc.good != nil {
				tc.good(b)
			}
			return nil
		}
		if tc.damaged != nil {
			tc.damaged(b, damage)
		}
		return fmt.Errorf("%s: %w: blob %s: %s", tc.where, ErrMismatch, b.Digest, damage)
	}))
	return errors.Join(errs...)
}

// blob checks one blob as tc says; damage is "" when it is good.
func (tc treeCheck) blob(ctx context.Context, c *client, repo string, b v1.Descriptor) (damage string, err error) {
	if tc.deep {
		return checkBlob(ctx, c, repo, b.Digest, b.Size)
	}
	size, err := c.headBlob(ctx, repo, b.Digest)
	switch {
	case err != nil:
		return "", err
	case size < 0:
		return "it is missing", nil
	case size != b.Size:
		return fmt.Sprintf("the registry has it with %d bytes, want %d (a truncated object in the storage: a storage-backed region is repaired by a rerun of push; for a registry region remove %s from its storage, then push again)",
			size, b.Size, blobDir(b.Digest)), nil
	}
	return "", nil
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// ResultFile is the push result to check.
	ResultFile string
	// DeployedFile, instead of ResultFile, lists the images a site runs
	// (a deploy-k8s status or deploy result: images[].pinned, as the
	// site's nodes pull them), checked in DeployedRegion, which Regions
	// must name: a failover's preflight checks this way that every image
	// the DR site needs is whole in its region.
	DeployedFile   string
	DeployedRegion string
	// Regions gives connection settings (insecure, CA file, auth file; the
	// Swift storage of a storage-backed region) by region name; regions of
	// the result not listed use defaults.
	Regions []Region
	Auth    Auth
	// Deep reads every manifest and blob back in full (GET: size and
	// sha256) instead of HEADing the blobs.
	Deep bool
	// Repair, with Deep, repairs the damaged blobs of storage-backed
	// regions: their Swift objects are deleted and the blob copied again
	// from a region that holds it whole. No tag is moved.
	Repair bool
	// Jobs is how many blobs are read at once per image and region
	// (default 4).
	Jobs int
	// StallTimeout is that of a repair's upload (default 60s).
	StallTimeout time.Duration
	Conn
	Log *slog.Logger

	// journal records the upload sessions of repairs (uploads.go).
	journal *uploadJournal
}

// check is one image in one region of a push result.
type check struct {
	img  result.PushedImage
	rp   result.RegionPushed
	r    Region
	repo string
	st   *storage
	c    *client
}

// damagedBlob is a blob verify found damaged in one region.
type damagedBlob struct {
	ch     *check
	b      v1.Descriptor
	damage string
}

// Verify checks a push result against the live registries: every image's
// manifest digest, every blob's presence and size (Deep: its full content),
// and that every recorded tag still points at the digest.
func Verify(ctx context.Context, o VerifyOptions) error {
	if (o.ResultFile == "") == (o.DeployedFile == "") {
		return usererr.New("verify needs a push result or a deployed-images file, one of them")
	}
	if o.Repair && !o.Deep {
		return usererr.New("repair needs a deep verify (every blob read back)")
	}
	if o.Log == nil {
		o.Log = logging.Discard()
	}
	if o.Jobs <= 0 {
		o.Jobs = 4
	}
	if o.StallTimeout == 0 {
		o.StallTimeout = 60 * time.Second
	}
	o.Conn.defaults()
	checks, err := resultChecks(o)
	if err != nil {
		return err
	}
	if err := o.Auth.load(o.Regions); err != nil {
		return err
	}
	var used []Region
	seen := map[string]bool{}
	for _, ch := range checks {
		if !seen[ch.r.Name] {
			seen[ch.r.Name] = true
			used = append(used, ch.r)
		}
	}
	logins, err := swiftLogins(used, &o.Auth)
	if err != nil {
		return err
	}
	opened, stores, stop, err := openStorage(ctx, &o.Conn, o.Log, used, logins)
	if err != nil {
		return err
	}
	o.journal = newUploadJournal(o.StateDir, o.Log)
	defer func() { stop(); o.journal.close() }()
	cancelLeftUploads(ctx, &o.Conn, &o.Auth, o.Log, opened, stores)
	for i := range checks {
		if st := stores[checks[i].r.Name]; st != nil {
			checks[i].st = st
			checks[i].r.Registry = opened[slices.IndexFunc(opened, func(r Region) bool { return r.Name == checks[i].r.Name })].Registry
		}
	}
	var (
		mu      sync.Mutex
		damaged []damagedBlob
		good    = map[string][]*check{} // blob digest → checks holding it whole
	)
	err = fanout.All(ctx, 0, checks, func(ctx context.Context, i int, _ check) error {
		ch := &checks[i]
		tc := treeCheck{deep: o.Deep, jobs: o.Jobs,
			damaged: func(b v1.Descriptor, damage string) {
				mu.Lock()
				defer mu.Unlock()
				damaged = append(damaged, damagedBlob{ch, b, damage})
			},
			good: func(b v1.Descriptor) {
				mu.Lock()
				defer mu.Unlock()
				good[b.Digest.String()] = append(good[b.Digest.String()], ch)
			},
		}
		if err := verifyCheck(ctx, &o, ch, tc); err != nil {
			return err
		}
		o.Log.Info("verified", "image", ch.img.Name, "region", ch.r.Name, "reference", ch.rp.Repository+"@"+ch.rp.Digest, "deep", o.Deep)
		return nil
	})
	if err == nil || !o.Repair || len(damaged) == 0 {
		return err
	}
	return repairAll(ctx, &o, damaged, good)
}

// repairAll repairs every damaged blob of a storage-backed region from a
// whole copy in another region, then reads it back. err is what the deep
// verify found; the result names what is still wrong.
func repairAll(ctx context.Context, o *VerifyOptions, damaged []damagedBlob, good map[string][]*check) error {
	source := func(d damagedBlob) *check {
		for _, ch := range good[d.b.Digest.String()] {
			if ch.r.Name != d.ch.r.Name {
				return ch
			}
		}
		return nil
	}
	// One repair per region and blob: its repositories share the data.
	seen := map[string]bool{}
	damaged = slices.DeleteFunc(damaged, func(d damagedBlob) bool {
		k := d.ch.r.Name + " " + d.b.Digest.String()
		dup := seen[k]
		seen[k] = true
		return dup
	})
	repairable := 0
	for _, d := range damaged {
		if d.ch.st != nil && source(d) != nil {
			repairable++
		}
	}
	if repairable != len(damaged) {
		var errs []error
		for _, d := range damaged {
			switch {
			case d.ch.st == nil:
				errs = append(errs, fmt.Errorf("region %s: repository %s: blob %s: %w", d.ch.r.Name, d.ch.repo, d.b.Digest, repairStorage(ctx, d.ch.r, nil, d.b.Digest, d.damage)))
			case source(d) == nil:
				errs = append(errs, fmt.Errorf("region %s: repository %s: blob %s: %w: %s; no region holds a whole copy: push the image again from its source (push repairs it)", d.ch.r.Name, d.ch.repo, d.b.Digest, ErrDamaged, d.damage))
			}
		}
		return fmt.Errorf("%w; nothing was repaired", errors.Join(errs...))
	}
	err := fanout.All(ctx, o.Jobs, damaged, func(ctx context.Context, _ int, d damagedBlob) error {
		if err := repairFrom(ctx, o, d, source(d)); err != nil {
			return fmt.Errorf("region %s: repository %s: blob %s: %w", d.ch.r.Name, d.ch.repo, d.b.Digest, err)
		}
		o.Log.Warn("repaired a damaged blob", "region", d.ch.r.Name, "repository", d.ch.repo, "blob", d.b.Digest.String(), "damage", d.damage)
		return nil
	})
	if err != nil {
		return fmt.Errorf("repairing: %w; rerun verify --deep --repair", err)
	}
	// Read back what was damaged, tags included, now it is whole.
	var again []*check
	for _, d := range damaged {
		if !slices.Contains(again, d.ch) {
			again = append(again, d.ch)
		}
	}
	return fanout.All(ctx, 0, again, func(ctx context.Context, _ int, ch *check) error {
		return verifyCheck(ctx, o, ch, treeCheck{deep: true, jobs: o.Jobs})
	})
}

// repairFrom deletes the damaged copy of d.b and copies it again from the
// region of src, streaming (the copy is checked against its digest on the
// way), then reads it back.
func repairFrom(ctx context.Context, o *VerifyOptions, d damagedBlob, src *check) error {
	if err := repairStorage(ctx, d.ch.r, d.ch.st, d.b.Digest, d.damage); err != nil {
		return err
	}
	b := blob{Digest: d.b.Digest, Size: d.b.Size, open: func() (io.ReadCloser, error) {
		return src.c.openBlob(ctx, src.repo, d.b.Digest)
	}}
	loc, mounted, err := d.ch.c.startUpload(ctx, d.ch.repo, "", d.b.Digest)
	if err != nil {
		return fmt.Errorf("starting upload: %w", err)
	}
	if !mounted {
		errs := fanOut(ctx, b, o.StallTimeout, 5*time.Minute, []uploadFunc{func(ctx context.Context, body io.ReadCloser) error {
			return d.ch.c.putBlob(ctx, loc, d.b.Digest, d.b.Size, body)
		}}, nil)
		if errs[0] != nil {
			d.ch.c.cancelUpload(loc)
			return fmt.Errorf("copying from region %s: %w", src.r.Name, errs[0])
		}
	}
	damage, err := checkBlob(ctx, d.ch.c, d.ch.repo, d.b.Digest, d.b.Size)
	if err != nil {
		return fmt.Errorf("reading back the repaired blob: %w", err)
	}
	if damage != "" {
		return fmt.Errorf("%w: after the repair %s", ErrDamaged, damage)
	}
	return nil
}

// resultChecks lists the checks of the push result, with each region's
// connection settings.
func resultChecks(o VerifyOptions) ([]check, error) {
	if o.DeployedFile != "" {
		return deployedChecks(o)
	}
	var res result.PushResult
	if err := result.ReadFile(o.ResultFile, &res); err != nil {
		return nil, usererr.Errorf("push result: %w", err)
	}
	byName := map[string]Region{}
	for _, r := range o.Regions {
		byName[r.Name] = r
	}
	var checks []check
	for i, img := range res.Images {
		for j, rp := range img.Regions {
			host, repo, ok := strings.Cut(rp.Repository, "/")
			if !ok || rp.Digest == "" {
				return nil, usererr.Errorf("push result %s: images[%d].regions[%d]: repository %q / digest %q incomplete", o.ResultFile, i, j, rp.Repository, rp.Digest)
			}
			r, known := byName[rp.Region]
			if !known && rp.NodeRepository != "" && strings.HasPrefix(host, "127.0.0.1:") {
				return nil, usererr.Errorf("push result %s: region %s was pushed through push-registry's own registry on its Swift storage: give the targets file that names its swift storage", o.ResultFile, rp.Region)
			}
			if !known {
				r = Region{Name: rp.Region}
			}
			// A storage-backed region's registry is the one verify runs:
			// the result's host was that of the push's own, gone since.
			if !r.storage() {
				r.Registry = host
			}
			r.Namespace = ""
			checks = append(checks, check{img: img, rp: rp, r: r, repo: repo})
		}
	}
	return checks, nil
}

// verifyCheck checks one image in one region: its tree, then its tags.
func verifyCheck(ctx context.Context, o *VerifyOptions, ch *check, tc treeCheck) error {
	c, _, err := dial(ctx, &o.Auth, &o.Conn, ch.r, ch.st, []string{ch.repo}, o.journal)
	if err != nil {
		return err
	}
	ch.c = c
	tc.where = fmt.Sprintf("region %s: repository %s", ch.r.Name, ch.repo)
	if err := verifyTree(ctx, c, ch.repo, ch.rp.Digest, tc); err != nil {
		return err
	}
	for _, tag := range ch.rp.Tags {
		have, err := c.headManifest(ctx, ch.repo, tag)
		if err != nil {
			return fmt.Errorf("region %s: tag %s:%s: %w", ch.r.Name, ch.repo, tag, err)
		}
		if have != ch.rp.Digest {
			return fmt.Errorf("region %s: %w: tag %s:%s points at %q, want %s", ch.r.Name, ErrMismatch, ch.repo, tag, have, ch.rp.Digest)
		}
	}
	return nil
}

// deployedImages is what deployedChecks reads of a deploy-k8s status or
// deploy result.
type deployedImages struct {
	Images []result.DeployedImage `json:"images"`
}

// deployedChecks are the checks of a site's deployed images in
// o.DeployedRegion: each pinned reference names the region's node
// registry (or its registry), and is looked up in the region's registry.
func deployedChecks(o VerifyOptions) ([]check, error) {
	raw, err := os.ReadFile(o.DeployedFile)
	if err != nil {
		return nil, usererr.Errorf("deployed images: %w", err)
	}
	var d deployedImages
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, usererr.Errorf("deployed images %s: not a deploy-k8s status or deploy result: %w", o.DeployedFile, err)
	}
	i := slices.IndexFunc(o.Regions, func(r Region) bool { return r.Name == o.DeployedRegion })
	if i < 0 {
		return nil, usererr.Errorf("deployed images %s: region %q is not among the targets' regions", o.DeployedFile, o.DeployedRegion)
	}
	r := o.Regions[i]
	// The pinned references hold the namespace already.
	at := r
	at.Namespace = ""
	if len(d.Images) == 0 {
		return nil, usererr.Errorf("deployed images %s: no images (is the site deployed?)", o.DeployedFile)
	}
	var checks []check
	seen := map[string]bool{}
	for j, img := range d.Images {
		ref, err := name.NewDigest(img.Pinned, name.StrictValidation)
		if err != nil {
			return nil, usererr.Errorf("deployed images %s: images[%d].pinned: %q is not repository@digest: %v", o.DeployedFile, j, img.Pinned, err)
		}
		host := ref.Context().RegistryStr()
		if host != r.nodeRegistry() && host != r.Registry {
			return nil, usererr.Errorf("deployed images %s: images[%d].pinned: %q is not pulled from region %s (its nodes pull %s)",
				o.DeployedFile, j, img.Pinned, r.Name, cmp.Or(r.nodeRegistry(), r.Registry))
		}
		if seen[img.Pinned] {
			continue
		}
		seen[img.Pinned] = true
		checks = append(checks, check{img: result.PushedImage{Name: img.Reference, Digest: ref.DigestStr()},
			rp: result.RegionPushed{Region: r.Name, Repository: ref.Context().Name(), Digest: ref.DigestStr()},
			r:  at, repo: ref.Context().RepositoryStr()})
	}
	return checks, nil
}

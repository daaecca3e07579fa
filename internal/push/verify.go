package push

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipwayci/slipway/internal/fanout"
	"github.com/slipwayci/slipway/internal/httpx"
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
			if err := verifyTree(ctx, r.c, repo, img.Root.Digest.String()); err != nil {
				return fmt.Errorf("verifying region %s: repository %s: %w", r.Name, repo, err)
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

// verifyTree checks the manifest digest in repo and everything it refers to.
func verifyTree(ctx context.Context, c *client, repo, digest string) error {
	raw, err := c.getManifest(ctx, repo, digest)
	if err != nil {
		return fmt.Errorf("reading manifest %s: %w", digest, err)
	}
	if raw == nil {
		return fmt.Errorf("%w: manifest %s is missing", ErrMismatch, digest)
	}
	sum := sha256.Sum256(raw)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return fmt.Errorf("%w: manifest %s reads back as %s", ErrMismatch, digest, got)
	}
	var doc manifestDoc
	if err := json.NewDecoder(bytes.NewReader(raw)).Decode(&doc); err != nil {
		return fmt.Errorf("%w: manifest %s: %w", ErrMismatch, digest, err)
	}
	for _, m := range doc.Manifests {
		if err := verifyTree(ctx, c, repo, m.Digest.String()); err != nil {
			return err
		}
	}
	blobs := doc.Layers
	if doc.Config != nil {
		blobs = append([]v1.Descriptor{*doc.Config}, blobs...)
	}
	return fanout.All(ctx, 4, blobs, func(ctx context.Context, _ int, b v1.Descriptor) error {
		size, err := c.headBlob(ctx, repo, b.Digest)
		switch {
		case err != nil:
			return fmt.Errorf("checking blob %s: %w", b.Digest, err)
		case size < 0:
			return fmt.Errorf("%w: blob %s is missing", ErrMismatch, b.Digest)
		case size != b.Size:
			return fmt.Errorf("%w: blob %s has %d bytes, want %d (a truncated object in the registry's storage: remove %s there, then push again)",
				ErrMismatch, b.Digest, size, b.Size, storagePath(b.Digest))
		}
		return nil
	})
}

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// ResultFile is the push result to check.
	ResultFile string
	// Regions gives connection settings (insecure, CA file, auth file) by
	// region name; regions of the result not listed use defaults.
	Regions []Region
	Auth    Auth
	Retry   *httpx.RetryPolicy
	Log     *slog.Logger
}

// check is one image in one region of a push result.
type check struct {
	img  result.PushedImage
	rp   result.RegionPushed
	r    Region
	repo string
}

// Verify checks a push result against the live registries: every image's
// manifest digest, every blob's presence and size, and that every recorded
// tag still points at the digest.
func Verify(ctx context.Context, o VerifyOptions) error {
	if o.ResultFile == "" {
		return usererr.New("no push result to verify")
	}
	if o.Log == nil {
		o.Log = logging.Discard()
	}
	if o.Retry == nil {
		r := httpx.DefaultRetry()
		o.Retry = &r
	}
	checks, err := resultChecks(o)
	if err != nil {
		return err
	}
	if err := o.Auth.load(o.Regions); err != nil {
		return err
	}
	return fanout.All(ctx, 0, checks, func(ctx context.Context, _ int, ch check) error {
		if err := verifyCheck(ctx, &o, ch); err != nil {
			return err
		}
		o.Log.Info("verified", "image", ch.img.Name, "region", ch.r.Name, "reference", ch.rp.Repository+"@"+ch.rp.Digest)
		return nil
	})
}

// resultChecks lists the checks of the push result, with each region's
// connection settings.
func resultChecks(o VerifyOptions) ([]check, error) {
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
			if !known {
				r = Region{Name: rp.Region}
			}
			r.Registry, r.Namespace = host, ""
			checks = append(checks, check{img, rp, r, repo})
		}
	}
	return checks, nil
}

// verifyCheck checks one image in one region: its tree, then its tags.
func verifyCheck(ctx context.Context, o *VerifyOptions, ch check) error {
	cred, err := o.Auth.credential(ch.r)
	if err != nil {
		return err
	}
	c, err := newClient(ctx, ch.r, cred, *o.Retry, []string{ch.repo})
	if err != nil {
		return err
	}
	if err := verifyTree(ctx, c, ch.repo, ch.rp.Digest); err != nil {
		return fmt.Errorf("region %s: repository %s: %w", ch.r.Name, ch.repo, err)
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

package buildimage

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipwayci/slipway/internal/result"
)

// Backend builds one planned image into an OCI image layout.
type Backend interface {
	// Build writes p as the only image of a new OCI layout at dir. deps
	// holds the images p depends on, already built.
	Build(ctx context.Context, p *Planned, deps map[string]*Built, dir string) error
	// Close releases what the backend set up (storage, temp files).
	Close(ctx context.Context) error
}

// preflighter is a Backend that can tell before any build that it cannot
// work (no daemon, no tool), so bad set-ups build nothing.
type preflighter interface {
	Preflight(ctx context.Context) error
}

// Built is an image of this run, written to its layout.
type Built struct {
	*Planned
	Backend string
	// Layout is the layout directory (a temporary one until the run ends).
	Layout string
	// Manifest is the descriptor of the image's manifest.
	Manifest v1.Descriptor
}

// Image opens the built image from its layout.
func (b *Built) Image() (v1.Image, error) {
	p, err := layout.FromPath(b.Layout)
	if err != nil {
		return nil, fmt.Errorf("opening layout of %s: %w", b.Name, err)
	}
	img, err := p.Image(b.Manifest.Digest)
	if err != nil {
		return nil, fmt.Errorf("opening %s in its layout: %w", b.Name, err)
	}
	return img, nil
}

// refNameAnnotation names an image in an OCI layout's index.json.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// finalizeLayout rewrites the index of a layout holding one image so the
// image is listed once per tag (oci:DIR:TAG works for each), and returns the
// image's manifest descriptor.
func finalizeLayout(dir string, tags []string) (v1.Descriptor, error) {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("reading layout %s: %w", dir, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("reading layout %s: %w", dir, err)
	}
	if len(im.Manifests) == 0 {
		return v1.Descriptor{}, fmt.Errorf("layout %s holds no image", dir)
	}
	desc := im.Manifests[0]
	for _, m := range im.Manifests[1:] {
		if m.Digest != desc.Digest {
			return v1.Descriptor{}, fmt.Errorf("layout %s holds more than one image (%s, %s)", dir, desc.Digest, m.Digest)
		}
	}
	desc.Annotations = nil
	out := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	for _, t := range tags {
		d := desc
		d.Annotations = map[string]string{refNameAnnotation: t}
		out.Manifests = append(out.Manifests, d)
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return v1.Descriptor{}, err
	}
	if err := result.WriteAtomic(filepath.Join(dir, "index.json"), append(data, '\n'), 0o644); err != nil {
		return v1.Descriptor{}, err
	}
	return desc, nil
}

// describe reads what the result file records about a built image.
func describeBuilt(b *Built) (result.BuiltImage, error) {
	img, err := b.Image()
	if err != nil {
		return result.BuiltImage{}, err
	}
	m, err := img.Manifest()
	if err != nil {
		return result.BuiltImage{}, fmt.Errorf("reading manifest of %s: %w", b.Name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return result.BuiltImage{}, fmt.Errorf("reading config of %s: %w", b.Name, err)
	}
	size := b.Manifest.Size + m.Config.Size
	for _, l := range m.Layers {
		size += l.Size
	}
	mt := b.Manifest.MediaType
	return result.BuiltImage{
		Name:           b.Name,
		Repository:     b.Repository,
		Tags:           append([]string(nil), b.Tags...),
		ManifestDigest: b.Manifest.Digest.String(),
		ConfigDigest:   m.Config.Digest.String(),
		MediaType:      string(mt),
		Size:           size,
		Labels:         cf.Config.Labels,
		Layout:         b.Layout,
		Backend:        b.Backend,
	}, nil
}

// removeAll is os.RemoveAll for cleanup paths, where a failure only leaves
// a stray temporary directory.
func removeAll(dir string) {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

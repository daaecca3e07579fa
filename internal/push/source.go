package push

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
)

// blob is one content-addressed blob of an image (config or layer).
type blob struct {
	Digest v1.Hash
	Size   int64
	// open streams the blob from the source; called once per upload attempt.
	open func() (io.ReadCloser, error)
}

// manifest is one manifest of an image: an image manifest with its blobs,
// or an index with its child manifests. Children are pushed before parents.
type manifest struct {
	Digest    v1.Hash
	MediaType string
	Raw       []byte
	Blobs     []blob
	Children  []*manifest
}

// walk calls fn for every manifest, children before parents.
func (m *manifest) walk(fn func(*manifest)) {
	for _, c := range m.Children {
		c.walk(fn)
	}
	fn(m)
}

// blobs returns every distinct blob of the tree, in first-seen order.
func (m *manifest) allBlobs() []blob {
	seen := map[v1.Hash]bool{}
	var out []blob
	m.walk(func(x *manifest) {
		for _, b := range x.Blobs {
			if !seen[b.Digest] {
				seen[b.Digest] = true
				out = append(out, b)
			}
		}
	})
	return out
}

func (m *manifest) totalSize() int64 {
	var n int64
	for _, b := range m.allBlobs() {
		n += b.Size
	}
	return n
}

// image is one image to push: where it comes from, where it goes.
type image struct {
	Name       string
	Source     string
	Repository string
	Tags       []string
	Root       *manifest
}

// describable is what an image and an index share.
type describable interface {
	RawManifest() ([]byte, error)
	Digest() (v1.Hash, error)
	MediaType() (types.MediaType, error)
}

// newManifest reads the manifest of x (what: "manifest" or "index").
func newManifest(x describable, what string) (*manifest, error) {
	raw, err := x.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	d, err := x.Digest()
	if err != nil {
		return nil, fmt.Errorf("digesting %s: %w", what, err)
	}
	mt, err := x.MediaType()
	if err != nil {
		return nil, fmt.Errorf("reading %s media type: %w", what, err)
	}
	return &manifest{Digest: d, MediaType: string(mt), Raw: raw}, nil
}

// fromImage builds the manifest tree of a single-platform image.
func fromImage(img v1.Image) (*manifest, error) {
	out, err := newManifest(img, "manifest")
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(out.Raw))
	if err != nil {
		return nil, fmt.Errorf("parsing manifest %s: %w", out.Digest, err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config of %s: %w", out.Digest, err)
	}
	out.Blobs = append(out.Blobs, blob{Digest: m.Config.Digest, Size: m.Config.Size, open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(cfg)), nil
	}})
	for _, desc := range m.Layers {
		out.Blobs = append(out.Blobs, blob{Digest: desc.Digest, Size: desc.Size, open: func() (io.ReadCloser, error) {
			layer, err := img.LayerByDigest(desc.Digest)
			if err != nil {
				return nil, err
			}
			return layer.Compressed()
		}})
	}
	return out, nil
}

// fromIndex builds the tree of a multi-platform index, copied whole.
func fromIndex(ii v1.ImageIndex) (*manifest, error) {
	out, err := newManifest(ii, "index")
	if err != nil {
		return nil, err
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(out.Raw))
	if err != nil {
		return nil, fmt.Errorf("parsing index %s: %w", out.Digest, err)
	}
	for _, desc := range im.Manifests {
		c, err := fromChild(ii, desc)
		if err != nil {
			return nil, fmt.Errorf("index %s: %w", out.Digest, err)
		}
		out.Children = append(out.Children, c)
	}
	return out, nil
}

// fromChild builds the tree of the manifest desc of ii: an image or an index.
func fromChild(ii v1.ImageIndex, desc v1.Descriptor) (*manifest, error) {
	switch {
	case desc.MediaType.IsIndex():
		sub, err := ii.ImageIndex(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading index %s: %w", desc.Digest, err)
		}
		return fromIndex(sub)
	case desc.MediaType.IsImage():
		img, err := ii.Image(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading image %s: %w", desc.Digest, err)
		}
		return fromImage(img)
	}
	return nil, fmt.Errorf("manifest %s has unsupported media type %q", desc.Digest, desc.MediaType)
}

// loadLayout opens the image in an OCI layout directory and checks every
// blob file is there with the size its manifest says, before anything is
// pushed. ref selects one manifest of index.json: a digest, or an
// org.opencontainers.image.ref.name; empty means the only one.
func loadLayout(dir, ref string) (*manifest, error) {
	m, err := readLayout(dir, ref)
	if err != nil {
		return nil, usererr.Errorf("OCI layout %s: %w", dir, err)
	}
	return m, nil
}

func readLayout(dir, ref string) (*manifest, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return nil, errors.Unwrap(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	d, err := pickManifest(dir, im, ref)
	if err != nil {
		return nil, err
	}
	m, err := fromChild(ii, d)
	if err != nil {
		return nil, err
	}
	for _, b := range m.allBlobs() {
		st, err := os.Stat(filepath.Join(dir, "blobs", b.Digest.Algorithm, b.Digest.Hex))
		if err != nil {
			return nil, fmt.Errorf("blob %s is missing", b.Digest)
		}
		if st.Size() != b.Size {
			return nil, fmt.Errorf("blob %s has %d bytes, the manifest says %d", b.Digest, st.Size(), b.Size)
		}
	}
	return m, nil
}

// pickManifest selects the one manifest of index.json that ref names.
func pickManifest(dir string, im *v1.IndexManifest, ref string) (v1.Descriptor, error) {
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		// Entries naming a digest already found are the same image under
		// another tag (build-image writes one entry per tag).
		if slices.ContainsFunc(found, func(f v1.Descriptor) bool { return f.Digest == d.Digest }) {
			continue
		}
		if ref == "" || (strings.HasPrefix(ref, "sha256:") && d.Digest.String() == ref) || d.Annotations["org.opencontainers.image.ref.name"] == ref {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0 && ref != "":
		return v1.Descriptor{}, fmt.Errorf("no manifest %q in index.json", ref)
	case len(found) == 0:
		return v1.Descriptor{}, errors.New("index.json lists no manifest")
	case len(found) > 1:
		return v1.Descriptor{}, fmt.Errorf("index.json lists %d manifests: select one with oci:%s:REF or oci:%s@sha256:DIGEST", len(found), dir, dir)
	}
	return found[0], nil
}

// loadArchive opens a docker-archive tarball (docker save). tag selects one
// image when the archive holds several.
func loadArchive(path, tag string) (*manifest, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, usererr.Errorf("docker archive: %w", err)
	}
	var t *name.Tag
	if tag != "" {
		tt, err := name.NewTag(tag)
		if err != nil {
			return nil, usererr.Errorf("docker archive %s: tag %q: %w", path, tag, err)
		}
		t = &tt
	}
	img, err := tarball.ImageFromPath(path, t)
	if err != nil {
		return nil, usererr.Errorf("docker archive %s: %w", path, err)
	}
	m, err := fromImage(img)
	if err != nil {
		return nil, usererr.Errorf("docker archive %s: %w", path, err)
	}
	return m, nil
}

// loadRemote reads an image or index from a registry, pinned by digest so
// every region gets exactly what was resolved once.
func loadRemote(ctx context.Context, ref name.Reference, opts ...remote.Option) (*manifest, error) {
	desc, err := remote.Get(ref, append(opts, remote.WithContext(ctx))...)
	if err != nil {
		return nil, fmt.Errorf("reading source %s: %w", ref, cleanErr(err))
	}
	if desc.MediaType.IsIndex() {
		ii, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("reading source index %s: %w", ref, err)
		}
		return fromIndex(ii)
	}
	if desc.MediaType == types.DockerManifestSchema1 || desc.MediaType == types.DockerManifestSchema1Signed {
		return nil, usererr.Errorf("source %s is a schema 1 manifest: not supported", ref)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("reading source image %s: %w", ref, err)
	}
	return fromImage(img)
}

// sourceSpec is a parsed --source value.
type sourceSpec struct {
	Kind string // "oci", "docker-archive", "docker"
	Path string // layout dir, archive file, or reference
	Ref  string // layout ref / archive tag
}

// parseSource parses a source: oci:DIR[:REF|@DIGEST], docker-archive:FILE[:TAG],
// docker://REFERENCE, or a plain registry reference.
func parseSource(s string) (sourceSpec, error) {
	switch {
	case s == "":
		return sourceSpec{}, optionError("source", "empty (want oci:DIR, docker-archive:FILE or HOST/REPO:TAG|@sha256:...)")
	case strings.HasPrefix(s, "oci:"):
		rest := strings.TrimPrefix(s, "oci:")
		if i := strings.Index(rest, "@sha256:"); i >= 0 {
			return sourceSpec{Kind: "oci", Path: rest[:i], Ref: rest[i+1:]}, nil
		}
		if i := strings.LastIndex(rest, ":"); i >= 0 {
			return sourceSpec{Kind: "oci", Path: rest[:i], Ref: rest[i+1:]}, nil
		}
		return sourceSpec{Kind: "oci", Path: rest}, nil
	case strings.HasPrefix(s, "docker-archive:"):
		rest := strings.TrimPrefix(s, "docker-archive:")
		path, tag, _ := strings.Cut(rest, ":")
		return sourceSpec{Kind: "docker-archive", Path: path, Ref: tag}, nil
	}
	ref := strings.TrimPrefix(s, "docker://")
	if _, err := name.ParseReference(ref, name.StrictValidation); err != nil {
		return sourceSpec{}, optionError("source", "%q is not an image reference (want oci:DIR, docker-archive:FILE or HOST/REPO:TAG|@sha256:...): %v", s, err)
	}
	return sourceSpec{Kind: "docker", Path: ref}, nil
}

// buildImages lists the images of a build-image result file.
func buildImages(path string) ([]image, error) {
	var br result.BuildResult
	if err := result.ReadFile(path, &br); err != nil {
		return nil, usererr.Errorf("build result: %w", err)
	}
	if len(br.Images) == 0 {
		return nil, usererr.Errorf("build result %s lists no images", path)
	}
	var out []image
	for i, bi := range br.Images {
		if bi.Repository == "" {
			return nil, usererr.Errorf("build result %s: images[%d] (%s): repository is empty", path, i, bi.Name)
		}
		if _, err := name.NewRepository("example.invalid/"+bi.Repository, name.StrictValidation); err != nil {
			return nil, usererr.Errorf("build result %s: images[%d] (%s): repository %q is invalid", path, i, bi.Name, bi.Repository)
		}
		if bi.ManifestDigest == "" {
			return nil, usererr.Errorf("build result %s: images[%d] (%s): manifestDigest is empty", path, i, bi.Name)
		}
		dir := bi.Layout
		if dir != "" && !filepath.IsAbs(dir) {
			dir = filepath.Join(filepath.Dir(path), dir)
		}
		out = append(out, image{Name: bi.Name, Source: dir, Repository: bi.Repository, Tags: bi.Tags})
		out[len(out)-1].Source = "oci:" + dir + "@" + bi.ManifestDigest
	}
	return out, nil
}

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

// fromImage builds the manifest tree of a single-platform image.
func fromImage(img v1.Image) (*manifest, error) {
	raw, err := img.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("digesting manifest: %w", err)
	}
	mt, err := img.MediaType()
	if err != nil {
		return nil, fmt.Errorf("reading media type: %w", err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing manifest %s: %w", d, err)
	}
	out := &manifest{Digest: d, MediaType: string(mt), Raw: raw}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config of %s: %w", d, err)
	}
	out.Blobs = append(out.Blobs, blob{Digest: m.Config.Digest, Size: m.Config.Size, open: func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(cfg)), nil
	}})
	for _, l := range m.Layers {
		desc := l
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
	raw, err := ii.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("reading index: %w", err)
	}
	d, err := ii.Digest()
	if err != nil {
		return nil, fmt.Errorf("digesting index: %w", err)
	}
	mt, err := ii.MediaType()
	if err != nil {
		return nil, fmt.Errorf("reading index media type: %w", err)
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parsing index %s: %w", d, err)
	}
	out := &manifest{Digest: d, MediaType: string(mt), Raw: raw}
	for _, desc := range im.Manifests {
		var child *manifest
		switch {
		case desc.MediaType.IsIndex():
			sub, err := ii.ImageIndex(desc.Digest)
			if err != nil {
				return nil, fmt.Errorf("reading index %s: %w", desc.Digest, err)
			}
			child, err = fromIndex(sub)
			if err != nil {
				return nil, err
			}
		case desc.MediaType.IsImage():
			img, err := ii.Image(desc.Digest)
			if err != nil {
				return nil, fmt.Errorf("reading image %s: %w", desc.Digest, err)
			}
			child, err = fromImage(img)
			if err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("index %s: child %s has unsupported media type %q", d, desc.Digest, desc.MediaType)
		}
		out.Children = append(out.Children, child)
	}
	return out, nil
}

// loadLayout opens the image in an OCI layout directory. ref selects one
// manifest of index.json: a digest, or an org.opencontainers.image.ref.name;
// empty means the only one.
func loadLayout(dir, ref string) (*manifest, error) {
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err != nil {
		return nil, badInput("OCI layout %s: %v", dir, errors.Unwrap(err))
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, badInput("OCI layout %s: %v", dir, err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return nil, badInput("OCI layout %s: %v", dir, err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, badInput("OCI layout %s: index.json: %v", dir, err)
	}
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		// Entries naming a digest already found are the same image under
		// another tag (build-image writes one entry per tag).
		if slices.ContainsFunc(found, func(f v1.Descriptor) bool { return f.Digest == d.Digest }) {
			continue
		}
		switch {
		case ref == "":
			found = append(found, d)
		case strings.HasPrefix(ref, "sha256:") && d.Digest.String() == ref:
			found = append(found, d)
		case d.Annotations["org.opencontainers.image.ref.name"] == ref:
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0 && ref != "":
		return nil, badInput("OCI layout %s: no manifest %q in index.json", dir, ref)
	case len(found) == 0:
		return nil, badInput("OCI layout %s: index.json lists no manifest", dir)
	case len(found) > 1:
		return nil, badInput("OCI layout %s: index.json lists %d manifests: select one with oci:%s:REF or @sha256:...", dir, len(found), dir)
	}
	d := found[0]
	if d.MediaType.IsIndex() {
		sub, err := ii.ImageIndex(d.Digest)
		if err != nil {
			return nil, badInput("OCI layout %s: index %s: %v", dir, d.Digest, err)
		}
		return checkedTree(fromIndex(sub))(dir)
	}
	img, err := ii.Image(d.Digest)
	if err != nil {
		return nil, badInput("OCI layout %s: image %s: %v", dir, d.Digest, err)
	}
	return checkedTree(fromImage(img))(dir)
}

// checkedTree turns a tree-building error into a bad-input error about the
// layout, and checks every blob file is there with the size its manifest
// says, before anything is pushed.
func checkedTree(m *manifest, err error) func(string) (*manifest, error) {
	return func(dir string) (*manifest, error) {
		if err != nil {
			return nil, badInput("OCI layout %s: %v", dir, err)
		}
		for _, b := range m.allBlobs() {
			st, err := os.Stat(filepath.Join(dir, "blobs", b.Digest.Algorithm, b.Digest.Hex))
			if err != nil {
				return nil, badInput("OCI layout %s: blob %s is missing", dir, b.Digest)
			}
			if st.Size() != b.Size {
				return nil, badInput("OCI layout %s: blob %s has %d bytes, the manifest says %d", dir, b.Digest, st.Size(), b.Size)
			}
		}
		return m, nil
	}
}

// loadArchive opens a docker-archive tarball (docker save). tag selects one
// image when the archive holds several.
func loadArchive(path, tag string) (*manifest, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, badInput("docker archive: %v", err)
	}
	var t *name.Tag
	if tag != "" {
		tt, err := name.NewTag(tag)
		if err != nil {
			return nil, badInput("docker archive %s: tag %q: %v", path, tag, err)
		}
		t = &tt
	}
	img, err := tarball.ImageFromPath(path, t)
	if err != nil {
		return nil, badInput("docker archive %s: %v", path, err)
	}
	m, err := fromImage(img)
	if err != nil {
		return nil, badInput("docker archive %s: %v", path, err)
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
		return nil, badInput("source %s is a schema 1 manifest: not supported", ref)
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

// ParseSource parses a source: oci:DIR[:REF|@DIGEST], docker-archive:FILE[:TAG],
// docker://REFERENCE, or a plain registry reference.
func parseSource(s string) (sourceSpec, error) {
	switch {
	case s == "":
		return sourceSpec{}, badInput("--source is empty")
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
		return sourceSpec{}, badInput("--source %q: not an image reference (want oci:DIR, docker-archive:FILE or host/repo:tag|@sha256:...): %v", s, err)
	}
	return sourceSpec{Kind: "docker", Path: ref}, nil
}

// buildImages lists the images of a build-image result file.
func buildImages(path string) ([]image, error) {
	var br result.BuildResult
	if err := result.ReadFile(path, &br); err != nil {
		return nil, badInput("build result: %v", err)
	}
	if len(br.Images) == 0 {
		return nil, badInput("build result %s lists no images", path)
	}
	var out []image
	for i, bi := range br.Images {
		if bi.Repository == "" {
			return nil, badInput("build result %s: images[%d] (%s): repository is empty", path, i, bi.Name)
		}
		if _, err := name.NewRepository("example.invalid/"+bi.Repository, name.StrictValidation); err != nil {
			return nil, badInput("build result %s: images[%d] (%s): repository %q is invalid", path, i, bi.Name, bi.Repository)
		}
		if bi.ManifestDigest == "" {
			return nil, badInput("build result %s: images[%d] (%s): manifestDigest is empty", path, i, bi.Name)
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

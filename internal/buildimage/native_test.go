package buildimage

import (
	"archive/tar"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipwayci/slipway/internal/buildimage/buildtest"
)

// TestNativeLayerNormalised: the layer's tar headers carry no owner, no
// real mtime and only git's notion of permissions, in lexical order, with
// the destination's parent directories first.
func TestNativeLayerNormalised(t *testing.T) {
	src := t.TempDir()
	buildtest.SampleTree(t, src, 0o600, time.Now())
	blobs := t.TempDir()
	epoch := time.Unix(1700000000, 0)
	l, err := writeLayerBlob(context.Background(), blobs, src, "/srv/www", epoch, types.OCILayer, nil)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	e := epoch.Unix()
	want := []buildtest.TarEntry{
		{Name: "srv/", Type: tar.TypeDir, Mode: 0o755, ModTime: e},
		{Name: "srv/www/", Type: tar.TypeDir, Mode: 0o755, ModTime: e},
		{Name: "srv/www/bin/", Type: tar.TypeDir, Mode: 0o755, ModTime: e},
		{Name: "srv/www/bin/run", Type: tar.TypeReg, Mode: 0o755, ModTime: e, Content: "#!/bin/sh\necho run\n"},
		{Name: "srv/www/css/", Type: tar.TypeDir, Mode: 0o755, ModTime: e},
		{Name: "srv/www/css/site.css", Type: tar.TypeReg, Mode: 0o644, ModTime: e, Content: "body{}"},
		{Name: "srv/www/empty/", Type: tar.TypeDir, Mode: 0o755, ModTime: e},
		{Name: "srv/www/home.html", Type: tar.TypeSymlink, Mode: 0o777, ModTime: e, Link: "index.html"},
		{Name: "srv/www/index.html", Type: tar.TypeReg, Mode: 0o644, ModTime: e, Content: "<h1>hi</h1>"},
	}
	if diff := cmp.Diff(want, buildtest.ReadTar(t, rc)); diff != "" {
		t.Errorf("layer entries (-want +got):\n%s", diff)
	}
	// The digests computed while writing match the blob.
	f, err := os.Open(l.path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if st.Size() != l.size || filepath.Base(l.path) != l.digest.Hex {
		t.Errorf("blob %s of %d bytes, layer says %s and %d", filepath.Base(l.path), st.Size(), l.digest.Hex, l.size)
	}
}

func TestNativeLayerRejectsSpecialFiles(t *testing.T) {
	src := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(src, "pipe"), 0o644); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	_, err := writeLayerBlob(context.Background(), t.TempDir(), src, "/x", time.Unix(0, 0), types.OCILayer, nil)
	if err == nil {
		t.Fatal("a named pipe went into a layer")
	}
}

func nativeOptions(t *testing.T, src string, epoch *time.Time) Options {
	return Options{
		OutputDir: filepath.Join(t.TempDir(), "out"),
		Epoch:     epoch,
		Image: &Image{Name: "site", Repository: "acme/site", Context: src, Native: &Native{
			Layers:     []NativeLayer{{Src: ".", Dest: "/srv/www"}},
			Env:        map[string]string{"PORT": "8080", "PATH": "/bin"},
			Entrypoint: []string{"/bin/httpd", "-f"}, Cmd: []string{"-p", "8080"},
			User: "65534", Workdir: "/srv/www",
		}},
	}
}

// TestNativeReproducibleScratch: a native image from no base has the same
// digest whatever the source directory, file mtimes and umask-style modes,
// and another digest for another SOURCE_DATE_EPOCH.
func TestNativeReproducibleScratch(t *testing.T) {
	ctx := context.Background()
	epoch := time.Unix(1700000000, 0)
	digest := func(mode os.FileMode, mtime time.Time, epoch time.Time) string {
		src := filepath.Join(t.TempDir(), "some", "checkout")
		buildtest.SampleTree(t, src, mode, mtime)
		res, err := Run(ctx, nativeOptions(t, src, &epoch))
		if err != nil {
			t.Fatal(err)
		}
		return res.Images[0].ManifestDigest
	}
	a := digest(0o644, time.Now(), epoch)
	b := digest(0o600, time.Unix(12345, 0), epoch)
	if a != b {
		t.Errorf("same tree, same SOURCE_DATE_EPOCH: digests %s and %s differ", a, b)
	}
	if c := digest(0o644, time.Now(), epoch.Add(time.Second)); c == a {
		t.Errorf("another SOURCE_DATE_EPOCH gave the same digest %s", c)
	}
}

// TestNativeConfig: config changes land in the image config, the standard
// labels in the config and the manifest annotations.
func TestNativeConfig(t *testing.T) {
	src := t.TempDir()
	buildtest.SampleTree(t, src, 0o644, time.Now())
	epoch := time.Unix(1700000000, 0)
	o := nativeOptions(t, src, &epoch)
	o.Zuul = postCtx
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := layout.FromPath(res.Images[0].Layout)
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := lp.ImageIndex()
	im, _ := idx.IndexManifest()
	img, err := lp.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	type cfg struct {
		Env, Entrypoint, Cmd []string
		User, WorkingDir     string
		Labels               map[string]string
		Created              time.Time
	}
	got := cfg{cf.Config.Env, cf.Config.Entrypoint, cf.Config.Cmd, cf.Config.User, cf.Config.WorkingDir, cf.Config.Labels, cf.Created.UTC()}
	want := cfg{
		Env: []string{"PATH=/bin", "PORT=8080"}, Entrypoint: []string{"/bin/httpd", "-f"}, Cmd: []string{"-p", "8080"},
		User: "65534", WorkingDir: "/srv/www", Created: epoch.UTC(),
		Labels: map[string]string{LabelCreated: "2023-11-14T22:13:20Z", LabelSource: "https://review.example.org/acme/platform",
			LabelRevision: "fedcba9876543210fedcba9876543210fedcba98"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	m, _ := img.Manifest()
	if diff := cmp.Diff(map[string]string{LabelCreated: "2023-11-14T22:13:20Z", LabelSource: "https://review.example.org/acme/platform",
		LabelRevision: "fedcba9876543210fedcba9876543210fedcba98"}, m.Annotations); diff != "" {
		t.Errorf("manifest annotations (-want +got):\n%s", diff)
	}
	// Tags of a post build, one index entry each.
	var refs []string
	for _, d := range im.Manifests {
		refs = append(refs, d.Annotations[refNameAnnotation])
	}
	if diff := cmp.Diff([]string{"fedcba9876543210fedcba9876543210fedcba98"}, refs); diff != "" {
		t.Errorf("layout refs (-want +got):\n%s", diff)
	}
	// The files are there.
	files := buildtest.ReadTar(t, mutate.Extract(img))
	found := false
	for _, f := range files {
		if f.Name == "srv/www/index.html" && f.Content == "<h1>hi</h1>" {
			found = true
		}
	}
	if !found {
		t.Errorf("srv/www/index.html missing from the image: %v", files)
	}
}

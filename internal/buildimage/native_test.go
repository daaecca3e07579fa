package buildimage

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type tarEntry struct {
	Name     string
	Type     byte
	Mode     int64
	Uid, Gid int
	Owner    string
	ModTime  int64
	Link     string
	Content  string
}

func readTar(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, Uid: h.Uid, Gid: h.Gid, Owner: h.Uname + h.Gname,
			ModTime: h.ModTime.Unix(), Link: h.Linkname, Content: string(data)})
	}
}

// sampleTree writes the same tree with the given file mode for plain files
// and mtime, so tests can vary what must not matter.
func sampleTree(t *testing.T, dir string, mode os.FileMode, mtime time.Time) {
	t.Helper()
	writeTree(t, dir, map[string]string{"index.html": "<h1>hi</h1>", "css/site.css": "body{}", "bin/run": "#!/bin/sh\necho run\n", "empty/": ""})
	for _, p := range []string{"index.html", "css/site.css"} {
		if err := os.Chmod(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "bin/run"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("index.html", filepath.Join(dir, "home.html")); err != nil {
		t.Fatal(err)
	}
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Chtimes(p, mtime, mtime) })
}

// TestNativeLayerNormalised: the layer's tar headers carry no owner, no
// real mtime and only git's notion of permissions, in lexical order, with
// the destination's parent directories first.
func TestNativeLayerNormalised(t *testing.T) {
	src := t.TempDir()
	sampleTree(t, src, 0o600, time.Now())
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
	want := []tarEntry{
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
	if diff := cmp.Diff(want, readTar(t, rc)); diff != "" {
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
		sampleTree(t, src, mode, mtime)
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
	sampleTree(t, src, 0o644, time.Now())
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
	files := readTar(t, mutate.Extract(img))
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

// Package buildtest gives the build stage's tests (the logic's and the
// command's) their file trees, the real base image and registry, and a look
// inside built images.
package buildtest

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/slipwayci/slipway/internal/testenv"
)

// RealEnv returns the base image and its registry from hack/testenv.sh and
// checks buildah and skopeo are installed.
func RealEnv(t testing.TB) (base, registry string) {
	t.Helper()
	v := testenv.Require(t, "SLIPWAY_TEST_BASE_IMAGE", "SLIPWAY_TEST_REGISTRY_BUILDSET")
	testenv.Tool(t, "buildah")
	testenv.Tool(t, "skopeo")
	return v[0], v[1]
}

// WriteTree creates files (name → content) under dir; a name ending in /
// is a directory.
func WriteTree(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// SampleTree writes the same tree with the given file mode for plain files
// and mtime, so tests can vary what must not matter.
func SampleTree(t testing.TB, dir string, mode os.FileMode, mtime time.Time) {
	t.Helper()
	WriteTree(t, dir, map[string]string{"index.html": "<h1>hi</h1>", "css/site.css": "body{}", "bin/run": "#!/bin/sh\necho run\n", "empty/": ""})
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

// TarEntry is what a test compares of one entry of a layer.
type TarEntry struct {
	Name     string
	Type     byte
	Mode     int64
	Uid, Gid int
	Owner    string
	ModTime  int64
	Link     string
	Content  string
}

// Each calls f with each item next yields (the next tar or ar member)
// until io.EOF; any other error fails t.
func Each[T any](t testing.TB, next func() (T, error), f func(T)) {
	t.Helper()
	for {
		v, err := next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		f(v)
	}
}

// ReadTar reads every entry of a tar stream.
func ReadTar(t testing.TB, r io.Reader) []TarEntry {
	t.Helper()
	var out []TarEntry
	tr := tar.NewReader(r)
	Each(t, tr.Next, func(h *tar.Header) {
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, TarEntry{Name: h.Name, Type: h.Typeflag, Mode: h.Mode, Uid: h.Uid, Gid: h.Gid, Owner: h.Uname + h.Gname,
			ModTime: h.ModTime.Unix(), Link: h.Linkname, Content: string(data)})
	})
	return out
}

// LayoutImage returns the image with manifest digest in the layout at dir.
func LayoutImage(t testing.TB, dir, digest string) v1.Image {
	t.Helper()
	lp, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := lp.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// ImageFiles reads the small files of an image in a layout.
func ImageFiles(t testing.TB, layoutDir, digest string) map[string]string {
	t.Helper()
	img := LayoutImage(t, layoutDir, digest)
	files := map[string]string{}
	for _, f := range ReadTar(t, mutate.Extract(img)) {
		files[f.Name] = f.Content
	}
	return files
}

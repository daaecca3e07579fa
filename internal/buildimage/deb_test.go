package buildimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipwayci/slipway/internal/buildimage/buildtest"
	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/usererr"
)

// testDeb describes a tiny package built with Debian's dpkg-deb.
type testDeb struct {
	name, version, arch string
	depends, provides   string
	files               map[string]string // path → content; "->target" is a symlink
	links               map[string]string // hard link path → existing file path
	compression         string            // dpkg-deb -Z: xz, zstd, gzip, none
}

// build makes the .deb in dir and returns its lock entry (mirror
// http://mirror.invalid/debian, filename pool/<name>.deb).
func (d testDeb) build(t *testing.T, dir string) (LockedDeb, string) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		t.Fatal("dpkg-deb (Debian's dpkg) is needed to build test packages: apt-get install dpkg")
	}
	root := filepath.Join(dir, "src-"+d.name)
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: t <t@example.org>\nDescription: test\n", d.name, d.version, d.arch)
	if d.depends != "" {
		control += "Depends: " + d.depends + "\n"
	}
	if d.provides != "" {
		control += "Provides: " + d.provides + "\n"
	}
	write(t, filepath.Join(root, "DEBIAN", "control"), control, 0o644)
	for p, c := range d.files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(c, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		mode := os.FileMode(0o644)
		if strings.Contains(p, "/bin/") {
			mode = 0o755
		}
		write(t, full, c, mode)
	}
	for l, target := range d.links {
		if err := os.Link(filepath.Join(root, target), filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	comp := d.compression
	if comp == "" {
		comp = "xz"
	}
	out := filepath.Join(dir, d.name+"_"+d.version+".deb")
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Z"+comp, "--build", root, out)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return LockedDeb{Name: d.name, Version: d.version, Architecture: d.arch, Mirror: "http://mirror.invalid/debian",
		Filename: "pool/" + filepath.Base(out), Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
		Depends: d.depends, Provides: d.provides}, out
}

func write(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func TestArReader(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(arMagic)
	member := func(name, data string) {
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", name, 0, 0, 0, "100644", len(data))
		b.WriteString(data)
		if len(data)%2 == 1 {
			b.WriteByte('\n')
		}
	}
	member("debian-binary/", "2.0\n")
	member("odd", "abc") // padded to an even offset
	member("even", "abcd")
	a := newArReader(bytes.NewReader(b.Bytes()))
	var got []string
	buildtest.Each(t, a.Next, func(m *arMember) {
		var data []byte
		if m.Name != "odd" { // skipped unread: Next must skip it
			var err error
			if data, err = io.ReadAll(a); err != nil {
				t.Fatal(err)
			}
		}
		got = append(got, fmt.Sprintf("%s:%d:%q", m.Name, m.Size, data))
	})
	want := []string{`debian-binary:4:"2.0\n"`, `odd:3:""`, `even:4:"abcd"`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("members (-want +got):\n%s", diff)
	}

	for _, c := range []struct{ name, data, want string }{
		{"not ar", "hello world", "not an ar archive"},
		{"truncated header", arMagic + "debian-binary   0", "truncated in a member header"},
		{"bad size", arMagic + fmt.Sprintf("%-16s%-12d%-6d%-6d%-8s%-10s`\n", "x", 0, 0, 0, "100644", "-1"), "bad size"},
		{"bad magic", arMagic + fmt.Sprintf("%-16s%-12d%-6d%-6d%-8s%-10d!\n", "x", 0, 0, 0, "100644", 1), "bad member header"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := newArReader(strings.NewReader(c.data)).Next()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Next() = %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestReadDeb reads packages dpkg-deb made with each compression it
// writes: control fields, and data entries of each type.
func TestReadDeb(t *testing.T) {
	dir := t.TempDir()
	for _, comp := range []string{"xz", "zstd", "gzip", "none"} {
		t.Run(comp, func(t *testing.T) {
			d := testDeb{name: "hello-" + comp, version: "1:2.0-1", arch: "amd64", depends: "libc6 (>= 2.34)", compression: comp,
				files: map[string]string{"usr/bin/hello": "#!/bin/sh\n", "usr/share/doc/hello/README": "hi", "usr/bin/hi": "->hello"},
				links: map[string]string{"usr/bin/hello2": "usr/bin/hello"}}
			_, file := d.build(t, dir)
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var entries []string
			deb, err := readDeb(f, func(h *tar.Header, r io.Reader) error {
				data, err := io.ReadAll(r)
				entries = append(entries, fmt.Sprintf("%c %s %s %q", h.Typeflag, h.Name, h.Linkname, data))
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if deb.Control["Package"] != d.name || deb.Control["Version"] != "1:2.0-1" || deb.Control["Depends"] != "libc6 (>= 2.34)" {
				t.Errorf("control = %v", deb.Control)
			}
			sort.Strings(entries)
			joined := strings.Join(entries, "\n")
			for _, want := range []string{
				`0 ./usr/bin/hello  "#!/bin/sh\n"`,
				`2 ./usr/bin/hi hello ""`,
				`0 ./usr/share/doc/hello/README  "hi"`,
				`5 ./usr/ `,
			} {
				if !strings.Contains(joined, want) {
					t.Errorf("entries lack %q:\n%s", want, joined)
				}
			}
			// A hard link is one file stored once and one link to it.
			if !strings.Contains(joined, "1 ./usr/bin/hello ./usr/bin/hello2") && !strings.Contains(joined, "1 ./usr/bin/hello2 ./usr/bin/hello") {
				t.Errorf("no hard link between hello and hello2:\n%s", joined)
			}
		})
	}
	t.Run("not a deb", func(t *testing.T) {
		var b bytes.Buffer
		b.WriteString(arMagic)
		fmt.Fprintf(&b, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", "something", 0, 0, 0, "100644", 2)
		b.WriteString("ab")
		_, err := readDeb(&b, func(*tar.Header, io.Reader) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "not a Debian package") {
			t.Errorf("readDeb = %v, want not a Debian package", err)
		}
	})
}

func TestCompareDebVersions(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.10", "1.9", 1},
		{"1:1.0", "2.0", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0", "1.0+deb12u1", -1},
		{"2.36-9+deb12u13", "2.36-9+deb12u9", 1},
		{"1:10.11.19-0+deb12u1", "1:10.11.18-0+deb12u1", 1},
		{"1.0-1", "1.0-1~bpo1", 1},
		{"20250419~deb12u1", "20250419", -1},
		{"1.0a", "1.0", 1},
		{"1.0.0", "1.0", 1},
		{"0:1.0", "1.0", 0},
		{"1.001", "1.1", 0},
	} {
		got := compareDebVersions(c.a, c.b)
		if (got < 0) != (c.want < 0) || (got > 0) != (c.want > 0) {
			t.Errorf("compare(%q, %q) = %d, want sign %d", c.a, c.b, got, c.want)
		}
		if back := compareDebVersions(c.b, c.a); (back < 0) != (c.want > 0) || (back > 0) != (c.want < 0) {
			t.Errorf("compare(%q, %q) = %d, not the opposite of %d", c.b, c.a, back, got)
		}
	}
}

func TestParseRelations(t *testing.T) {
	got, err := parseRelations("libc6 (>= 2.34), perl:any, debconf (>= 0.5) | debconf-2.0,\n libfoo (<< 2), bar (> 1)")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]debRelation{
		{{Name: "libc6", Op: ">=", Version: "2.34"}},
		{{Name: "perl"}},
		{{Name: "debconf", Op: ">=", Version: "0.5"}, {Name: "debconf-2.0"}},
		{{Name: "libfoo", Op: "<<", Version: "2"}},
		{{Name: "bar", Op: ">=", Version: "1"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("relations (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"a,,b", "a (>= )", "a (~ 1)", "a [amd64]", "a (>= 1", "a b"} {
		if _, err := parseRelations(bad); err == nil {
			t.Errorf("parseRelations(%q) = nil error, want one", bad)
		}
	}
}

// lockText is a valid lock of packages aa, bb (Depends: aa) and cc
// (Provides: virt (= 2)); cases edit it.
const lockText = `architecture: amd64
sources:
  - url: http://deb.debian.org/debian
    suite: bookworm
roots: [bb, cc]
packages:
  - name: aa
    version: 1.2-1
    architecture: amd64
    mirror: http://deb.debian.org/debian
    filename: pool/main/a/a_1.2-1_amd64.deb
    size: 10
    sha256: 0000000000000000000000000000000000000000000000000000000000000000
  - name: bb
    version: "1"
    architecture: all
    mirror: http://deb.debian.org/debian
    filename: pool/main/b/b_1_all.deb
    size: 10
    sha256: 1111111111111111111111111111111111111111111111111111111111111111
    depends: aa (>= 1.1), virt (>= 2) | missing
    pre_depends: aa
  - name: cc
    version: "3"
    architecture: amd64
    mirror: http://deb.debian.org/debian
    filename: pool/main/c/c_3_amd64.deb
    size: 10
    sha256: 2222222222222222222222222222222222222222222222222222222222222222
    provides: virt (= 2), other
`

func TestDebianLockChecks(t *testing.T) {
	if _, err := ParseDebianLock(strings.NewReader(lockText), "x.lock"); err != nil {
		t.Fatalf("valid lock: %v", err)
	}
	for _, c := range []struct{ name, old, new, want string }{
		{"missing dependency", "depends: aa (>= 1.1)", "depends: aa (>= 1.1), libgone (>= 2)",
			"x.lock:21: packages[1].depends: bb 1 (all) needs libgone (>= 2), which no locked package satisfies: regenerate the lock: build-image lock-debian --lock x.lock"},
		{"version too old", "depends: aa (>= 1.1)", "depends: aa (>= 1.3)",
			"x.lock:21: packages[1].depends: bb 1 (all) needs aa (>= 1.3), which no locked package satisfies"},
		{"no alternative", "virt (>= 2) | missing", "virt (>= 3) | missing",
			"needs virt (>= 3) | missing, which no locked package satisfies"},
		{"unversioned provides for a versioned dependency", "provides: virt (= 2), other", "provides: virt, other",
			"needs virt (>= 2) | missing"},
		{"pre-depends", "pre_depends: aa", "pre_depends: zz",
			"x.lock:22: packages[1].pre_depends: bb 1 (all) needs zz"},
		{"root not locked", "roots: [bb, cc]", "roots: [bb, d]", `x.lock:5: roots[1]: "d" is not among the locked packages: regenerate the lock`},
		{"twice", "  - name: cc\n", "  - name: aa\n", `x.lock:23: packages[2].name: "aa" is already locked as packages[0]`},
		{"bad sha256", "sha256: 2222222222222222222222222222222222222222222222222222222222222222", "sha256: abc", `packages[2].sha256: "abc" is not a SHA-256`},
		{"other architecture", "architecture: all", "architecture: arm64", `x.lock:16: packages[1].architecture: "arm64": the lock is for amd64`},
		{"filename escapes", "pool/main/b/b_1_all.deb", "../b.deb", `packages[1].filename: "../b.deb" is not a .deb path`},
		{"unknown field", "    size: 10\n    sha256: 1111", "    size: 10\n    sah256: x\n    sha256: 1111", "x.lock:20: packages[1].sah256: unknown field"},
		{"no sources", "sources:\n  - url: http://deb.debian.org/debian\n    suite: bookworm\n", "", "sources: missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			text := strings.Replace(lockText, c.old, c.new, 1)
			if text == lockText {
				t.Fatalf("case does not change the lock: %q", c.old)
			}
			_, err := ParseDebianLock(strings.NewReader(text), "x.lock")
			var ce *config.Error
			if !errors.As(err, &ce) || !usererr.Is(err) {
				t.Fatalf("ParseDebianLock = %v, want a user error", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\nwant it to contain %q", err, c.want)
			}
		})
	}
}

// TestLockEncodeRoundTrip: a lock build-image writes reads back the same.
func TestLockEncodeRoundTrip(t *testing.T) {
	l, err := ParseDebianLock(strings.NewReader(lockText), "x.lock")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := l.Encode(&b, "x.lock"); err != nil {
		t.Fatal(err)
	}
	back, err := ParseDebianLock(bytes.NewReader(b.Bytes()), "x.lock")
	if err != nil {
		t.Fatalf("reading back:\n%s\n%v", b.String(), err)
	}
	if diff := cmp.Diff(l.Packages, back.Packages); diff != "" {
		t.Errorf("packages (-wrote +read):\n%s", diff)
	}
	var again bytes.Buffer
	if err := back.Encode(&again, "x.lock"); err != nil || !bytes.Equal(b.Bytes(), again.Bytes()) {
		t.Errorf("encoding is not stable (%v):\n%s\n---\n%s", err, b.String(), again.String())
	}
}

// testLock builds the packages and returns a checked lock of them with
// their files.
func testLock(t *testing.T, dir string, debs ...testDeb) (*DebianLock, []string) {
	t.Helper()
	l := &DebianLock{path: filepath.Join(dir, "test.lock"), Architecture: "amd64",
		Sources: []DebianSource{{URL: "http://mirror.invalid/debian", Suite: "test"}}}
	var files []string
	for _, d := range debs {
		p, f := d.build(t, dir)
		l.Packages = append(l.Packages, p)
		l.Roots = append(l.Roots, p.Name)
		files = append(files, f)
	}
	var b bytes.Buffer
	if err := l.Encode(&b, l.path); err != nil {
		t.Fatal(err)
	}
	back, err := ParseDebianLock(&b, l.path)
	if err != nil {
		t.Fatal(err)
	}
	return back, files
}

func layerEntries(t *testing.T, l *fileLayer) map[string]string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]string{}
	tr := tar.NewReader(rc)
	var last string
	buildtest.Each(t, tr.Next, func(h *tar.Header) {
		if h.Name < last {
			t.Errorf("entry %s after %s: not sorted", h.Name, last)
		}
		last = h.Name
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" || !h.ModTime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s: header not normalised: uid %d gid %d %q %q mtime %v", h.Name, h.Uid, h.Gid, h.Uname, h.Gname, h.ModTime)
		}
		data, _ := io.ReadAll(tr)
		v := fmt.Sprintf("%c %o", h.Typeflag, h.Mode)
		switch h.Typeflag {
		case tar.TypeSymlink:
			v += " -> " + h.Linkname
		case tar.TypeReg:
			v += " " + string(data)
		}
		out[h.Name] = v
	})
	return out
}

// TestDebianLayer merges packages into one layer: sorted, normalised
// headers, hard links as copies, a CA bundle made from the certificates
// ca-certificates ships, shared directories, and identical bytes from the
// same lock whatever the directory.
func TestDebianLayer(t *testing.T) {
	dir := t.TempDir()
	lock, files := testLock(t, dir,
		testDeb{name: "libx", version: "1.0-1", arch: "amd64",
			files: map[string]string{"usr/lib/libx.so.1": "ELF", "usr/share/doc/libx/copyright": "GPL", "lib64/ld.so": "->/usr/lib/libx.so.1"},
			links: map[string]string{"usr/lib/libx.so.1.0": "usr/lib/libx.so.1"}},
		testDeb{name: "ca-certificates", version: "20250419", arch: "all", depends: "libx", compression: "zstd",
			files: map[string]string{"usr/share/ca-certificates/mozilla/B.crt": "B-cert", "usr/share/ca-certificates/mozilla/A.crt": "A-cert\n"}},
	)
	epoch := time.Unix(1700000000, 0).UTC()
	build := func(blobs string) (*fileLayer, map[string]string) {
		if err := os.MkdirAll(blobs, 0o755); err != nil {
			t.Fatal(err)
		}
		l, err := writeDebianLayer(context.Background(), blobs, lock, files, epoch, types.OCILayer, nil)
		if err != nil {
			t.Fatal(err)
		}
		return l, layerEntries(t, l)
	}
	l1, got := build(filepath.Join(dir, "one"))
	want := map[string]string{
		"lib64/":                             "5 755",
		"lib64/ld.so":                        "2 777 -> /usr/lib/libx.so.1",
		"usr/":                               "5 755",
		"usr/lib/":                           "5 755",
		"usr/lib/libx.so.1":                  "0 644 ELF",
		"usr/lib/libx.so.1.0":                "0 644 ELF",
		"usr/share/":                         "5 755",
		"usr/share/doc/":                     "5 755",
		"usr/share/doc/libx/":                "5 755",
		"usr/share/doc/libx/copyright":       "0 644 GPL",
		"usr/share/ca-certificates/":         "5 755",
		"usr/share/ca-certificates/mozilla/": "5 755",
		"usr/share/ca-certificates/mozilla/A.crt": "0 644 A-cert\n",
		"usr/share/ca-certificates/mozilla/B.crt": "0 644 B-cert",
		"etc/":                              "5 755",
		"etc/ssl/":                          "5 755",
		"etc/ssl/certs/":                    "5 755",
		"etc/ssl/certs/ca-certificates.crt": "0 644 A-cert\nB-cert\n",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("layer (-want +got):\n%s", diff)
	}
	l2, _ := build(filepath.Join(dir, "elsewhere", "two"))
	if l1.digest != l2.digest || l1.diffID != l2.diffID {
		t.Errorf("same lock, two layers: %s and %s", l1.digest, l2.digest)
	}

	t.Run("conflicting files", func(t *testing.T) {
		lock, files := testLock(t, t.TempDir(),
			testDeb{name: "one", version: "1", arch: "amd64", files: map[string]string{"etc/x.conf": "one"}},
			testDeb{name: "two", version: "1", arch: "amd64", files: map[string]string{"etc/x.conf": "two"}})
		_, err := writeDebianLayer(context.Background(), t.TempDir(), lock, files, epoch, types.OCILayer, nil)
		if err == nil || !strings.Contains(err.Error(), "one and two both ship /etc/x.conf with different contents") {
			t.Errorf("writeDebianLayer = %v, want a conflict naming both packages", err)
		}
	})
	t.Run("lock's depends differ from the package's", func(t *testing.T) {
		lock, files := testLock(t, t.TempDir(), testDeb{name: "one", version: "1", arch: "amd64", depends: "two", files: map[string]string{"a": "a"}},
			testDeb{name: "two", version: "1", arch: "amd64", files: map[string]string{"b": "b"}})
		lock.Packages[0].Depends = ""
		_, err := writeDebianLayer(context.Background(), t.TempDir(), lock, files, epoch, types.OCILayer, nil)
		if err == nil || !strings.Contains(err.Error(), `the package depends on "two" (pre-depends ""), the lock says "" ("")`) {
			t.Errorf("writeDebianLayer = %v, want a depends mismatch", err)
		}
	})
	t.Run("file is not the locked package", func(t *testing.T) {
		lock, _ := testLock(t, t.TempDir(), testDeb{name: "one", version: "1", arch: "amd64", files: map[string]string{"a": "a"}})
		other := testDeb{name: "one", version: "2", arch: "amd64", files: map[string]string{"a": "a"}}
		_, f := other.build(t, t.TempDir())
		_, err := writeDebianLayer(context.Background(), t.TempDir(), lock, []string{f}, epoch, types.OCILayer, nil)
		if err == nil || !strings.Contains(err.Error(), "the file is one 2 (amd64), not the locked package") {
			t.Errorf("writeDebianLayer = %v, want a mismatch error", err)
		}
	})
}

// TestDebFetch downloads from a mirror (a local HTTP server with the
// package files): verified into the cache, then served from it; a version
// the mirror no longer has, and a file of other bytes, are clear errors.
func TestDebFetch(t *testing.T) {
	dir := t.TempDir()
	lock, files := testLock(t, dir, testDeb{name: "one", version: "1", arch: "amd64", files: map[string]string{"a": "a"}})
	mirror := filepath.Join(dir, "mirror")
	if err := os.MkdirAll(filepath.Join(mirror, "pool"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(files[0], filepath.Join(mirror, lock.Packages[0].Filename)); err != nil {
		t.Fatal(err)
	}
	var requests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		http.FileServer(http.Dir(mirror)).ServeHTTP(w, r)
	}))
	defer srv.Close()
	lock.Packages[0].Mirror = srv.URL
	cache := filepath.Join(dir, "cache")
	f := newDebFetcher(cache, http.DefaultTransport, nil)
	for i := range 2 {
		got, err := f.fetchAll(context.Background(), lock)
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(cache, lock.Packages[0].SHA256+".deb"); len(got) != 1 || got[0] != want {
			t.Errorf("fetch %d = %v, want %s", i, got, want)
		}
	}
	if requests != 1 {
		t.Errorf("%d requests to the mirror for two fetches, want 1 (the second from the cache)", requests)
	}

	t.Run("gone from the mirror", func(t *testing.T) {
		gone := *lock
		gone.Packages = []LockedDeb{lock.Packages[0]}
		gone.Packages[0].Filename = "pool/one_0.9.deb"
		gone.Packages[0].SHA256 = strings.Repeat("ab", 32)
		_, err := f.fetchAll(context.Background(), &gone)
		if !usererr.Is(err) || !strings.Contains(err.Error(), "one 1 (amd64) is no longer on "+srv.URL) ||
			!strings.Contains(err.Error(), "regenerate the lock: build-image lock-debian --lock "+lock.path) {
			t.Errorf("fetch = %v, want a user error saying to regenerate the lock", err)
		}
	})
	t.Run("other bytes", func(t *testing.T) {
		bad := *lock
		bad.Packages = []LockedDeb{lock.Packages[0]}
		bad.Packages[0].SHA256 = strings.Repeat("cd", 32)
		_, err := f.fetchAll(context.Background(), &bad)
		if err == nil || usererr.Is(err) || !strings.Contains(err.Error(), "the mirror serves another file under this name") {
			t.Errorf("fetch = %v, want a digest mismatch failure", err)
		}
		if _, err := os.Stat(filepath.Join(cache, strings.Repeat("cd", 32)+".deb")); err == nil {
			t.Error("a file with the wrong digest was cached")
		}
	})
}

// packagesIndex is a Packages index of two sources' worth of packages.
const packagesIndex = `Package: app
Version: 1.0
Architecture: amd64
Filename: pool/app_1.0_amd64.deb
Size: 10
SHA256: 0000000000000000000000000000000000000000000000000000000000000000
Depends: libc6 (>= 2.34), perl:any, debconf (>= 0.5) | debconf-2.0, mail-transport-agent
Recommends: huge

Package: libc6
Version: 2.36-9+deb12u9
Architecture: amd64
Filename: pool/libc6_2.36-9+deb12u9_amd64.deb
Size: 10
SHA256: 1111111111111111111111111111111111111111111111111111111111111111
Depends: libgcc-s1

Package: libc6
Version: 2.36-9+deb12u13
Architecture: amd64
Filename: pool/libc6_2.36-9+deb12u13_amd64.deb
Size: 10
SHA256: 2222222222222222222222222222222222222222222222222222222222222222
Depends: libgcc-s1

Package: libc6
Version: 2.36-9+deb12u13
Architecture: arm64
Filename: pool/libc6_2.36-9+deb12u13_arm64.deb
Size: 10
SHA256: 3333333333333333333333333333333333333333333333333333333333333333

Package: libgcc-s1
Version: 12.2.0-14
Architecture: amd64
Filename: pool/libgcc-s1.deb
Size: 10
SHA256: 4444444444444444444444444444444444444444444444444444444444444444
Pre-Depends: libc6 (>= 2.14)

Package: perl
Version: 5.36.0-7
Architecture: amd64
Filename: pool/perl.deb
Size: 10
SHA256: 5555555555555555555555555555555555555555555555555555555555555555

Package: debconf
Version: 1.5.82
Architecture: all
Filename: pool/debconf.deb
Size: 10
SHA256: 6666666666666666666666666666666666666666666666666666666666666666
Provides: debconf-2.0

Package: postfix
Version: 3.7
Architecture: amd64
Filename: pool/postfix.deb
Size: 10
SHA256: 7777777777777777777777777777777777777777777777777777777777777777
Provides: mail-transport-agent

Package: exim4-daemon-light
Version: 4.96
Architecture: amd64
Filename: pool/exim.deb
Size: 10
SHA256: 8888888888888888888888888888888888888888888888888888888888888888
Provides: mail-transport-agent

Package: huge
Version: 1
Architecture: amd64
Filename: pool/huge.deb
Size: 10
SHA256: 9999999999999999999999999999999999999999999999999999999999999999
`

// TestResolve: the closure of Depends and Pre-Depends (not Recommends),
// the highest version of the lock's architecture, the first alternative
// that exists, and for a virtual package its first provider by name.
func TestResolve(t *testing.T) {
	idx := &debIndex{arch: "amd64", byName: map[string][]*LockedDeb{}, provides: map[string][]*LockedDeb{}}
	if err := idx.add(strings.NewReader(packagesIndex), "http://deb.debian.org/debian"); err != nil {
		t.Fatal(err)
	}
	got, err := idx.resolve([]string{"app"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.Name+" "+p.Version)
	}
	want := []string{"app 1.0", "debconf 1.5.82", "exim4-daemon-light 4.96", "libc6 2.36-9+deb12u13", "libgcc-s1 12.2.0-14", "perl 5.36.0-7"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("resolved (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		roots []string
		want  string
	}{
		{[]string{"nothere"}, "package nothere is in none of the sources for amd64"},
		{[]string{"debconf-2.0"}, "debconf-2.0 is a virtual package (provided by debconf): name one of those"},
	} {
		if _, err := idx.resolve(c.roots); !usererr.Is(err) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("resolve(%v) = %v, want a user error with %q", c.roots, err, c.want)
		}
	}
	// No version satisfies: an error naming the package and the relation.
	old := &debIndex{arch: "amd64", byName: map[string][]*LockedDeb{}, provides: map[string][]*LockedDeb{}}
	if err := old.add(strings.NewReader(strings.Replace(packagesIndex, "libc6 (>= 2.34)", "libc6 (>= 2.37)", 1)), "http://deb.debian.org/debian"); err != nil {
		t.Fatal(err)
	}
	if _, err := old.resolve([]string{"app"}); !usererr.Is(err) || !strings.Contains(err.Error(), "app 1.0 (amd64) needs libc6 (>= 2.37), which none of the sources satisfies") {
		t.Errorf("resolve = %v, want an unsatisfiable dependency error", err)
	}
}

// TestPlanDebianLayer: the build file's checks of a debian layer, and the
// lock's own errors naming the lock file.
func TestPlanDebianLayer(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "good.lock"), lockText, 0o644)
	write(t, filepath.Join(dir, "stale.lock"), strings.Replace(lockText, "depends: aa (>= 1.1)", "depends: aa (>= 1.1), libgone", 1), 0o644)
	write(t, filepath.Join(dir, "bin"), "x", 0o755)
	for _, c := range []struct{ name, layers, want string }{
		{"good", "[{debian: {lock: good.lock}}, {src: '${BIN}', dest: /usr/local/bin/x}]", ""},
		{"src and debian", "[{src: bin, debian: {lock: good.lock}}]", `b.yaml:5: images[0].native.layers[0].src: "bin": a layer has src or debian, not both`},
		{"dest", "[{dest: /opt, debian: {lock: good.lock}}]", `images[0].native.layers[0].dest: "/opt": Debian packages unpack at / (remove dest)`},
		{"no lock", "[{debian: {}}]", "images[0].native.layers[0].debian.lock: missing: the lock file"},
		{"missing lock", "[{debian: {lock: nope.lock}}]", `images[0].native.layers[0].debian.lock: "nope.lock": no such file`},
		{"stale lock", "[{debian: {lock: stale.lock}}]", "stale.lock:21: packages[1].depends: bb 1 (all) needs libgone, which no locked package satisfies: regenerate the lock: build-image lock-debian --lock " + filepath.Join(dir, "stale.lock")},
		{"unknown arg", "[{src: '${NOPE}', dest: /x}]", `images[0].native.layers[0].src: "${NOPE}": ${NOPE} is not a build arg`},
	} {
		t.Run(c.name, func(t *testing.T) {
			text := "args: {BIN: bin}\nimages:\n  - name: a\n    native:\n      layers: " + c.layers + "\n"
			f, err := Parse(strings.NewReader(text), filepath.Join(dir, "b.yaml"))
			if err == nil {
				_, err = Plan(f, PlanOptions{Args: map[string]string{"BIN": "bin"}})
			}
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("Plan = %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Plan = %v\nwant an error with %q", err, c.want)
			case c.want != "" && !usererr.Is(err):
				t.Errorf("Plan error %v is not a user error", err)
			}
		})
	}
}

// TestSweepDownloads: a partial download older than the limit is removed,
// a recent one (perhaps another run's, still writing) is kept.
func TestSweepDownloads(t *testing.T) {
	dir := t.TempDir()
	old, recent := filepath.Join(dir, ".download-old"), filepath.Join(dir, ".download-new")
	write(t, old, "x", 0o644)
	write(t, recent, "x", 0o644)
	if err := os.Chtimes(old, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	sweepDownloads(dir, time.Hour)
	if _, err := os.Stat(old); err == nil {
		t.Error("the old partial download is still there")
	}
	if _, err := os.Stat(recent); err != nil {
		t.Errorf("the recent partial download was removed: %v", err)
	}
}

// FuzzParseDebianLock: any input is a lock or an error, never a panic.
func FuzzParseDebianLock(f *testing.F) {
	f.Add(lockText)
	f.Add(strings.Replace(lockText, "provides: virt (= 2), other", "provides: virt (>= 2)", 1))
	f.Add("architecture: amd64\nroots: [x]\n")
	f.Fuzz(func(t *testing.T, text string) {
		_, _ = ParseDebianLock(strings.NewReader(text), "f.lock")
	})
}

// FuzzReadDeb: any bytes are a package or an error, never a panic.
func FuzzReadDeb(f *testing.F) {
	f.Add([]byte(arMagic))
	f.Add([]byte(arMagic + fmt.Sprintf("%-16s%-12d%-6d%-6d%-8s%-10d`\n", "debian-binary", 0, 0, 0, "100644", 4) + "2.0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = readDeb(bytes.NewReader(data), func(h *tar.Header, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		})
	})
}

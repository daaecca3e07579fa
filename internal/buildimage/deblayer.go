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
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipwayci/slipway/internal/fanout"
	"github.com/slipwayci/slipway/internal/httpx"
)

// DefaultDebCache is where downloaded .debs are kept, by SHA-256, so a
// lock's packages are downloaded once per machine.
func DefaultDebCache() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "slipway", "debs")
}

// debFetcher downloads locked packages into a cache keyed by SHA-256,
// verifying size and digest, and reuses what the cache holds.
type debFetcher struct {
	cache     string
	transport http.RoundTripper
	log       *slog.Logger
}

func newDebFetcher(cache string, tr http.RoundTripper, log *slog.Logger) *debFetcher {
	if cache == "" {
		cache = DefaultDebCache()
	}
	if tr == nil {
		tr = httpx.UserAgent(httpx.Retry(http.DefaultTransport, httpx.DefaultRetry()), "build-image")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &debFetcher{cache: cache, transport: tr, log: log}
}

// fetchAll returns the cached file of every package of l, in lock order,
// downloading the missing ones (four at a time).
func (f *debFetcher) fetchAll(ctx context.Context, l *DebianLock) ([]string, error) {
	if err := os.MkdirAll(f.cache, 0o755); err != nil {
		return nil, fmt.Errorf("creating the package cache: %w", err)
	}
	sweepDownloads(f.cache, time.Hour)
	files := make([]string, len(l.Packages))
	err := fanout.Each(ctx, 4, l.Packages, func(ctx context.Context, i int, p LockedDeb) error {
		file, err := f.fetch(ctx, l, i)
		files[i] = file
		return err
	})
	return files, err
}

func (f *debFetcher) fetch(ctx context.Context, l *DebianLock, i int) (string, error) {
	p := &l.Packages[i]
	file := filepath.Join(f.cache, p.SHA256+".deb")
	if ok, err := fileHasDigest(file, p.SHA256); err != nil {
		return "", err
	} else if ok {
		return file, nil
	}
	f.log.Info("downloading package", "package", p.Name, "version", p.Version, "url", p.URL())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL(), nil)
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", p, err)
	}
	resp, err := (&http.Client{Transport: f.transport}).Do(req)
	if err != nil {
		return "", fmt.Errorf("downloading %s from %s: %w (is the mirror reachable?)", p, p.URL(), err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return "", l.doc.Errorf(fmt.Sprintf("packages[%d]", i), "%s is no longer on %s (%s: HTTP %d; mirrors keep only current versions): %s",
			p, p.Mirror, p.Filename, resp.StatusCode, l.regenerate())
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("downloading %s from %s: HTTP %s", p, p.URL(), resp.Status)
	}
	tmp, err := os.CreateTemp(f.cache, ".download-*")
	if err != nil {
		return "", fmt.Errorf("downloading %s: %w", p, err)
	}
	defer func() {
		tmp.Close()
		os.Remove(tmp.Name()) // no-op after the rename
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(resp.Body, p.Size+1))
	if err != nil {
		return "", fmt.Errorf("downloading %s from %s: %w", p, p.URL(), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != p.Size || got != p.SHA256 {
		return "", fmt.Errorf("downloading %s from %s: got %d bytes with SHA-256 %s, the lock pins %d bytes with %s: the mirror serves another file under this name (a broken mirror or proxy; if the archive really changed, %s)",
			p, p.URL(), n, got, p.Size, p.SHA256, l.regenerate())
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("downloading %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return "", fmt.Errorf("downloading %s: %w", p, err)
	}
	return file, nil
}

// sweepDownloads removes partial downloads a killed run left in the cache:
// those untouched for longer than age (a live download writes all the time).
func sweepDownloads(cache string, age time.Duration) {
	tmps, _ := filepath.Glob(filepath.Join(cache, ".download-*"))
	for _, tmp := range tmps {
		if st, err := os.Stat(tmp); err == nil && time.Since(st.ModTime()) > age {
			os.Remove(tmp)
		}
	}
}

// fileHasDigest reports whether file exists with the SHA-256 want; a cached
// file with another digest (a disk error, a hand edit) is removed.
func fileHasDigest(file, want string) (bool, error) {
	fh, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the package cache: %w", err)
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return false, fmt.Errorf("reading the package cache: %w", err)
	}
	if hex.EncodeToString(h.Sum(nil)) == want {
		return true, nil
	}
	os.Remove(file)
	return false, nil
}

// debEntry is one path of the merged packages: a header, and for regular
// files where the content sits in the spool file.
type debEntry struct {
	typ    byte
	mode   int64
	link   string // symlink target
	off    int64
	size   int64
	digest [32]byte
	pkg    string // the package that shipped it, for conflicts
}

// debTree merges the data of several packages, as dpkg would unpack them,
// without running maintainer scripts. File contents go to a spool file so
// memory stays small whatever the packages weigh.
type debTree struct {
	spool   *os.File
	end     int64
	entries map[string]*debEntry
}

// caBundle is the file update-ca-certificates (ca-certificates' postinst)
// writes; maintainer scripts do not run, so the layer makes it itself.
const (
	caBundle   = "etc/ssl/certs/ca-certificates.crt"
	caCertsDir = "usr/share/ca-certificates/"
)

// writeDebianLayer merges the packages of l (their cached files, in lock
// order) into one layer in blobDir. Headers are normalised as for other
// native layers: uid/gid 0, no user names, mtime = epoch, entries sorted;
// permission bits are the packages' own (setuid and setgid dropped: the
// image runs as a non-root user). Hard links become copies, so the layer
// unpacks in any order.
func writeDebianLayer(ctx context.Context, blobDir string, l *DebianLock, files []string, epoch time.Time, mt types.MediaType, counter io.Writer) (*fileLayer, error) {
	spool, err := os.CreateTemp(blobDir, ".debspool-*")
	if err != nil {
		return nil, fmt.Errorf("creating spool file: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	t := &debTree{spool: spool, entries: map[string]*debEntry{}}
	for i := range l.Packages {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := t.add(&l.Packages[i], files[i]); err != nil {
			return nil, err
		}
	}
	if err := t.addCABundle(); err != nil {
		return nil, err
	}
	t.addParents()
	return writeLayer(blobDir, "Debian packages of "+l.path, mt, counter, func(tw *tar.Writer) error { return t.write(ctx, tw, epoch) })
}

func (t *debTree) add(p *LockedDeb, file string) error {
	fh, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("reading %s: %w", p, err)
	}
	defer fh.Close()
	deb, err := readDeb(fh, func(h *tar.Header, r io.Reader) error { return t.addEntry(p, h, r) })
	if err != nil {
		return fmt.Errorf("reading %s (%s): %w", p, file, err)
	}
	c := deb.Control
	if c["Package"] != p.Name || c["Version"] != p.Version || c["Architecture"] != p.Architecture {
		return fmt.Errorf("reading %s (%s): the file is %s %s (%s), not the locked package", p, file, c["Package"], c["Version"], c["Architecture"])
	}
	// The lock's dependency check is only as good as its copy of them.
	if oneLine(c["Depends"]) != p.Depends || oneLine(c["Pre-Depends"]) != p.PreDepends {
		return fmt.Errorf("reading %s: the package depends on %q (pre-depends %q), the lock says %q (%q): regenerate the lock",
			p, oneLine(c["Depends"]), oneLine(c["Pre-Depends"]), p.Depends, p.PreDepends)
	}
	return nil
}

// debPath is a data.tar name as a layer path: "./usr/bin/x" → "usr/bin/x".
func debPath(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func (t *debTree) addEntry(p *LockedDeb, h *tar.Header, r io.Reader) error {
	name := debPath(h.Name)
	if name == "" {
		return nil // the root directory
	}
	e := &debEntry{typ: h.Typeflag, mode: h.Mode & 0o1777, pkg: p.Name}
	switch h.Typeflag {
	case tar.TypeDir:
		if prev := t.entries[name]; prev != nil {
			if prev.typ != tar.TypeDir {
				return fmt.Errorf("%s is a directory in %s and not in %s", name, p.Name, prev.pkg)
			}
			return nil // directories are shared
		}
	case tar.TypeReg:
		h2 := sha256.New()
		n, err := io.Copy(io.MultiWriter(io.NewOffsetWriter(t.spool, t.end), h2), r)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		e.off, e.size = t.end, n
		copy(e.digest[:], h2.Sum(nil))
		t.end += n
	case tar.TypeSymlink:
		e.link, e.mode = h.Linkname, 0o777
	case tar.TypeLink:
		target := t.entries[debPath(h.Linkname)]
		if target == nil || target.typ != tar.TypeReg {
			return fmt.Errorf("%s: hard link to %s, which is not a file before it", name, h.Linkname)
		}
		c := *target
		c.pkg = p.Name
		e = &c
	default:
		return fmt.Errorf("%s: %c entries (devices, fifos) cannot go into an image layer", name, h.Typeflag)
	}
	if prev := t.entries[name]; prev != nil && prev.pkg != p.Name {
		same := prev.typ == e.typ && prev.link == e.link && prev.digest == e.digest && prev.size == e.size
		if !same {
			return fmt.Errorf("%s and %s both ship %s with different contents: lock only one of them", prev.pkg, p.Name, "/"+name)
		}
	}
	t.entries[name] = e
	return nil
}

// addCABundle writes the certificate bundle when the packages hold CA
// certificates (ca-certificates) but not the bundle: every certificate
// under /usr/share/ca-certificates in path order, each ending in a newline,
// which is what update-ca-certificates makes of the default configuration.
func (t *debTree) addCABundle() error {
	if t.entries[caBundle] != nil {
		return nil
	}
	var certs []string
	for name, e := range t.entries {
		if strings.HasPrefix(name, caCertsDir) && strings.HasSuffix(name, ".crt") && e.typ == tar.TypeReg {
			certs = append(certs, name)
		}
	}
	if len(certs) == 0 {
		return nil
	}
	slices.Sort(certs)
	var bundle bytes.Buffer
	for _, name := range certs {
		e := t.entries[name]
		b := make([]byte, e.size)
		if _, err := t.spool.ReadAt(b, e.off); err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
		bundle.Write(b)
		if len(b) > 0 && b[len(b)-1] != '\n' {
			bundle.WriteByte('\n')
		}
	}
	e := &debEntry{typ: tar.TypeReg, mode: 0o644, off: t.end, size: int64(bundle.Len()), pkg: "update-ca-certificates"}
	e.digest = sha256.Sum256(bundle.Bytes())
	if _, err := t.spool.WriteAt(bundle.Bytes(), t.end); err != nil {
		return fmt.Errorf("writing %s: %w", caBundle, err)
	}
	t.end += e.size
	t.entries[caBundle] = e
	return nil
}

// addParents adds the directories a path needs that no package shipped.
func (t *debTree) addParents() {
	for name := range t.entries {
		for d := path.Dir(name); d != "." && t.entries[d] == nil; d = path.Dir(d) {
			t.entries[d] = &debEntry{typ: tar.TypeDir, mode: 0o755}
		}
	}
}

func (t *debTree) write(ctx context.Context, tw *tar.Writer, epoch time.Time) error {
	names := make([]string, 0, len(t.entries))
	for n := range t.entries {
		names = append(names, n)
	}
	slices.Sort(names)
	buf := make([]byte, 1<<20)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		e := t.entries[name]
		h := &tar.Header{Name: name, Mode: e.mode, ModTime: epoch, Typeflag: e.typ}
		switch e.typ {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeSymlink:
			h.Linkname = e.link
		case tar.TypeReg, tar.TypeLink:
			h.Typeflag, h.Size = tar.TypeReg, e.size
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Size > 0 {
			if _, err := io.CopyBuffer(tw, io.NewSectionReader(t.spool, e.off, e.size), buf); err != nil {
				return fmt.Errorf("writing %s: %w", name, err)
			}
		}
	}
	return nil
}

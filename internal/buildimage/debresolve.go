package buildimage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/httpx"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
)

// DefaultKeyring is Debian's archive keyring (package debian-archive-keyring),
// which signs the InRelease files of the archive and of security updates.
const DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// LockOptions are the inputs of LockDebian, bound from the flags of
// build-image lock-debian.
type LockOptions struct {
	// Lock is the lock file to write. When it exists, its architecture,
	// sources and roots are the defaults of the fields below.
	Lock string
	// Roots are the packages the image needs (replace the lock's).
	Roots []string
	// Sources replace the lock's sources.
	Sources []DebianSource
	// Architecture is the dpkg architecture (default: the lock's, else amd64).
	Architecture string
	// Keyring verifies the sources' InRelease files with gpgv (default
	// DefaultKeyring).
	Keyring string
	// Cache keeps downloaded Packages indexes by SHA-256 (default
	// DefaultDebCache()/indexes); InRelease is always fetched.
	Cache string
	// Gpgv is the gpgv binary (default "gpgv").
	Gpgv      string
	Transport http.RoundTripper
	Log       *slog.Logger
}

// LockResult says what LockDebian wrote.
type LockResult struct {
	Lock     string `json:"lock"`
	Changed  bool   `json:"changed"`
	Packages int    `json:"packages"`
	// Updated lists the packages whose locked version changed, "name old ->
	// new" ("name new" when new to the lock, "name old ->" when gone).
	Updated []string `json:"updated,omitempty"`
}

// DefaultDebianSources are Debian 12 (bookworm) with its updates and security
// suites, as a default bookworm sources.list has them.
func DefaultDebianSources() []DebianSource {
	return []DebianSource{
		{URL: "http://deb.debian.org/debian", Suite: "bookworm", Components: []string{"main"}},
		{URL: "http://deb.debian.org/debian", Suite: "bookworm-updates", Components: []string{"main"}},
		{URL: "http://deb.debian.org/debian-security", Suite: "bookworm-security", Components: []string{"main"}},
	}
}

// LockDebian resolves the roots and their Depends and Pre-Depends (not
// Recommends, as apt-get --no-install-recommends) against the sources'
// current Packages indexes, verified through their signed InRelease, and
// writes the lock: for each package the highest version any source has.
// Rewriting an up-to-date lock changes nothing.
func LockDebian(ctx context.Context, o LockOptions) (*LockResult, error) {
	if o.Lock == "" {
		return nil, &config.Error{Field: "lock", Msg: "missing: the lock file to write"}
	}
	l := &DebianLock{path: o.Lock, Architecture: "amd64", Sources: DefaultDebianSources()}
	var old *DebianLock
	if _, err := os.Stat(o.Lock); err == nil {
		prev := &DebianLock{path: o.Lock}
		doc, err := config.DecodeFile(o.Lock, prev)
		if err != nil {
			return nil, err
		}
		prev.doc = doc
		old = prev
		l.Architecture, l.Sources, l.Roots = prev.Architecture, prev.Sources, prev.Roots
	}
	if o.Architecture != "" {
		l.Architecture = o.Architecture
	}
	if len(o.Sources) > 0 {
		l.Sources = o.Sources
	}
	if len(o.Roots) > 0 {
		l.Roots = nil
		for _, r := range o.Roots {
			if !slices.Contains(l.Roots, r) {
				l.Roots = append(l.Roots, r)
			}
		}
	}
	if len(l.Roots) == 0 {
		return nil, &config.Error{Field: "packages", Msg: "missing: the packages the image needs (the lock has none yet)"}
	}
	for i, s := range l.Sources {
		if err := checkArchiveURL(s.URL); err != nil {
			return nil, &config.Error{Field: "sources", Msg: fmt.Sprintf("%q %v", s.URL, err)}
		}
		if len(s.Components) == 0 {
			l.Sources[i].Components = []string{"main"}
		}
	}
	idx := &debIndex{arch: l.Architecture, byName: map[string][]*LockedDeb{}, provides: map[string][]*LockedDeb{}}
	ix := &indexFetcher{o: o, client: &http.Client{Transport: orRetrying(o.Transport)}}
	for _, s := range l.Sources {
		if err := ix.load(ctx, idx, s, l.Architecture); err != nil {
			return nil, err
		}
	}
	pkgs, err := idx.resolve(l.Roots)
	if err != nil {
		return nil, err
	}
	l.Packages = pkgs
	var buf bytes.Buffer
	if err := l.Encode(&buf, o.Lock); err != nil {
		return nil, err
	}
	// What is written must read back as a valid, complete lock.
	if _, err := ParseDebianLock(bytes.NewReader(buf.Bytes()), o.Lock); err != nil {
		return nil, fmt.Errorf("the resolved lock does not check: %w", err)
	}
	res := &LockResult{Lock: o.Lock, Packages: len(pkgs), Updated: lockChanges(old, l)}
	if prev, err := os.ReadFile(o.Lock); err == nil && bytes.Equal(prev, buf.Bytes()) {
		return res, nil
	}
	if err := result.WriteAtomic(o.Lock, buf.Bytes(), 0o644); err != nil {
		return nil, fmt.Errorf("writing %s: %w", o.Lock, err)
	}
	res.Changed = true
	return res, nil
}

func lockChanges(old, l *DebianLock) []string {
	before := map[string]string{}
	if old != nil {
		for _, p := range old.Packages {
			before[p.Name] = p.Version
		}
	}
	var out []string
	for _, p := range l.Packages {
		switch v, ok := before[p.Name]; {
		case !ok:
			out = append(out, p.Name+" "+p.Version)
		case v != p.Version:
			out = append(out, p.Name+" "+v+" -> "+p.Version)
		}
		delete(before, p.Name)
	}
	for _, n := range slices.Sorted(maps.Keys(before)) {
		out = append(out, n+" "+before[n]+" ->")
	}
	return out
}

func orRetrying(tr http.RoundTripper) http.RoundTripper {
	if tr != nil {
		return tr
	}
	return httpx.UserAgent(httpx.Retry(http.DefaultTransport, httpx.DefaultRetry()), "build-image")
}

// debIndex is the packages of every source, by name and by what they
// provide.
type debIndex struct {
	arch     string
	byName   map[string][]*LockedDeb
	provides map[string][]*LockedDeb
}

type indexFetcher struct {
	o      LockOptions
	client *http.Client
}

func (ix *indexFetcher) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := ix.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w (is the mirror reachable?)", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: HTTP %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// load reads one source's Packages indexes into idx, each checked against
// the SHA-256 its signed InRelease lists.
func (ix *indexFetcher) load(ctx context.Context, idx *debIndex, s DebianSource, arch string) error {
	base := strings.TrimSuffix(s.URL, "/") + "/dists/" + s.Suite + "/"
	inRelease, err := ix.get(ctx, base+"InRelease")
	if err != nil {
		return err
	}
	release, err := ix.verify(ctx, base+"InRelease", inRelease)
	if err != nil {
		return err
	}
	ps, err := parseParagraphs(bytes.NewReader(release))
	if err != nil || len(ps) == 0 {
		return fmt.Errorf("reading %sInRelease: %v", base, err)
	}
	sums := map[string][2]string{} // path → size, sha256
	for _, line := range strings.Split(ps[0]["SHA256"], "\n") {
		f := strings.Fields(line)
		if len(f) == 3 {
			sums[f[2]] = [2]string{f[1], f[0]}
		}
	}
	for _, comp := range s.Components {
		var data []byte
		var name string
		for _, ext := range []string{".xz", ".gz"} {
			name = comp + "/binary-" + arch + "/Packages" + ext
			if _, ok := sums[name]; ok {
				break
			}
		}
		sum, ok := sums[name]
		if !ok {
			return usererr.Errorf("%s %s has no %s/binary-%s/Packages index (is the component or architecture right?)", s.URL, s.Suite, comp, arch)
		}
		if data, err = ix.index(ctx, base+name, sum[1], sum[0]); err != nil {
			return err
		}
		var r io.Reader
		if strings.HasSuffix(name, ".xz") {
			r, err = xz.NewReader(bytes.NewReader(data))
		} else {
			r, err = gzip.NewReader(bytes.NewReader(data))
		}
		if err != nil {
			return fmt.Errorf("reading %s%s: %w", base, name, err)
		}
		if err := idx.add(bufio.NewReaderSize(r, 1<<20), s.URL); err != nil {
			return fmt.Errorf("reading %s%s: %w", base, name, err)
		}
	}
	return nil
}

// index returns the index at url whose SHA-256 and size InRelease gives,
// from the cache when it holds it.
func (ix *indexFetcher) index(ctx context.Context, url, sum, size string) ([]byte, error) {
	cache := ix.o.Cache
	if cache == "" {
		cache = DefaultDebCache()
	}
	file := filepath.Join(cache, "indexes", sum)
	if data, err := os.ReadFile(file); err == nil {
		if h := sha256.Sum256(data); hex.EncodeToString(h[:]) == sum {
			return data, nil
		}
	}
	data, err := ix.get(ctx, url)
	if err != nil {
		return nil, err
	}
	if h := sha256.Sum256(data); hex.EncodeToString(h[:]) != sum || strconv.Itoa(len(data)) != size {
		return nil, fmt.Errorf("%s does not match its SHA-256 in InRelease (the mirror is being updated? retry in a few minutes)", url)
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err == nil {
		_ = result.WriteAtomic(file, data, 0o644) // a cache: a failed write costs a download
	}
	return data, nil
}

// verify checks an InRelease file's signature with gpgv and returns the
// signed text.
func (ix *indexFetcher) verify(ctx context.Context, url string, data []byte) ([]byte, error) {
	keyring := ix.o.Keyring
	if keyring == "" {
		keyring = DefaultKeyring
	}
	if _, err := os.Stat(keyring); err != nil {
		return nil, &config.Error{Field: "keyring", Msg: fmt.Sprintf("%q: no such file (install debian-archive-keyring, or give the archive's keyring)", keyring)}
	}
	gpgv := ix.o.Gpgv
	if gpgv == "" {
		gpgv = "gpgv"
	}
	dir, err := os.MkdirTemp("", "slipway-inrelease-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "InRelease"), filepath.Join(dir, "Release")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, gpgv, "--keyring", keyring, "--output", out, in)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("%s: the signature does not verify with %s: %s", url, keyring, strings.TrimSpace(lastLine(stderr.String())))
		}
		return nil, usererr.Errorf("running %s to verify %s: %v (install gpgv)", gpgv, url, err)
	}
	return os.ReadFile(out)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// add reads a Packages index; a package is kept when it is of the index's
// architecture or "all".
func (idx *debIndex) add(r io.Reader, mirror string) error {
	ps, err := parseParagraphs(r)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p["Architecture"] != idx.arch && p["Architecture"] != "all" {
			continue
		}
		size, err := strconv.ParseInt(p["Size"], 10, 64)
		if err != nil {
			return fmt.Errorf("package %s: bad Size %q", p["Package"], p["Size"])
		}
		d := &LockedDeb{
			Name: p["Package"], Version: p["Version"], Architecture: p["Architecture"], Mirror: mirror,
			Filename: p["Filename"], Size: size, SHA256: p["SHA256"],
			Depends: oneLine(p["Depends"]), PreDepends: oneLine(p["Pre-Depends"]), Provides: oneLine(p["Provides"]),
		}
		idx.byName[d.Name] = append(idx.byName[d.Name], d)
		provides, err := parseRelations(d.Provides)
		if err != nil {
			return fmt.Errorf("package %s: Provides: %w", d.Name, err)
		}
		for _, g := range provides {
			for _, pr := range g {
				idx.provides[pr.Name] = append(idx.provides[pr.Name], d)
			}
		}
	}
	return nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// best is the highest version of a package in any source (the first source
// on a tie), as apt's default policy picks it.
func (idx *debIndex) best(name string) *LockedDeb {
	var b *LockedDeb
	for _, d := range idx.byName[name] {
		if b == nil || compareDebVersions(d.Version, b.Version) > 0 {
			b = d
		}
	}
	return b
}

// resolve picks the roots and, breadth first, a package for every
// dependency group no picked package satisfies yet: the first alternative
// with a real package whose best version satisfies it, else the first
// alternative some package provides (by name order of the providers).
func (idx *debIndex) resolve(roots []string) ([]LockedDeb, error) {
	chosen := map[string]*LockedDeb{}
	var queue []*LockedDeb
	for _, r := range roots {
		d := idx.best(r)
		if d == nil {
			if len(idx.provides[r]) > 0 {
				return nil, usererr.Errorf("%s is a virtual package (provided by %s): name one of those", r, providerNames(idx.provides[r]))
			}
			return nil, usererr.Errorf("package %s is in none of the sources for %s", r, idx.arch)
		}
		if chosen[r] == nil {
			chosen[r] = d
			queue = append(queue, d)
		}
	}
	sat := func(g []debRelation) bool {
		for _, r := range g {
			if d := chosen[r.Name]; d != nil && r.satisfiedBy(d.Version) {
				return true
			}
			for _, d := range idx.provides[r.Name] {
				if chosen[d.Name] == d && providesVersion(d, r) {
					return true
				}
			}
		}
		return false
	}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for _, field := range []string{d.PreDepends, d.Depends} {
			groups, err := parseRelations(field)
			if err != nil {
				return nil, fmt.Errorf("package %s: %w", d, err)
			}
			for _, g := range groups {
				if sat(g) {
					continue
				}
				pick := idx.pick(g, chosen)
				if pick == nil {
					return nil, usererr.Errorf("%s needs %s, which none of the sources satisfies (or a locked version conflicts)", d, relationGroup(g))
				}
				chosen[pick.Name] = pick
				queue = append(queue, pick)
			}
		}
	}
	out := make([]LockedDeb, 0, len(chosen))
	for _, n := range slices.Sorted(maps.Keys(chosen)) {
		out = append(out, *chosen[n])
	}
	return out, nil
}

func (idx *debIndex) pick(g []debRelation, chosen map[string]*LockedDeb) *LockedDeb {
	for _, r := range g {
		if chosen[r.Name] != nil {
			continue // picked at another version that does not satisfy r
		}
		if d := idx.best(r.Name); d != nil && r.satisfiedBy(d.Version) {
			return d
		}
	}
	for _, r := range g {
		provs := slices.Clone(idx.provides[r.Name])
		slices.SortFunc(provs, func(a, b *LockedDeb) int { return strings.Compare(a.Name, b.Name) })
		for _, d := range provs {
			if chosen[d.Name] == nil && idx.best(d.Name) == d && providesVersion(d, r) {
				return d
			}
		}
	}
	return nil
}

// providesVersion reports whether d's Provides satisfies r.
func providesVersion(d *LockedDeb, r debRelation) bool {
	provides, _ := parseRelations(d.Provides)
	for _, g := range provides {
		for _, p := range g {
			if p.Name == r.Name && (provider{pkg: d, version: p.Version}).satisfies(r) {
				return true
			}
		}
	}
	return false
}

func providerNames(ds []*LockedDeb) string {
	var names []string
	for _, d := range ds {
		if !slices.Contains(names, d.Name) {
			names = append(names, d.Name)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

package buildimage

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/slipwayci/slipway/internal/config"
)

// DebianLock pins the Debian packages of a native layer: where they come
// from (sources), which packages were asked for (roots), and every package
// of their dependency closure by name, version, architecture, file and
// SHA-256, as the suites' Packages indexes listed them when the lock was
// made (build-image lock-debian). Checked in beside the build file, it makes
// the layer reproducible: the same lock gives the same bytes.
type DebianLock struct {
	// Architecture is the dpkg architecture (amd64, arm64).
	Architecture string `yaml:"architecture"`
	// Sources are the archives and suites the lock was resolved from, in
	// order of preference (apt's sources.list lines).
	Sources []DebianSource `yaml:"sources"`
	// Roots are the packages the image needs; the rest are their
	// dependencies.
	Roots    []string    `yaml:"roots"`
	Packages []LockedDeb `yaml:"packages"`

	path string
	doc  *config.Doc
}

// DebianSource is one apt source: an archive URL, a suite and components.
type DebianSource struct {
	URL        string   `yaml:"url"`
	Suite      string   `yaml:"suite"`
	Components []string `yaml:"components,omitempty"`
}

// LockedDeb is one pinned package. Depends, PreDepends and Provides are the
// index's fields, kept so that the lock can be checked without a network.
type LockedDeb struct {
	Name         string `yaml:"name"`
	Version      string `yaml:"version"`
	Architecture string `yaml:"architecture"`
	// Mirror is the archive URL the file is under (a sources[].url).
	Mirror     string `yaml:"mirror"`
	Filename   string `yaml:"filename"`
	Size       int64  `yaml:"size"`
	SHA256     string `yaml:"sha256"`
	Depends    string `yaml:"depends,omitempty"`
	PreDepends string `yaml:"pre_depends,omitempty"`
	Provides   string `yaml:"provides,omitempty"`
}

// URL is where the package's file is downloaded from.
func (p *LockedDeb) URL() string { return strings.TrimSuffix(p.Mirror, "/") + "/" + p.Filename }

func (p *LockedDeb) String() string { return p.Name + " " + p.Version + " (" + p.Architecture + ")" }

var (
	sha256Re  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	debNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	debArchRe = regexp.MustCompile(`^[a-z0-9-]+$`)
)

// LoadDebianLock reads and checks the lock at path (see ParseDebianLock).
func LoadDebianLock(path string) (*DebianLock, error) {
	l := &DebianLock{path: path}
	doc, err := config.DecodeFile(path, l, config.EmptyHint("it needs architecture, sources, roots and packages: make it with build-image lock-debian"))
	if err != nil {
		return nil, err
	}
	return l, l.check(doc)
}

// ParseDebianLock decodes a lock strictly (internal/config) and checks it:
// fields well formed, no package twice, every root locked, and every
// Depends and Pre-Depends of every package satisfied by a locked package,
// so that what the layer holds can run. name is the file name errors give.
func ParseDebianLock(r io.Reader, name string) (*DebianLock, error) {
	l := &DebianLock{path: name}
	doc, err := config.Decode(r, name, l, config.EmptyHint("it needs architecture, sources, roots and packages: make it with build-image lock-debian"))
	if err != nil {
		return nil, err
	}
	return l, l.check(doc)
}

// regenerate is the hint of every error a stale or hand-broken lock gives.
func (l *DebianLock) regenerate() string {
	return "regenerate the lock: build-image lock-debian --lock " + l.path
}

func (l *DebianLock) check(doc *config.Doc) error {
	l.doc = doc
	if !debArchRe.MatchString(l.Architecture) {
		return doc.Errorf("architecture", "%q is not a dpkg architecture (amd64, arm64...)", l.Architecture)
	}
	if len(l.Sources) == 0 {
		return doc.Errorf("sources", "missing: the archives the packages come from (url, suite)")
	}
	for i := range l.Sources {
		s := &l.Sources[i]
		if err := checkArchiveURL(s.URL); err != nil {
			return doc.Errorf(fmt.Sprintf("sources[%d].url", i), "%q %v", s.URL, err)
		}
		if s.Suite == "" || strings.ContainsAny(s.Suite, "/ ") {
			return doc.Errorf(fmt.Sprintf("sources[%d].suite", i), "%q is not a suite name (bookworm, bookworm-updates...)", s.Suite)
		}
		if len(s.Components) == 0 {
			s.Components = []string{"main"}
		}
	}
	if len(l.Roots) == 0 {
		return doc.Errorf("roots", "missing: the packages the image needs")
	}
	byName := map[string]int{}
	for i := range l.Packages {
		p := &l.Packages[i]
		f := func(k string) string { return fmt.Sprintf("packages[%d].%s", i, k) }
		switch {
		case !debNameRe.MatchString(p.Name):
			return doc.Errorf(f("name"), "%q is not a Debian package name", p.Name)
		case p.Version == "" || strings.ContainsAny(p.Version, " /"):
			return doc.Errorf(f("version"), "%q is not a Debian version", p.Version)
		case p.Architecture != l.Architecture && p.Architecture != "all":
			return doc.Errorf(f("architecture"), "%q: the lock is for %s (packages are %s or all)", p.Architecture, l.Architecture, l.Architecture)
		case checkArchiveURL(p.Mirror) != nil:
			return doc.Errorf(f("mirror"), "%q %v", p.Mirror, checkArchiveURL(p.Mirror))
		case p.Filename == "" || path.IsAbs(p.Filename) || slices.Contains(strings.Split(p.Filename, "/"), "..") || !strings.HasSuffix(p.Filename, ".deb"):
			return doc.Errorf(f("filename"), "%q is not a .deb path in the archive (pool/main/...)", p.Filename)
		case p.Size <= 0:
			return doc.Errorf(f("size"), "%d is not a file size", p.Size)
		case !sha256Re.MatchString(p.SHA256):
			return doc.Errorf(f("sha256"), "%q is not a SHA-256 (64 lowercase hex digits)", p.SHA256)
		}
		if j, dup := byName[p.Name]; dup {
			return doc.Errorf(f("name"), "%q is already locked as packages[%d]: one version per package", p.Name, j)
		}
		byName[p.Name] = i
	}
	for i, r := range l.Roots {
		if _, ok := byName[r]; !ok {
			return doc.Errorf(fmt.Sprintf("roots[%d]", i), "%q is not among the locked packages: %s", r, l.regenerate())
		}
	}
	return l.checkDepends()
}

func checkArchiveURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		return fmt.Errorf("is not an archive URL (http://deb.debian.org/debian)")
	}
	return nil
}

// provider is what can satisfy a relation: a package itself, or a
// (possibly versioned) Provides of one.
type provider struct {
	pkg     *LockedDeb
	version string // "" for an unversioned Provides
}

// providers indexes the locked packages by the names they satisfy.
func (l *DebianLock) providers() (map[string][]provider, error) {
	out := map[string][]provider{}
	for i := range l.Packages {
		p := &l.Packages[i]
		out[p.Name] = append(out[p.Name], provider{pkg: p, version: p.Version})
		provides, err := parseRelations(p.Provides)
		if err != nil {
			return nil, l.doc.Errorf(fmt.Sprintf("packages[%d].provides", i), "%v", err)
		}
		for _, g := range provides {
			for _, r := range g {
				if r.Op != "" && r.Op != "=" {
					return nil, l.doc.Errorf(fmt.Sprintf("packages[%d].provides", i), "%s: a Provides can only be versioned with =", r)
				}
				out[r.Name] = append(out[r.Name], provider{pkg: p, version: r.Version})
			}
		}
	}
	return out, nil
}

// satisfies reports whether a provider meets r: a versioned relation needs
// the real package or a versioned Provides (deb-control(5)).
func (pv provider) satisfies(r debRelation) bool {
	if r.Op == "" {
		return true
	}
	return pv.version != "" && r.satisfiedBy(pv.version)
}

// checkDepends makes sure every Depends and Pre-Depends group of every
// locked package has an alternative the lock satisfies.
func (l *DebianLock) checkDepends() error {
	prov, err := l.providers()
	if err != nil {
		return err
	}
	for i := range l.Packages {
		p := &l.Packages[i]
		for _, field := range []struct{ key, value string }{{"depends", p.Depends}, {"pre_depends", p.PreDepends}} {
			groups, err := parseRelations(field.value)
			if err != nil {
				return l.doc.Errorf(fmt.Sprintf("packages[%d].%s", i, field.key), "%v", err)
			}
			for _, g := range groups {
				if !satisfied(prov, g) {
					return l.doc.Errorf(fmt.Sprintf("packages[%d].%s", i, field.key), "%s needs %s, which no locked package satisfies: %s",
						p, relationGroup(g), l.regenerate())
				}
			}
		}
	}
	return nil
}

func satisfied(prov map[string][]provider, g []debRelation) bool {
	for _, r := range g {
		for _, pv := range prov[r.Name] {
			if pv.satisfies(r) {
				return true
			}
		}
	}
	return false
}

func relationGroup(g []debRelation) string {
	s := make([]string, len(g))
	for i, r := range g {
		s[i] = r.String()
	}
	return strings.Join(s, " | ")
}

// lockHeader starts every lock build-image writes.
const lockHeader = `# Debian packages of a native image layer, pinned by build-image lock-debian
# from the sources' Packages indexes. Do not edit by hand: change roots (or
# sources) and regenerate with
#   build-image lock-debian --lock %s
`

// Encode writes the lock as build-image lock-debian does: a header comment,
// then the fields in a fixed order, so regenerating an unchanged lock
// changes no byte.
func (l *DebianLock) Encode(w io.Writer, name string) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, lockHeader, name)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(l); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

package push

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/usererr"
)

// Region is one target registry: the registry of one region. Its fields are
// those of a targets file entry; each is checked on its own (see problem),
// so a new kind of target adds its fields and their checks.
type Region struct {
	// Name is the region's short name (e.g. "a", "regionone").
	Name string `yaml:"name"`
	// Registry is host[:port] of the region's registry.
	Registry string `yaml:"registry"`
	// Namespace is prefixed to every repository pushed there (may be empty).
	Namespace string `yaml:"namespace"`
	// Insecure selects plain http. Loopback registries use http anyway.
	Insecure bool `yaml:"insecure"`
	// CAFile is a PEM bundle trusted for this registry's TLS certificate.
	CAFile string `yaml:"caFile"`
	// AuthFile is a docker config.json used for this region only.
	AuthFile string `yaml:"authFile"`
}

// Repository returns the full repository (registry host included) for repo
// in this region.
func (r Region) Repository(repo string) string {
	return r.Registry + "/" + r.Path(repo)
}

// Path returns the repository path (no host) for repo in this region.
func (r Region) Path(repo string) string {
	if r.Namespace == "" {
		return repo
	}
	return r.Namespace + "/" + repo
}

func (r Region) registry() (name.Registry, error) {
	opts := []name.Option{name.StrictValidation}
	if r.Insecure {
		opts = append(opts, name.Insecure)
	}
	return name.NewRegistry(r.Registry, opts...)
}

var (
	regionName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	nsPath     = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)
)

// problem returns the first field of r that is wrong (its yaml name) and
// what is wrong with it; field is "" when r is valid.
func (r Region) problem() (field, msg string) {
	switch {
	case !regionName.MatchString(r.Name):
		return "name", fmt.Sprintf("region name %q is not valid (lowercase letters, digits, - and _; at most 63)", r.Name)
	case r.Registry == "":
		return "registry", "registry is empty (give host[:port] of the region's registry)"
	case strings.Contains(r.Registry, "://"):
		return "registry", fmt.Sprintf("registry %q: give host[:port] without a scheme (set insecure for plain http)", r.Registry)
	}
	if _, err := r.registry(); err != nil {
		return "registry", fmt.Sprintf("registry %q is not a valid host[:port]", r.Registry)
	}
	if r.Namespace != "" && !nsPath.MatchString(r.Namespace) {
		return "namespace", fmt.Sprintf("namespace %q is not a valid repository path (lowercase letters and digits, separated by . _ - or /)", r.Namespace)
	}
	return "", ""
}

// ParseRegion parses the short form of a region, NAME=HOST[:PORT][/NAMESPACE].
// Errors name the value.
func ParseRegion(s string) (Region, error) {
	n, target, ok := strings.Cut(s, "=")
	if !ok || n == "" || target == "" {
		return Region{}, usererr.Errorf("%q: want name=host[:port][/namespace], e.g. a=registry.a.example:5000/acme", s)
	}
	if strings.Contains(target, "://") {
		return Region{}, usererr.Errorf("%q: give host[:port] without a scheme (mark the region insecure for plain http)", s)
	}
	host, ns, _ := strings.Cut(target, "/")
	r := Region{Name: n, Registry: host, Namespace: strings.TrimSuffix(ns, "/")}
	if _, msg := r.problem(); msg != "" {
		return Region{}, usererr.Errorf("%q: %s", s, msg)
	}
	return r, nil
}

// targetsFile is the YAML targets file:
//
//	regions:
//	  - name: a
//	    registry: registry.a.example:5000
//	    namespace: acme
//	    caFile: /etc/ssl/a.pem
type targetsFile struct {
	Regions []Region `yaml:"regions"`
}

// ParseTargets decodes a targets file (file names it in errors) through the
// project's strict decoder; every error is a *config.Error.
func ParseTargets(r io.Reader, file string) ([]Region, error) {
	var tf targetsFile
	doc, err := config.Decode(r, file, &tf, config.EmptyHint("it needs a `regions` list"))
	if err != nil {
		return nil, err
	}
	return checkTargets(doc, tf)
}

// LoadTargets reads a targets file from disk (see ParseTargets).
func LoadTargets(path string) ([]Region, error) {
	var tf targetsFile
	doc, err := config.DecodeFile(path, &tf, config.EmptyHint("it needs a `regions` list"))
	if err != nil {
		return nil, err
	}
	return checkTargets(doc, tf)
}

func checkTargets(doc *config.Doc, tf targetsFile) ([]Region, error) {
	if len(tf.Regions) == 0 {
		return nil, doc.Errorf("regions", "no regions (list at least one: name, registry)")
	}
	seen := map[string]bool{}
	for i, reg := range tf.Regions {
		if field, msg := reg.problem(); field != "" {
			return nil, doc.Errorf(fmt.Sprintf("regions[%d].%s", i, field), "%s", msg)
		}
		if seen[reg.Name] {
			return nil, doc.Errorf(fmt.Sprintf("regions[%d].name", i), "region name %q is used twice (each region once)", reg.Name)
		}
		seen[reg.Name] = true
	}
	return tf.Regions, nil
}

// checkRegions checks the regions of a run, wherever they came from.
func checkRegions(regions []Region) error {
	if len(regions) == 0 {
		return ErrNoRegions
	}
	seen := map[string]bool{}
	for _, r := range regions {
		if field, msg := r.problem(); field != "" {
			return usererr.Errorf("region %s: %s", r.Name, msg)
		}
		if seen[r.Name] {
			return usererr.Errorf("region name %q is given twice", r.Name)
		}
		seen[r.Name] = true
		if r.CAFile != "" {
			if _, err := os.Stat(r.CAFile); err != nil {
				return usererr.Errorf("region %s: caFile: %w", r.Name, err)
			}
		}
	}
	return nil
}

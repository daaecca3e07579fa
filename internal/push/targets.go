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
	// Swift, instead of Registry, is the Swift storage the region's node
	// registries read: push-registry runs a registry of its own on it.
	Swift *Swift `yaml:"swift"`
	// NodeRegistry is host[:port] of the registry the region's Kubernetes
	// nodes pull from (default localhost:5000 for a Swift region, none for
	// a registry region: the nodes pull Registry).
	NodeRegistry string `yaml:"nodeRegistry"`

	// at is where the region was written (file, line, field path), for
	// errors found after parsing (a missing credential); empty for
	// regions from flags.
	at config.Error
}

// DefaultNodeRegistry is where Magnum's nodes run their registry.
const DefaultNodeRegistry = "localhost:5000"

// storage reports whether the region is storage-backed (swift:).
func (r Region) storage() bool { return r.Swift != nil }

// nodeRegistry is the address the region's nodes pull from, "" when they
// pull Registry itself.
func (r Region) nodeRegistry() string {
	if r.NodeRegistry == "" && r.storage() {
		return DefaultNodeRegistry
	}
	return r.NodeRegistry
}

// NodeRepository returns the repository (host included) for repo as the
// region's nodes pull it; "" when they pull Repository.
func (r Region) NodeRepository(repo string) string {
	if n := r.nodeRegistry(); n != "" {
		return n + "/" + r.Path(repo)
	}
	return ""
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
	case r.storage() && r.Registry != "":
		return "swift", "a region gives registry (a registry to push to) or swift (the storage of its node registries), not both"
	case r.storage():
		return r.storageProblem()
	case r.Registry == "":
		return "registry", "registry is empty (give registry: host[:port] of the region's registry, or swift: the storage of its node registries)"
	case strings.Contains(r.Registry, "://"):
		return "registry", fmt.Sprintf("registry %q: give host[:port] without a scheme (set insecure for plain http)", r.Registry)
	}
	if _, err := r.registry(); err != nil {
		return "registry", fmt.Sprintf("registry %q is not a valid host[:port]", r.Registry)
	}
	return r.commonProblem()
}

// commonProblem checks the fields of both kinds of region.
func (r Region) commonProblem() (field, msg string) {
	if r.Namespace != "" && !nsPath.MatchString(r.Namespace) {
		return "namespace", fmt.Sprintf("namespace %q is not a valid repository path (lowercase letters and digits, separated by . _ - or /)", r.Namespace)
	}
	if r.NodeRegistry != "" {
		if _, err := name.NewRegistry(r.NodeRegistry, name.StrictValidation); err != nil || strings.Contains(r.NodeRegistry, "/") {
			return "nodeRegistry", fmt.Sprintf("nodeRegistry %q is not a valid host[:port] (e.g. localhost:5000)", r.NodeRegistry)
		}
	}
	return "", ""
}

// storageProblem checks a storage-backed region.
func (r Region) storageProblem() (field, msg string) {
	for _, f := range []struct {
		set  bool
		name string
	}{{r.Insecure, "insecure"}, {r.CAFile != "", "caFile"}, {r.AuthFile != "", "authFile"}} {
		if f.set {
			return f.name, f.name + " applies to a registry region; the registry of a swift region is push-registry's own (for Swift's TLS give swift.cafile or swift.insecureskipverify)"
		}
	}
	if f, m := r.Swift.problem(r.Name); f != "" {
		return "swift." + f, m
	}
	return r.commonProblem()
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
	for i := range tf.Regions {
		reg := &tf.Regions[i]
		if field, msg := reg.problem(); field != "" {
			return nil, doc.Errorf(fmt.Sprintf("regions[%d].%s", i, field), "%s", msg)
		}
		if reg.storage() {
			reg.at = *doc.Errorf(fmt.Sprintf("regions[%d].swift", i), "")
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
		for field, f := range map[string]string{"caFile": r.CAFile, "swift.cafile": r.swiftCAFile()} {
			if f == "" {
				continue
			}
			if _, err := os.Stat(f); err != nil {
				return usererr.Errorf("region %s: %s: %w", r.Name, field, err)
			}
		}
	}
	return nil
}

package push

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"gopkg.in/yaml.v3"
)

// ErrBadInput marks errors in what the user gave (flags, files): the CLI maps
// it to exit code 2. Nothing has been pushed when it is returned.
var ErrBadInput = errors.New("bad input")

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadInput, fmt.Sprintf(format, args...))
}

// Region is one target registry: the registry of one region.
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

var regionName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ParseRegion parses the --region flag form "name=host[:port][/namespace]".
func ParseRegion(s string) (Region, error) {
	n, target, ok := strings.Cut(s, "=")
	if !ok || n == "" || target == "" {
		return Region{}, badInput("--region %q: want name=host[:port][/namespace], e.g. a=registry.a.example:5000/acme", s)
	}
	if strings.Contains(target, "://") {
		return Region{}, badInput("--region %q: give host[:port] without a scheme (use --insecure NAME for plain http)", s)
	}
	host, ns, _ := strings.Cut(target, "/")
	r := Region{Name: n, Registry: host, Namespace: strings.TrimSuffix(ns, "/")}
	if err := r.validate(); err != nil {
		return Region{}, badInput("--region %q: %v", s, err)
	}
	return r, nil
}

var nsPath = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$`)

func (r Region) validate() error {
	if !regionName.MatchString(r.Name) {
		return fmt.Errorf("region name %q: use lowercase letters, digits, - and _", r.Name)
	}
	if r.Registry == "" {
		return fmt.Errorf("region %s: registry is empty", r.Name)
	}
	if strings.Contains(r.Registry, "://") {
		return fmt.Errorf("region %s: registry %q: give host[:port] without a scheme (set insecure for plain http)", r.Name, r.Registry)
	}
	if _, err := r.registry(); err != nil {
		return fmt.Errorf("region %s: registry %q is not a valid host[:port]", r.Name, r.Registry)
	}
	if r.Namespace != "" && !nsPath.MatchString(r.Namespace) {
		return fmt.Errorf("region %s: namespace %q is not a valid repository path", r.Name, r.Namespace)
	}
	return nil
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

// ParseTargets decodes a targets file strictly; errors name file, line and field.
func ParseTargets(r io.Reader, file string) ([]Region, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, badInput("reading targets file %s: %v", file, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, badInput("targets file %s: %v", file, yamlErr(err))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var tf targetsFile
	if err := dec.Decode(&tf); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, badInput("targets file %s: empty, want a `regions:` list", file)
		}
		return nil, badInput("targets file %s: %v", file, yamlErr(err))
	}
	if len(tf.Regions) == 0 {
		return nil, badInput("targets file %s: no regions", file)
	}
	lines := regionLines(&doc)
	seen := map[string]bool{}
	for i, reg := range tf.Regions {
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		if err := reg.validate(); err != nil {
			return nil, badInput("%s:%d: regions[%d]: %v", file, line, i, err)
		}
		if seen[reg.Name] {
			return nil, badInput("%s:%d: regions[%d]: region name %q is used twice", file, line, i, reg.Name)
		}
		seen[reg.Name] = true
	}
	return tf.Regions, nil
}

// yamlErr strips yaml.v3's "yaml: " prefix; its messages already carry
// "line N: field x not found in type ...".
func yamlErr(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: ")
	s = strings.ReplaceAll(s, "unmarshal errors:\n  ", "")
	return strings.ReplaceAll(s, "\n  ", "; ")
}

// regionLines returns the line of each item of the top-level regions list.
func regionLines(doc *yaml.Node) []int {
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "regions" && m.Content[i+1].Kind == yaml.SequenceNode {
			var out []int
			for _, it := range m.Content[i+1].Content {
				out = append(out, it.Line)
			}
			return out
		}
	}
	return nil
}

// LoadTargets reads a targets file from disk.
func LoadTargets(path string) ([]Region, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, badInput("targets file: %v", err)
	}
	defer f.Close()
	return ParseTargets(f, path)
}

func checkRegions(regions []Region) error {
	if len(regions) == 0 {
		return badInput("no regions: give --region name=host[:port][/namespace] (repeatable) or --targets FILE")
	}
	seen := map[string]bool{}
	for _, r := range regions {
		if err := r.validate(); err != nil {
			return badInput("%v", err)
		}
		if seen[r.Name] {
			return badInput("region name %q is given twice", r.Name)
		}
		seen[r.Name] = true
		if r.CAFile != "" {
			if _, err := os.Stat(r.CAFile); err != nil {
				return badInput("region %s: caFile: %v", r.Name, err)
			}
		}
	}
	return nil
}

// Package magnum is the magnum-cluster stage: it converges a Magnum cluster
// template and cluster to a reviewed spec file (create, resize, upgrade),
// waits for Magnum to finish, and writes a kubeconfig the way
// `openstack coe cluster config` does.
package magnum

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Spec is a spec file: one cluster template and one cluster made from it.
type Spec struct {
	Template TemplateSpec `yaml:"template" json:"template"`
	Cluster  ClusterSpec  `yaml:"cluster" json:"cluster"`
}

// TemplateSpec describes a cluster template. Magnum templates cannot change
// once a cluster uses them, so the template's name in Magnum is Name plus a
// hash of everything else: a changed spec is a new template.
type TemplateSpec struct {
	// Name is the base name, e.g. "openedx-k8s-v1.21".
	Name string `yaml:"name" json:"-"`
	// COE is the container orchestration engine. Default "kubernetes".
	COE                 string            `yaml:"coe" json:"coe"`
	Image               string            `yaml:"image" json:"image_id"`
	Keypair             string            `yaml:"keypair" json:"keypair_id,omitempty"`
	ExternalNetwork     string            `yaml:"external_network" json:"external_network_id,omitempty"`
	FixedNetwork        string            `yaml:"fixed_network" json:"fixed_network,omitempty"`
	FixedSubnet         string            `yaml:"fixed_subnet" json:"fixed_subnet,omitempty"`
	Flavor              string            `yaml:"flavor" json:"flavor_id,omitempty"`
	MasterFlavor        string            `yaml:"master_flavor" json:"master_flavor_id,omitempty"`
	NetworkDriver       string            `yaml:"network_driver" json:"network_driver,omitempty"`
	VolumeDriver        string            `yaml:"volume_driver" json:"volume_driver,omitempty"`
	DockerVolumeSize    *int              `yaml:"docker_volume_size" json:"docker_volume_size,omitempty"`
	DockerStorageDriver string            `yaml:"docker_storage_driver" json:"docker_storage_driver,omitempty"`
	DNSNameserver       string            `yaml:"dns_nameserver" json:"dns_nameserver,omitempty"`
	HTTPProxy           string            `yaml:"http_proxy" json:"http_proxy,omitempty"`
	HTTPSProxy          string            `yaml:"https_proxy" json:"https_proxy,omitempty"`
	NoProxy             string            `yaml:"no_proxy" json:"no_proxy,omitempty"`
	MasterLBEnabled     *bool             `yaml:"master_lb_enabled" json:"master_lb_enabled,omitempty"`
	FloatingIPEnabled   *bool             `yaml:"floating_ip_enabled" json:"floating_ip_enabled,omitempty"`
	RegistryEnabled     *bool             `yaml:"registry_enabled" json:"registry_enabled,omitempty"`
	TLSDisabled         *bool             `yaml:"tls_disabled" json:"tls_disabled,omitempty"`
	Public              *bool             `yaml:"public" json:"public,omitempty"`
	Hidden              *bool             `yaml:"hidden" json:"hidden,omitempty"`
	ServerType          string            `yaml:"server_type" json:"server_type,omitempty"`
	APIServerPort       *int              `yaml:"apiserver_port" json:"apiserver_port,omitempty"`
	Labels              map[string]string `yaml:"labels" json:"labels,omitempty"`
}

// ClusterSpec describes the cluster.
type ClusterSpec struct {
	Name        string `yaml:"name"`
	MasterCount *int   `yaml:"master_count"`
	NodeCount   *int   `yaml:"node_count"`
	// MinNodeCount and MaxNodeCount bound the default worker nodegroup
	// (what the cluster autoscaler and resizes may do). Unset: not managed.
	MinNodeCount *int `yaml:"min_node_count"`
	MaxNodeCount *int `yaml:"max_node_count"`
	// Keypair, Flavor, MasterFlavor and DockerVolumeSize override the
	// template's at creation.
	Keypair          string `yaml:"keypair"`
	Flavor           string `yaml:"flavor"`
	MasterFlavor     string `yaml:"master_flavor"`
	DockerVolumeSize *int   `yaml:"docker_volume_size"`
	// CreateTimeout is Magnum's create timeout in minutes. Default 60.
	CreateTimeout *int `yaml:"create_timeout"`
	// Labels are merged over the template's labels at creation.
	Labels map[string]string `yaml:"labels"`
}

// SpecError is a problem in a spec file, naming the file, line and field.
type SpecError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *SpecError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Field == "" {
		return loc + ": " + e.Msg
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
}

var (
	nameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]*$`)
	// Template names in Magnum: <base>-<8 hex digits of the spec hash>.
	versionSuffixRE = regexp.MustCompile(`-[0-9a-f]{8}$`)
)

// LoadSpec reads and validates a spec from r; name (the file path) is used
// in errors. Every problem is a *SpecError.
func LoadSpec(r io.Reader, name string) (*Spec, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlSyntaxError(name, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, &SpecError{File: name, Msg: "empty spec: it needs `template:` and `cluster:`"}
	}
	// Walk the document against the types first: errors then name the
	// field path and line, which yaml's own messages do not.
	if err := checkNode(name, "", root.Content[0], reflect.TypeOf(Spec{})); err != nil {
		return nil, err
	}
	// checkNode normalised label and string scalars to !!str; decode that.
	normalised, err := yaml.Marshal(&root)
	if err != nil {
		return nil, &SpecError{File: name, Msg: err.Error()}
	}
	var spec Spec
	dec := yaml.NewDecoder(bytes.NewReader(normalised))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		return nil, &SpecError{File: name, Msg: err.Error()}
	}
	if err := spec.validate(name, root.Content[0]); err != nil {
		return nil, err
	}
	return &spec, nil
}

func yamlSyntaxError(name string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if _, scanErr := fmt.Sscanf(msg, "line %d:", &line); scanErr == nil {
		msg = strings.TrimSpace(msg[strings.Index(msg, ":")+1:])
	}
	return &SpecError{File: name, Line: line, Msg: "not valid YAML: " + msg}
}

// checkNode verifies that node fits type t: known keys only, scalars of the
// right kind. path is the dotted field path so far.
func checkNode(file, path string, node *yaml.Node, t reflect.Type) error {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	fail := func(n *yaml.Node, format string, args ...any) error {
		return &SpecError{File: file, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)}
	}
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			return fail(node, "must be a mapping of fields, not %s", describe(node))
		}
		fields := map[string]reflect.Type{}
		var known []string
		for i := 0; i < t.NumField(); i++ {
			tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			fields[tag] = t.Field(i).Type
			known = append(known, tag)
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			sub := joinPath(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				sort.Strings(known)
				return &SpecError{File: file, Line: k.Line, Field: sub, Msg: fmt.Sprintf("unknown field (known: %s)", strings.Join(known, ", "))}
			}
			if seen[k.Value] {
				return &SpecError{File: file, Line: k.Line, Field: sub, Msg: "given twice"}
			}
			seen[k.Value] = true
			if err := checkNode(file, sub, v, ft); err != nil {
				return err
			}
		}
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			return fail(node, "must be a mapping of key: value, not %s", describe(node))
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
				return &SpecError{File: file, Line: v.Line, Field: joinPath(path, k.Value), Msg: fmt.Sprintf("must be a string, not %s", describe(v))}
			}
			// Magnum labels are strings; write `"true"`, but a bare true is
			// what people type, so it is taken as the string "true".
			v.Tag = "!!str"
		}
	case reflect.String:
		if node.Kind != yaml.ScalarNode || node.Tag == "!!null" {
			return fail(node, "must be a string, not %s", describe(node))
		}
		node.Tag = "!!str"
	case reflect.Int:
		var n int
		if node.Kind != yaml.ScalarNode || node.Tag != "!!int" || node.Decode(&n) != nil {
			return fail(node, "must be a whole number, not %s", describe(node))
		}
	case reflect.Bool:
		if node.Kind != yaml.ScalarNode || node.Tag != "!!bool" {
			return fail(node, "must be true or false, not %s", describe(node))
		}
	}
	return nil
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.Tag == "!!null" {
		return "empty"
	}
	return fmt.Sprintf("%q", n.Value)
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

// lineOf finds the line of a dotted path in the document, for errors about
// values (0 if absent).
func lineOf(root *yaml.Node, path string) int {
	n := root
	line := 0
	for _, part := range strings.Split(path, ".") {
		if n == nil || n.Kind != yaml.MappingNode {
			return line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line, next = n.Content[i].Line, n.Content[i+1]
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

func (s *Spec) validate(file string, root *yaml.Node) error {
	bad := func(path, format string, args ...any) error {
		return &SpecError{File: file, Line: lineOf(root, path), Field: path, Msg: fmt.Sprintf(format, args...)}
	}
	t, c := &s.Template, &s.Cluster
	switch {
	case t.Name == "":
		return bad("template.name", "missing: the template's base name is required")
	case !nameRE.MatchString(t.Name) || len(t.Name) > 200:
		return bad("template.name", "%q must start with a letter and hold only letters, digits, '_', '.', '-' (at most 200)", t.Name)
	case t.Image == "":
		return bad("template.image", "missing: the Glance image (name or ID) of the nodes is required")
	case c.Name == "":
		return bad("cluster.name", "missing: the cluster's name is required")
	case !nameRE.MatchString(c.Name) || len(c.Name) > 242:
		return bad("cluster.name", "%q must start with a letter and hold only letters, digits, '_', '.', '-' (at most 242)", c.Name)
	}
	if t.COE == "" {
		t.COE = "kubernetes"
	}
	if t.COE != "kubernetes" {
		return bad("template.coe", "%q is not supported: magnum-cluster manages kubernetes clusters", t.COE)
	}
	for _, f := range []struct {
		path string
		v    *int
		min  int
	}{
		{"template.docker_volume_size", t.DockerVolumeSize, 1}, {"template.apiserver_port", t.APIServerPort, 1024},
		{"cluster.master_count", c.MasterCount, 1}, {"cluster.node_count", c.NodeCount, 0},
		{"cluster.min_node_count", c.MinNodeCount, 0}, {"cluster.max_node_count", c.MaxNodeCount, 0},
		{"cluster.docker_volume_size", c.DockerVolumeSize, 1}, {"cluster.create_timeout", c.CreateTimeout, 1},
	} {
		if f.v != nil && *f.v < f.min {
			return bad(f.path, "%d is below the minimum %d", *f.v, f.min)
		}
	}
	if t.APIServerPort != nil && *t.APIServerPort > 65535 {
		return bad("template.apiserver_port", "%d is not a TCP port", *t.APIServerPort)
	}
	if c.Keypair == "" && t.Keypair == "" {
		return bad("template.keypair", "missing: Magnum needs a Nova keypair in the template or the cluster")
	}
	nodes := c.nodeCount()
	if c.MinNodeCount != nil && *c.MinNodeCount > nodes {
		return bad("cluster.min_node_count", "%d is above node_count %d", *c.MinNodeCount, nodes)
	}
	if c.MaxNodeCount != nil && *c.MaxNodeCount < nodes {
		return bad("cluster.max_node_count", "%d is below node_count %d", *c.MaxNodeCount, nodes)
	}
	if c.masterCount() > 1 && (t.MasterLBEnabled == nil || !*t.MasterLBEnabled) {
		return bad("cluster.master_count", "%d masters need template.master_lb_enabled: true (Magnum refuses several masters without a load balancer)", c.masterCount())
	}
	for _, l := range []string{"min_node_count", "max_node_count"} {
		if _, ok := c.Labels[l]; ok {
			return bad("cluster.labels."+l, "set cluster.%s instead: magnum-cluster manages this label", l)
		}
	}
	return nil
}

func (c *ClusterSpec) nodeCount() int {
	if c.NodeCount == nil {
		return 1
	}
	return *c.NodeCount
}

func (c *ClusterSpec) masterCount() int {
	if c.MasterCount == nil {
		return 1
	}
	return *c.MasterCount
}

func (c *ClusterSpec) createTimeout() int {
	if c.CreateTimeout == nil {
		return 60
	}
	return *c.CreateTimeout
}

// TemplateName is the template's name in Magnum: the base name and a hash
// of the rest of the template spec, so that every change is a new template.
func (t *TemplateSpec) TemplateName() string {
	b, _ := json.Marshal(t) // map keys marshal sorted: the hash is stable
	sum := sha256.Sum256(b)
	return t.Name + "-" + hex.EncodeToString(sum[:])[:8]
}

// isVersionOf reports whether a Magnum template name is a version of base.
func isVersionOf(name, base string) bool {
	return strings.HasPrefix(name, base+"-") && len(name) == len(base)+9 && versionSuffixRE.MatchString(name)
}

// Package magnum is the magnum-cluster stage: it converges a Magnum cluster
// template and cluster to a reviewed spec file (create, resize, upgrade),
// waits for Magnum to finish, and writes a kubeconfig the way
// `openstack coe cluster config` does.
package magnum

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"

	"github.com/slipwayci/slipway/internal/config"
)

// Spec is a spec file: one cluster template and one cluster made from it,
// in one region (OS_REGION_NAME), or in each of Regions.
type Spec struct {
	Template TemplateSpec `yaml:"template" json:"template"`
	Cluster  ClusterSpec  `yaml:"cluster" json:"cluster"`
	// Regions, when given, make the spec one template and one cluster in
	// each region, the first being the primary site. A region's template
	// and cluster fields replace the top-level ones; its labels are merged
	// over them key by key.
	Regions []RegionSpec `yaml:"regions" json:"-"`

	// regional holds the merged spec of each of Regions, in their order.
	regional []*Spec
}

// RegionSpec is one region of a spec: its name in the service catalog and
// what differs there from the top-level template and cluster (external
// network, keypair, image, flavors, labels, node counts, DNS...).
type RegionSpec struct {
	Name     string       `yaml:"name"`
	Template TemplateSpec `yaml:"template"`
	Cluster  ClusterSpec  `yaml:"cluster"`
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

var (
	nameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]*$`)
	// Region names also name kubeconfig files (DIR/<region>.kubeconfig).
	regionRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	// Template names in Magnum: <base>-<8 hex digits of the spec hash>.
	versionSuffixRE = regexp.MustCompile(`-[0-9a-f]{8}$`)
)

// specHint is what an empty spec file lacks.
var specHint = config.EmptyHint("it needs `template:` and `cluster:` (and, for several regions, `regions:`)")

// LoadSpec reads and validates a spec from r; name (the file path) is used
// in errors. Every problem with the content is a *config.Error.
func LoadSpec(r io.Reader, name string) (*Spec, error) {
	s := new(Spec)
	doc, err := config.Decode(r, name, s, specHint)
	return s.checked(doc, err)
}

// LoadSpecFile reads and validates the spec file at path (see LoadSpec).
func LoadSpecFile(path string) (*Spec, error) {
	s := new(Spec)
	doc, err := config.DecodeFile(path, s, specHint)
	return s.checked(doc, err)
}

// checked validates a decoded spec unless decoding failed: the spec as it
// is, or, with regions, each region's merged spec.
func (s *Spec) checked(doc *config.Doc, err error) (*Spec, error) {
	if err == nil {
		err = s.checkRegions(doc)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// checkRegions validates the spec without regions, or the region list and
// the merged spec of each region. An error about a field the region wrote
// names regions[i].field; one about a top-level field (or a missing one)
// names the field and the region.
func (s *Spec) checkRegions(doc *config.Doc) error {
	if !doc.Has("regions") {
		return s.validate(doc, func(p string) string { return p }, "")
	}
	if len(s.Regions) == 0 {
		return doc.Errorf("regions", "empty: name at least one region (- name: RegionOne), or leave regions out for the one region of OS_REGION_NAME")
	}
	seen := map[string]int{}
	for i, r := range s.Regions {
		at := fmt.Sprintf("regions[%d]", i)
		switch first, dup := seen[r.Name]; {
		case r.Name == "":
			return doc.Errorf(at+".name", "missing: the region's name in the service catalog is required (e.g. RegionOne)")
		case !regionRE.MatchString(r.Name) || len(r.Name) > 64:
			return doc.Errorf(at+".name", "%q must start with a letter or digit and hold only letters, digits, '_', '.', '-' (at most 64)", r.Name)
		case dup:
			return doc.Errorf(at+".name", "%s is listed twice (also regions[%d])", r.Name, first)
		}
		seen[r.Name] = i
	}
	s.regional = make([]*Spec, len(s.Regions))
	for i, r := range s.Regions {
		m := &Spec{Template: s.Template, Cluster: s.Cluster}
		overlay(reflect.ValueOf(&m.Template).Elem(), reflect.ValueOf(r.Template))
		overlay(reflect.ValueOf(&m.Cluster).Elem(), reflect.ValueOf(r.Cluster))
		prefix := fmt.Sprintf("regions[%d].", i)
		at := func(p string) string {
			if doc.Has(prefix + p) {
				return prefix + p
			}
			return p
		}
		if err := m.validate(doc, at, r.Name); err != nil {
			return err
		}
		s.regional[i] = m
	}
	return nil
}

// overlay sets each field of dst (a struct) that src (the same type) sets:
// a written string, number or flag replaces dst's, a map is merged over
// dst's key by key into a new map.
func overlay(dst, src reflect.Value) {
	for i := 0; i < dst.NumField(); i++ {
		d, v := dst.Field(i), src.Field(i)
		switch {
		case v.Kind() == reflect.Map && v.Len() > 0:
			m := reflect.MakeMapWithSize(v.Type(), d.Len()+v.Len())
			for _, it := range []reflect.Value{d, v} {
				for _, k := range it.MapKeys() {
					m.SetMapIndex(k, it.MapIndex(k))
				}
			}
			d.Set(m)
		case v.Kind() != reflect.Map && !v.IsZero():
			d.Set(v)
		}
	}
}

// HasRegions reports whether the spec names its regions (regions:).
func (s *Spec) HasRegions() bool { return len(s.regional) > 0 }

// RegionNames are the spec's regions in their order, the primary first
// (none for a spec without regions).
func (s *Spec) RegionNames() []string {
	out := make([]string, len(s.Regions))
	for i, r := range s.Regions {
		out[i] = r.Name
	}
	return out
}

// InRegion is the merged spec of region name: the top-level template and
// cluster with the region's fields over them; nil if the spec does not
// name that region.
func (s *Spec) InRegion(name string) *Spec {
	for i, r := range s.Regions {
		if r.Name == name && i < len(s.regional) {
			return s.regional[i]
		}
	}
	return nil
}

// validate checks what the types cannot say; it also fills in the default
// COE. at maps a field to the path an error names; region, when set, is
// added to the message of an error about a field the region did not write.
func (s *Spec) validate(doc *config.Doc, at func(string) string, region string) error {
	errorf := func(path, format string, args ...any) error {
		e := doc.Errorf(at(path), format, args...)
		if region != "" && e.Field == path {
			e.Msg += " (region " + region + ")"
		}
		return e
	}
	t, c := &s.Template, &s.Cluster
	switch {
	case t.Name == "":
		return errorf("template.name", "missing: the template's base name is required")
	case !nameRE.MatchString(t.Name) || len(t.Name) > 200:
		return errorf("template.name", "%q must start with a letter and hold only letters, digits, '_', '.', '-' (at most 200)", t.Name)
	case t.Image == "":
		return errorf("template.image", "missing: the Glance image (name or ID) of the nodes is required")
	case c.Name == "":
		return errorf("cluster.name", "missing: the cluster's name is required")
	case !nameRE.MatchString(c.Name) || len(c.Name) > 242:
		return errorf("cluster.name", "%q must start with a letter and hold only letters, digits, '_', '.', '-' (at most 242)", c.Name)
	}
	if t.COE == "" {
		t.COE = "kubernetes"
	}
	if t.COE != "kubernetes" {
		return errorf("template.coe", "%q is not supported: magnum-cluster manages kubernetes clusters", t.COE)
	}
	if err := s.checkCounts(errorf); err != nil {
		return err
	}
	if c.Keypair == "" && t.Keypair == "" {
		return errorf("template.keypair", "missing: Magnum needs a Nova keypair in the template or the cluster")
	}
	nodes := c.nodeCount()
	if c.MinNodeCount != nil && *c.MinNodeCount > nodes {
		return errorf("cluster.min_node_count", "%d is above node_count %d", *c.MinNodeCount, nodes)
	}
	if c.MaxNodeCount != nil && *c.MaxNodeCount < nodes {
		return errorf("cluster.max_node_count", "%d is below node_count %d", *c.MaxNodeCount, nodes)
	}
	if c.masterCount() > 1 && (t.MasterLBEnabled == nil || !*t.MasterLBEnabled) {
		return errorf("cluster.master_count", "%d masters need template.master_lb_enabled: true (Magnum refuses several masters without a load balancer)", c.masterCount())
	}
	for _, l := range []string{"min_node_count", "max_node_count"} {
		if _, ok := c.Labels[l]; ok {
			return errorf("cluster.labels."+l, "set cluster.%s instead: magnum-cluster manages this label", l)
		}
	}
	return nil
}

// checkCounts checks the spec's numbers against their minimums and the
// port range.
func (s *Spec) checkCounts(errorf func(path, format string, args ...any) error) error {
	t, c := &s.Template, &s.Cluster
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
			return errorf(f.path, "%d is too small (%d or more)", *f.v, f.min)
		}
	}
	if t.APIServerPort != nil && *t.APIServerPort > 65535 {
		return errorf("template.apiserver_port", "%d is not a TCP port (1024-65535)", *t.APIServerPort)
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

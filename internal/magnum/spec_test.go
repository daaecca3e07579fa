package magnum

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/slipwayci/slipway/internal/config"
)

func TestExamplesParse(t *testing.T) {
	for _, name := range []string{"production.yaml", "local.yaml", "local-sites.yaml"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("..", "..", "examples", "cluster", name)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			spec, err := LoadSpec(f, path)
			if err != nil {
				t.Fatal(err)
			}
			if name == "production.yaml" {
				got := []any{spec.Template.Labels["kube_tag"], spec.Template.Labels["cinder_csi_enabled"], *spec.Template.MasterLBEnabled,
					*spec.Template.FloatingIPEnabled, *spec.Template.RegistryEnabled, spec.Cluster.masterCount(), spec.Cluster.nodeCount(), spec.Template.Image}
				want := []any{"v1.21.10", "true", true, true, true, 3, 3, "fedora-coreos-34.20210904.3.0"}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("production spec (-want +got):\n%s", diff)
				}
			}
		})
	}
}

const goodSpec = `template:
  name: k8s
  image: fedora-coreos-34
  keypair: kp
  master_lb_enabled: true
  labels:
    kube_tag: v1.21.10
    cinder_csi_enabled: true
cluster:
  name: prod
  master_count: 3
  node_count: 3
`

func TestTemplateNameIsAHashOfTheSpec(t *testing.T) {
	load := func(s string) *Spec {
		t.Helper()
		spec, err := LoadSpec(strings.NewReader(s), "spec.yaml")
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}
	a, b := load(goodSpec), load(goodSpec)
	if a.Template.TemplateName() != b.Template.TemplateName() || !isVersionOf(a.Template.TemplateName(), "k8s") {
		t.Fatalf("names %s, %s", a.Template.TemplateName(), b.Template.TemplateName())
	}
	if got := a.Template.Labels["cinder_csi_enabled"]; got != "true" {
		t.Errorf("a bare true label is %q, want the string \"true\"", got)
	}
	for _, change := range []string{"v1.21.14", "fedora-coreos-35"} {
		c := load(strings.NewReplacer("v1.21.10", change, "fedora-coreos-34", change).Replace(goodSpec))
		if c.Template.TemplateName() == a.Template.TemplateName() {
			t.Errorf("changing to %s kept the template name", change)
		}
	}
	// The cluster part and the base name's hash input are separate: a
	// node_count change is not a new template.
	if c := load(strings.Replace(goodSpec, "node_count: 3", "node_count: 4", 1)); c.Template.TemplateName() != a.Template.TemplateName() {
		t.Error("a cluster change changed the template name")
	}
}

func TestLoadSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       string // file:line: field: ...
	}{
		{"unknown field", strings.Replace(goodSpec, "  keypair: kp\n", "  keypair: kp\n  bogus: 1\n", 1), "spec.yaml:5: template.bogus: unknown field"},
		{"unknown top-level field", goodSpec + "extra: 1\n", "spec.yaml:13: extra: unknown field"},
		{"wrong type", strings.Replace(goodSpec, "node_count: 3", "node_count: three", 1), `spec.yaml:12: cluster.node_count: must be a whole number, not "three"`},
		{"wrong type bool", strings.Replace(goodSpec, "master_lb_enabled: true", "master_lb_enabled: yes please", 1), `spec.yaml:5: template.master_lb_enabled: must be true or false`},
		{"missing image", strings.Replace(goodSpec, "  image: fedora-coreos-34\n", "", 1), "spec.yaml:1: template.image: missing"},
		{"empty image", strings.Replace(goodSpec, "image: fedora-coreos-34", "image:", 1), "spec.yaml:3: template.image: must be a string, not empty"},
		{"missing cluster name", strings.Replace(goodSpec, "  name: prod\n", "", 1), "cluster.name: missing"},
		{"bad cluster name", strings.Replace(goodSpec, "name: prod", "name: 1prod", 1), `spec.yaml:10: cluster.name: "1prod" must start with a letter`},
		{"labels as a list", strings.Replace(goodSpec, "    kube_tag: v1.21.10\n    cinder_csi_enabled: true\n", "    - kube_tag\n", 1), "spec.yaml:7: template.labels: must be a mapping"},
		{"masters without LB", strings.Replace(goodSpec, "master_lb_enabled: true", "master_lb_enabled: false", 1), "spec.yaml:11: cluster.master_count: 3 masters need template.master_lb_enabled"},
		{"min above node_count", goodSpec + "  min_node_count: 5\n", "spec.yaml:13: cluster.min_node_count: 5 is above node_count 3"},
		{"max below node_count", goodSpec + "  max_node_count: 2\n", "spec.yaml:13: cluster.max_node_count: 2 is below node_count 3"},
		{"negative nodes", strings.Replace(goodSpec, "node_count: 3", "node_count: -1", 1), "cluster.node_count: -1 is too small (0 or more)"},
		{"no keypair", strings.Replace(goodSpec, "  keypair: kp\n", "", 1), "template.keypair: missing"},
		{"managed label", goodSpec + "  labels: {min_node_count: \"1\"}\n", "cluster.labels.min_node_count: set cluster.min_node_count instead"},
		{"duplicate key", strings.Replace(goodSpec, "  keypair: kp\n", "  keypair: kp\n  keypair: kp2\n", 1), "spec.yaml"},
		{"not YAML", "template: [\n", "spec.yaml"},
		{"empty", "", "spec.yaml: empty file: it needs `template:` and `cluster:`"},
		{"not a mapping", "- a\n- b\n", "spec.yaml:1: must be a mapping of fields"},
		{"other coe", strings.Replace(goodSpec, "  keypair: kp\n", "  keypair: kp\n  coe: swarm\n", 1), `template.coe: "swarm" is not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := specError(t, tc.spec); !strings.Contains(got, tc.want) {
				t.Errorf("error %q does not contain %q", got, tc.want)
			}
		})
	}
}

// specError is the message of the error LoadSpec returns for text, which
// must be one line and a *config.Error.
func specError(t *testing.T, text string) string {
	t.Helper()
	_, err := LoadSpec(strings.NewReader(text), "spec.yaml")
	var ce *config.Error
	switch {
	case err == nil:
		t.Fatal("no error")
	case !errors.As(err, &ce):
		t.Errorf("error type %T, want *config.Error", err)
	case strings.Contains(err.Error(), "\n"):
		t.Errorf("error is not one line: %q", err)
	}
	return err.Error()
}

// regionsSpec is goodSpec in two regions; RegionTwo has its own keypair,
// external network, availability zone and one worker.
const regionsSpec = `template:
  name: k8s
  image: fedora-coreos-34
  keypair: kp
  master_lb_enabled: true
  labels: {kube_tag: v1.21.10, availability_zone: nova}
cluster:
  name: prod
  master_count: 3
  node_count: 3
  max_node_count: 4
  labels: {auto_healing_enabled: "true"}
regions:
  - name: RegionOne
  - name: RegionTwo
    template:
      external_network: public-b
      keypair: kp-b
      labels: {availability_zone: nova-b}
    cluster:
      name: prod-b
      node_count: 1
`

func TestRegionsMergeOverTheSpec(t *testing.T) {
	spec, err := LoadSpec(strings.NewReader(regionsSpec), "spec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"RegionOne", "RegionTwo"}, spec.RegionNames()); diff != "" || !spec.HasRegions() {
		t.Fatalf("regions (-want +got):\n%s", diff)
	}
	one, two := spec.InRegion("RegionOne"), spec.InRegion("RegionTwo")
	if one == nil || two == nil || spec.InRegion("RegionThree") != nil {
		t.Fatalf("InRegion: %v %v", one, two)
	}
	got := []any{one.Template.Keypair, one.Template.ExternalNetwork, one.Template.Labels, one.Cluster.Name, one.Cluster.nodeCount(), one.Template.COE,
		two.Template.Keypair, two.Template.ExternalNetwork, two.Template.Labels, two.Cluster.Name, two.Cluster.nodeCount(), two.Cluster.masterCount(), two.Cluster.Labels, two.Template.Image}
	want := []any{"kp", "", map[string]string{"kube_tag": "v1.21.10", "availability_zone": "nova"}, "prod", 3, "kubernetes",
		"kp-b", "public-b", map[string]string{"kube_tag": "v1.21.10", "availability_zone": "nova-b"}, "prod-b", 1, 3, map[string]string{"auto_healing_enabled": "true"}, "fedora-coreos-34"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged regions (-want +got):\n%s", diff)
	}
	if one.HasRegions() || two.HasRegions() {
		t.Error("a region's merged spec has regions itself")
	}
	// The region's template differs, so it is another template version;
	// the top-level labels stay as written.
	if one.Template.TemplateName() == two.Template.TemplateName() || !isVersionOf(two.Template.TemplateName(), "k8s") {
		t.Errorf("template names %s and %s", one.Template.TemplateName(), two.Template.TemplateName())
	}
	if spec.Template.Labels["availability_zone"] != "nova" {
		t.Errorf("the region's labels leaked into the top-level spec: %v", spec.Template.Labels)
	}
	// A region without overrides is the spec without regions.
	plain, err := LoadSpec(strings.NewReader(goodSpec), "spec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if plain.HasRegions() || len(plain.RegionNames()) != 0 {
		t.Error("a spec without regions has regions")
	}
	only, err := LoadSpec(strings.NewReader(goodSpec+"regions: [{name: RegionOne}]\n"), "spec.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if only.InRegion("RegionOne").Template.TemplateName() != plain.Template.TemplateName() {
		t.Error("a region without overrides has another template version than the spec without regions")
	}
}

// TestConfigErrorFormat pins the whole message of each kind of spec error:
// FILE:LINE: field.path: what is wrong (what is allowed).
func TestConfigErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		name, spec, want string
	}{
		{"unknown key", strings.Replace(goodSpec, "  keypair: kp\n", "  keypair: kp\n  flavour: m1.small\n", 1),
			"spec.yaml:5: template.flavour: unknown field (known: apiserver_port, coe, dns_nameserver, docker_storage_driver, docker_volume_size, " +
				"external_network, fixed_network, fixed_subnet, flavor, floating_ip_enabled, hidden, http_proxy, https_proxy, image, keypair, labels, " +
				"master_flavor, master_lb_enabled, name, network_driver, no_proxy, public, registry_enabled, server_type, tls_disabled, volume_driver)"},
		{"unknown top-level key", goodSpec + "clusters: {}\n", "spec.yaml:13: clusters: unknown field (known: cluster, regions, template)"},
		{"wrong type", strings.Replace(goodSpec, "node_count: 3", "node_count: three", 1), `spec.yaml:12: cluster.node_count: must be a whole number, not "three"`},
		{"wrong type of a label", strings.Replace(goodSpec, "kube_tag: v1.21.10", "kube_tag: [v1.21.10]", 1), "spec.yaml:7: template.labels.kube_tag: must be a string, not a list"},
		{"bad value", strings.Replace(goodSpec, "name: prod", "name: 1prod", 1),
			`spec.yaml:10: cluster.name: "1prod" must start with a letter and hold only letters, digits, '_', '.', '-' (at most 242)`},
		{"bad value below the minimum", strings.Replace(goodSpec, "master_count: 3", "master_count: 0", 1), "spec.yaml:11: cluster.master_count: 0 is too small (1 or more)"},
		{"unknown key in a region", strings.Replace(regionsSpec, "  - name: RegionTwo\n", "  - name: RegionTwo\n    clusters: {}\n", 1),
			"spec.yaml:16: regions[1].clusters: unknown field (known: cluster, name, template)"},
		{"unknown key in a region's template", strings.Replace(regionsSpec, "      keypair: kp-b\n", "      keypair: kp-b\n      flavour: m1.small\n", 1),
			"spec.yaml:19: regions[1].template.flavour: unknown field (known: apiserver_port, coe, dns_nameserver, docker_storage_driver, docker_volume_size, " +
				"external_network, fixed_network, fixed_subnet, flavor, floating_ip_enabled, hidden, http_proxy, https_proxy, image, keypair, labels, " +
				"master_flavor, master_lb_enabled, name, network_driver, no_proxy, public, registry_enabled, server_type, tls_disabled, volume_driver)"},
		{"wrong type in a region", strings.Replace(regionsSpec, "node_count: 1", "node_count: one", 1), `spec.yaml:22: regions[1].cluster.node_count: must be a whole number, not "one"`},
		{"regions not a list", strings.Replace(regionsSpec, regionsSpec[strings.Index(regionsSpec, "regions:"):], "regions: RegionOne\n", 1), `spec.yaml:13: regions: must be a list, not "RegionOne"`},
		{"a region as a bare name", strings.Replace(regionsSpec, "  - name: RegionOne\n", "  - RegionOne\n", 1), `spec.yaml:14: regions[0]: must be a mapping of fields, not "RegionOne"`},
		{"no regions", strings.Replace(regionsSpec, regionsSpec[strings.Index(regionsSpec, "regions:"):], "regions: []\n", 1),
			"spec.yaml:13: regions: empty: name at least one region (- name: RegionOne), or leave regions out for the one region of OS_REGION_NAME"},
		{"region listed twice", strings.Replace(regionsSpec, "name: RegionTwo", "name: RegionOne", 1), "spec.yaml:15: regions[1].name: RegionOne is listed twice (also regions[0])"},
		{"bad region name", strings.Replace(regionsSpec, "name: RegionTwo", "name: region/two", 1),
			`spec.yaml:15: regions[1].name: "region/two" must start with a letter or digit and hold only letters, digits, '_', '.', '-' (at most 64)`},
		{"bad value in a region", strings.Replace(regionsSpec, "node_count: 1", "node_count: 9", 1), "spec.yaml:11: cluster.max_node_count: 4 is below node_count 9 (region RegionTwo)"},
		{"bad value from a region", strings.Replace(regionsSpec, "node_count: 1", "min_node_count: 5", 1), "spec.yaml:22: regions[1].cluster.min_node_count: 5 is above node_count 3"},
		{"missing in one region", strings.Replace(regionsSpec, "  keypair: kp\n", "", 1), "spec.yaml:1: template.keypair: missing: Magnum needs a Nova keypair in the template or the cluster (region RegionOne)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := specError(t, tc.spec); got != tc.want {
				t.Errorf("error\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func FuzzLoadSpec(f *testing.F) {
	f.Add(goodSpec)
	f.Add("template: {name: a, image: b, keypair: c}\ncluster: {name: d}\n")
	f.Add("template:\n  labels: {a: [1]}\n")
	f.Add("cluster: &a {name: x}\ntemplate: *a\n")
	f.Add(regionsSpec)
	f.Add("template: {name: a, image: b}\ncluster: {name: d}\nregions: [{name: r, template: {keypair: k}}, {name: s}]\n")
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := LoadSpec(strings.NewReader(s), "fuzz.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		specs := []*Spec{spec}
		if spec.HasRegions() {
			specs = specs[:0]
			for _, r := range spec.RegionNames() {
				specs = append(specs, spec.InRegion(r))
			}
		}
		for _, s := range specs {
			if s == nil || s.Template.Image == "" || s.Cluster.Name == "" || !isVersionOf(s.Template.TemplateName(), s.Template.Name) {
				t.Fatalf("accepted an invalid spec: %+v", spec)
			}
		}
	})
}

package magnum

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clustertemplates"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/usererr"
)

func (t *TemplateSpec) createOpts() clustertemplates.CreateOpts {
	return clustertemplates.CreateOpts{
		Name: t.TemplateName(), COE: t.COE, ImageID: t.Image, KeyPairID: t.Keypair,
		ExternalNetworkID: t.ExternalNetwork, FixedNetwork: t.FixedNetwork, FixedSubnet: t.FixedSubnet,
		FlavorID: t.Flavor, MasterFlavorID: t.MasterFlavor, NetworkDriver: t.NetworkDriver, VolumeDriver: t.VolumeDriver,
		DockerVolumeSize: t.DockerVolumeSize, DockerStorageDriver: t.DockerStorageDriver, DNSNameServer: t.DNSNameserver,
		HTTPProxy: t.HTTPProxy, HTTPSProxy: t.HTTPSProxy, NoProxy: t.NoProxy,
		MasterLBEnabled: t.MasterLBEnabled, FloatingIPEnabled: t.FloatingIPEnabled, RegistryEnabled: t.RegistryEnabled,
		TLSDisabled: t.TLSDisabled, Public: t.Public, Hidden: t.Hidden, ServerType: t.ServerType,
		APIServerPort: t.APIServerPort, Labels: t.Labels,
	}
}

// templateDiff lists the differences between the spec and an existing
// template as "field: old -> new" lines; fields the spec leaves unset (Magnum
// defaults) are not compared.
func templateDiff(t *TemplateSpec, ct *clustertemplates.ClusterTemplate) []string {
	want := map[string]any{}
	b, _ := json.Marshal(t)
	_ = json.Unmarshal(b, &want)
	have := map[string]any{}
	b, _ = json.Marshal(ct)
	_ = json.Unmarshal(b, &have)
	var out []string
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k == "labels" {
			continue
		}
		if fmt.Sprint(want[k]) != fmt.Sprint(have[k]) {
			out = append(out, fmt.Sprintf("template.%s: %v -> %v", specField(k), show(have[k]), show(want[k])))
		}
	}
	labels := map[string]bool{}
	for k := range t.Labels {
		labels[k] = true
	}
	for k := range ct.Labels {
		labels[k] = true
	}
	for _, k := range sortedSet(labels) {
		old, hadOld := ct.Labels[k]
		nu, hasNew := t.Labels[k]
		switch {
		case hadOld && !hasNew:
			out = append(out, fmt.Sprintf("template.labels.%s: %q -> (removed)", k, old))
		case !hadOld && hasNew:
			out = append(out, fmt.Sprintf("template.labels.%s: (unset) -> %q", k, nu))
		case old != nu:
			out = append(out, fmt.Sprintf("template.labels.%s: %q -> %q", k, old, nu))
		}
	}
	return out
}

// specField maps Magnum attribute names back to the spec's.
func specField(apiName string) string {
	switch apiName {
	case "image_id":
		return "image"
	case "keypair_id":
		return "keypair"
	case "external_network_id":
		return "external_network"
	case "flavor_id":
		return "flavor"
	case "master_flavor_id":
		return "master_flavor"
	}
	return apiName
}

func show(v any) string {
	if v == nil || v == "" {
		return "(unset)"
	}
	return fmt.Sprint(v)
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// templateVersions returns the existing versions of the spec's template,
// newest first.
func templateVersions(ctx context.Context, a *api, base string) ([]clustertemplates.ClusterTemplate, error) {
	list, err := a.templates(ctx)
	if err != nil {
		return nil, err
	}
	var out []clustertemplates.ClusterTemplate
	for _, ct := range list {
		if isVersionOf(ct.Name, base) {
			full, err := a.template(ctx, ct.UUID)
			if err != nil {
				return nil, err
			}
			out = append(out, *full)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// templatePlan says what template ensure would do.
type templatePlan struct {
	name     string
	existing *clustertemplates.ClusterTemplate // the template with the wanted name
	previous *clustertemplates.ClusterTemplate // the newest other version, if any
	diff     []string                          // previous -> spec
}

func planTemplate(ctx context.Context, a *api, t *TemplateSpec, inUse string) (*templatePlan, error) {
	p := &templatePlan{name: t.TemplateName()}
	versions, err := templateVersions(ctx, a, t.Name)
	if err != nil {
		return nil, err
	}
	for i := range versions {
		ct := &versions[i]
		switch {
		case ct.Name == p.name:
			p.existing = ct
		case ct.UUID == inUse:
			p.previous = ct
		}
	}
	if p.previous == nil {
		for i := range versions {
			if versions[i].Name != p.name {
				p.previous = &versions[i]
				break
			}
		}
	}
	if p.existing == nil && p.previous != nil {
		p.diff = templateDiff(t, p.previous)
	}
	return p, nil
}

func (p *templatePlan) describe() []string {
	if p.existing != nil {
		return nil
	}
	if p.previous == nil {
		return []string{fmt.Sprintf("create template %s", p.name)}
	}
	lines := []string{fmt.Sprintf("create template %s (the spec differs from %s; templates in use cannot change, so this is a new version)", p.name, p.previous.Name)}
	for _, d := range p.diff {
		lines = append(lines, "  "+d)
	}
	return lines
}

// ensureTemplate creates the spec's template if it does not exist. p is a
// plan made just before, or nil.
func ensureTemplate(ctx context.Context, o *Options, a *api, inUse string, p *templatePlan) (*clustertemplates.ClusterTemplate, []string, error) {
	t := &o.Spec.Template
	if p == nil {
		var err error
		if p, err = planTemplate(ctx, a, t, inUse); err != nil {
			return nil, nil, err
		}
	}
	if p.existing != nil {
		o.Log.Info("template exists and matches the spec: nothing to do", "template", p.name, "uuid", p.existing.UUID)
		return p.existing, nil, nil
	}
	for _, line := range p.describe() {
		o.Log.Info(strings.TrimSpace(line))
	}
	ct, err := clustertemplates.Create(ctx, a.sc, t.createOpts()).Extract()
	if err != nil {
		if statusOf(err) == http.StatusBadRequest {
			return nil, nil, usererr.Wrap(a.explain(fmt.Sprintf("creating template %s from %s", p.name, o.SpecFile), err))
		}
		return nil, nil, a.explain("creating template "+p.name, err)
	}
	crashpoint.Hit("magnum.template")
	o.Log.Info("template created", "template", ct.Name, "uuid", ct.UUID)
	change := "created template " + ct.Name
	if p.previous != nil {
		change += " (replaces " + p.previous.Name + ")"
	}
	return ct, []string{change}, nil
}

// Template is what template ensure made sure of.
type Template struct {
	Name    string `json:"name"`
	UUID    string `json:"uuid"`
	Created bool   `json:"created"`
}

// TemplateEnsure creates the spec's template version if it is missing.
func TemplateEnsure(ctx context.Context, o Options) (*Template, error) {
	a, err := startWithSpec(ctx, &o)
	if err != nil {
		return nil, err
	}
	ct, changes, err := ensureTemplate(ctx, &o, a, "", nil)
	if err != nil {
		return nil, err
	}
	return &Template{Name: ct.Name, UUID: ct.UUID, Created: len(changes) > 0}, nil
}

// TemplateDiff returns what template ensure would do (one line per step),
// changing nothing.
func TemplateDiff(ctx context.Context, o Options) ([]string, error) {
	a, err := startWithSpec(ctx, &o)
	if err != nil {
		return nil, err
	}
	p, err := planTemplate(ctx, a, &o.Spec.Template, "")
	if err != nil {
		return nil, err
	}
	if lines := p.describe(); len(lines) > 0 {
		return lines, nil
	}
	return []string{fmt.Sprintf("template %s exists and matches the spec: no changes", p.name)}, nil
}

// TemplatesDeleted lists the template versions template delete removed.
type TemplatesDeleted struct {
	Deleted []string `json:"deleted"`
}

// TemplateDelete deletes the spec's template version (every unused version
// with AllVersions). Missing templates are not an error; a template a
// cluster uses is.
func TemplateDelete(ctx context.Context, o Options) (*TemplatesDeleted, error) {
	a, err := startWithSpec(ctx, &o)
	if err != nil {
		return nil, err
	}
	versions, err := templateVersions(ctx, a, o.Spec.Template.Name)
	if err != nil {
		return nil, err
	}
	want := o.Spec.Template.TemplateName()
	out := &TemplatesDeleted{Deleted: []string{}}
	for _, ct := range versions {
		if !o.AllVersions && ct.Name != want {
			continue
		}
		err := clustertemplates.Delete(ctx, a.sc, ct.UUID).ExtractErr()
		switch {
		case err == nil:
			o.Log.Info("template deleted", "template", ct.Name, "uuid", ct.UUID)
			out.Deleted = append(out.Deleted, ct.Name)
		case statusOf(err) == http.StatusNotFound:
		case statusOf(err) == http.StatusBadRequest && o.AllVersions:
			o.Log.Info("template kept: a cluster uses it", "template", ct.Name)
		default:
			return nil, fmt.Errorf("%w: delete the clusters that use it first (magnum-cluster cluster delete)", a.explain("deleting template "+ct.Name, err))
		}
	}
	if len(out.Deleted) == 0 {
		o.Log.Info("no template to delete: nothing to do", "template", want)
	}
	return out, nil
}

package magnum

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clusters"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clustertemplates"
	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/nodegroups"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
)

// ErrClusterFailed is wrapped when a cluster operation ends *_FAILED or
// rolled back, or the cluster is in a state ensure cannot work from.
var ErrClusterFailed = errors.New("cluster operation failed")

// ErrNotConvergeable is wrapped when the spec asks for a change Magnum
// cannot make to an existing cluster.
var ErrNotConvergeable = errors.New("change not possible in place")

// bounds are a worker nodegroup's min/max node counts.
type bounds struct {
	min int
	max *int
}

func (b bounds) String() string {
	max := "none"
	if b.max != nil {
		max = strconv.Itoa(*b.max)
	}
	return fmt.Sprintf("[%d, %s]", b.min, max)
}

func (b bounds) equal(o bounds) bool {
	return b.min == o.min && (b.max == nil) == (o.max == nil) && (b.max == nil || *b.max == *o.max)
}

func (b bounds) contains(n int) bool { return n >= b.min && (b.max == nil || n <= *b.max) }

// clusterPlan is what cluster ensure will do.
type clusterPlan struct {
	template *templatePlan
	cluster  *clusters.Cluster
	worker   *nodegroups.NodeGroup
	// create: the cluster does not exist.
	create bool
	// resizeTo is the new worker count, or -1.
	resizeTo int
	// widen and bounds are nodegroup min/max changes (nil: none).
	widen, bounds *bounds
	// upgradeFrom is the name of the template the cluster uses now, when it
	// should move to the spec's.
	upgradeFrom string
	// blockers are changes Magnum cannot make in place.
	blockers []string
	// finished is the operation found in progress (an earlier run's, maybe
	// killed while it waited) that ensure waited for before planning.
	finished string
}

func (p *clusterPlan) empty() bool {
	return !p.create && p.resizeTo < 0 && p.bounds == nil && p.upgradeFrom == "" && len(p.template.describe()) == 0
}

func (p *clusterPlan) describe(spec *Spec) []string {
	lines := p.template.describe()
	c := &spec.Cluster
	if p.create {
		lines = append(lines, fmt.Sprintf("create cluster %s from template %s: %d masters, %d workers", c.Name, p.template.name, c.masterCount(), c.nodeCount()))
		return lines
	}
	if p.widen != nil {
		lines = append(lines, fmt.Sprintf("widen nodegroup default-worker bounds to %s for the resize", p.widen))
	}
	if p.resizeTo >= 0 {
		lines = append(lines, fmt.Sprintf("resize cluster %s workers %d -> %d", c.Name, p.cluster.NodeCount, p.resizeTo))
	}
	if p.bounds != nil {
		lines = append(lines, fmt.Sprintf("set nodegroup default-worker bounds %s -> %s", currentBounds(p.worker), p.bounds))
	}
	if p.upgradeFrom != "" {
		lines = append(lines, fmt.Sprintf("upgrade cluster %s from template %s to %s", c.Name, p.upgradeFrom, p.template.name))
	}
	for _, b := range p.blockers {
		lines = append(lines, "cannot change: "+b)
	}
	return lines
}

func currentBounds(ng *nodegroups.NodeGroup) bounds {
	if ng == nil {
		return bounds{}
	}
	return bounds{min: ng.MinNodeCount, max: ng.MaxNodeCount}
}

// planCluster plans from the cluster as found (nil: it does not exist).
func planCluster(ctx context.Context, o *Options, a *api, c *clusters.Cluster) (*clusterPlan, error) {
	spec := o.Spec
	p := &clusterPlan{cluster: c, resizeTo: -1}
	tp, err := planTemplate(ctx, a, &spec.Template, p.inUse())
	if err != nil {
		return nil, err
	}
	p.template = tp
	if c == nil {
		p.create = true
		return p, nil
	}
	if p.worker, err = a.worker(ctx, c.UUID); err != nil {
		return nil, err
	}
	sc := &spec.Cluster
	if sc.masterCount() != c.MasterCount {
		p.blockers = append(p.blockers, fmt.Sprintf("master_count %d -> %d: Magnum cannot resize the masters of a cluster; create a new cluster (another cluster.name) and move the platforms to it, or revert master_count", c.MasterCount, sc.masterCount()))
	}
	p.planWorkers(sc)
	if tp.existing == nil || tp.existing.UUID != c.ClusterTemplateID {
		p.upgradeFrom = c.ClusterTemplateID
		if ct, err := a.template(ctx, c.ClusterTemplateID); err == nil {
			p.upgradeFrom = ct.Name
		}
	}
	return p, nil
}

// planWorkers plans the resize to the spec's node_count and the change of
// the default-worker bounds. A node_count outside the current bounds widens
// them first, as Magnum refuses a resize beyond them.
func (p *clusterPlan) planWorkers(sc *ClusterSpec) {
	want := sc.nodeCount()
	cur := currentBounds(p.worker)
	target := cur
	if sc.MinNodeCount != nil {
		target.min = *sc.MinNodeCount
	}
	if sc.MaxNodeCount != nil {
		target.max = sc.MaxNodeCount
	}
	if want != p.cluster.NodeCount {
		p.resizeTo = want
		if !cur.contains(want) {
			w := bounds{min: min(cur.min, target.min, want)}
			if cur.max != nil {
				m := max(*cur.max, want)
				if target.max != nil {
					m = max(m, *target.max)
				}
				w.max = &m
			}
			p.widen = &w
		}
	}
	after := cur
	if p.widen != nil {
		after = *p.widen
	}
	if !after.equal(target) {
		p.bounds = &target
	}
}

func (a *api) worker(ctx context.Context, clusterID string) (*nodegroups.NodeGroup, error) {
	ng, err := nodegroups.Get(ctx, a.sc, clusterID, "default-worker").Extract()
	if err != nil {
		return nil, a.explain("reading nodegroup default-worker of cluster "+clusterID, err)
	}
	return ng, nil
}

// ClusterDiff returns what cluster ensure would do (the plan, one line per
// step), changing nothing.
func ClusterDiff(ctx context.Context, o Options) ([]string, error) {
	a, err := startWithSpec(ctx, &o)
	if err != nil {
		return nil, err
	}
	c, err := a.clusterByName(ctx, o.Spec.Cluster.Name)
	if err != nil {
		return nil, err
	}
	p, err := planCluster(ctx, &o, a, c)
	if err != nil {
		return nil, err
	}
	if p.empty() && len(p.blockers) == 0 {
		return []string{fmt.Sprintf("cluster %s (%s) matches the spec: no changes", o.Spec.Cluster.Name, p.cluster.Status)}, nil
	}
	return p.describe(o.Spec), nil
}

// ClusterEnsure converges the spec's template and cluster: create, resize,
// change nodegroup bounds, upgrade; each followed by a wait. It returns the
// cluster as it is then, with the changes made, and writes the kubeconfig
// if o.Kubeconfig asks for one.
func ClusterEnsure(ctx context.Context, o Options) (*result.ClusterResult, error) {
	a, err := startWithSpec(ctx, &o)
	if err != nil {
		return nil, err
	}
	p, err := planEnsure(ctx, &o, a)
	if err != nil {
		return nil, err
	}
	ct, changes, err := ensureTemplate(ctx, &o, a, p.inUse(), p.template)
	if err != nil {
		return nil, err
	}
	if p.finished != "" {
		changes = append([]string{p.finished}, changes...)
	}
	c, more, err := converge(ctx, &o, a, p, ct)
	if err != nil {
		return nil, err
	}
	changes = append(changes, more...)
	if len(changes) == 0 {
		o.Log.Info("cluster matches the spec: nothing to do", "cluster", c.Name, "status", c.Status, "template", ct.Name)
	}
	res := describeCluster(ctx, a, c)
	if o.Kubeconfig != "" {
		if _, err := ensureKubeconfig(ctx, &o, a, c); err != nil {
			return nil, err
		}
		res.Kubeconfig = o.Kubeconfig
	}
	return o.finish(res, changes), nil
}

// planEnsure plans cluster ensure: a cluster busy with an earlier operation
// is waited for first, and a plan ensure cannot carry out is refused.
func planEnsure(ctx context.Context, o *Options, a *api) (*clusterPlan, error) {
	sc := &o.Spec.Cluster
	found, err := a.clusterByName(ctx, sc.Name)
	if err != nil {
		return nil, err
	}
	finished := ""
	if found != nil && strings.HasSuffix(found.Status, "_IN_PROGRESS") {
		action, _, _ := strings.Cut(found.Status, "_")
		o.Log.Info("cluster is busy: waiting for it first", "cluster", sc.Name, "status", found.Status)
		if _, err := waitFor(ctx, o, a, found.UUID, sc.Name, action, nil); err != nil {
			return nil, err
		}
		finished = fmt.Sprintf("waited for the %s an earlier run started (%s)", strings.ToLower(action), found.Status)
		if found, err = a.clusterByName(ctx, sc.Name); err != nil {
			return nil, err
		}
	}
	p, err := planCluster(ctx, o, a, found)
	if err != nil {
		return nil, err
	}
	p.finished = finished
	return p, p.refused(sc.Name, o.SpecFile)
}

// refused says why ensure cannot carry out the plan: a change Magnum cannot
// make, or a cluster in a state ensure cannot work from; nil if it can.
func (p *clusterPlan) refused(name, specFile string) error {
	if len(p.blockers) > 0 {
		return fmt.Errorf("cluster %s: %w: %s (nothing was changed)", name, ErrNotConvergeable, strings.Join(p.blockers, "; "))
	}
	c := p.cluster
	switch {
	case c == nil:
	case c.Status == "CREATE_FAILED" || c.Status == "DELETE_FAILED" || strings.HasPrefix(c.Status, "ROLLBACK_"):
		return fmt.Errorf("cluster %s: %w: it is %s: %s%s; delete it (magnum-cluster cluster delete --spec %s) and rerun",
			name, ErrClusterFailed, c.Status, c.StatusReason, faultText(c.Faults), specFile)
	case c.Status == "UPDATE_FAILED" && p.resizeTo < 0:
		return fmt.Errorf("cluster %s: %w: its last update failed: %s%s; fix the cause, then rerun (a resize is retried from UPDATE_FAILED), or delete and recreate it",
			name, ErrClusterFailed, c.StatusReason, faultText(c.Faults))
	}
	return nil
}

// inUse is the UUID of the template the cluster uses ("" before it exists).
func (p *clusterPlan) inUse() string {
	if p.cluster == nil {
		return ""
	}
	return p.cluster.ClusterTemplateID
}

// converge creates the cluster or updates it from template ct, and returns
// it as it is afterwards with the changes made.
func converge(ctx context.Context, o *Options, a *api, p *clusterPlan, ct *clustertemplates.ClusterTemplate) (*clusters.Cluster, []string, error) {
	if p.create {
		c, err := createCluster(ctx, o, a, ct)
		if err != nil {
			return nil, nil, err
		}
		return c, []string{fmt.Sprintf("created cluster %s (%d masters, %d workers)", c.Name, c.MasterCount, c.NodeCount)}, nil
	}
	changes, err := updateCluster(ctx, o, a, p, ct)
	if err != nil {
		return nil, nil, err
	}
	c, err := a.cluster(ctx, p.cluster.UUID)
	return c, changes, err
}

func createCluster(ctx context.Context, o *Options, a *api, ct *clustertemplates.ClusterTemplate) (*clusters.Cluster, error) {
	sc := &o.Spec.Cluster
	labels := map[string]string{}
	for k, v := range sc.Labels {
		labels[k] = v
	}
	if sc.MinNodeCount != nil {
		labels["min_node_count"] = strconv.Itoa(*sc.MinNodeCount)
	}
	if sc.MaxNodeCount != nil {
		labels["max_node_count"] = strconv.Itoa(*sc.MaxNodeCount)
	}
	merge := true
	masters, nodes, timeout := sc.masterCount(), sc.nodeCount(), sc.createTimeout()
	opts := clusters.CreateOpts{
		Name: sc.Name, ClusterTemplateID: ct.UUID, MasterCount: &masters, NodeCount: &nodes, CreateTimeout: &timeout,
		Keypair: sc.Keypair, FlavorID: sc.Flavor, MasterFlavorID: sc.MasterFlavor, DockerVolumeSize: sc.DockerVolumeSize,
		Labels: labels, MergeLabels: &merge,
	}
	if len(labels) == 0 {
		opts.Labels, opts.MergeLabels = nil, nil
	}
	o.Log.Info("creating cluster", "cluster", sc.Name, "template", ct.Name, "masters", masters, "workers", nodes)
	id, err := clusters.Create(ctx, a.sc, opts).Extract()
	if err != nil {
		if statusOf(err) == http.StatusBadRequest {
			return nil, usererr.Wrap(a.explain(fmt.Sprintf("creating cluster %s from %s", sc.Name, o.SpecFile), err))
		}
		return nil, a.explain("creating cluster "+sc.Name, err)
	}
	crashpoint.Hit("magnum.create")
	return waitFor(ctx, o, a, id, sc.Name, "CREATE", nil)
}

func (a *api) setBounds(ctx context.Context, clusterID string, b bounds) error {
	ops := []nodegroups.UpdateOpts{{Op: nodegroups.ReplaceOp, Path: "/min_node_count", Value: b.min}}
	if b.max != nil {
		ops = append(ops, nodegroups.UpdateOpts{Op: nodegroups.ReplaceOp, Path: "/max_node_count", Value: *b.max})
	} else {
		ops = append(ops, nodegroups.UpdateOpts{Op: nodegroups.RemoveOp, Path: "/max_node_count"})
	}
	if _, err := nodegroups.Update(ctx, a.sc, clusterID, "default-worker", ops).Extract(); err != nil {
		return a.explain("setting nodegroup default-worker bounds to "+b.String(), err)
	}
	return nil
}

// updateCluster carries out the plan's steps on the existing cluster, each
// followed by a wait, and returns the changes made.
func updateCluster(ctx context.Context, o *Options, a *api, p *clusterPlan, ct *clustertemplates.ClusterTemplate) ([]string, error) {
	c := p.cluster
	var changes []string
	if p.widen != nil {
		if err := setBoundsAndWait(ctx, o, a, c, *p.widen); err != nil {
			return changes, err
		}
		changes = append(changes, fmt.Sprintf("widened nodegroup default-worker bounds to %s", p.widen))
	}
	if p.resizeTo >= 0 {
		if err := resizeAndWait(ctx, o, a, c, p.resizeTo); err != nil {
			return changes, err
		}
		changes = append(changes, fmt.Sprintf("resized workers %d -> %d", c.NodeCount, p.resizeTo))
	}
	if p.bounds != nil {
		if err := setBoundsAndWait(ctx, o, a, c, *p.bounds); err != nil {
			return changes, err
		}
		changes = append(changes, fmt.Sprintf("set nodegroup default-worker bounds to %s", p.bounds))
	}
	if p.upgradeFrom != "" || c.ClusterTemplateID != ct.UUID {
		if err := upgradeAndWait(ctx, o, a, c, p.upgradeFrom, ct); err != nil {
			return changes, err
		}
		changes = append(changes, fmt.Sprintf("upgraded from template %s to %s", p.upgradeFrom, ct.Name))
	}
	return changes, nil
}

func setBoundsAndWait(ctx context.Context, o *Options, a *api, c *clusters.Cluster, b bounds) error {
	o.Log.Info("setting nodegroup bounds", "cluster", c.Name, "nodegroup", "default-worker", "bounds", b.String())
	if err := a.setBounds(ctx, c.UUID, b); err != nil {
		return err
	}
	crashpoint.Hit("magnum.bounds")
	_, err := waitFor(ctx, o, a, c.UUID, c.Name, "UPDATE", func(*clusters.Cluster) bool {
		ng, err := a.worker(ctx, c.UUID)
		return err == nil && currentBounds(ng).equal(b)
	})
	return err
}

func resizeAndWait(ctx context.Context, o *Options, a *api, c *clusters.Cluster, n int) error {
	o.Log.Info("resizing cluster", "cluster", c.Name, "from", c.NodeCount, "to", n)
	if _, err := clusters.Resize(ctx, a.sc, c.UUID, clusters.ResizeOpts{NodeCount: &n}).Extract(); err != nil {
		return a.explain(fmt.Sprintf("resizing cluster %s to %d workers", c.Name, n), err)
	}
	crashpoint.Hit("magnum.resize")
	_, err := waitFor(ctx, o, a, c.UUID, c.Name, "UPDATE", func(c *clusters.Cluster) bool { return c.NodeCount == n })
	return err
}

// upgradeAndWait moves the cluster from template from (a name) to ct. A
// refusal by Magnum is ErrNotConvergeable, with the way out.
func upgradeAndWait(ctx context.Context, o *Options, a *api, c *clusters.Cluster, from string, ct *clustertemplates.ClusterTemplate) error {
	o.Log.Info("upgrading cluster", "cluster", c.Name, "from", from, "to", ct.Name)
	if _, err := clusters.Upgrade(ctx, a.sc, c.UUID, clusters.UpgradeOpts{ClusterTemplate: ct.UUID}).Extract(); err != nil {
		explained := a.explain(fmt.Sprintf("upgrading cluster %s to template %s", c.Name, ct.Name), err)
		if statusOf(err) == http.StatusBadRequest {
			return fmt.Errorf("%w: %w; the cluster keeps template %s. To move to %s, create a new cluster from it (change cluster.name), move the platforms, then delete the old one; or revert the template change in the spec",
				ErrNotConvergeable, explained, from, ct.Name)
		}
		return explained
	}
	crashpoint.Hit("magnum.upgrade")
	_, err := waitFor(ctx, o, a, c.UUID, c.Name, "UPDATE", func(c *clusters.Cluster) bool { return c.ClusterTemplateID == ct.UUID })
	return err
}

func faultText(faults map[string]string) string {
	if len(faults) == 0 {
		return ""
	}
	keys := make(map[string]bool, len(faults))
	for k := range faults {
		keys[k] = true
	}
	var parts []string
	for _, k := range sortedSet(keys) {
		parts = append(parts, k+": "+faults[k])
	}
	return "; faults: " + strings.Join(parts, "; ")
}

// describeCluster is the ClusterResult of c, with its template's name and
// nodegroup bounds when Magnum tells them.
func describeCluster(ctx context.Context, a *api, c *clusters.Cluster) *result.ClusterResult {
	res := &result.ClusterResult{
		Region:   a.region,
		Template: result.ClusterTemplateRef{UUID: c.ClusterTemplateID},
		Cluster: result.ClusterState{
			Name: c.Name, UUID: c.UUID, Status: c.Status, StatusReason: c.StatusReason, HealthStatus: c.HealthStatus,
			APIAddress: c.APIAddress, COEVersion: c.COEVersion, MasterCount: c.MasterCount, NodeCount: c.NodeCount,
			MasterAddresses: c.MasterAddresses, NodeAddresses: c.NodeAddresses,
		},
	}
	if ct, err := a.template(ctx, c.ClusterTemplateID); err == nil {
		res.Template.Name = ct.Name
	}
	if ng, err := a.worker(ctx, c.UUID); err == nil {
		res.Cluster.MinNodeCount, res.Cluster.MaxNodeCount = ng.MinNodeCount, ng.MaxNodeCount
	}
	return res
}

// ClusterShow returns the cluster's state as a ClusterResult. A missing
// cluster is an error.
func ClusterShow(ctx context.Context, o Options) (*result.ClusterResult, error) {
	name, a, c, err := startWithCluster(ctx, &o)
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, fmt.Errorf("cluster %s does not exist in region %s", name, a.regionName())
	}
	return o.finish(describeCluster(ctx, a, c), nil), nil
}

// Deleted is what cluster delete did.
type Deleted struct {
	Cluster string `json:"cluster"`
	Deleted bool   `json:"deleted"` // false: there was no such cluster
	UUID    string `json:"uuid,omitempty"`
}

// ClusterDelete deletes the cluster and waits until it is gone. A missing
// cluster is not an error: there is nothing to do.
func ClusterDelete(ctx context.Context, o Options) (*Deleted, error) {
	name, a, c, err := startWithCluster(ctx, &o)
	if err != nil {
		return nil, err
	}
	if c == nil {
		o.Log.Info("cluster does not exist: nothing to do", "cluster", name)
		return &Deleted{Cluster: name}, nil
	}
	if c.Status != "DELETE_IN_PROGRESS" {
		o.Log.Info("deleting cluster", "cluster", name, "uuid", c.UUID, "status", c.Status)
		if err := clusters.Delete(ctx, a.sc, c.UUID).ExtractErr(); err != nil && statusOf(err) != http.StatusNotFound {
			return nil, a.explain("deleting cluster "+name, err)
		}
	}
	if _, err := waitFor(ctx, &o, a, c.UUID, name, "DELETE", nil); err != nil {
		return nil, err
	}
	o.Log.Info("cluster deleted", "cluster", name)
	return &Deleted{Cluster: name, Deleted: true, UUID: c.UUID}, nil
}

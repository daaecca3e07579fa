package magnum

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clusters"

	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/osauth"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
	"github.com/slipwayci/slipway/internal/zuul"
)

// Options configure every magnum-cluster command. Commands that work on a
// spec need Spec; show, delete and kubeconfig accept ClusterName instead.
type Options struct {
	Auth osauth.Options
	// Spec is the parsed spec file, SpecFile its path (for messages).
	Spec     *Spec
	SpecFile string
	// ClusterName names the cluster when there is no spec.
	ClusterName string
	// Kubeconfig is where to write the kubeconfig (0600); with a spec of
	// several regions only when Region chooses one.
	Kubeconfig string
	// KubeconfigDir, when set, is where each region's kubeconfig is
	// written, as KubeconfigPath(dir, region) (0600).
	KubeconfigDir string
	// Region limits a spec with regions to that one region.
	Region string
	// RegionClouds names the clouds.yaml entry of a region (region name to
	// cloud) where the regions have Keystones of their own; other regions
	// use Auth as it is, with their region name.
	RegionClouds map[string]string
	// Zuul, when set, is recorded in the ClusterResult.
	Zuul *zuul.Context
	// WaitTimeout bounds each wait. Default: the spec's create_timeout plus
	// 10 minutes for creates, 60 minutes for updates and deletes.
	WaitTimeout time.Duration
	// PollInterval is the first pause between status polls (default 5s);
	// it grows by half each poll up to MaxPollInterval (default 30s).
	PollInterval, MaxPollInterval time.Duration
	// AllVersions makes template delete remove every unused version.
	AllVersions bool

	// Log and Progress report on stderr.
	Log      *slog.Logger
	Progress *progress.Printer
	// Now is the clock. Default time.Now.
	Now func() time.Time

	// region is set in the Options of one region of a spec with regions.
	region string
}

func (o *Options) defaults() {
	if o.Log == nil {
		o.Log = logging.Discard()
	}
	if o.Progress == nil {
		o.Progress = progress.Discard()
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 5 * time.Second
	}
	if o.MaxPollInterval < o.PollInterval {
		o.MaxPollInterval = max(30*time.Second, o.PollInterval)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Auth.Stage == "" {
		o.Auth.Stage = "magnum-cluster"
	}
}

// Errors for Options that lack what a command works on (user errors).
var (
	ErrNoSpec        = usererr.New("a spec is required: the command works on a spec file")
	ErrNoClusterName = usererr.New("the cluster is not named: give a spec or a cluster name")
	ErrNoKubeconfig  = usererr.New("the kubeconfig path is required")
)

// ErrRegionsSpec: a single-region command was given a spec with regions,
// which the InRegions form of the command (or ClustersEnsure/Show) runs.
var ErrRegionsSpec = errors.New("the spec names regions: run the command in each region (InRegions)")

// oneRegion checks the region options of a command in one region and
// points a kubeconfig directory at the region's file.
func (o *Options) oneRegion() error {
	if o.region != "" {
		return nil
	}
	if o.Spec != nil && o.Spec.HasRegions() {
		return ErrRegionsSpec
	}
	if _, err := o.regionOptions(); err != nil {
		return err
	}
	if o.KubeconfigDir != "" && o.Kubeconfig == "" {
		o.Kubeconfig = KubeconfigPath(o.KubeconfigDir, o.Auth.Region)
	}
	return nil
}

// startWithSpec begins a command that needs the spec file: defaults, the
// spec check, and the connection to Magnum.
func startWithSpec(ctx context.Context, o *Options) (*api, error) {
	o.defaults()
	if o.Spec == nil {
		return nil, ErrNoSpec
	}
	if err := o.oneRegion(); err != nil {
		return nil, err
	}
	return connect(ctx, o.Auth)
}

// startWithCluster begins a command on one existing cluster, named by the
// spec or ClusterName: defaults, the name, the connection to Magnum, and the
// cluster (nil if there is none of that name).
func startWithCluster(ctx context.Context, o *Options) (string, *api, *clusters.Cluster, error) {
	o.defaults()
	name := o.ClusterName
	if o.Spec != nil {
		name = o.Spec.Cluster.Name
	}
	if name == "" {
		return "", nil, nil, ErrNoClusterName
	}
	if err := o.oneRegion(); err != nil {
		return name, nil, nil, err
	}
	a, err := connect(ctx, o.Auth)
	if err != nil {
		return name, nil, nil, err
	}
	c, err := a.clusterByName(ctx, name)
	return name, a, c, err
}

// finish completes a ClusterResult with what the options know: the cloud,
// the Zuul change, and the changes of this run ([] when none, never null).
func (o *Options) finish(res *result.ClusterResult, changes []string) *result.ClusterResult {
	if o.Zuul != nil {
		res.Zuul = o.Zuul.ResultRef()
	}
	res.Cloud = o.Auth.Cloud
	res.Changes = append([]string{}, changes...)
	return res
}

// ZuulReturn is the zuul_return data for a ClusterResult: an artifact for
// the cluster and a slipway_cluster variable for later jobs. It names the
// kubeconfig's path, never its content.
func ZuulReturn(res *result.ClusterResult) zuul.Return {
	return zuul.Return{
		Artifacts: []zuul.Artifact{clusterArtifact(res, "")},
		Vars:      map[string]any{"slipway_cluster": clusterVars(res)},
	}
}

// ZuulReturnRegions is the zuul_return data for a ClustersResult: an
// artifact per region, slipway_clusters (region name to what
// slipway_cluster holds for one cluster), and slipway_cluster for the
// first region (the primary), as for a spec without regions.
func ZuulReturnRegions(res *result.ClustersResult) zuul.Return {
	ret := zuul.Return{Vars: map[string]any{}}
	byRegion := map[string]any{}
	for i := range res.Regions {
		r := &res.Regions[i]
		ret.Artifacts = append(ret.Artifacts, clusterArtifact(r, " in "+r.Region))
		byRegion[r.Region] = clusterVars(r)
		if i == 0 {
			ret.Vars["slipway_cluster"] = byRegion[r.Region]
		}
	}
	ret.Vars["slipway_clusters"] = byRegion
	return ret
}

func clusterArtifact(res *result.ClusterResult, suffix string) zuul.Artifact {
	c := res.Cluster
	return zuul.Artifact{
		Name: "magnum cluster " + c.Name + suffix, URL: c.APIAddress,
		Metadata: map[string]any{"type": "magnum_cluster", "uuid": c.UUID, "region": res.Region, "template": res.Template.Name, "status": c.Status},
	}
}

func clusterVars(res *result.ClusterResult) map[string]any {
	c := res.Cluster
	return map[string]any{
		"name": c.Name, "uuid": c.UUID, "status": c.Status, "api_address": c.APIAddress, "region": res.Region,
		"template": res.Template.Name, "master_count": c.MasterCount, "node_count": c.NodeCount,
		"kubeconfig": res.Kubeconfig, "changes": res.Changes,
	}
}

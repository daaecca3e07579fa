package result

import "fmt"

// ClusterResult is written by magnum-cluster and read by deploy-k8s (for the
// kubeconfig) and by people: what the cluster is and what this run changed.
type ClusterResult struct {
	Header
	Zuul *ZuulRef `json:"zuul,omitempty"`
	// Cloud and Region say where the cluster lives.
	Cloud  string `json:"cloud,omitempty"`
	Region string `json:"region,omitempty"`
	// Template is the cluster template the cluster uses now.
	Template ClusterTemplateRef `json:"template"`
	Cluster  ClusterState       `json:"cluster"`
	// Kubeconfig is the path of the kubeconfig written (0600), if any.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// Changes lists what this run did, e.g. "created cluster",
	// "resized workers 3 -> 4"; empty when nothing had to change.
	Changes []string `json:"changes"`
}

// ResultKind implements Document.
func (r *ClusterResult) ResultKind() string { return "ClusterResult" }

// ClusterTemplateRef names a Magnum cluster template.
type ClusterTemplateRef struct {
	Name string `json:"name"`
	UUID string `json:"uuid"`
}

// ClusterState is a Magnum cluster as last seen.
type ClusterState struct {
	Name         string `json:"name"`
	UUID         string `json:"uuid"`
	Status       string `json:"status"`
	StatusReason string `json:"statusReason,omitempty"`
	HealthStatus string `json:"healthStatus,omitempty"`
	// APIAddress is the Kubernetes API URL.
	APIAddress   string `json:"apiAddress,omitempty"`
	COEVersion   string `json:"coeVersion,omitempty"`
	MasterCount  int    `json:"masterCount"`
	NodeCount    int    `json:"nodeCount"`
	MinNodeCount int    `json:"minNodeCount"`
	// MaxNodeCount is nil when the worker nodegroup has no maximum.
	MaxNodeCount    *int     `json:"maxNodeCount,omitempty"`
	MasterAddresses []string `json:"masterAddresses,omitempty"`
	NodeAddresses   []string `json:"nodeAddresses,omitempty"`
}

// ClustersResult is written by magnum-cluster for a spec with regions: one
// ClusterResult per region (each a whole document of its own, without the
// Zuul change, which is recorded once here), in the spec's order, the
// primary first.
type ClustersResult struct {
	Header
	Zuul    *ZuulRef        `json:"zuul,omitempty"`
	Regions []ClusterResult `json:"regions"`
	// Changes lists what this run did in every region, each change prefixed
	// with its region ("RegionTwo: created cluster ..."); empty when nothing
	// had to change anywhere.
	Changes []string `json:"changes"`
}

// ResultKind implements Document.
func (r *ClustersResult) ResultKind() string { return "ClustersResult" }

// In returns the cluster of region.
func (r *ClustersResult) In(region string) (*ClusterResult, error) {
	for i := range r.Regions {
		if r.Regions[i].Region == region {
			return &r.Regions[i], nil
		}
	}
	return nil, fmt.Errorf("the cluster result has no region %q", region)
}

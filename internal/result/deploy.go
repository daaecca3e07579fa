package result

// DeployResult is written by deploy-k8s: what one deploy, rollback or job
// run did to a platform branch's namespace.
type DeployResult struct {
	Header
	Zuul *ZuulRef `json:"zuul,omitempty"`
	// Action is "deploy", "rollback", "set-mode" or "run-job".
	Action    string `json:"action"`
	Branch    string `json:"branch"`
	Namespace string `json:"namespace"`
	// Revision is the deploy revision now live in the namespace; Changed is
	// false when the deploy found nothing to change and recorded no new one.
	Revision int  `json:"revision"`
	Changed  bool `json:"changed"`
	// RolledBackTo is the revision a rollback re-applied.
	RolledBackTo int `json:"rolledBackTo,omitempty"`
	// ManifestHash is the sha256 of the rendered, digest-pinned manifests.
	ManifestHash string `json:"manifestHash"`
	// PullAddress says which registry address the images are pinned to:
	// "node" (the address the region's nodes pull, e.g. localhost:5000) or
	// "ci" (the address CI pushed to).
	PullAddress string `json:"pullAddress,omitempty"`
	// Mode is the site's mode after the deploy: "active" or "standby"
	// (application workloads at 0 replicas).
	Mode    string           `json:"mode,omitempty"`
	Images  []DeployedImage  `json:"images"`
	Objects []DeployedObject `json:"objects"`
	Pruned  []DeployedObject `json:"pruned"`
	Jobs    []DeployedJob    `json:"jobs,omitempty"`
	// Counts of Objects by Action.
	Created    int `json:"created"`
	Configured int `json:"configured"`
	Unchanged  int `json:"unchanged"`
}

// ResultKind implements Document.
func (r *DeployResult) ResultKind() string { return "DeployResult" }

// DeployedImage is one container image reference and what it was pinned to.
type DeployedImage struct {
	// Reference is the image as the manifests wrote it.
	Reference string `json:"reference"`
	// Pinned is repository@digest as deployed.
	Pinned string `json:"pinned"`
	Digest string `json:"digest"`
}

// DeployedObject names one object applied or pruned.
type DeployedObject struct {
	Group string `json:"group,omitempty"`
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	// Action is "created", "configured" or "unchanged" (applied objects) or
	// "pruned".
	Action string `json:"action"`
}

// DeployedJob is one one-off Job run from a Job template of the manifests
// or from a live CronJob's jobTemplate.
type DeployedJob struct {
	// Template is the Job template run; CronJob the CronJob whose
	// jobTemplate was run instead (one of the two is set).
	Template  string `json:"template,omitempty"`
	CronJob   string `json:"cronJob,omitempty"`
	Name      string `json:"name"`
	Succeeded bool   `json:"succeeded"`
	Deleted   bool   `json:"deleted"`
	// Pod is the Job's last pod; Image its (first) container's image as
	// the pod ran it, ImageDigest that image's digest (from the
	// container's imageID, else the pinned reference), empty when unknown.
	Pod         string `json:"pod,omitempty"`
	Image       string `json:"image,omitempty"`
	ImageDigest string `json:"imageDigest,omitempty"`
	// ExitCode, Reason and TerminationMessage are the container's
	// termination (ExitCode nil when it did not terminate).
	ExitCode           *int32 `json:"exitCode,omitempty"`
	Reason             string `json:"reason,omitempty"`
	TerminationMessage string `json:"terminationMessage,omitempty"`
}

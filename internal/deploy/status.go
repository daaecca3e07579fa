package deploy

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/slipwayci/slipway/internal/result"
)

// Workload roles in a SiteStatus.
const (
	// RoleApp is an application workload (scaled to 0 in standby).
	RoleApp = "app"
	// RoleData is every other workload: the data stores a standby keeps
	// running (MySQL, MongoDB, Redis...).
	RoleData = "data"
)

// SiteStatus is the health of a branch's namespace for the mode its newest
// revision deployed it in.
type SiteStatus struct {
	Namespace string `json:"namespace"`
	Branch    string `json:"branch"`
	// Revision is the newest revision (0: none) and RevisionStatus its
	// status (good, failed, deploying).
	Revision       int    `json:"revision"`
	RevisionStatus string `json:"revisionStatus,omitempty"`
	// Mode is active or standby (empty when nothing is deployed).
	Mode string `json:"mode,omitempty"`
	// Healthy: standby, the data stores are ready and the applications at
	// 0 replicas with no pods; active, every workload is ready.
	Healthy   bool             `json:"healthy"`
	Problems  []string         `json:"problems"`
	Workloads []WorkloadStatus `json:"workloads"`
	// Images are the images the newest revision pinned, as its nodes pull
	// them (a failover's preflight checks each is whole in the site's
	// region: push-registry verify --deployed).
	Images []result.DeployedImage `json:"images"`
}

// WorkloadStatus is one workload of the newest revision, as it is live.
type WorkloadStatus struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Role is RoleApp or RoleData.
	Role string `json:"role"`
	// Desired replicas (spec.replicas; a DaemonSet's desired pods), Ready
	// the ready ones, Pods every pod of the workload (terminating too).
	Desired int64 `json:"desired"`
	Ready   int64 `json:"ready"`
	Pods    int   `json:"pods"`
	Healthy bool  `json:"healthy"`
}

// ErrUnhealthy is returned (wrapped, naming the problems) by Status when
// the site is not healthy for its mode, or not in the mode expected.
var ErrUnhealthy = errors.New("not healthy")

// Status reads the newest revision of the branch's namespace and its live
// workloads and says whether the site is healthy for its mode (see
// SiteStatus); Expect, when set, is the mode it must be in. It changes
// nothing. An unhealthy site returns the status and an error wrapping
// ErrUnhealthy.
func Status(ctx context.Context, opts Options) (*SiteStatus, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	switch opts.Expect {
	case "", ModeActive, ModeStandby:
	default:
		return nil, optionErrorf("Expect", "expected mode %q: want %s or %s", opts.Expect, ModeActive, ModeStandby)
	}
	ns, err := NamespaceFor(opts.Branch, opts.BranchPrefix, opts.NamespacePrefix)
	if err != nil {
		return nil, err
	}
	t, err := opts.target(ctx, ns)
	if err != nil {
		return nil, err
	}
	s := &SiteStatus{Namespace: ns, Branch: opts.Branch, Problems: []string{}, Workloads: []WorkloadStatus{}, Images: []result.DeployedImage{}}
	exists, err := t.checkNamespace(ctx, opts.Branch, false)
	switch {
	case err != nil:
		return nil, err
	case !exists:
		return s.judge(opts.Expect, fmt.Sprintf("namespace %s does not exist: branch %s is not deployed at this site", ns, opts.Branch))
	}
	revs, err := t.revisions(ctx)
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		return s.judge(opts.Expect, fmt.Sprintf("namespace %s has no deploy revision", ns))
	}
	cur := revs[0]
	st := cur.state()
	s.Revision, s.RevisionStatus, s.Mode = cur.Number, cur.Status, st.mode()
	s.Images = append(s.Images, st.Images...)
	var problems []string
	if cur.Status != statusGood {
		problems = append(problems, fmt.Sprintf("revision %d is %s", cur.Number, cur.Status))
	}
	objs, err := cur.manifests()
	if err != nil {
		return nil, err
	}
	apps := map[string]bool{}
	for _, id := range st.Apps {
		apps[id] = true
	}
	for _, u := range objs {
		if !statusKinds[u.GetKind()] || isJobTemplate(u) {
			continue
		}
		w, problem, err := t.workloadStatus(ctx, u, apps[objectID(u)] && s.Mode == ModeStandby)
		if err != nil {
			return nil, err
		}
		if apps[objectID(u)] {
			w.Role = RoleApp
		}
		s.Workloads = append(s.Workloads, w)
		if problem != "" {
			problems = append(problems, problem)
		}
	}
	return s.judge(opts.Expect, problems...)
}

// statusKinds are the workloads Status reports.
var statusKinds = map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true}

// judge records problems (and a mode other than expect) in s, and returns
// s with an error naming them when there are any.
func (s *SiteStatus) judge(expect string, problems ...string) (*SiteStatus, error) {
	if expect != "" && s.Mode != expect {
		mode := s.Mode
		if mode == "" {
			mode = "not deployed"
		}
		problems = append([]string{fmt.Sprintf("mode is %s, expected %s", mode, expect)}, problems...)
	}
	s.Problems = append(s.Problems, problems...)
	s.Healthy = len(s.Problems) == 0
	if s.Healthy {
		return s, nil
	}
	mode := s.Mode
	if mode == "" {
		mode = "any"
	}
	return s, fmt.Errorf("site %s is %w for mode %s: %s", s.Namespace, ErrUnhealthy, mode, strings.Join(s.Problems, "; "))
}

// workloadStatus reads workload u as it is live; scaled says it must be at
// 0 replicas with no pods, else it must be ready. problem is what is wrong
// with it, if anything.
func (t *target) workloadStatus(ctx context.Context, u *unstructured.Unstructured, scaled bool) (WorkloadStatus, string, error) {
	w := WorkloadStatus{Kind: u.GetKind(), Name: u.GetName(), Role: RoleData}
	id := objectID(u)
	m, err := t.c.mapper.RESTMapping(u.GroupVersionKind().GroupKind(), u.GroupVersionKind().Version)
	if err != nil {
		return w, "", fmt.Errorf("finding the API of %s: %w", id, ctxErr(ctx, err))
	}
	live, err := t.c.resource(m, t.ns).Get(ctx, u.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return w, id + " is missing", nil
	}
	if err != nil {
		return w, "", fmt.Errorf("reading %s in %s: %w", id, t.ns, ctxErr(ctx, err))
	}
	live.SetGroupVersionKind(m.GroupVersionKind)
	pods, err := t.workloadPods(ctx, live)
	if err != nil {
		return w, "", err
	}
	w.Pods = len(pods)
	if u.GetKind() == "DaemonSet" {
		w.Desired, w.Ready = nestedInt(live, "status", "desiredNumberScheduled"), nestedInt(live, "status", "numberReady")
	} else {
		w.Desired, w.Ready = specReplicas(live), nestedInt(live, "status", "readyReplicas")
	}
	if scaled {
		w.Healthy = scaledDownDone(live, len(pods))
		if !w.Healthy {
			return w, fmt.Sprintf("%s has %d replicas and %d pods, want 0 (standby)", id, w.Desired, w.Pods), nil
		}
		return w, "", nil
	}
	done, why := waitedKinds[u.GetKind()](live)
	w.Healthy = done
	switch {
	case why != "":
		return w, id + ": " + why, nil
	case !done:
		return w, fmt.Sprintf("%s has %d of %d replicas ready", id, w.Ready, w.Desired), nil
	}
	return w, "", nil
}

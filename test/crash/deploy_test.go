package crash

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayci/slipway/internal/deploy"
	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/testenv"
)

// platform is one branch (and namespace) of its own with a copy of the
// example Tutor tree and push results of three versions.
type platform struct {
	k                   *deploytest.Kube
	branch, ns, tree    string
	push1, push2, push3 string
}

func newPlatform(t *testing.T, k *deploytest.Kube) *platform {
	// Every point has a namespace of seven Deployments: they would fill
	// the shared kwok node's pods if they stayed (kept when the test
	// fails, to look at).
	p := &platform{k: k, branch: k.Branch(t, "harness"), tree: deploytest.PlatformTree(t)}
	var err error
	if p.ns, err = deploy.NamespaceFor(p.branch, deploy.DefaultBranchPrefix, ""); err != nil {
		t.Fatal(err)
	}
	p.push1, _ = deploytest.WritePush(t, "v1")
	p.push2, _ = deploytest.WritePush(t, "v2")
	p.push3, _ = deploytest.WritePush(t, "v3")
	return p
}

func (p *platform) deploy(push string, extra ...string) []string {
	return append([]string{"deploy", "--branch", p.branch, "--timeout", "90s", "--kubeconfig", p.k.Kubeconfig, "--manifests", p.tree,
		"--push-result", push, "--region", "A", "--allow-image", "docker.io/redis", "--allow-image", "docker.io/caddy"}, extra...)
}

// must runs deploy-k8s args uninterrupted, to set a scenario up.
func (p *platform) must(t *testing.T, args ...string) {
	t.Helper()
	if o := run(t, &command{bin: "deploy-k8s", args: args}, nil); o.code != 0 {
		t.Fatalf("deploy-k8s %s: %s", strings.Join(args, " "), o)
	}
}

// redeployEdit is the change of a changed redeploy: a Service renamed, so
// the old one is pruned.
func (p *platform) redeployEdit(t *testing.T) {
	testenv.Edit(t, p.tree, "k8s/services.yml", "  name: redis\n", "  name: redis-v2\n")
}

var jobStarted = regexp.MustCompile(`msg="job started" job=(\S+)`)

// command is args of deploy-k8s with a result file of its own. Besides the
// end state, it checks jobs across the kill: a job the killed run started
// and left running is taken over by the rerun (run-job reports that job),
// not run again, and a job the killed run recorded on the revision
// (deploy.job-recorded) is not run again.
func (p *platform) command(t *testing.T, args []string, idempotent bool) *command {
	c := &command{bin: "deploy-k8s", args: append(args, "--result", filepath.Join(t.TempDir(), "deploy.json")), state: p.state}
	if idempotent {
		c.unchanged = func(o outcome) error {
			if !strings.Contains(o.stdout, "changed=false") {
				return fmt.Errorf("stdout %q, want changed=false", o.stdout)
			}
			return nil
		}
	}
	var leftJob string
	c.afterKill = func(t *testing.T, killed outcome) {
		if m := jobStarted.FindStringSubmatch(killed.stderr); m != nil {
			j, err := p.k.Core.BatchV1().Jobs(p.ns).Get(context.Background(), m[1], metav1.GetOptions{})
			if err == nil && j.DeletionTimestamp == nil {
				leftJob = m[1]
			}
		}
	}
	c.afterRerun = func(t *testing.T, k killPoint, _, rerun outcome) {
		if leftJob != "" && args[0] == "run-job" && !strings.Contains(rerun.stdout, "job="+leftJob+" ") {
			t.Errorf("the killed run left job %s; the rerun ran another: %s", leftJob, rerun.stdout)
		}
		if leftJob != "" && !strings.Contains(rerun.stderr, "taking over a job an interrupted run started") {
			t.Errorf("the killed run left job %s; the rerun did not take it over:\n%s", leftJob, tail(rerun.stderr, 15))
		}
		if k.step == "deploy.job-recorded" && strings.Contains(rerun.stderr, `msg="job started"`) {
			t.Errorf("the killed run recorded its job on the revision; the rerun ran it again:\n%s", tail(rerun.stderr, 15))
		}
	}
	return c
}

// crashDeployK8s kills each command at every named step it reaches (first
// hit: each is a case a fix covers, e.g. changed redeploy at deploy.begin:
// a revision on record as deploying is resumed) and at the points spread
// over its run.
func crashDeployK8s(t *testing.T) {
	k := deploytest.RequireKube(t)
	crash(t, "deploy-k8s", 4,
		scenario{name: "deploy", everyStep: true, setup: func(t *testing.T, id string) *command {
			p := newPlatform(t, k)
			return p.command(t, p.deploy(p.push1), true)
		}},
		// New digests, a Service renamed (one pruned), and a job run after
		// the rollout.
		scenario{name: "changed redeploy", everyStep: true, setup: func(t *testing.T, id string) *command {
			p := newPlatform(t, k)
			p.must(t, p.deploy(p.push1, "--no-wait")...)
			p.redeployEdit(t)
			return p.command(t, p.deploy(p.push2, "--job", "lms-job"), true)
		}},
		// Back to revision 2 of three, keeping three records (so the
		// oldest is trimmed).
		scenario{name: "rollback", everyStep: true, setup: func(t *testing.T, id string) *command {
			p := newPlatform(t, k)
			p.must(t, p.deploy(p.push1, "--no-wait")...)
			p.redeployEdit(t)
			p.must(t, p.deploy(p.push2, "--no-wait")...)
			p.must(t, p.deploy(p.push3, "--no-wait")...)
			return p.command(t, []string{"rollback", "--kubeconfig", k.Kubeconfig, "--branch", p.branch, "--to-revision", "2",
				"--keep-revisions", "3", "--timeout", "90s"}, true)
		}},
		scenario{name: "run-job", everyStep: true, setup: func(t *testing.T, id string) *command {
			p := newPlatform(t, k)
			p.must(t, p.deploy(p.push1, "--no-wait")...)
			return p.command(t, []string{"run-job", "--kubeconfig", k.Kubeconfig, "--branch", p.branch, "--job", "lms-job", "--timeout", "90s"}, false)
		}},
	)
}

// state is what a converged namespace holds, in terms that do not depend
// on its name: the ApplySet parent's kinds, its members (Deployments with
// their images), the revision history (manifest hashes as h1, h2... in
// order of first appearance) and the Jobs left.
func (p *platform) state(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	core := p.k.Core
	sel := metav1.ListOptions{LabelSelector: "applyset.kubernetes.io/part-of"}
	var lines []string
	parent, err := core.CoreV1().Secrets(p.ns).Get(ctx, "slipway", metav1.GetOptions{})
	if err != nil {
		return "no ApplySet parent: " + err.Error()
	}
	lines = append(lines, "parent kinds "+parent.Annotations["applyset.kubernetes.io/contains-group-kinds"])
	member := func(kind string, m metav1.ObjectMeta, extra string) {
		lines = append(lines, fmt.Sprintf("%s/%s %s", kind, m.Name, extra))
	}
	cms, err := core.CoreV1().ConfigMaps(p.ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range cms.Items {
		member("ConfigMap", o.ObjectMeta, "")
	}
	svcs, err := core.CoreV1().Services(p.ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range svcs.Items {
		member("Service", o.ObjectMeta, "")
	}
	pvcs, err := core.CoreV1().PersistentVolumeClaims(p.ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range pvcs.Items {
		member("PersistentVolumeClaim", o.ObjectMeta, "")
	}
	deps, err := core.AppsV1().Deployments(p.ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range deps.Items {
		var images []string
		for _, c := range o.Spec.Template.Spec.Containers {
			images = append(images, c.Image)
		}
		member("Deployment", o.ObjectMeta, strings.Join(images, " "))
	}
	sort.Strings(lines)
	recs, err := core.CoreV1().Secrets(p.ns).List(ctx, metav1.ListOptions{LabelSelector: "slipway.dev/record=revision"})
	if err != nil {
		t.Fatal(err)
	}
	number := func(s corev1.Secret) int { n, _ := strconv.Atoi(s.Annotations["slipway.dev/revision"]); return n }
	slices.SortFunc(recs.Items, func(a, b corev1.Secret) int { return number(a) - number(b) })
	hashes := map[string]string{}
	for _, r := range recs.Items {
		var st struct {
			ManifestHash string `json:"manifestHash"`
		}
		_ = json.Unmarshal(r.Data["state.json"], &st)
		h := st.ManifestHash
		if hashes[h] == "" {
			hashes[h] = "h" + strconv.Itoa(len(hashes)+1)
		}
		lines = append(lines, fmt.Sprintf("revision %s %s %s rolled-back-to=%s", r.Annotations["slipway.dev/revision"], r.Annotations["slipway.dev/status"],
			hashes[h], r.Annotations["slipway.dev/rolled-back-to"]))
	}
	jobs, err := core.BatchV1().Jobs(p.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, j := range jobs.Items {
		if j.DeletionTimestamp == nil {
			left = append(left, j.Labels["slipway.dev/job-template-name"])
		}
	}
	sort.Strings(left)
	return strings.Join(append(lines, "jobs left: "+strings.Join(left, " ")), "\n")
}

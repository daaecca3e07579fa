package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/deploy"
	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/testenv"
)

// envCrashN widens the crash harness: every hit of every step (not only the
// first), and that many kills at time points spread over the command's run
// (default 1).
const envCrashN = "SLIPWAY_CRASH_N"

// crashCase is one command of the harness: setup brings a fresh branch to
// where the command starts and returns its arguments.
type crashCase struct {
	name  string
	setup func(t *testing.T, e *crashEnv) []string
	// idempotent: a further run of the command changes nothing.
	idempotent bool
}

var crashCases = []crashCase{
	{name: "deploy", idempotent: true, setup: func(t *testing.T, e *crashEnv) []string {
		return e.deployArgs(e.push1)
	}},
	// A changed redeploy: new digests, a Service renamed (one pruned), and
	// a job run after the rollout.
	{name: "redeploy", idempotent: true, setup: func(t *testing.T, e *crashEnv) []string {
		e.mustRun(t, append(e.deployArgs(e.push1), "--no-wait"))
		testenv.Edit(t, e.tree, "k8s/services.yml", "  name: redis\n", "  name: redis-v2\n")
		return append(e.deployArgs(e.push2), "--job", "lms-job")
	}},
	// Back to revision 2 of three, keeping three records (so the oldest is
	// trimmed).
	{name: "rollback", idempotent: true, setup: func(t *testing.T, e *crashEnv) []string {
		e.mustRun(t, append(e.deployArgs(e.push1), "--no-wait"))
		testenv.Edit(t, e.tree, "k8s/services.yml", "  name: redis\n", "  name: redis-v2\n")
		e.mustRun(t, append(e.deployArgs(e.push2), "--no-wait"))
		e.mustRun(t, append(e.deployArgs(e.push3), "--no-wait"))
		return []string{"rollback", "--kubeconfig", e.k.Kubeconfig, "--branch", e.branch, "--to-revision", "2", "--keep-revisions", "3", "--timeout", "90s"}
	}},
	{name: "run-job", setup: func(t *testing.T, e *crashEnv) []string {
		e.mustRun(t, append(e.deployArgs(e.push1), "--no-wait"))
		return []string{"run-job", "--kubeconfig", e.k.Kubeconfig, "--branch", e.branch, "--job", "lms-job", "--timeout", "90s"}
	}},
}

// TestCrash kills deploy-k8s (built with the crash hook) with SIGKILL at
// every named step each command reaches and at time points, runs the same
// command once more, and checks it converged: exit 0, the live objects,
// ApplySet parent, revision history and Jobs equal to an uninterrupted
// run's, and a further run changing nothing. Each point is a subtest, the
// regression test of the case it covers (e.g. redeploy/deploy.begin: a
// revision on record as deploying is resumed).
func TestCrash(t *testing.T) {
	k := deploytest.RequireKube(t)
	bin := filepath.Join(t.TempDir(), "deploy-k8s")
	if out, err := exec.Command("go", "build", "-tags", "slipway_crashpoints", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("building deploy-k8s with the crash hook: %v\n%s", err, out)
	}
	wide, _ := strconv.Atoi(os.Getenv(envCrashN))
	timePoints := max(wide, 1)
	rep := &crashReport{}
	t.Cleanup(func() { t.Log("crash harness report:\n" + rep.String()) })
	for _, c := range crashCases {
		t.Run(c.name, func(t *testing.T) {
			ref := newCrashEnv(t, k, bin)
			args := c.setup(t, ref)
			steps := filepath.Join(t.TempDir(), "steps")
			start := time.Now()
			ref.mustRun(t, args, crashpoint.EnvLog+"="+steps)
			took := time.Since(start)
			want := ref.snapshot(t)
			points := crashPoints(t, steps, wide > 0)
			for i := 1; i <= timePoints; i++ {
				points = append(points, (took * time.Duration(i) / time.Duration(timePoints+1)).Round(time.Millisecond).String())
			}
			// Points run a few at a time: each mostly waits on the API server.
			sem := make(chan struct{}, crashParallel)
			var wg sync.WaitGroup
			for _, pt := range points {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer func() { <-sem; wg.Done() }()
					var took time.Duration
					ok := t.Run(pt, func(t *testing.T) { took = crashAndRerun(t, c, want, newCrashEnv(t, k, bin), pt) })
					rep.add(c.name, took, ok)
				}()
			}
			wg.Wait()
		})
	}
}

// crashParallel is how many crash points of one command run at once.
const crashParallel = 4

// crashAndRerun kills c's command at pt in env e, runs it again and checks
// that it converged to want. It returns how long the rerun took.
func crashAndRerun(t *testing.T, c crashCase, want map[string]string, e *crashEnv, pt string) time.Duration {
	args := c.setup(t, e)
	killedLog := e.kill(t, args, pt)
	// A job the killed run started and left is taken over, not run twice.
	var leftJob string
	if m := jobStarted.FindStringSubmatch(killedLog); m != nil {
		if j, err := e.k.Core.BatchV1().Jobs(e.ns).Get(context.Background(), m[1], metav1.GetOptions{}); err == nil && j.DeletionTimestamp == nil {
			leftJob = m[1]
		}
	}
	start := time.Now()
	code, stdout, stderr := e.run(args)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("rerun after the kill at %s: exit %d\nstdout: %s\nstderr: %s", pt, code, stdout, stderr)
	}
	if diff := cmp.Diff(want, e.snapshot(t)); diff != "" {
		t.Errorf("after the kill at %s and one rerun, the namespace differs from an uninterrupted run's (-want +got):\n%s", pt, diff)
	}
	if leftJob != "" && c.name == "run-job" && !strings.Contains(stdout, "job="+leftJob+" ") {
		t.Errorf("the killed run left job %s; the rerun ran another: %s", leftJob, stdout)
	}
	if leftJob != "" && !strings.Contains(stderr, "taking over a job an interrupted run started") {
		t.Errorf("the killed run left job %s; the rerun did not take it over:\n%s", leftJob, stderr)
	}
	// A job the killed run had run and recorded on the revision is not run again.
	if strings.HasPrefix(pt, "deploy.job-recorded") && strings.Contains(stderr, `msg="job started"`) {
		t.Errorf("the killed run recorded its job on the revision; the rerun ran it again:\n%s", stderr)
	}
	if c.idempotent {
		if code, stdout, stderr := e.run(args); code != 0 || !strings.Contains(stdout, "changed=false") {
			t.Errorf("a further run after convergence: exit %d, stdout %q, want no change\n%s", code, stdout, stderr)
		}
	}
	return took
}

var jobStarted = regexp.MustCompile(`msg="job started" job=(\S+)`)

// crashPoints lists the steps a clean run logged: each step once (at its
// first hit), or every hit of each (NAME:N) when wide.
func crashPoints(t *testing.T, stepsFile string, wide bool) []string {
	t.Helper()
	data, err := os.ReadFile(stepsFile)
	if err != nil {
		t.Fatalf("the clean run logged no steps: %v", err)
	}
	count := map[string]int{}
	var points []string
	for _, step := range strings.Fields(string(data)) {
		count[step]++
		switch {
		case count[step] == 1:
			points = append(points, step)
		case wide:
			points = append(points, step+":"+strconv.Itoa(count[step]))
		}
	}
	return points
}

// crashEnv is one branch (and namespace) of its own, with the example tree
// and three push results.
type crashEnv struct {
	k                   *deploytest.Kube
	bin                 string
	branch, ns          string
	tree                string
	push1, push2, push3 string
}

func newCrashEnv(t *testing.T, k *deploytest.Kube, bin string) *crashEnv {
	e := &crashEnv{k: k, bin: bin, branch: k.Branch(t, "crash"), tree: deploytest.PlatformTree(t)}
	e.ns, _ = deploy.NamespaceFor(e.branch, deploy.DefaultBranchPrefix, "")
	e.push1, _ = deploytest.WritePush(t, "v1")
	e.push2, _ = deploytest.WritePush(t, "v2")
	e.push3, _ = deploytest.WritePush(t, "v3")
	return e
}

func (e *crashEnv) deployArgs(push string) []string {
	return append([]string{"deploy", "--branch", e.branch, "--timeout", "90s"}, commonArgs(e.k, e.tree, push)...)
}

// run runs the binary with args and extra environment variables.
func (e *crashEnv) run(args []string, env ...string) (int, string, string) {
	cmd := exec.Command(e.bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		return -1, stdout.String(), err.Error()
	}
	return 0, stdout.String(), stderr.String()
}

func (e *crashEnv) mustRun(t *testing.T, args []string, env ...string) {
	t.Helper()
	if code, stdout, stderr := e.run(args, env...); code != 0 {
		t.Fatalf("deploy-k8s %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout, stderr)
	}
}

// kill runs args and has it killed with SIGKILL at point: a step name
// (the hook kills it there) or a duration after the start. It returns what
// the killed run logged.
func (e *crashEnv) kill(t *testing.T, args []string, point string) string {
	t.Helper()
	cmd := exec.Command(e.bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Env = os.Environ()
	after, timed := time.ParseDuration(point)
	if timed != nil {
		cmd.Env = append(cmd.Env, crashpoint.EnvPoint+"="+point)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if timed == nil {
		timer := time.AfterFunc(after, func() { _ = cmd.Process.Kill() })
		defer timer.Stop()
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
	if !killed && timed != nil {
		t.Fatalf("deploy-k8s was not killed at step %s (%v)\n%s", point, err, stderr.String())
	}
	return stderr.String()
}

// snapshot is what a converged namespace must hold, in terms that do not
// depend on its name: the ApplySet members with their images, the kinds the
// parent lists, the revision history (manifest hashes as h1, h2... in order
// of first appearance) and the Jobs left.
func (e *crashEnv) snapshot(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	core := e.k.Core
	sel := metav1.ListOptions{LabelSelector: "applyset.kubernetes.io/part-of"}
	out := map[string]string{}
	parent, err := core.CoreV1().Secrets(e.ns).Get(ctx, "slipway", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("ApplySet parent: %v", err)
	}
	out["parent"] = parent.Annotations["applyset.kubernetes.io/contains-group-kinds"]
	cms, err := core.CoreV1().ConfigMaps(e.ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range cms.Items {
		out["ConfigMap/"+o.Name] = ""
	}
	svcs, err := core.CoreV1().Services(e.ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range svcs.Items {
		out["Service/"+o.Name] = ""
	}
	pvcs, err := core.CoreV1().PersistentVolumeClaims(e.ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range pvcs.Items {
		out["PersistentVolumeClaim/"+o.Name] = ""
	}
	deps, err := core.AppsV1().Deployments(e.ns).List(ctx, sel)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range deps.Items {
		var images []string
		for _, c := range o.Spec.Template.Spec.Containers {
			images = append(images, c.Image)
		}
		out["Deployment/"+o.Name] = strings.Join(images, " ")
	}
	recs, err := core.CoreV1().Secrets(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "slipway.dev/record=revision"})
	if err != nil {
		t.Fatal(err)
	}
	number := func(s corev1.Secret) int { n, _ := strconv.Atoi(s.Annotations["slipway.dev/revision"]); return n }
	slices.SortFunc(recs.Items, func(a, b corev1.Secret) int { return number(a) - number(b) })
	hashes := map[string]string{}
	var history []string
	for _, r := range recs.Items {
		h := manifestHashOf(r.Data["state.json"])
		if hashes[h] == "" {
			hashes[h] = "h" + strconv.Itoa(len(hashes)+1)
		}
		history = append(history, fmt.Sprintf("%s:%s:%s:back=%s", r.Annotations["slipway.dev/revision"], r.Annotations["slipway.dev/status"], hashes[h], r.Annotations["slipway.dev/rolled-back-to"]))
	}
	out["revisions"] = strings.Join(history, " ")
	jobs, err := core.BatchV1().Jobs(e.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, j := range jobs.Items {
		if j.DeletionTimestamp == nil {
			left = append(left, j.Labels["slipway.dev/job-template-name"])
		}
	}
	out["jobs left"] = strings.Join(left, " ")
	return out
}

var manifestHashField = regexp.MustCompile(`"manifestHash":"([^"]*)"`)

func manifestHashOf(state []byte) string {
	if m := manifestHashField.FindSubmatch(state); m != nil {
		return string(m[1])
	}
	return ""
}

// crashReport counts, per command, the points tried and converged and the
// slowest rerun.
type crashReport struct {
	mu      sync.Mutex
	order   []string
	tried   map[string]int
	ok      map[string]int
	slowest map[string]time.Duration
}

func (r *crashReport) add(name string, rerun time.Duration, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tried == nil {
		r.tried, r.ok, r.slowest = map[string]int{}, map[string]int{}, map[string]time.Duration{}
	}
	if _, seen := r.tried[name]; !seen {
		r.order = append(r.order, name)
	}
	r.tried[name]++
	if ok {
		r.ok[name]++
	}
	r.slowest[name] = max(r.slowest[name], rerun)
}

func (r *crashReport) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "%-10s %6s %10s %14s\n", "command", "points", "converged", "slowest rerun")
	for _, name := range r.order {
		fmt.Fprintf(&b, "%-10s %6d %10d %14s\n", name, r.tried[name], r.ok[name], r.slowest[name].Round(time.Millisecond))
	}
	return b.String()
}

package deploy

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/testenv"
	"github.com/slipwayci/slipway/internal/usererr"
)

// revisionList lists the namespace's revisions as show writes each, oldest
// first.
func (k kube) revisionList(t *testing.T, ns string, show func(Revision) string) []string {
	t.Helper()
	tgt := &target{c: k.cluster(t), ns: ns}
	revs, err := tgt.revisions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(revs) - 1; i >= 0; i-- {
		out = append(out, show(revs[i]))
	}
	return out
}

// history lists the namespace's revisions as number:status:back=N, oldest first.
func (k kube) history(t *testing.T, ns string) []string {
	t.Helper()
	return k.revisionList(t, ns, func(r Revision) string {
		return fmt.Sprintf("%d:%s:back=%d", r.Number, r.Status, r.RolledBackTo)
	})
}

func (k kube) cluster(t *testing.T) *cluster {
	t.Helper()
	c, err := connect(context.Background(), k.Kubeconfig, "", "slipway-test")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// beginOnly does what a deploy of opts killed right after recording its
// revision leaves: the revision on record as deploying, nothing applied.
func beginOnly(t *testing.T, ctx context.Context, opts Options) *Revision {
	t.Helper()
	tgt, p, err := prepare(ctx, &opts)
	if err != nil {
		t.Fatal(err)
	}
	h, err := tgt.history(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := tgt.begin(ctx, p, &opts, h, 0)
	if err != nil || rev == nil || rev.Status != statusDeploying {
		t.Fatalf("begin: %+v, %v; want a revision deploying", rev, err)
	}
	return rev
}

// TestInterruptedRevisionResumedOrSuperseded: a revision left deploying by
// a killed run is finished by the same deploy run again (same number, no
// gap), refuses run-job meanwhile, and is recorded as failed when another
// deploy or a rollback comes first.
func TestInterruptedRevisionResumedOrSuperseded(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	tree, branch, ns, opts, _ := k.example(t, "resume")
	if _, err := Deploy(ctx, opts); err != nil {
		t.Fatal(err)
	}
	push2, _ := deploytest.WritePush(t, "v2")
	opts2 := k.opts(t, branch, tree, push2)
	beginOnly(t, ctx, opts2)

	jobOpts := opts
	jobOpts.Jobs = []string{"lms-job"}
	if _, err := RunJob(ctx, jobOpts); err == nil || usererr.Is(err) || !strings.Contains(err.Error(), "revision 2 in "+ns+" is being deployed, or its deploy was cut short") {
		t.Errorf("run-job while revision 2 is deploying: %v, want exit 1 saying to finish the deploy", err)
	}
	res, err := Deploy(ctx, opts2)
	if err != nil || res.Revision != 2 || !res.Changed {
		t.Fatalf("the same deploy again: %v, revision %d; want revision 2 finished", err, res.Revision)
	}
	if diff := cmp.Diff([]string{"1:good:back=0", "2:good:back=0"}, k.history(t, ns)); diff != "" {
		t.Errorf("history after the resumed deploy (-want +got):\n%s", diff)
	}

	// Killed again, at revision 3; then a rollback comes instead: it returns
	// to revision 2 (the last good one, not the half-deployed 3).
	testenv.Edit(t, tree, "k8s/services.yml", "  name: redis\n", "  name: redis-v3\n")
	beginOnly(t, ctx, opts2)
	res, err = Rollback(ctx, k.opts(t, branch, "", ""))
	if err != nil || res.RolledBackTo != 2 || res.Revision != 4 {
		t.Fatalf("rollback after an interrupted deploy: %v, %+v; want revision 4 back to 2", err, res)
	}
	if diff := cmp.Diff([]string{"1:good:back=0", "2:good:back=0", "3:failed:back=0", "4:good:back=2"}, k.history(t, ns)); diff != "" {
		t.Errorf("history after the rollback (-want +got):\n%s", diff)
	}
}

// TestRecordCreateOrAdopt: writing a revision whose record exists already
// (a run that read the history before another wrote it, the "secrets
// slipway-rev-2 already exists" of a rerun) adopts it when it is the same
// deploy, and names the other deploy when not.
func TestRecordCreateOrAdopt(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	_, branch, ns, opts, _ := k.example(t, "adopt")
	if _, err := Deploy(ctx, opts); err != nil {
		t.Fatal(err)
	}
	tgt := newTarget(k.cluster(t), ns, logging.Discard())
	objs := []*unstructured.Unstructured{{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "x"}}}}
	st := revisionState{Branch: branch, ManifestHash: "sha256:aaaa"}
	first, err := tgt.record(ctx, 2, statusDeploying, "", 0, objs, st)
	if err != nil {
		t.Fatal(err)
	}
	again, err := tgt.record(ctx, 2, statusDeploying, "", 0, objs, st)
	if err != nil || again.Number != 2 || again.secret.UID != first.secret.UID {
		t.Errorf("recording revision 2 again for the same deploy: %v, %+v; want the record adopted", err, again)
	}
	st.ManifestHash = "sha256:bbbb"
	if _, err := tgt.record(ctx, 2, statusDeploying, "", 0, objs, st); err == nil || !strings.Contains(err.Error(), "another deploy recorded revision 2 meanwhile (manifest hash sha256:aaaa)") {
		t.Errorf("recording revision 2 for another deploy: %v, want an error naming the other deploy", err)
	}
}

// TestLeftJobs: what a killed run left of a one-off Job decides what the
// next run does: a Job running or succeeded but not cleaned up is taken
// over (not run twice), one kept by policy never is left alone, and a
// failed one its policy says to delete is deleted.
func TestLeftJobs(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	tree, _, ns, opts, _ := k.example(t, "leftjobs")
	failCMSJob(t, tree)
	if _, err := Deploy(ctx, opts); err != nil {
		t.Fatal(err)
	}
	tgt := newTarget(k.cluster(t), ns, logging.Discard())
	revs, err := tgt.revisions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := revs[0].manifests()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, template, leftPolicy string
		wait                       string // what the left Job reaches before the run: "", Complete or Failed
		takenOver, leftKept        bool
	}{
		{name: "running", template: "lms-job", leftPolicy: CleanupOnSuccess, takenOver: true},
		{name: "succeeded, not cleaned up", template: "lms-job", leftPolicy: CleanupOnSuccess, wait: "Complete", takenOver: true},
		{name: "succeeded, kept by policy", template: "lms-job", leftPolicy: CleanupNever, wait: "Complete", leftKept: true},
		{name: "failed, to be deleted", template: "cms-job", leftPolicy: CleanupAlways, wait: "Failed"},
		{name: "failed, kept by policy", template: "cms-job", leftPolicy: CleanupOnSuccess, wait: "Failed", leftKept: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl, err := findTemplate(objs, tt.template)
			if err != nil {
				t.Fatal(err)
			}
			left, err := tgt.oneOff(templateSource(tmpl), tt.leftPolicy)
			if err != nil {
				t.Fatal(err)
			}
			jobs := k.Core.BatchV1().Jobs(ns)
			if _, err := tgt.c.dyn.Resource(jobsGVR).Namespace(ns).Create(ctx, left, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tgt.deleteJob(context.Background(), left.GetName()) })
			if tt.wait != "" {
				waitJob(t, ctx, tgt, left.GetName(), tt.wait)
			}
			ro := opts
			ro.Jobs = []string{tt.template}
			res, _ := RunJob(ctx, ro)
			if res == nil || len(res.Jobs) != 1 {
				t.Fatalf("run-job result %+v", res)
			}
			if got := res.Jobs[0].Name == left.GetName(); got != tt.takenOver {
				t.Errorf("run-job ran %s; left job %s taken over = %t, want %t", res.Jobs[0].Name, left.GetName(), got, tt.takenOver)
			}
			if !tt.takenOver {
				tgt.deleteJob(context.Background(), res.Jobs[0].Name)
			}
			j, err := jobs.Get(ctx, left.GetName(), metav1.GetOptions{})
			if kept := err == nil && j.DeletionTimestamp == nil; kept != tt.leftKept {
				t.Errorf("left job %s kept = %t, want %t (err %v)", left.GetName(), kept, tt.leftKept, err)
			}
		})
	}
}

// waitJob waits for Job name's condition cond.
func waitJob(t *testing.T, ctx context.Context, tgt *target, name, cond string) {
	t.Helper()
	err := poll.Until(ctx, poll.Constant(pollInterval), func(ctx context.Context) (bool, error) {
		j, err := tgt.c.dyn.Resource(jobsGVR).Namespace(tgt.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		s, _, _ := condition(j, cond)
		return s == "True", nil
	})
	if err != nil {
		t.Fatalf("job %s never reached %s: %v", name, cond, err)
	}
}

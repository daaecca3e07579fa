package deploy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/testenv"
	"github.com/slipwayci/slipway/internal/usererr"
)

// failoverCronJobs are backup CronJobs as `backup cronjob` renders them for
// a failover: suspended, run only by run-job; backup-fail's pod fails
// (kwok's test.kwok/fail stage: exit 1, reason Error).
const failoverCronJobs = `apiVersion: batch/v1
kind: CronJob
metadata: {name: backup-freeze}
spec:
  schedule: "0 0 31 2 *"
  suspend: true
  jobTemplate:
    metadata: {labels: {app.kubernetes.io/component: freeze}}
    spec:
      backoffLimit: 1
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: freeze
            image: registry.example:5000/slipway/backup:1.0
            args: [freeze, --site, primary]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: backup-fail}
spec:
  schedule: "15 2 * * *"
  jobTemplate:
    spec:
      backoffLimit: 0
      template:
        metadata:
          annotations: {test.kwok/fail: "true"}
        spec:
          restartPolicy: Never
          containers:
          - name: verify
            image: registry.example:5000/slipway/backup:1.0
            args: [verify, --latest]
`

// TestRunCronJob: run-job runs a live CronJob's jobTemplate once, as
// `kubectl create job --from=cronjob/NAME` would (owned by the CronJob,
// instantiate=manual), on a standby site and with the CronJob suspended;
// the result names the Job, its pod, the pinned digest and the exit code; a
// failed one exits 1 naming the exit code; a missing CronJob is a user
// error naming it and the namespace; a Job a killed run left is taken over.
func TestRunCronJob(t *testing.T) {
	k := requireKube(t)
	ctx := testCtx(t)
	dBackup := deploytest.DigestOf("backup-cron")
	branch, ns, opts := k.backupExample(t, "cronrun", dBackup)
	opts.Manifests = append(opts.Manifests, writeFile(t, "cronjobs.yaml", failoverCronJobs, 0o644))
	opts.Standby = true // the DR restore runs on the standby
	if _, err := Deploy(ctx, opts); err != nil {
		t.Fatalf("standby deploy: %v", err)
	}
	cj, err := k.Core.BatchV1().CronJobs(ns).Get(ctx, "backup-freeze", metav1.GetOptions{})
	if err != nil || cj.Spec.Suspend == nil || !*cj.Spec.Suspend {
		t.Fatalf("CronJob backup-freeze: %v, want it deployed suspended", err)
	}
	logData, err := os.ReadFile(testenv.Get(t, "SLIPWAY_TEST_KUBE_POD_LOG"))
	if err != nil {
		t.Fatal(err)
	}
	firstLog := strings.SplitN(strings.SplitN(string(logData), "\n", 2)[0], " ", 4)[3]
	pinned := "registry-a.example:5000/slipway/backup@" + dBackup

	run := opts
	run.Standby, run.Manifests, run.PushResult = false, nil, ""
	var out bytes.Buffer
	run.Out = &out
	run.CronJobs = []string{"backup-freeze"}
	run.JobCleanup = CleanupNever // kept, to be looked at
	res, err := RunJob(ctx, run)
	if err != nil {
		t.Fatalf("run-job --cronjob backup-freeze: %v", err)
	}
	if len(res.Jobs) != 1 {
		t.Fatalf("jobs %+v, want one", res.Jobs)
	}
	jr := res.Jobs[0]
	if jr.CronJob != "backup-freeze" || jr.Template != "" || !jr.Succeeded || jr.Deleted || !strings.HasPrefix(jr.Name, "backup-freeze-") ||
		!strings.HasPrefix(jr.Pod, jr.Name+"-") || jr.Image != pinned || jr.ImageDigest != dBackup || jr.ExitCode == nil || *jr.ExitCode != 0 || jr.Reason != "Completed" {
		t.Errorf("job result %+v: want backup-freeze-* succeeded and kept, its pod, image %s, exit code 0", jr, pinned)
	}
	if res.Mode != ModeStandby || res.Revision != 1 || res.Namespace != ns {
		t.Errorf("result mode %q revision %d namespace %q, want standby 1 %s", res.Mode, res.Revision, res.Namespace, ns)
	}
	if !strings.Contains(out.String(), jr.Name+": "+firstLog) {
		t.Errorf("the pod's log was not streamed with the job's name; got:\n%s", out.String())
	}
	j, err := k.Core.BatchV1().Jobs(ns).Get(ctx, jr.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if refs := j.OwnerReferences; len(refs) != 1 || refs[0].Kind != "CronJob" || refs[0].Name != "backup-freeze" || refs[0].UID != cj.UID || refs[0].Controller == nil || !*refs[0].Controller {
		t.Errorf("job owner references %+v, want the CronJob backup-freeze (uid %s) as controller", refs, cj.UID)
	}
	if j.Annotations[annInstantiate] != "manual" || j.Labels[labelCronJobName] != "backup-freeze" || j.Labels["app.kubernetes.io/component"] != "freeze" {
		t.Errorf("job annotations %v labels %v, want instantiate=manual, the CronJob's name and the jobTemplate's labels", j.Annotations, j.Labels)
	}
	if j.Spec.BackoffLimit == nil || *j.Spec.BackoffLimit != 1 {
		t.Errorf("job backoffLimit %v, want the jobTemplate's 1", j.Spec.BackoffLimit)
	}
	k.deleteJobAtEnd(t, ns, jr.Name)

	// A failed run: exit 1 (not a usage error) naming the pod's exit code.
	run.JobCleanup = CleanupOnSuccess
	run.CronJobs = []string{"backup-fail"}
	res, err = RunJob(ctx, run)
	if err == nil || usererr.Is(err) {
		t.Fatalf("failing cronjob: %v, want a failure (exit 1)", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "job failed") || !strings.Contains(msg, "container verify exited 1 (Error)") || !strings.Contains(msg, "Job.batch/backup-fail-") {
		t.Errorf("error does not name the job and the exit code: %s", msg)
	}
	if jr := res.Jobs[0]; jr.Succeeded || jr.Deleted || jr.ExitCode == nil || *jr.ExitCode != 1 || jr.Pod == "" {
		t.Errorf("failed job result %+v: want failed, kept, exit code 1, its pod", jr)
	}

	// A CronJob that does not exist: exit 2 naming it and the namespace, nothing run.
	run.CronJobs = []string{"backup-freeze", "backup-nope"}
	if _, err := RunJob(ctx, run); !usererr.Is(err) || !strings.Contains(err.Error(), `"backup-nope"`) || !strings.Contains(err.Error(), "namespace "+ns) {
		t.Errorf("missing cronjob: %v, want a usage error naming it and namespace %s", err, ns)
	}
	if jobs, _ := k.Core.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: labelCronJobName + "=backup-freeze"}); len(jobs.Items) != 1 {
		t.Errorf("%d jobs of backup-freeze after the refused run, want the one kept before", len(jobs.Items))
	}
	// Job templates and CronJobs in one run, or neither: usage errors.
	both := run
	both.Jobs = []string{"lms-job"}
	for _, o := range []Options{both, {Kubeconfig: k.Kubeconfig, Branch: branch}} {
		var oe *OptionError
		if _, err := RunJob(ctx, o); !usererr.Is(err) || !errors.As(err, &oe) || oe.Option != "JobOrCronJob" {
			t.Errorf("jobs %v cronjobs %v: %v, want a usage error of JobOrCronJob", o.Jobs, o.CronJobs, err)
		}
	}

	// A Job of this jobTemplate a killed run left (running, or succeeded
	// and not yet cleaned up) is taken over, not run a second time.
	tgt := newTarget(k.cluster(t), ns, logging.Discard())
	live, err := tgt.c.dyn.Resource(cronJobsGVR).Namespace(ns).Get(ctx, "backup-freeze", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := cronJobSource(live)
	if err != nil {
		t.Fatal(err)
	}
	left, err := tgt.oneOff(src, CleanupOnSuccess)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tgt.c.dyn.Resource(jobsGVR).Namespace(ns).Create(ctx, left, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	run.CronJobs = []string{"backup-freeze"}
	res, err = RunJob(ctx, run)
	if err != nil || res.Jobs[0].Name != left.GetName() || !res.Jobs[0].Deleted {
		t.Errorf("rerun after a killed run: %v, ran %+v; want the left job %s taken over and cleaned up", err, res.Jobs, left.GetName())
	}
}

// deleteJobAtEnd deletes Job name of ns when the test ends.
func (k kube) deleteJobAtEnd(t *testing.T, ns, name string) {
	t.Cleanup(func() {
		policy := metav1.DeletePropagationBackground
		if err := k.Core.BatchV1().Jobs(ns).Delete(context.Background(), name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil && !apierrors.IsNotFound(err) {
			t.Logf("deleting job %s: %v", name, err)
		}
	})
}

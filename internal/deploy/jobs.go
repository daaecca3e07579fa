package deploy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
)

// Job clean-up policies.
const (
	CleanupAlways    = "always"
	CleanupOnSuccess = "on-success"
	CleanupNever     = "never"
)

var jobsGVR = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}

// A one-off Job records which template it runs (labelTemplateName), the
// hash of that template (so a rerun knows it runs the same thing) and its
// clean-up policy (so a rerun knows whether a finished Job was kept on
// purpose or left by a run that was killed).
const (
	labelTemplateName = labelJobTemplate + "-name"
	annTemplateHash   = "slipway.dev/template-hash"
	annJobCleanup     = "slipway.dev/job-cleanup"
)

// findTemplate returns the Job template called name.
func findTemplate(templates []*unstructured.Unstructured, name string) (*unstructured.Unstructured, error) {
	var names []string
	for _, u := range templates {
		if u.GetName() == name {
			return u, nil
		}
		names = append(names, u.GetName())
	}
	return nil, usererr.Errorf("job template %q is not in the manifests (Jobs labelled %s=job or %s=true: %s)", name, labelComponent, labelJobTemplate, strings.Join(names, ", "))
}

// checkTemplates makes sure every job in names has a template, before
// anything runs.
func checkTemplates(templates []*unstructured.Unstructured, names []string) error {
	for _, name := range names {
		if _, err := findTemplate(templates, name); err != nil {
			return err
		}
	}
	return nil
}

// runJobs runs the jobs opts names, in order, and records them in res; it
// stops at the first that fails. rev, when not nil, is the revision being
// deployed: each job that succeeds is marked on it, and a job marked there
// already (by a run that was killed later) is not run again.
func (t *target) runJobs(ctx context.Context, templates []*unstructured.Unstructured, opts *Options, res *result.DeployResult, rev *Revision) error {
	done := rev.jobsDone()
	for _, name := range opts.Jobs {
		tmpl, err := findTemplate(templates, name)
		if err != nil {
			return err
		}
		if job, ok := done[name]; ok {
			t.log.Info("job already ran for this revision (an interrupted run of this deploy)", "job", job, "template", name, "namespace", t.ns)
			res.Jobs = append(res.Jobs, result.DeployedJob{Template: name, Name: job, Succeeded: true, Deleted: opts.JobCleanup != CleanupNever})
			continue
		}
		jr, err := t.runJob(ctx, tmpl, opts.JobCleanup, opts.Out)
		res.Jobs = append(res.Jobs, jr)
		if err != nil {
			return err
		}
		if rev != nil {
			if err := t.markJobDone(ctx, rev, name, jr.Name); err != nil {
				return err
			}
			crashpoint.Hit("deploy.job-recorded")
		}
	}
	return nil
}

// oneOff is the Job that runs template once: a unique name, no ApplySet
// membership, and no retries unless the template asks for them.
func (t *target) oneOff(template *unstructured.Unstructured, cleanup string) (*unstructured.Unstructured, error) {
	hash, err := hashObject(template)
	if err != nil {
		return nil, err
	}
	u := template.DeepCopy()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	base := template.GetName()
	if len(base) > 40 {
		base = base[:40]
	}
	u.SetName(fmt.Sprintf("%s-%s-%s", base, time.Now().UTC().Format("0102150405"), hex.EncodeToString(suffix)))
	u.SetNamespace(t.ns)
	u.SetResourceVersion("")
	lbl := u.GetLabels()
	delete(lbl, labelPartOf)
	if lbl == nil {
		lbl = map[string]string{}
	}
	lbl[labelTemplateName] = template.GetName()
	lbl[labelManagedBy] = fieldManager
	u.SetLabels(lbl)
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	delete(ann, annHash)
	ann[annTemplateHash] = hash
	ann[annJobCleanup] = cleanup
	u.SetAnnotations(ann)
	// A one-off job's result is its first run unless the template asks for retries.
	if _, found, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "backoffLimit"); !found {
		_ = unstructured.SetNestedField(u.Object, int64(0), "spec", "backoffLimit")
	}
	return u, nil
}

// startJob creates the one-off Job u, unless a run of the same template
// that was cut short (killed) left one behind: a Job still running is taken
// over rather than run twice at once, as is one that succeeded but was not
// cleaned up as its policy says; a failed one that should have been deleted
// is deleted. It returns the name of the Job to follow.
func (t *target) startJob(ctx context.Context, u *unstructured.Unstructured, template string) (string, error) {
	jobs := t.c.dyn.Resource(jobsGVR).Namespace(t.ns)
	left, err := jobs.List(ctx, metav1.ListOptions{LabelSelector: labelTemplateName + "=" + template + "," + labelManagedBy + "=" + fieldManager})
	if err != nil {
		return "", fmt.Errorf("listing jobs of template %s in %s: %w", template, t.ns, ctxErr(ctx, err))
	}
	for i := range left.Items {
		j := &left.Items[i]
		ann := j.GetAnnotations()
		if ann[annTemplateHash] != u.GetAnnotations()[annTemplateHash] || j.GetDeletionTimestamp() != nil {
			continue
		}
		done, failed := jobDone(j)
		switch {
		case failed == "" && (!done || ann[annJobCleanup] != CleanupNever):
			t.log.Info("taking over a job an interrupted run started", "job", j.GetName(), "template", template, "namespace", t.ns)
			return j.GetName(), nil
		case failed != "" && ann[annJobCleanup] == CleanupAlways:
			t.deleteJob(ctx, j.GetName())
		}
	}
	if _, err := jobs.Create(ctx, u, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
		return "", fmt.Errorf("creating job %s from template %s: %w", u.GetName(), template, ctxErr(ctx, err))
	}
	t.log.Info("job started", "job", u.GetName(), "template", template, "namespace", t.ns)
	return u.GetName(), nil
}

// runJob creates a Job from template under a unique name, streams its pod's
// log to out, waits for it to finish and cleans it up per policy.
func (t *target) runJob(ctx context.Context, template *unstructured.Unstructured, cleanup string, out io.Writer) (result.DeployedJob, error) {
	jr := result.DeployedJob{Template: template.GetName()}
	u, err := t.oneOff(template, cleanup)
	if err != nil {
		return jr, err
	}
	name, err := t.startJob(ctx, u, template.GetName())
	if err != nil {
		return jr, err
	}
	jr.Name = name
	crashpoint.Hit("deploy.job-started")
	jobs := t.c.dyn.Resource(jobsGVR).Namespace(t.ns)

	w := &jobWatch{t: t, name: name, logs: &jobLog{out: out, prefix: name + ": "}, streamed: map[string]bool{}}
	w.follow, w.stop = context.WithCancel(ctx)
	defer w.stop()
	var failure string
	err = poll.Until(ctx, poll.Constant(pollInterval), func(ctx context.Context) (bool, error) {
		pods, err := w.streamPods(ctx, true)
		if err != nil {
			return false, err
		}
		j, err := jobs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("reading job %s: %w", name, ctxErr(ctx, err))
		}
		done, why := jobDone(j)
		if why != "" {
			failure = why + failedPod(pods)
			return true, nil
		}
		return done, nil
	})
	// A pod that finished between two looks has not been read yet.
	_, _ = w.streamPods(context.WithoutCancel(ctx), false)
	w.wait(streamGrace)
	jr.Succeeded = err == nil && failure == ""
	crashpoint.Hit("deploy.job-finished")
	if cleanup == CleanupAlways || (cleanup == CleanupOnSuccess && jr.Succeeded) {
		jr.Deleted = t.deleteJob(ctx, name)
	}
	if err != nil {
		return jr, fmt.Errorf("running job %s (template %s): %w; last log lines: %s", name, template.GetName(), err, strings.Join(w.logs.tail(), " | "))
	}
	if failure != "" {
		if !jr.Deleted {
			failure += fmt.Sprintf(" (the Job is kept: kubectl -n %s describe job %s)", t.ns, name)
		}
		return jr, &WorkloadError{Object: "Job.batch/" + name, Reason: failure, Log: w.logs.tail()}
	}
	t.log.Info("job succeeded", "job", name)
	return jr, nil
}

// failedPod describes the first failed pod in pods, as "; pod ...".
func failedPod(pods []corev1.Pod) string {
	for i := range pods {
		if pods[i].Status.Phase == corev1.PodFailed {
			return "; " + describePod(&pods[i])
		}
	}
	return ""
}

// deleteJob deletes the one-off Job name and reports whether it did.
func (t *target) deleteJob(ctx context.Context, name string) bool {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	policy := metav1.DeletePropagationBackground
	if err := t.c.dyn.Resource(jobsGVR).Namespace(t.ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &policy}); err != nil {
		t.log.Warn("deleting job", "job", name, "err", err)
		return false
	}
	return true
}

// streamGrace is how long the log streams of a finished Job may take to
// end on their own before they are stopped.
const streamGrace = 3 * time.Second

// jobWatch streams the logs of a one-off Job's pods, each pod once.
type jobWatch struct {
	t        *target
	name     string
	logs     *jobLog
	streamed map[string]bool
	wg       sync.WaitGroup
	// follow bounds the streams started while the Job runs; stop ends them.
	follow context.Context
	stop   context.CancelFunc
}

// streamPods lists the Job's pods and starts streaming the log of each
// started pod not streamed yet: while the Job runs (follow set) following a
// running pod, afterwards reading only what is there.
func (w *jobWatch) streamPods(ctx context.Context, follow bool) ([]corev1.Pod, error) {
	pods, err := w.t.c.core.CoreV1().Pods(w.t.ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + w.name})
	if err != nil {
		return nil, fmt.Errorf("listing pods of job %s: %w", w.name, ctxErr(ctx, err))
	}
	for i := range pods.Items {
		p := &pods.Items[i]
		if w.streamed[p.Name] || p.Status.Phase == corev1.PodPending {
			continue
		}
		w.streamed[p.Name] = true
		sctx := w.follow
		if !follow {
			sctx = ctx
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.t.streamLog(sctx, p, follow && p.Status.Phase == corev1.PodRunning, w.logs)
		}()
	}
	return pods.Items, nil
}

// wait waits for the streams; one still following a pod of the finished
// Job after grace (a node that does not close it) is stopped.
func (w *jobWatch) wait(grace time.Duration) {
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-done:
		return
	case <-timer.C:
	}
	w.t.log.Warn("log stream still open after the job finished; stopping it", "job", w.name)
	w.stop()
	<-done
}

// streamLog copies the pod's log (following it when follow is set) to logs.
func (t *target) streamLog(ctx context.Context, p *corev1.Pod, follow bool, logs *jobLog) {
	if len(p.Spec.Containers) == 0 {
		return
	}
	opts := &corev1.PodLogOptions{Container: p.Spec.Containers[0].Name, Follow: follow}
	// The container may not have started yet; logs appear shortly.
	_ = poll.Retry(ctx, poll.Constant(pollInterval), 20, nil, func(ctx context.Context) error {
		rc, err := t.c.core.CoreV1().Pods(t.ns).GetLogs(p.Name, opts).Stream(ctx)
		if err != nil {
			return err
		}
		defer rc.Close()
		sc := bufio.NewScanner(rc)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			logs.add(sc.Text())
		}
		return nil
	})
}

// jobLog prints log lines with a prefix and keeps the last few.
type jobLog struct {
	mu     sync.Mutex
	out    io.Writer
	prefix string
	lines  []string
}

const jobLogTail = 10

func (l *jobLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(l.out, l.prefix+line)
	l.lines = append(l.lines, line)
	if len(l.lines) > jobLogTail {
		l.lines = l.lines[1:]
	}
}

func (l *jobLog) tail() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

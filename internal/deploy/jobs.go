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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

var (
	jobsGVR     = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}
	cronJobsGVR = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}
)

// A one-off Job records which template it runs (labelTemplateName), the
// hash of that template (so a rerun knows it runs the same thing) and its
// clean-up policy (so a rerun knows whether a finished Job was kept on
// purpose or left by a run that was killed).
const (
	labelTemplateName = labelJobTemplate + "-name"
	annTemplateHash   = "slipway.dev/template-hash"
	annJobCleanup     = "slipway.dev/job-cleanup"
	// A one-off Job of a CronJob's jobTemplate carries labelCronJobName
	// instead of labelTemplateName, and what `kubectl create job --from`
	// gives it: annInstantiate and the CronJob as its controller.
	labelCronJobName = "slipway.dev/cronjob-name"
	annInstantiate   = "cronjob.kubernetes.io/instantiate"
)

// jobSource is what a one-off Job runs: a Job template of the live
// revision's manifests, or the jobTemplate of a live CronJob.
type jobSource struct {
	// job is Job-shaped (apiVersion, kind, metadata with the name of the
	// template or CronJob, spec); its hash tells a rerun it runs the same.
	job *unstructured.Unstructured
	// cronJob is set when job is a CronJob's jobTemplate: the CronJob.
	cronJob *unstructured.Unstructured
}

func templateSource(template *unstructured.Unstructured) jobSource {
	return jobSource{job: template}
}

// cronJobSource is the Job a CronJob's spec.jobTemplate describes, as the
// CronJob controller (or `kubectl create job --from=cronjob/NAME`) makes it.
func cronJobSource(cj *unstructured.Unstructured) (jobSource, error) {
	tmpl, found, err := unstructured.NestedMap(cj.Object, "spec", "jobTemplate")
	if err != nil || !found {
		return jobSource{}, fmt.Errorf("CronJob %s in %s has no spec.jobTemplate", cj.GetName(), cj.GetNamespace())
	}
	spec, _, _ := unstructured.NestedMap(tmpl, "spec")
	job := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "batch/v1", "kind": "Job", "spec": spec}}
	job.SetName(cj.GetName())
	lbl, _, _ := unstructured.NestedStringMap(tmpl, "metadata", "labels")
	job.SetLabels(lbl)
	ann, _, _ := unstructured.NestedStringMap(tmpl, "metadata", "annotations")
	job.SetAnnotations(ann)
	return jobSource{job: job, cronJob: cj}, nil
}

// name is the template's or the CronJob's name.
func (s jobSource) name() string { return s.job.GetName() }

// label is the label that names the source on its one-off Jobs.
func (s jobSource) label() string {
	if s.cronJob != nil {
		return labelCronJobName
	}
	return labelTemplateName
}

// String says what the source is, for logs and errors.
func (s jobSource) String() string {
	if s.cronJob != nil {
		return "cronjob " + s.name()
	}
	return "template " + s.name()
}

// findCronJobs reads the live CronJobs names of the namespace, all of them
// before any runs: one that does not exist is a user error.
func (t *target) findCronJobs(ctx context.Context, names []string) ([]jobSource, error) {
	var srcs []jobSource
	for _, name := range names {
		cj, err := t.c.dyn.Resource(cronJobsGVR).Namespace(t.ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, usererr.Errorf("cronjob %q does not exist in namespace %s (deploy it with the platform: --manifests of the rendered CronJobs)", name, t.ns)
		}
		if err != nil {
			return nil, fmt.Errorf("reading cronjob %s in %s: %w", name, t.ns, ctxErr(ctx, err))
		}
		src, err := cronJobSource(cj)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, src)
	}
	return srcs, nil
}

// runCronJobs runs the jobTemplate of each CronJob in srcs once, in order,
// whatever the CronJob's suspend flag, and records them in res; it stops at
// the first that fails.
func (t *target) runCronJobs(ctx context.Context, srcs []jobSource, opts *Options, res *result.DeployResult) error {
	for _, src := range srcs {
		jr, err := t.runJob(ctx, src, opts.JobCleanup, opts.Out)
		res.Jobs = append(res.Jobs, jr)
		if err != nil {
			return err
		}
	}
	return nil
}

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
		jr, err := t.runJob(ctx, templateSource(tmpl), opts.JobCleanup, opts.Out)
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

// oneOff is the Job that runs src once: a unique name, no ApplySet
// membership, and no retries unless the template asks for them. A
// CronJob's Job has the CronJob as its controller and
// cronjob.kubernetes.io/instantiate=manual, as `kubectl create job --from`
// makes it.
func (t *target) oneOff(src jobSource, cleanup string) (*unstructured.Unstructured, error) {
	hash, err := hashObject(src.job)
	if err != nil {
		return nil, err
	}
	u := src.job.DeepCopy()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	base := src.name()
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
	lbl[src.label()] = src.name()
	lbl[labelManagedBy] = fieldManager
	u.SetLabels(lbl)
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	delete(ann, annHash)
	ann[annTemplateHash] = hash
	ann[annJobCleanup] = cleanup
	if cj := src.cronJob; cj != nil {
		ann[annInstantiate] = "manual"
		u.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob",
			Name: cj.GetName(), UID: cj.GetUID(), Controller: ptr(true)}})
	}
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
func (t *target) startJob(ctx context.Context, u *unstructured.Unstructured, src jobSource) (string, error) {
	jobs := t.c.dyn.Resource(jobsGVR).Namespace(t.ns)
	left, err := jobs.List(ctx, metav1.ListOptions{LabelSelector: src.label() + "=" + src.name() + "," + labelManagedBy + "=" + fieldManager})
	if err != nil {
		return "", fmt.Errorf("listing jobs of %s in %s: %w", src, t.ns, ctxErr(ctx, err))
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
			t.log.Info("taking over a job an interrupted run started", "job", j.GetName(), "from", src.String(), "namespace", t.ns)
			return j.GetName(), nil
		case failed != "" && ann[annJobCleanup] == CleanupAlways:
			t.deleteJob(ctx, j.GetName())
		}
	}
	if _, err := jobs.Create(ctx, u, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
		return "", fmt.Errorf("creating job %s from %s: %w", u.GetName(), src, ctxErr(ctx, err))
	}
	t.log.Info("job started", "job", u.GetName(), "from", src.String(), "namespace", t.ns)
	return u.GetName(), nil
}

// runJob creates a Job from src under a unique name, streams its pod's
// log to out, waits for it to finish and cleans it up per policy. The
// result names the Job's last pod, its image and how its container ended.
func (t *target) runJob(ctx context.Context, src jobSource, cleanup string, out io.Writer) (result.DeployedJob, error) {
	jr := result.DeployedJob{Template: src.name()}
	if src.cronJob != nil {
		jr = result.DeployedJob{CronJob: src.name()}
	}
	u, err := t.oneOff(src, cleanup)
	if err != nil {
		return jr, err
	}
	name, err := t.startJob(ctx, u, src)
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
			failure = why + t.failedPod(ctx, pods)
			return true, nil
		}
		return done, nil
	})
	// A pod that finished between two looks has not been read yet.
	pods, _ := w.streamPods(context.WithoutCancel(ctx), false)
	w.wait(streamGrace)
	jr.Succeeded = err == nil && failure == ""
	podOutcome(&jr, lastPod(pods, ""))
	crashpoint.Hit("deploy.job-finished")
	if cleanup == CleanupAlways || (cleanup == CleanupOnSuccess && jr.Succeeded) {
		jr.Deleted = t.deleteJob(ctx, name)
	}
	if err != nil {
		return jr, fmt.Errorf("running job %s (%s): %w; last log lines: %s", name, src, err, strings.Join(w.logs.tail(), " | "))
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

// failedPod describes the newest failed pod in pods, as "; pod ...": its
// containers' exit codes, the termination message its container left and
// its last Warning event.
func (t *target) failedPod(ctx context.Context, pods []corev1.Pod) string {
	p := lastPod(pods, corev1.PodFailed)
	if p == nil {
		return ""
	}
	s := "; " + describePod(p)
	var jr result.DeployedJob
	if podOutcome(&jr, p); jr.TerminationMessage != "" {
		s += fmt.Sprintf(", termination message %q", firstLine(jr.TerminationMessage))
	}
	if evs, err := t.c.core.CoreV1().Events(t.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name}); err == nil {
		if ev := telling(evs.Items); ev != nil && ev.Type == corev1.EventTypeWarning {
			s += fmt.Sprintf("; last warning: %s: %s", ev.Reason, ev.Message)
		}
	}
	return s
}

// lastPod is the newest pod in pods in phase (any phase when empty), or nil.
func lastPod(pods []corev1.Pod, phase corev1.PodPhase) *corev1.Pod {
	var last *corev1.Pod
	for i := range pods {
		p := &pods[i]
		if phase != "" && p.Status.Phase != phase {
			continue
		}
		if last == nil || p.CreationTimestamp.After(last.CreationTimestamp.Time) ||
			(p.CreationTimestamp.Equal(&last.CreationTimestamp) && p.Name > last.Name) {
			last = p
		}
	}
	return last
}

// podOutcome records in jr what pod p ran and how its first container
// ended (the container whose log is streamed).
func podOutcome(jr *result.DeployedJob, p *corev1.Pod) {
	if p == nil || len(p.Spec.Containers) == 0 {
		return
	}
	c := p.Spec.Containers[0]
	jr.Pod, jr.Image = p.Name, c.Image
	jr.ImageDigest = digestOf(c.Image)
	for _, cs := range p.Status.ContainerStatuses {
		if cs.Name != c.Name {
			continue
		}
		if cs.Image != "" {
			jr.Image = cs.Image
		}
		if d := digestOf(cs.ImageID); d != "" {
			jr.ImageDigest = d
		}
		if term := cs.State.Terminated; term != nil {
			jr.ExitCode = ptr(term.ExitCode)
			jr.Reason, jr.TerminationMessage = term.Reason, term.Message
		}
	}
}

// digestOf is the sha256 digest an image reference or imageID names, or "".
func digestOf(ref string) string {
	if i := strings.LastIndex(ref, "sha256:"); i >= 0 {
		return ref[i:]
	}
	return ""
}

// firstLine is s up to its first line break, trimmed.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
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

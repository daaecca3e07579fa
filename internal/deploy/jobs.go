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

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/result"
)

// Job clean-up policies.
const (
	CleanupAlways    = "always"
	CleanupOnSuccess = "on-success"
	CleanupNever     = "never"
)

var jobsGVR = schema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "jobs"}

// findTemplate returns the Job template called name.
func findTemplate(templates []*unstructured.Unstructured, name string) (*unstructured.Unstructured, error) {
	var names []string
	for _, u := range templates {
		if u.GetName() == name {
			return u, nil
		}
		names = append(names, u.GetName())
	}
	return nil, cli.Usagef("job template %q is not in the manifests (Jobs labelled %s=job or %s=true: %s)", name, labelComponent, labelJobTemplate, strings.Join(names, ", "))
}

// runJob creates a Job from template under a unique name, streams its pod's
// log to out, waits for it to finish and cleans it up per policy.
func (t *target) runJob(ctx context.Context, template *unstructured.Unstructured, cleanup string, out io.Writer) (result.DeployedJob, error) {
	u := template.DeepCopy()
	suffix := make([]byte, 3)
	_, _ = rand.Read(suffix)
	base := template.GetName()
	if len(base) > 40 {
		base = base[:40]
	}
	name := fmt.Sprintf("%s-%s-%s", base, time.Now().UTC().Format("0102150405"), hex.EncodeToString(suffix))
	u.SetName(name)
	u.SetNamespace(t.ns)
	u.SetResourceVersion("")
	lbl := u.GetLabels()
	delete(lbl, labelPartOf)
	if lbl == nil {
		lbl = map[string]string{}
	}
	lbl[labelJobTemplate+"-name"] = template.GetName()
	lbl[labelManagedBy] = fieldManager
	u.SetLabels(lbl)
	ann := u.GetAnnotations()
	delete(ann, annHash)
	u.SetAnnotations(ann)
	// A one-off job's result is its first run unless the template asks for retries.
	if _, found, _ := unstructured.NestedFieldNoCopy(u.Object, "spec", "backoffLimit"); !found {
		_ = unstructured.SetNestedField(u.Object, int64(0), "spec", "backoffLimit")
	}
	jr := result.DeployedJob{Template: template.GetName(), Name: name}
	jobs := t.c.dyn.Resource(jobsGVR).Namespace(t.ns)
	if _, err := jobs.Create(ctx, u, metav1.CreateOptions{FieldManager: fieldManager}); err != nil {
		return jr, fmt.Errorf("creating job %s from template %s: %w", name, template.GetName(), ctxErr(ctx, err))
	}
	t.log.Info("job started", "job", name, "template", template.GetName(), "namespace", t.ns)

	logs := &jobLog{out: out, prefix: name + ": "}
	var streamWG sync.WaitGroup
	streamed := map[string]bool{}
	var failure string
	err := poll(ctx, func(ctx context.Context) (bool, error) {
		pods, err := t.c.core.CoreV1().Pods(t.ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + name})
		if err != nil {
			return false, fmt.Errorf("listing pods of job %s: %w", name, ctxErr(ctx, err))
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			if streamed[p.Name] || p.Status.Phase == corev1.PodPending {
				continue
			}
			streamed[p.Name] = true
			streamWG.Add(1)
			go func() {
				defer streamWG.Done()
				t.streamLog(ctx, p, logs)
			}()
		}
		j, err := jobs.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("reading job %s: %w", name, ctxErr(ctx, err))
		}
		done, why := jobDone(j)
		if why != "" {
			failure = why
			for i := range pods.Items {
				if pods.Items[i].Status.Phase == corev1.PodFailed {
					failure += "; " + describePod(&pods.Items[i])
					break
				}
			}
			return true, nil
		}
		return done, nil
	})
	// A pod that finished between two polls has not been read yet.
	if pods, lerr := t.c.core.CoreV1().Pods(t.ns).List(context.WithoutCancel(ctx), metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + name}); lerr == nil {
		for i := range pods.Items {
			p := &pods.Items[i]
			if !streamed[p.Name] && p.Status.Phase != corev1.PodPending {
				streamed[p.Name] = true
				p.Status.Phase = corev1.PodSucceeded // read what is there, do not follow
				streamWG.Add(1)
				go func() {
					defer streamWG.Done()
					t.streamLog(context.WithoutCancel(ctx), p, logs)
				}()
			}
		}
	}
	streamWG.Wait()
	jr.Succeeded = err == nil && failure == ""
	if cleanup == CleanupAlways || (cleanup == CleanupOnSuccess && jr.Succeeded) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		policy := metav1.DeletePropagationBackground
		if derr := jobs.Delete(dctx, name, metav1.DeleteOptions{PropagationPolicy: &policy}); derr == nil {
			jr.Deleted = true
		} else {
			t.log.Warn("deleting job", "job", name, "err", derr)
		}
	}
	if err != nil {
		return jr, fmt.Errorf("running job %s (template %s): %w; last log lines: %s", name, template.GetName(), err, strings.Join(logs.tail(), " | "))
	}
	if failure != "" {
		if !jr.Deleted {
			failure += fmt.Sprintf(" (the Job is kept: kubectl -n %s describe job %s)", t.ns, name)
		}
		return jr, &WorkloadError{Object: "Job.batch/" + name, Reason: failure, Log: logs.tail()}
	}
	t.log.Info("job succeeded", "job", name)
	return jr, nil
}

// streamLog copies the pod's log (following it while the pod runs) to logs.
func (t *target) streamLog(ctx context.Context, p *corev1.Pod, logs *jobLog) {
	if len(p.Spec.Containers) == 0 {
		return
	}
	opts := &corev1.PodLogOptions{Container: p.Spec.Containers[0].Name, Follow: p.Status.Phase == corev1.PodRunning}
	for attempt := 0; attempt < 20; attempt++ {
		rc, err := t.c.core.CoreV1().Pods(t.ns).GetLogs(p.Name, opts).Stream(ctx)
		if err != nil {
			// The container may not have started yet; logs appear shortly.
			select {
			case <-ctx.Done():
				return
			case <-time.After(pollInterval):
			}
			continue
		}
		sc := bufio.NewScanner(rc)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			logs.add(sc.Text())
		}
		rc.Close()
		return
	}
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

package deploy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/progress"
)

// pollInterval is how often waits look at the cluster.
const pollInterval = 250 * time.Millisecond

// waitedKinds are the workloads a deploy waits for, and how to judge them.
var waitedKinds = map[string]func(u *unstructured.Unstructured) (done bool, failed string){
	"Deployment":  deploymentDone,
	"StatefulSet": statefulSetDone,
	"DaemonSet":   daemonSetDone,
	"Job":         jobDone,
}

func nestedInt(u *unstructured.Unstructured, fields ...string) int64 {
	v, _, _ := unstructured.NestedInt64(u.Object, fields...)
	return v
}

func observed(u *unstructured.Unstructured) bool {
	return nestedInt(u, "status", "observedGeneration") >= u.GetGeneration()
}

func condition(u *unstructured.Unstructured, typ string) (status, reason, message string) {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		cm, _ := c.(map[string]any)
		if cm["type"] == typ {
			s, _ := cm["status"].(string)
			r, _ := cm["reason"].(string)
			m, _ := cm["message"].(string)
			return s, r, m
		}
	}
	return "", "", ""
}

func specReplicas(u *unstructured.Unstructured) int64 {
	v, found, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
	if !found {
		return 1
	}
	return v
}

// deploymentDone follows `kubectl rollout status`.
func deploymentDone(u *unstructured.Unstructured) (bool, string) {
	if _, reason, msg := condition(u, "Progressing"); reason == "ProgressDeadlineExceeded" {
		return false, "progress deadline exceeded: " + msg
	}
	if !observed(u) {
		return false, ""
	}
	want := specReplicas(u)
	updated := nestedInt(u, "status", "updatedReplicas")
	return updated >= want && nestedInt(u, "status", "replicas") == updated &&
		nestedInt(u, "status", "availableReplicas") >= updated, ""
}

func statefulSetDone(u *unstructured.Unstructured) (bool, string) {
	if !observed(u) {
		return false, ""
	}
	want := specReplicas(u)
	cur, _, _ := unstructured.NestedString(u.Object, "status", "currentRevision")
	upd, _, _ := unstructured.NestedString(u.Object, "status", "updateRevision")
	return nestedInt(u, "status", "readyReplicas") >= want && nestedInt(u, "status", "updatedReplicas") >= want && cur == upd, ""
}

func daemonSetDone(u *unstructured.Unstructured) (bool, string) {
	if !observed(u) {
		return false, ""
	}
	want := nestedInt(u, "status", "desiredNumberScheduled")
	return nestedInt(u, "status", "updatedNumberScheduled") >= want && nestedInt(u, "status", "numberAvailable") >= want, ""
}

func jobDone(u *unstructured.Unstructured) (bool, string) {
	if s, reason, msg := condition(u, "Failed"); s == "True" {
		return false, fmt.Sprintf("job failed: %s %s", reason, msg)
	}
	s, _, _ := condition(u, "Complete")
	return s == "True", ""
}

// WorkloadError is returned when a workload fails or does not become ready.
type WorkloadError struct {
	Object string
	// Reason says which pod and condition, or what the controller reported.
	Reason string
	// Log holds the last log lines of the pod that failed.
	Log []string
	// stuck is set when a pod has started and is not ready (as opposed to
	// one not yet scheduled or started).
	stuck bool
}

func (e *WorkloadError) Error() string {
	s := e.Object + ": " + e.Reason
	if len(e.Log) > 0 {
		s += "; last log lines: " + strings.Join(e.Log, " | ")
	}
	return s
}

// waitRollout waits until every workload in objs is rolled out (or complete),
// and every workload in scaled (a standby's applications) is at 0 replicas
// with no pod left, reporting progress. On failure or when ctx ends it
// diagnoses the first unfinished workload.
func (t *target) waitRollout(ctx context.Context, objs []*unstructured.Unstructured, mappings map[*unstructured.Unstructured]*meta.RESTMapping, scaled map[string]bool, pr *progress.Printer) error {
	pending := map[string]*unstructured.Unstructured{}
	kindMapping := map[string]*meta.RESTMapping{}
	for _, u := range objs {
		if _, ok := waitedKinds[u.GetKind()]; ok && mappings[u] != nil {
			pending[objectID(u)] = u
			kindMapping[u.GetKind()] = mappings[u]
		}
	}
	if len(pending) == 0 {
		return nil
	}
	total := len(pending)
	task := pr.Start("rollout "+t.ns, 0)
	var failed *WorkloadError
	err := poll.Until(ctx, poll.Constant(pollInterval), func(ctx context.Context) (bool, error) {
		// Each look is bounded on its own: the wait's deadline ends the loop
		// (and is reported as a timeout), not a request cut short by it.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		var err error
		if failed, err = t.lookRollout(ctx, pending, kindMapping, scaled); err != nil {
			return false, err
		}
		if failed != nil {
			return false, failed
		}
		task.Status("%d/%d workloads ready", total-len(pending), total)
		return len(pending) == 0, nil
	})
	switch {
	case err == nil:
		task.Done("%d workloads ready", total)
		return nil
	case failed != nil:
		task.Done("failed: %s", failed.Object)
		return failed
	case ctx.Err() == nil:
		task.Done("failed")
		return err
	}
	// Timed out or interrupted: say why a workload is stuck, with a fresh
	// context since ctx is over.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	werr := t.stuckWorkload(dctx, pending, scaled)
	task.Done("timed out: %s", werr.Object)
	return fmt.Errorf("waiting for %d of %d workloads: %w: %w", len(pending), total, ctx.Err(), werr)
}

// lookRollout lists the pending workloads' kinds once, drops the finished
// ones from pending and returns the diagnosis of one that failed.
func (t *target) lookRollout(ctx context.Context, pending map[string]*unstructured.Unstructured, kindMapping map[string]*meta.RESTMapping, scaled map[string]bool) (*WorkloadError, error) {
	kinds := map[string]bool{}
	for _, u := range pending {
		kinds[u.GetKind()] = true
	}
	sel := labelPartOf + "=" + t.id
	for _, kind := range slices.Sorted(maps.Keys(kinds)) {
		m := kindMapping[kind]
		list, err := t.c.resource(m, t.ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, fmt.Errorf("listing %ss in %s: %w", kind, t.ns, ctxErr(ctx, err))
		}
		for i := range list.Items {
			u := &list.Items[i]
			u.SetGroupVersionKind(m.GroupVersionKind)
			id := objectID(u)
			if _, ok := pending[id]; !ok {
				continue
			}
			if scaled[id] {
				pods, err := t.workloadPods(ctx, u)
				if err != nil {
					return nil, err
				}
				if scaledDownDone(u, len(pods)) {
					delete(pending, id)
				}
				continue
			}
			done, why := waitedKinds[kind](u)
			if why != "" {
				return t.diagnose(ctx, u, why), nil
			}
			if done {
				delete(pending, id)
			}
		}
	}
	return nil, nil
}

// stuckWorkload diagnoses the first few pending workloads and names the one
// whose pod is visibly stuck (running but not ready, failed, or waiting),
// rather than one that was merely still progressing.
func (t *target) stuckWorkload(ctx context.Context, pending map[string]*unstructured.Unstructured, scaled map[string]bool) *WorkloadError {
	var werr *WorkloadError
	for i, id := range slices.Sorted(maps.Keys(pending)) {
		if i == 5 {
			break
		}
		if scaled[id] {
			w := &WorkloadError{Object: id, Reason: "standby: not yet at 0 replicas with no pods"}
			if pods, err := t.workloadPods(ctx, pending[id]); err == nil && len(pods) > 0 {
				w.Reason += "; " + describePod(&pods[0])
			}
			if werr == nil {
				werr = w
			}
			continue
		}
		w := t.diagnose(ctx, pending[id], "not ready")
		if werr == nil || (w.stuck && !werr.stuck) {
			werr = w
		}
		if w.stuck {
			break
		}
	}
	return werr
}

// scaledDownDone reports whether workload u, with pods pods left, is at 0
// replicas: its controller saw the change and no pod is left (a
// terminating one still runs the application).
func scaledDownDone(u *unstructured.Unstructured, pods int) bool {
	return observed(u) && specReplicas(u) == 0 && nestedInt(u, "status", "replicas") == 0 && pods == 0
}

// workloadPods lists the pods of workload u (by its selector), terminating
// ones included.
func (t *target) workloadPods(ctx context.Context, u *unstructured.Unstructured) ([]corev1.Pod, error) {
	selMap, _, _ := unstructured.NestedStringMap(u.Object, "spec", "selector", "matchLabels")
	if u.GetKind() == "Job" {
		selMap = map[string]string{"batch.kubernetes.io/job-name": u.GetName()}
	}
	if len(selMap) == 0 {
		return nil, nil
	}
	pods, err := t.c.core.CoreV1().Pods(t.ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(selMap).String()})
	if err != nil {
		return nil, fmt.Errorf("listing the pods of %s in %s: %w", objectID(u), t.ns, ctxErr(ctx, err))
	}
	return pods.Items, nil
}

// diagnose explains why workload u is not done: the first pod that is not
// ready, the condition that says so, container states, recent events and the
// pod's last log lines.
func (t *target) diagnose(ctx context.Context, u *unstructured.Unstructured, why string) *WorkloadError {
	werr := &WorkloadError{Object: objectID(u), Reason: why}
	selMap, _, _ := unstructured.NestedStringMap(u.Object, "spec", "selector", "matchLabels")
	if u.GetKind() == "Job" {
		selMap = map[string]string{"batch.kubernetes.io/job-name": u.GetName()}
	}
	if len(selMap) == 0 {
		return werr
	}
	pods, err := t.c.core.CoreV1().Pods(t.ns).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(selMap).String()})
	if err != nil || len(pods.Items) == 0 {
		if err == nil {
			werr.Reason += "; no pods were created (see the events of " + werr.Object + ")"
		}
		return werr
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return pods.Items[i].CreationTimestamp.After(pods.Items[j].CreationTimestamp.Time)
	})
	pod := pods.Items[0]
	for _, p := range pods.Items {
		if !podReady(&p) {
			pod = p
			break
		}
	}
	werr.Reason += "; " + describePod(&pod)
	werr.stuck = !podReady(&pod) && (pod.Status.Phase == corev1.PodRunning || pod.Status.Phase == corev1.PodFailed)
	if evs, err := t.c.core.CoreV1().Events(t.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name}); err == nil {
		if ev := telling(evs.Items); ev != nil {
			werr.Reason += fmt.Sprintf("; last event: %s %s: %s", ev.Type, ev.Reason, ev.Message)
		}
	}
	werr.Log = t.podLog(ctx, &pod, 10)
	t.log.Error("workload not ready", "object", werr.Object, "namespace", t.ns, "pod", pod.Name, "reason", werr.Reason)
	for _, l := range werr.Log {
		t.log.Info("log", "pod", pod.Name, "line", l)
	}
	return werr
}

// telling picks the event that explains a pod best: the newest Warning (a
// failed pull, probe or mount), else the newest event of any type; a
// Normal "Pulled" or "Started" after a Warning says nothing of the cause.
func telling(evs []corev1.Event) *corev1.Event {
	var last, warning *corev1.Event
	for i := range evs {
		ev := &evs[i]
		if last == nil || eventTime(ev).After(eventTime(last)) {
			last = ev
		}
		if ev.Type == corev1.EventTypeWarning && (warning == nil || eventTime(ev).After(eventTime(warning))) {
			warning = ev
		}
	}
	if warning != nil {
		return warning
	}
	return last
}

// eventTime is when ev last happened, in either the old or the new events
// API's fields.
func eventTime(ev *corev1.Event) time.Time {
	switch {
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time
	case ev.Series != nil && !ev.Series.LastObservedTime.IsZero():
		return ev.Series.LastObservedTime.Time
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time
	}
	return ev.CreationTimestamp.Time
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// describePod names the pod, its phase, its Ready condition and any container
// that is waiting or terminated with an error.
func describePod(p *corev1.Pod) string {
	s := fmt.Sprintf("pod %s is %s", p.Name, p.Status.Phase)
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
			s += fmt.Sprintf(", condition Ready=%s", c.Status)
			if c.Reason != "" {
				s += " (" + c.Reason
				if c.Message != "" {
					s += ": " + c.Message
				}
				s += ")"
			}
		}
		if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue {
			s += fmt.Sprintf(", condition PodScheduled=%s (%s: %s)", c.Status, c.Reason, c.Message)
		}
	}
	var hints []string
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		switch {
		case cs.State.Waiting != nil:
			s += fmt.Sprintf(", container %s waiting: %s %s", cs.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0:
			s += fmt.Sprintf(", container %s exited %d (%s)", cs.Name, cs.State.Terminated.ExitCode, cs.State.Terminated.Reason)
		}
		// A container in CrashLoopBackOff keeps why it died only in its
		// last termination: without it the cause (exit code, OOMKilled) is lost.
		if last := cs.LastTerminationState.Terminated; last != nil && cs.State.Terminated == nil {
			s += fmt.Sprintf(", container %s last exited %d (%s) after %d restarts", cs.Name, last.ExitCode, last.Reason, cs.RestartCount)
		}
		if h := containerHint(p, cs); h != "" {
			hints = append(hints, h)
		}
	}
	if len(hints) > 0 {
		s += "; " + strings.Join(hints, "; ")
	}
	return s
}

// containerHint is the next step for a container's failure, when its cause
// says what to fix; "" leaves the generic advice (fix and deploy again, or
// roll back).
func containerHint(p *corev1.Pod, cs corev1.ContainerStatus) string {
	if w := cs.State.Waiting; w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") {
		return fmt.Sprintf("the node cannot pull %s: push it to this region again (push-registry push, then push-registry verify) before deploying", cs.Image)
	}
	for _, t := range []*corev1.ContainerStateTerminated{cs.State.Terminated, cs.LastTerminationState.Terminated} {
		if t != nil && t.Reason == "OOMKilled" {
			limit := "none"
			for _, c := range p.Spec.Containers {
				if q, ok := c.Resources.Limits[corev1.ResourceMemory]; c.Name == cs.Name && ok {
					limit = q.String()
				}
			}
			return fmt.Sprintf("container %s ran out of memory: raise its resources.limits.memory (now %s) or make it use less", cs.Name, limit)
		}
	}
	return ""
}

// podLog returns the last n lines of the pod's first container's log, or
// nothing when the node cannot serve logs.
func (t *target) podLog(ctx context.Context, p *corev1.Pod, n int64) []string {
	if len(p.Spec.Containers) == 0 {
		return nil
	}
	rc, err := t.c.core.CoreV1().Pods(t.ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: p.Spec.Containers[0].Name, TailLines: &n}).Stream(ctx)
	if err != nil {
		t.log.Debug("reading pod log", "pod", p.Name, "err", err)
		return nil
	}
	defer rc.Close()
	return lastLines(rc, int(n))
}

func lastLines(r io.Reader, n int) []string {
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines
}

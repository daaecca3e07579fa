package magnum

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clusters"

	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/progress"
)

// ErrWaitTimeout is wrapped when a cluster is still busy when the wait
// timeout runs out.
var ErrWaitTimeout = errors.New("timed out waiting for the cluster")

// waitFor polls cluster id until its status is action+"_COMPLETE" and done
// (if given) holds, failing fast on *_FAILED and ROLLBACK_*. For DELETE it
// waits until the cluster is gone and returns nil. Polls back off from
// PollInterval to MaxPollInterval.
func waitFor(ctx context.Context, o *Options, a *api, id, name, action string, done func(*clusters.Cluster) bool) (*clusters.Cluster, error) {
	timeout := o.waitTimeout(action)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	w := &wait{o: o, a: a, id: id, name: name, action: action, done: done,
		task: o.Progress.Start(o.label("cluster "+name), 0), start: o.Now()}
	err := poll.Until(wctx, poll.Backoff{Initial: o.PollInterval, Max: o.MaxPollInterval, Factor: 1.5}, w.poll)
	if err != nil && wctx.Err() != nil && errors.Is(err, wctx.Err()) {
		return w.last, w.stopped(ctx, timeout)
	}
	return w.last, err
}

// label names what o works on in progress lines: with its region when the
// spec has several.
func (o *Options) label(what string) string {
	if o.region == "" {
		return what
	}
	return what + " in " + o.region
}

// waitTimeout is o.WaitTimeout or its default for action.
func (o *Options) waitTimeout(action string) time.Duration {
	switch {
	case o.WaitTimeout > 0:
		return o.WaitTimeout
	case action == "CREATE" && o.Spec != nil:
		return time.Duration(o.Spec.Cluster.createTimeout())*time.Minute + 10*time.Minute
	}
	return time.Hour
}

// wait is one waitFor: what it waits for and the last status it saw.
type wait struct {
	o                *Options
	a                *api
	id, name, action string
	done             func(*clusters.Cluster) bool
	task             *progress.Task
	start            time.Time
	last             *clusters.Cluster
}

// poll is the condition of the wait: one status read.
func (w *wait) poll(ctx context.Context) (bool, error) {
	c, err := clusters.Get(ctx, w.a.sc, w.id).Extract()
	switch {
	case err == nil:
	case statusOf(err) == http.StatusNotFound && w.action == "DELETE":
		w.task.Done("deleted")
		w.last = nil
		return true, nil
	case statusOf(err) == http.StatusNotFound:
		w.task.Done("gone")
		w.last = nil
		return false, fmt.Errorf("cluster %s: %w: it disappeared while waiting for %s (deleted by someone else?)", w.name, ErrClusterFailed, strings.ToLower(w.action))
	case ctx.Err() != nil:
		return false, ctx.Err()
	default:
		w.task.Done("error")
		return false, w.a.explain("reading cluster "+w.name, err)
	}
	w.last = c
	w.task.Status("%s", statusLine(c))
	w.o.Log.Debug("cluster status", "cluster", w.name, "status", c.Status, "reason", c.StatusReason, "health", c.HealthStatus)
	elapsed := w.o.Now().Sub(w.start).Round(time.Second)
	switch {
	case c.Status == w.action+"_COMPLETE" && (w.done == nil || w.done(c)):
		w.task.Done("%s", c.Status)
		w.o.Log.Info("cluster ready", "cluster", w.name, "status", c.Status, "elapsed", elapsed.String())
		return true, nil
	case strings.HasSuffix(c.Status, "_FAILED") || strings.HasPrefix(c.Status, "ROLLBACK_"):
		w.task.Done("%s", c.Status)
		next := "fix the cause, then rerun; for a failed create, delete the cluster first (magnum-cluster cluster delete)"
		return false, fmt.Errorf("cluster %s: %w: %s after %s: %s%s; %s", w.name, ErrClusterFailed, c.Status,
			elapsed, orNone(c.StatusReason), faultText(c.Faults), next)
	}
	return false, nil
}

// stopped is the error of a wait that ended before the cluster did: ctx
// (an interrupt, the command's timeout) or the wait's own timeout.
func (w *wait) stopped(ctx context.Context, timeout time.Duration) error {
	status := "(status unknown)"
	if w.last != nil {
		status = statusLine(w.last)
	}
	w.task.Done("stopped waiting")
	if ctx.Err() != nil {
		return fmt.Errorf("waiting for cluster %s: %w; Magnum carries on with %s: rerun the same command to wait again", w.name, ctx.Err(), status)
	}
	return fmt.Errorf("cluster %s: %w: still %s after %s; Magnum keeps working on it: rerun the same command to wait again, or raise the wait timeout",
		w.name, ErrWaitTimeout, status, timeout)
}

func statusLine(c *clusters.Cluster) string {
	s := c.Status
	if c.StatusReason != "" {
		s += " (" + c.StatusReason + ")"
	}
	if c.HealthStatus != "" {
		s += " health " + c.HealthStatus
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "no status_reason given"
	}
	return s
}

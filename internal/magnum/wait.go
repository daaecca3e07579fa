package magnum

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/containerinfra/v1/clusters"
)

// ErrWaitTimeout is wrapped when a cluster is still busy when the wait
// timeout runs out.
var ErrWaitTimeout = errors.New("timed out waiting for the cluster")

// waitFor polls cluster id until its status is action+"_COMPLETE" and done
// (if given) holds, failing fast on *_FAILED and ROLLBACK_*. For DELETE it
// waits until the cluster is gone and returns nil. Polls back off from
// PollInterval to MaxPollInterval.
func waitFor(ctx context.Context, o *Options, a *api, id, name, action string, done func(*clusters.Cluster) bool) (*clusters.Cluster, error) {
	timeout := o.WaitTimeout
	if timeout <= 0 {
		timeout = time.Hour
		if action == "CREATE" && o.Spec != nil {
			timeout = time.Duration(o.Spec.Cluster.createTimeout())*time.Minute + 10*time.Minute
		}
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	task := o.Progress.Start("cluster "+name, 0)
	start := o.Now()
	interval := o.PollInterval
	var last *clusters.Cluster
	for {
		c, err := clusters.Get(wctx, a.sc, id).Extract()
		switch {
		case err == nil:
			last = c
		case statusOf(err) == http.StatusNotFound && action == "DELETE":
			task.Done("deleted")
			return nil, nil
		case statusOf(err) == http.StatusNotFound:
			task.Done("gone")
			return nil, fmt.Errorf("cluster %s: %w: it disappeared while waiting for %s (deleted by someone else?)", name, ErrClusterFailed, strings.ToLower(action))
		case wctx.Err() != nil:
			// handled below with the last status seen
		default:
			task.Done("error")
			return nil, a.explain("reading cluster "+name, err)
		}
		if last != nil && err == nil {
			task.Status("%s", statusLine(last))
			o.Log.Debug("cluster status", "cluster", name, "status", last.Status, "reason", last.StatusReason, "health", last.HealthStatus)
			switch {
			case last.Status == action+"_COMPLETE" && (done == nil || done(last)):
				task.Done("%s", last.Status)
				o.Log.Info("cluster ready", "cluster", name, "status", last.Status, "elapsed", o.Now().Sub(start).Round(time.Second).String())
				return last, nil
			case strings.HasSuffix(last.Status, "_FAILED") || strings.HasPrefix(last.Status, "ROLLBACK_"):
				task.Done("%s", last.Status)
				next := "fix the cause, then rerun; for a failed create, delete the cluster first (magnum-cluster cluster delete)"
				return last, fmt.Errorf("cluster %s: %w: %s after %s: %s%s; %s", name, ErrClusterFailed, last.Status,
					o.Now().Sub(start).Round(time.Second), orNone(last.StatusReason), faultText(last.Faults), next)
			}
		}
		select {
		case <-wctx.Done():
		case <-time.After(interval):
		}
		if wctx.Err() != nil {
			status := "(status unknown)"
			if last != nil {
				status = statusLine(last)
			}
			task.Done("stopped waiting")
			if ctx.Err() != nil {
				return last, fmt.Errorf("waiting for cluster %s: %w; Magnum carries on with %s: rerun the same command to wait again", name, ctx.Err(), status)
			}
			return last, fmt.Errorf("cluster %s: %w: still %s after %s; Magnum keeps working on it: rerun the same command to wait again, or raise --wait-timeout",
				name, ErrWaitTimeout, status, timeout)
		}
		interval = min(interval*3/2, o.MaxPollInterval)
	}
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

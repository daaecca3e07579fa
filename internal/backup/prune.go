package backup

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/slipwayci/slipway/internal/usererr"
)

// Policy says which complete backups to keep. A backup is kept when any rule
// keeps it; the newest complete backup is always kept.
type Policy struct {
	Last    int `json:"last"`
	Daily   int `json:"daily"`
	Weekly  int `json:"weekly"`
	Monthly int `json:"monthly"`
}

// validate checks the counts; n names them ("Policy.Last", ...).
func (p Policy) validate(n Names) error {
	rules := []struct {
		option string
		count  int
	}{{"Policy.Last", p.Last}, {"Policy.Daily", p.Daily}, {"Policy.Weekly", p.Weekly}, {"Policy.Monthly", p.Monthly}}
	var names []string
	for _, r := range rules {
		if r.count < 0 {
			return usererr.Errorf("%s is %d: retention counts must not be negative", n.of(r.option), r.count)
		}
		names = append(names, n.of(r.option))
	}
	if p.Last+p.Daily+p.Weekly+p.Monthly == 0 {
		return usererr.Errorf("no retention rule given: set at least one of %s", strings.Join(names, ", "))
	}
	return nil
}

// Decision is what prune does with one backup and why.
type Decision struct {
	ID      string   `json:"id"`
	Keep    bool     `json:"keep"`
	Reasons []string `json:"reasons"`
}

// Apply decides for each backup (complete or not), newest first. Complete
// backups are kept by the rules: the newest in each of the last N days,
// ISO weeks and months that have one (UTC), and the last N overall.
// Incomplete backups younger than grace may still be running and are kept;
// older ones are removed.
func (p Policy) Apply(entries []Entry, now time.Time, grace time.Duration) []Decision {
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].ID > sorted[j].ID })
	type bucket struct {
		n    int
		key  func(time.Time) string
		name string
		seen map[string]bool
	}
	buckets := []*bucket{
		{p.Daily, func(t time.Time) string { return t.Format("2006-01-02") }, "daily", map[string]bool{}},
		{p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }, "weekly", map[string]bool{}},
		{p.Monthly, func(t time.Time) string { return t.Format("2006-01") }, "monthly", map[string]bool{}},
	}
	var out []Decision
	complete := 0
	for _, e := range sorted {
		d := Decision{ID: e.ID}
		if !e.Complete {
			if now.Sub(e.Time) < grace {
				d.Keep = true
				d.Reasons = append(d.Reasons, "incomplete but recent (may still be running)")
			} else {
				d.Reasons = append(d.Reasons, "incomplete")
			}
			out = append(out, d)
			continue
		}
		t := e.Time.UTC()
		if complete == 0 {
			d.Keep = true
			d.Reasons = append(d.Reasons, "newest complete")
		}
		if complete < p.Last {
			d.Keep = true
			d.Reasons = append(d.Reasons, fmt.Sprintf("last %d", p.Last))
		}
		for _, b := range buckets {
			k := b.key(t)
			if len(b.seen) < b.n && !b.seen[k] {
				b.seen[k] = true
				d.Keep = true
				d.Reasons = append(d.Reasons, b.name+" "+k)
			}
		}
		if !d.Keep {
			d.Reasons = append(d.Reasons, "not kept by any rule")
		}
		complete++
		out = append(out, d)
	}
	return out
}

// PruneOptions configures Prune.
type PruneOptions struct {
	Common
	Policy Policy
	// IncompleteGrace protects backups without a manifest that may still be
	// being written (default 24h).
	IncompleteGrace time.Duration
	DryRun          bool
}

// PruneReport lists the decisions and what was deleted.
type PruneReport struct {
	Decisions      []Decision `json:"decisions"`
	Deleted        []string   `json:"deleted"`
	AbortedUploads int        `json:"abortedUploads"`
	DryRun         bool       `json:"dryRun"`
}

// Prune deletes the backups the policy does not keep, and aborts multipart
// uploads that runs killed with S3 unreachable left behind. A backup's
// manifest is deleted first, so a half-deleted backup is never complete.
func Prune(ctx context.Context, opts PruneOptions) (*PruneReport, error) {
	store, err := opts.setup()
	if err != nil {
		return nil, err
	}
	if err := opts.Policy.validate(opts.Names); err != nil {
		return nil, err
	}
	if opts.IncompleteGrace == 0 {
		opts.IncompleteGrace = 24 * time.Hour
	}
	entries, err := catalog(ctx, store, opts.S3.Prefix)
	if err != nil {
		return nil, err
	}
	now := opts.Now().UTC()
	rep := &PruneReport{Decisions: opts.Policy.Apply(entries, now, opts.IncompleteGrace), DryRun: opts.DryRun}
	byID := map[string]Entry{}
	for _, e := range entries {
		byID[e.ID] = e
	}
	for _, d := range rep.Decisions {
		if d.Keep {
			continue
		}
		opts.Logger.Info("pruning", "backup", d.ID, "reason", d.Reasons, "dry_run", opts.DryRun)
		if opts.DryRun {
			rep.Deleted = append(rep.Deleted, d.ID)
			continue
		}
		e := byID[d.ID]
		manifest := opts.S3.Prefix + d.ID + "/" + manifestName
		if err := store.Delete(ctx, manifest); err != nil {
			return rep, err
		}
		var rest []string
		for _, k := range e.keys {
			if k != manifest {
				rest = append(rest, k)
			}
		}
		if err := store.Delete(ctx, rest...); err != nil {
			return rep, err
		}
		rep.Deleted = append(rep.Deleted, d.ID)
	}
	if !opts.DryRun {
		n, err := store.AbortUploads(ctx, opts.S3.Prefix, now.Add(-opts.IncompleteGrace))
		rep.AbortedUploads = n
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

package backup

import (
	"bytes"
	"context"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/usererr"
)

func mkEntries(complete bool, times ...string) []Entry {
	var out []Entry
	for _, s := range times {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			panic(err)
		}
		out = append(out, Entry{ID: NewID(t), Time: t, Complete: complete})
	}
	return out
}

func kept(ds []Decision) []string {
	var ids []string
	for _, d := range ds {
		if d.Keep {
			ids = append(ids, d.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

func ids(times ...string) []string {
	var out []string
	for _, e := range mkEntries(true, times...) {
		out = append(out, e.ID)
	}
	sort.Strings(out)
	return out
}

func TestPolicyApply(t *testing.T) {
	now, _ := time.Parse(time.RFC3339, "2026-03-10T12:00:00Z")
	// Two backups a day from Feb 20 to Mar 10.
	var all []string
	for d := time.Date(2026, 2, 20, 0, 0, 0, 0, time.UTC); !d.After(now); d = d.AddDate(0, 0, 1) {
		all = append(all, d.Add(2*time.Hour).Format(time.RFC3339), d.Add(14*time.Hour).Format(time.RFC3339))
	}
	all = all[:len(all)-1] // Mar 10 14:00 is in the future
	entries := mkEntries(true, all...)
	for _, tc := range []struct {
		name    string
		policy  Policy
		entries []Entry
		want    []string
	}{
		{"last 3", Policy{Last: 3}, entries, ids("2026-03-10T02:00:00Z", "2026-03-09T14:00:00Z", "2026-03-09T02:00:00Z")},
		{"daily 3", Policy{Daily: 3}, entries, ids("2026-03-10T02:00:00Z", "2026-03-09T14:00:00Z", "2026-03-08T14:00:00Z")},
		// ISO weeks: Mar 9-10 (W11), Mar 2-8 (W10), Feb 23 - Mar 1 (W09).
		{"weekly 3", Policy{Weekly: 3}, entries, ids("2026-03-10T02:00:00Z", "2026-03-08T14:00:00Z", "2026-03-01T14:00:00Z")},
		{"monthly 2", Policy{Monthly: 2}, entries, ids("2026-03-10T02:00:00Z", "2026-02-28T14:00:00Z")},
		{"combined", Policy{Last: 1, Daily: 2, Monthly: 2}, entries, ids("2026-03-10T02:00:00Z", "2026-03-09T14:00:00Z", "2026-02-28T14:00:00Z")},
		{
			"newest complete kept even when incomplete ones are newer",
			Policy{Daily: 1},
			append(mkEntries(false, "2026-03-10T11:00:00Z", "2026-03-01T00:00:00Z"), mkEntries(true, "2026-03-05T02:00:00Z", "2026-03-04T02:00:00Z")...),
			// The recent incomplete one may still be running; the old one goes.
			append(ids("2026-03-05T02:00:00Z"), NewID(time.Date(2026, 3, 10, 11, 0, 0, 0, time.UTC))),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := kept(tc.policy.Apply(tc.entries, now, 24*time.Hour))
			want := append([]string(nil), tc.want...)
			sort.Strings(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
		})
	}
}

// writeFakeBackup stores a complete (or, without manifest, incomplete)
// backup made of one small dump object.
func writeFakeBackup(t *testing.T, st ObjectStore, prefix string, at time.Time, complete bool) string {
	t.Helper()
	id := NewID(at)
	key := prefix + id + "/mysql-app.sql.zst"
	putAll(t, st, key, []byte("dump"))
	if complete {
		m := &Manifest{Format: ManifestFormat, ID: id, Site: "primary", Started: at, Finished: at.Add(time.Minute), Compression: CompressZstd,
			Dumps: []Dump{{Kind: KindMySQL, Database: "app", Key: key, Size: 4, SHA256: strings.Repeat("a", 64), RawSize: 4, RawSHA256: strings.Repeat("b", 64)}}}
		putAll(t, st, prefix+id+"/"+manifestName, encodeManifest(m))
	}
	return id
}

func TestPruneOnS3(t *testing.T) {
	ctx := context.Background()
	cfg, st := s3Env(t)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	var all []string
	for i := 0; i < 6; i++ {
		all = append(all, writeFakeBackup(t, st, cfg.Prefix, now.Add(-time.Duration(i)*24*time.Hour), true))
	}
	oldIncomplete := writeFakeBackup(t, st, cfg.Prefix, now.Add(-48*time.Hour-time.Minute), false)
	running := writeFakeBackup(t, st, cfg.Prefix, now.Add(-time.Minute), false)
	c := Common{S3: cfg, Logger: testLogger(t), Now: func() time.Time { return now }}

	rep, err := Prune(ctx, PruneOptions{Common: c, Policy: Policy{Daily: 3}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	wantDeleted := []string{all[3], all[4], all[5], oldIncomplete}
	sort.Strings(wantDeleted)
	got := append([]string(nil), rep.Deleted...)
	sort.Strings(got)
	if diff := cmp.Diff(wantDeleted, got); diff != "" {
		t.Errorf("dry run would delete (-want +got):\n%s", diff)
	}
	entries, _ := catalog(ctx, st, cfg.Prefix)
	if len(entries) != 8 {
		t.Fatalf("dry run deleted something: %d backups left, want 8", len(entries))
	}

	if _, err := Prune(ctx, PruneOptions{Common: c, Policy: Policy{Daily: 3}}); err != nil {
		t.Fatal(err)
	}
	entries, _ = catalog(ctx, st, cfg.Prefix)
	var left []string
	for _, e := range entries {
		left = append(left, e.ID)
	}
	sort.Strings(left)
	want := []string{all[0], all[1], all[2], running}
	sort.Strings(want)
	if diff := cmp.Diff(want, left); diff != "" {
		t.Errorf("backups left (-want +got):\n%s", diff)
	}
	// Running it again changes nothing.
	rep, err = Prune(ctx, PruneOptions{Common: c, Policy: Policy{Daily: 3}})
	if err != nil || len(rep.Deleted) != 0 {
		t.Errorf("second prune deleted %v (err %v), want nothing", rep.Deleted, err)
	}

	if _, err := Prune(ctx, PruneOptions{Common: c}); !usererr.Is(err) {
		t.Errorf("prune without a rule: %v, want a usage error", err)
	}
}

func TestStatusOnS3(t *testing.T) {
	ctx := context.Background()
	cfg, st := s3Env(t)
	now := time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	c := Common{S3: cfg, Logger: testLogger(t), Now: func() time.Time { return now }}

	s, err := GetStatus(ctx, StatusOptions{Common: c, MaxAge: time.Hour})
	if !errors.Is(err, ErrStale) || !s.Stale {
		t.Errorf("empty bucket: %v stale=%v, want ErrStale", err, s != nil && s.Stale)
	}
	id := writeFakeBackup(t, st, cfg.Prefix, now.Add(-2*time.Hour), true)
	writeFakeBackup(t, st, cfg.Prefix, now.Add(-time.Minute), false) // newer but incomplete

	for _, tc := range []struct {
		name      string
		maxAge    time.Duration
		wantStale bool
	}{
		{"fresh", 3 * time.Hour, false},
		{"stale", time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := GetStatus(ctx, StatusOptions{Common: c, MaxAge: tc.maxAge})
			if tc.wantStale != errors.Is(err, ErrStale) {
				t.Fatalf("err = %v, want stale %v", err, tc.wantStale)
			}
			if s.Newest != id || s.Stale != tc.wantStale || s.Complete != 1 || s.Incomplete != 1 {
				t.Errorf("status %+v", s)
			}
			if got := s.AgeSeconds; got != 7140 { // finished 1 min after its 2 h old start
				t.Errorf("age %v s, want 7140", got)
			}
			var buf bytes.Buffer
			if err := s.WritePrometheus(&buf); err != nil {
				t.Fatal(err)
			}
			wantLine := "slipway_backup_stale 0\n"
			if tc.wantStale {
				wantLine = "slipway_backup_stale 1\n"
			}
			if !strings.Contains(buf.String(), wantLine) || !strings.Contains(buf.String(), "# TYPE slipway_backup_age_seconds gauge\nslipway_backup_age_seconds 7140\n") {
				t.Errorf("prometheus output:\n%s", buf.String())
			}
		})
	}
}

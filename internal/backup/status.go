package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/slipwayci/slipway/internal/usererr"
)

// StatusOptions configures Status.
type StatusOptions struct {
	Common
	MaxAge time.Duration
	// MySQL and Mongo, when set, are the DR site's servers: their restore
	// journals are read, and an interrupted swap makes the status stale.
	MySQL MySQLConfig
	Mongo MongoConfig
	// Site, when set, names the restore (DR) site this status checks as a
	// failover's preflight: the servers of every kind of the newest backup
	// must be given, each of its databases' last restore must have
	// succeeded, and none may be interrupted or running.
	Site string
}

// Status is the freshness of the newest complete backup.
type Status struct {
	Newest     string        `json:"newest,omitempty"`
	Finished   time.Time     `json:"finished,omitzero"`
	Age        time.Duration `json:"-"`
	AgeSeconds float64       `json:"ageSeconds"`
	MaxAge     time.Duration `json:"-"`
	MaxAgeSecs float64       `json:"maxAgeSeconds"`
	Size       int64         `json:"size"`
	Complete   int           `json:"complete"`
	Incomplete int           `json:"incomplete"`
	Stale      bool          `json:"stale"`
	// Restores lists the DR databases whose restore a killed run left
	// unfinished (from the journals; only with the DR servers given).
	Restores []JournalEntry `json:"restores,omitempty"`
	// Site, LastRestores and Problems: with StatusOptions.Site, the last
	// restore of each database of the newest backup and what is wrong.
	Site         string    `json:"site,omitempty"`
	LastRestores []Outcome `json:"lastRestores,omitempty"`
	Problems     []string  `json:"problems,omitempty"`
}

// ErrNotReady is returned (with the Status) when the restore site's last
// restore failed, is interrupted or running, or never happened.
var ErrNotReady = errors.New("the restore site is not ready")

// ErrStale is returned (with the Status) when the newest complete backup is
// older than the maximum age, or there is none.
var ErrStale = errors.New("backups are stale")

// GetStatus reports on the newest complete backup; it returns ErrStale
// (wrapped) together with the status when that backup is too old.
func GetStatus(ctx context.Context, opts StatusOptions) (*Status, error) {
	store, err := opts.setup()
	if err != nil {
		return nil, err
	}
	if opts.MaxAge <= 0 {
		return nil, usererr.Errorf("%s must be positive (e.g. 26h for daily backups)", opts.Names.of("MaxAge"))
	}
	if opts.Site != "" && !opts.MySQL.Enabled() && !opts.Mongo.Enabled() {
		return nil, usererr.Errorf("%s %s: give the servers of that site (%s or %s, and/or %s) to check its restores", opts.Names.of("Site"), opts.Site,
			opts.Names.of("MySQL.Host"), opts.Names.of("MySQL.Socket"), opts.Names.of("Mongo.URI"))
	}
	entries, err := catalog(ctx, store, opts.S3.Prefix)
	if err != nil {
		return nil, err
	}
	now := opts.Now().UTC()
	st := &Status{MaxAge: opts.MaxAge, MaxAgeSecs: opts.MaxAge.Seconds()}
	var newest *Manifest
	for _, e := range entries {
		if !e.Complete {
			st.Incomplete++
			continue
		}
		st.Complete++
		if st.Newest == "" {
			st.Newest, st.Finished, st.Size = e.ID, e.Manifest.Finished, e.Size
			newest = e.Manifest
		}
	}
	if st.Newest == "" {
		st.Stale = true
		return st, fmt.Errorf("%w: no complete backup under prefix %q", ErrStale, opts.S3.Prefix)
	}
	st.Age = now.Sub(st.Finished)
	st.AgeSeconds = st.Age.Seconds()
	if err := readJournals(ctx, opts, newest, st); err != nil {
		return nil, err
	}
	if opts.Site != "" {
		if err := checkSite(ctx, opts, newest, st); err != nil {
			return nil, err
		}
		if st.Age > opts.MaxAge {
			st.Problems = append(st.Problems, fmt.Sprintf("newest complete backup %s finished %s ago, more than %s %s: check the backup CronJob's logs at the primary",
				st.Newest, st.Age.Round(time.Second), opts.Names.of("MaxAge"), opts.MaxAge))
		}
		if len(st.Problems) > 0 {
			st.Stale = true
			return st, fmt.Errorf("%w: site %s: %s", ErrNotReady, opts.Site, strings.Join(st.Problems, "; "))
		}
		return st, nil
	}
	for _, r := range st.Restores {
		if r.State == JournalSwapping {
			st.Stale = true
			return st, fmt.Errorf("%w: the restore of backup %s into %s database %s was interrupted during the swap, the database may be half swapped: run backup restore again to finish it", ErrStale, r.Backup, r.Kind, r.Database)
		}
	}
	if st.Age > opts.MaxAge {
		st.Stale = true
		return st, fmt.Errorf("%w: newest complete backup %s finished %s ago, more than %s %s: check the backup CronJob's logs", ErrStale, st.Newest, st.Age.Round(time.Second), opts.Names.of("MaxAge"), opts.MaxAge)
	}
	return st, nil
}

// WritePrometheus writes st in the Prometheus text exposition format (for
// node_exporter's textfile collector or a push gateway).
func (st *Status) WritePrometheus(w io.Writer) error {
	b2i := map[bool]int{false: 0, true: 1}
	swapping := 0
	for _, r := range st.Restores {
		if r.State == JournalSwapping {
			swapping++
		}
	}
	ts := 0.0
	if !st.Finished.IsZero() {
		ts = float64(st.Finished.Unix())
	}
	metrics := []struct{ name, help, typ, val string }{
		{"slipway_backup_last_complete_timestamp_seconds", "Finish time of the newest complete backup.", "gauge", strconv.FormatFloat(ts, 'f', -1, 64)},
		{"slipway_backup_age_seconds", "Age of the newest complete backup.", "gauge", strconv.FormatFloat(st.AgeSeconds, 'f', 0, 64)},
		{"slipway_backup_max_age_seconds", "Age above which backups count as stale.", "gauge", strconv.FormatFloat(st.MaxAgeSecs, 'f', 0, 64)},
		{"slipway_backup_stale", "1 when the newest complete backup is older than the maximum age.", "gauge", strconv.Itoa(b2i[st.Stale])},
		{"slipway_backup_last_size_bytes", "Stored size of the newest complete backup.", "gauge", strconv.FormatInt(st.Size, 10)},
		{"slipway_backup_complete_count", "Complete backups in the bucket.", "gauge", strconv.Itoa(st.Complete)},
		{"slipway_backup_incomplete_count", "Backups without a manifest in the bucket.", "gauge", strconv.Itoa(st.Incomplete)},
		{"slipway_backup_restore_problems", "Problems found at the restore site (0 unless --site was given).", "gauge", strconv.Itoa(len(st.Problems))},
		{"slipway_backup_restore_swap_interrupted", "DR databases whose restore was killed during the swap (0 unless the DR servers were given).", "gauge", strconv.Itoa(swapping)},
	}
	for _, m := range metrics {
		if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %s\n", m.name, m.help, m.name, m.typ, m.name, m.val); err != nil {
			return err
		}
	}
	return nil
}

// readJournals adds the pending entries of the DR servers' restore journals
// for the databases of backup m (a DR server may hold other platforms').
func readJournals(ctx context.Context, opts StatusOptions, m *Manifest, st *Status) error {
	mine := map[string]bool{}
	for _, d := range m.Dumps {
		mine[d.Kind+" "+d.Database] = true
	}
	add := func(kind string, entries []journalEntry) {
		for _, e := range entries {
			if e.pending() && mine[kind+" "+e.Database] {
				st.Restores = append(st.Restores, JournalEntry{Kind: kind, Database: e.Database, State: e.State, Backup: e.Backup, Restored: e.Restored, Updated: e.Updated})
			}
		}
	}
	if opts.MySQL.Enabled() {
		db, err := opts.MySQL.open()
		if err != nil {
			return err
		}
		defer db.Close()
		entries, err := mysqlJournal{db}.all(ctx)
		if err != nil {
			return err
		}
		add(KindMySQL, entries)
	}
	if opts.Mongo.Enabled() {
		if err := opts.Mongo.validate(opts.Names); err != nil {
			return err
		}
		c, err := connectMongo(ctx, opts.Mongo)
		if err != nil {
			return err
		}
		defer c.Disconnect(context.WithoutCancel(ctx))
		entries, err := mongoJournal{c}.all(ctx)
		if err != nil {
			return err
		}
		add(KindMongo, entries)
	}
	return nil
}

// checkSite checks the restore site for each database of backup m: its
// last restore succeeded, and no restore of it is interrupted or running.
func checkSite(ctx context.Context, opts StatusOptions, m *Manifest, st *Status) error {
	st.Site = opts.Site
	pending := map[string]JournalEntry{}
	for _, r := range st.Restores {
		pending[r.Kind+" "+r.Database] = r
	}
	var my *mysqlJournal
	var mg *mongoJournal
	for _, d := range m.Dumps {
		switch {
		case d.Kind == KindMySQL && my == nil:
			if !opts.MySQL.Enabled() {
				return usererr.Errorf("backup %s holds MySQL database %s: give %s or %s of site %s", m.ID, d.Database, opts.Names.of("MySQL.Host"), opts.Names.of("MySQL.Socket"), opts.Site)
			}
			db, err := opts.MySQL.open()
			if err != nil {
				return err
			}
			defer db.Close()
			my = &mysqlJournal{db}
		case d.Kind == KindMongo && mg == nil:
			if !opts.Mongo.Enabled() {
				return usererr.Errorf("backup %s holds MongoDB database %s: give %s of site %s", m.ID, d.Database, opts.Names.of("Mongo.URI"), opts.Site)
			}
			c, err := connectMongo(ctx, opts.Mongo)
			if err != nil {
				return err
			}
			defer c.Disconnect(context.WithoutCancel(ctx))
			mg = &mongoJournal{c}
		}
	}
	problem := func(format string, args ...any) { st.Problems = append(st.Problems, fmt.Sprintf(format, args...)) }
	for _, d := range m.Dumps {
		name := d.Kind + " database " + d.Database
		var o *Outcome
		var err error
		running := false
		if d.Kind == KindMySQL {
			if o, err = my.outcome(ctx, d.Database); err == nil {
				running, err = my.running(ctx, d.Database)
			}
		} else {
			o, err = mg.outcome(ctx, d.Database)
		}
		if err != nil {
			return err
		}
		if o != nil {
			o.Kind = d.Kind
			st.LastRestores = append(st.LastRestores, *o)
		}
		p, isPending := pending[d.Kind+" "+d.Database]
		switch {
		case running:
			problem("a restore into %s is running: wait for it to finish, then check again", name)
		case isPending:
			problem("the restore of backup %s into %s was interrupted (%s): run backup restore --latest at site %s to finish it", p.Backup, name, p.State, opts.Site)
		case o == nil:
			problem("no restore into %s is recorded at site %s: run backup restore --latest there", name, opts.Site)
		case !o.OK:
			problem("the last restore of backup %s into %s failed at %s: %s: fix that and run backup restore --latest at site %s", o.Backup, name, o.Finished.Format(time.RFC3339), o.Error, opts.Site)
		}
	}
	return nil
}

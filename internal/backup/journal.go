package backup

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/logging"
)

// A restore journals what it does to each database in the server that holds
// it, so that a run killed at any point (kill -9, OOM, node drain) is
// recognised by the next one from this record, never by guessing at names.
//
// The states of one database's entry, in order:
//
//	loading   staging is being loaded from backup Backup
//	staged    staging holds all of Backup and matched the manifest
//	swapping  the swap has begun: Plan says what it does, and a rerun
//	          finishes it before anything else
//	idle      nothing in flight; Restored is the backup in place
const (
	stateLoading  = "loading"
	stateStaged   = "staged"
	stateSwapping = "swapping"
	stateIdle     = "idle"
)

// journalDB is the database (MySQL) or database of the collection (MongoDB)
// that holds the journal on the DR server.
const journalDB = "slipway_restore"

// journalEntry is the record of one database.
type journalEntry struct {
	Database string
	State    string
	// Backup is the backup being restored (loading, staged, swapping).
	Backup string
	// Restored is the backup the live database holds, when known.
	Restored string
	// Plan is the swap, as JSON: what moves and what is recreated.
	Plan    string
	Updated time.Time
}

// pending reports whether the entry records work a killed run left.
func (e journalEntry) pending() bool { return e.State != stateIdle }

// Journal states a status report may show.
const (
	// JournalSwapping means a swap was interrupted: the live database may
	// be half swapped until the next restore finishes it.
	JournalSwapping = stateSwapping
)

// JournalEntry is a pending restore of one database, as status reports it.
type JournalEntry struct {
	Kind     string    `json:"kind"`
	Database string    `json:"database"`
	State    string    `json:"state"`
	Backup   string    `json:"backup"`
	Restored string    `json:"restored,omitempty"`
	Updated  time.Time `json:"updated,omitzero"`
}

// mysqlJournal keeps the entries in slipway_restore.journal and the tables
// a resumable load finished in slipway_restore.loaded.
type mysqlJournal struct{ db *sql.DB }

func (j mysqlJournal) init(ctx context.Context) error {
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS " + quoteID(journalDB),
		"CREATE TABLE IF NOT EXISTS " + quoteID(journalDB) + ".journal (db VARCHAR(64) NOT NULL PRIMARY KEY, state VARCHAR(16) NOT NULL, " +
			"backup VARCHAR(32) NOT NULL DEFAULT '', restored VARCHAR(32) NOT NULL DEFAULT '', plan LONGTEXT NOT NULL, updated DATETIME(6) NOT NULL) ENGINE=InnoDB",
		"CREATE TABLE IF NOT EXISTS " + quoteID(journalDB) + ".loaded (db VARCHAR(64) NOT NULL, backup VARCHAR(32) NOT NULL, tbl VARCHAR(64) NOT NULL, " +
			"PRIMARY KEY (db, tbl)) ENGINE=InnoDB",
		"CREATE TABLE IF NOT EXISTS " + quoteID(journalDB) + ".outcome (db VARCHAR(64) NOT NULL PRIMARY KEY, backup VARCHAR(32) NOT NULL, ok BOOL NOT NULL, " +
			"error TEXT NOT NULL, finished DATETIME(6) NOT NULL) ENGINE=InnoDB",
	} {
		if _, err := j.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("creating the restore journal in MySQL database %s: %w", journalDB, err)
		}
	}
	return nil
}

func (j mysqlJournal) get(ctx context.Context, db string) (*journalEntry, error) {
	var e journalEntry
	err := j.db.QueryRowContext(ctx, "SELECT db, state, backup, restored, plan, updated FROM "+quoteID(journalDB)+".journal WHERE db = ?", db).
		Scan(&e.Database, &e.State, &e.Backup, &e.Restored, &e.Plan, &e.Updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the restore journal of MySQL database %s: %w", db, err)
	}
	return &e, nil
}

func (j mysqlJournal) put(ctx context.Context, e journalEntry) error {
	_, err := j.db.ExecContext(ctx, "REPLACE INTO "+quoteID(journalDB)+".journal (db, state, backup, restored, plan, updated) VALUES (?, ?, ?, ?, ?, UTC_TIMESTAMP(6))",
		e.Database, e.State, e.Backup, e.Restored, e.Plan)
	if err != nil {
		return fmt.Errorf("writing the restore journal of MySQL database %s: %w", e.Database, err)
	}
	return nil
}

// has reports whether the journal's table name exists: a server a restore
// never reached has none.
func (j mysqlJournal) has(ctx context.Context, name string) (bool, error) {
	var n int
	err := j.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?", journalDB, name).Scan(&n)
	return n > 0, err
}

// all returns every entry; a server without a journal has none.
func (j mysqlJournal) all(ctx context.Context) ([]journalEntry, error) {
	ok, err := j.has(ctx, "journal")
	if err != nil {
		return nil, fmt.Errorf("reading the MySQL restore journal: %w", err)
	}
	if !ok {
		return nil, nil
	}
	rows, err := j.db.QueryContext(ctx, "SELECT db, state, backup, restored, updated FROM "+quoteID(journalDB)+".journal ORDER BY db")
	if err != nil {
		return nil, fmt.Errorf("reading the MySQL restore journal: %w", err)
	}
	defer rows.Close()
	var out []journalEntry
	for rows.Next() {
		var e journalEntry
		if err := rows.Scan(&e.Database, &e.State, &e.Backup, &e.Restored, &e.Updated); err != nil {
			return nil, fmt.Errorf("reading the MySQL restore journal: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// loaded returns the tables of db whose load from backup finished.
func (j mysqlJournal) loaded(ctx context.Context, db, backup string) (map[string]bool, error) {
	names, err := queryStrings(ctx, j.db, "SELECT tbl FROM "+quoteID(journalDB)+".loaded WHERE db = ? AND backup = ?", db, backup)
	if err != nil {
		return nil, fmt.Errorf("reading the loaded tables of MySQL database %s: %w", db, err)
	}
	out := map[string]bool{}
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

func (j mysqlJournal) markLoaded(ctx context.Context, db, backup, table string) error {
	if _, err := j.db.ExecContext(ctx, "REPLACE INTO "+quoteID(journalDB)+".loaded (db, backup, tbl) VALUES (?, ?, ?)", db, backup, table); err != nil {
		return fmt.Errorf("recording table %s.%s as loaded: %w", db, table, err)
	}
	return nil
}

func (j mysqlJournal) clearLoaded(ctx context.Context, db string) error {
	if _, err := j.db.ExecContext(ctx, "DELETE FROM "+quoteID(journalDB)+".loaded WHERE db = ?", db); err != nil {
		return fmt.Errorf("clearing the loaded tables of MySQL database %s: %w", db, err)
	}
	return nil
}

// mongoJournal keeps the entries as documents of slipway_restore.journal.
type mongoJournal struct{ c *mongo.Client }

type mongoJournalDoc struct {
	Database string    `bson:"_id"`
	State    string    `bson:"state"`
	Backup   string    `bson:"backup"`
	Restored string    `bson:"restored"`
	Plan     string    `bson:"plan"`
	Updated  time.Time `bson:"updated"`
}

func (j mongoJournal) coll() *mongo.Collection { return j.c.Database(journalDB).Collection("journal") }

// findID returns the document of coll with _id db, nil when there is
// none; what names coll in errors.
func findID[T any](ctx context.Context, coll *mongo.Collection, db, what string) (*T, error) {
	var d T
	err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: db}}).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the %s of MongoDB database %s: %w", what, db, err)
	}
	return &d, nil
}

// putID writes doc as the document of coll with _id id.
func putID(ctx context.Context, coll *mongo.Collection, id string, doc any) error {
	_, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, doc, options.Replace().SetUpsert(true))
	return err
}

func (j mongoJournal) get(ctx context.Context, db string) (*journalEntry, error) {
	d, err := findID[mongoJournalDoc](ctx, j.coll(), db, "restore journal")
	if d == nil {
		return nil, err
	}
	e := journalEntry(*d)
	return &e, nil
}

func (j mongoJournal) put(ctx context.Context, e journalEntry) error {
	e.Updated = time.Now().UTC()
	if err := putID(ctx, j.coll(), e.Database, mongoJournalDoc(e)); err != nil {
		return fmt.Errorf("writing the restore journal of MongoDB database %s: %w", e.Database, err)
	}
	return nil
}

func (j mongoJournal) all(ctx context.Context) ([]journalEntry, error) {
	cur, err := j.coll().Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("reading the MongoDB restore journal: %w", err)
	}
	var docs []mongoJournalDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("reading the MongoDB restore journal: %w", err)
	}
	out := make([]journalEntry, len(docs))
	for i, d := range docs {
		out[i] = journalEntry(d)
	}
	return out, nil
}

// Outcome is how the last restore into one database ended, as the DR
// server's journal keeps it (table or collection slipway_restore.outcome):
// a run killed before its end leaves the previous outcome and a pending
// journal entry.
type Outcome struct {
	Kind     string    `json:"kind"`
	Database string    `json:"database"`
	Backup   string    `json:"backup"`
	OK       bool      `json:"ok"`
	Error    string    `json:"error,omitempty"`
	Finished time.Time `json:"finished"`
}

// outcomeError is the one line an outcome keeps of a failure.
func outcomeError(err error) string {
	if err == nil {
		return ""
	}
	s := strings.ReplaceAll(logging.Scrub(err.Error()), "\n", "; ")
	if len(s) > 1000 {
		s = s[:1000] + "..."
	}
	return s
}

func (j mysqlJournal) putOutcome(ctx context.Context, o Outcome) error {
	_, err := j.db.ExecContext(ctx, "REPLACE INTO "+quoteID(journalDB)+".outcome (db, backup, ok, error, finished) VALUES (?, ?, ?, ?, UTC_TIMESTAMP(6))",
		o.Database, o.Backup, o.OK, o.Error)
	if err != nil {
		return fmt.Errorf("recording the outcome of the restore of MySQL database %s: %w", o.Database, err)
	}
	return nil
}

// outcome is the last restore's outcome for db (nil: none recorded).
func (j mysqlJournal) outcome(ctx context.Context, db string) (*Outcome, error) {
	if ok, err := j.has(ctx, "outcome"); err != nil || !ok {
		return nil, err
	}
	o := Outcome{Kind: KindMySQL}
	err := j.db.QueryRowContext(ctx, "SELECT db, backup, ok, error, finished FROM "+quoteID(journalDB)+".outcome WHERE db = ?", db).
		Scan(&o.Database, &o.Backup, &o.OK, &o.Error, &o.Finished)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the restore outcome of MySQL database %s: %w", db, err)
	}
	return &o, nil
}

// running reports whether a restore of db holds its lock now.
func (j mysqlJournal) running(ctx context.Context, db string) (bool, error) {
	var id sql.NullInt64
	if err := j.db.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", "slipway:"+db).Scan(&id); err != nil {
		return false, fmt.Errorf("reading the restore lock of MySQL database %s: %w", db, err)
	}
	return id.Valid, nil
}

type mongoOutcomeDoc struct {
	Database string    `bson:"_id"`
	Backup   string    `bson:"backup"`
	OK       bool      `bson:"ok"`
	Error    string    `bson:"error"`
	Finished time.Time `bson:"finished"`
}

func (j mongoJournal) outcomes() *mongo.Collection {
	return j.c.Database(journalDB).Collection("outcome")
}

func (j mongoJournal) putOutcome(ctx context.Context, o Outcome) error {
	d := mongoOutcomeDoc{Database: o.Database, Backup: o.Backup, OK: o.OK, Error: o.Error, Finished: time.Now().UTC()}
	if err := putID(ctx, j.outcomes(), o.Database, d); err != nil {
		return fmt.Errorf("recording the outcome of the restore of MongoDB database %s: %w", o.Database, err)
	}
	return nil
}

func (j mongoJournal) outcome(ctx context.Context, db string) (*Outcome, error) {
	d, err := findID[mongoOutcomeDoc](ctx, j.outcomes(), db, "restore outcome")
	if d == nil {
		return nil, err
	}
	return &Outcome{Kind: KindMongo, Database: d.Database, Backup: d.Backup, OK: d.OK, Error: d.Error, Finished: d.Finished}, nil
}

// journal is a DR server's restore journal: mysqlJournal or mongoJournal.
type journal interface {
	get(ctx context.Context, db string) (*journalEntry, error)
	put(ctx context.Context, e journalEntry) error
	putOutcome(ctx context.Context, o Outcome) error
}

var (
	_ journal = mysqlJournal{}
	_ journal = mongoJournal{}
)

// journalled is the part of a Target both kinds share: its database's
// entry in the server's journal J, and what this run did to it.
type journalled[J journal] struct {
	kind    string // KindMySQL or KindMongo
	journal J
	db      string
	backup  string
	// restored is the backup in place before this run (journal).
	restored string
	// prepared: this run journalled the swap; dirty: it started it and
	// did not roll it back.
	prepared, dirty bool
}

// server names the kind of server in messages.
func (j *journalled[J]) server() string {
	if j.kind == KindMongo {
		return "MongoDB"
	}
	return "MySQL"
}

func (j *journalled[J]) Name() string { return j.kind + " " + j.db }

func (j *journalled[J]) entry(state string) journalEntry {
	return journalEntry{Database: j.db, State: state, Backup: j.backup, Restored: j.restored}
}

// read returns the database's entry (nil: none) and takes from it the
// backup in place.
func (j *journalled[J]) read(ctx context.Context) (*journalEntry, error) {
	e, err := j.journal.get(ctx, j.db)
	if err != nil || e == nil {
		return nil, err
	}
	j.restored = e.Restored
	return e, nil
}

// plan decodes the swap plan of entry e into v.
func (j *journalled[J]) plan(e *journalEntry, v any) error {
	if err := json.Unmarshal([]byte(e.Plan), v); err != nil {
		return fmt.Errorf("reading the swap plan of %s database %s from the journal: %w", j.server(), j.db, err)
	}
	return nil
}

// Staged records that the staging holds the whole backup, checked.
func (j *journalled[J]) Staged(ctx context.Context) error {
	return j.journal.put(ctx, j.entry(stateStaged))
}

// prepare journals the swap's plan: from here on, a killed run is finished
// by the next one.
func (j *journalled[J]) prepare(ctx context.Context, plan any) error {
	data, err := json.Marshal(plan)
	if err != nil {
		return err
	}
	e := j.entry(stateSwapping)
	e.Plan = string(data)
	if err := j.journal.put(ctx, e); err != nil {
		return err
	}
	j.prepared = true
	return nil
}

// commit drops what the swap left over (drop) and records backup as the
// one in place.
func (j *journalled[J]) commit(ctx context.Context, backup string, drop func(context.Context) error) error {
	if err := drop(ctx); err != nil {
		return err
	}
	crashpoint.Hit("backup.restore.commit")
	j.restored = backup
	return j.journal.put(ctx, journalEntry{Database: j.db, State: stateIdle, Restored: backup})
}

// discard drops the staging data (drop; what names it), unless the journal
// says a swap is under way: the next run finishes that one, and needs it.
func (j *journalled[J]) discard(ctx context.Context, what string, drop func(context.Context) error) error {
	e, err := j.journal.get(ctx, j.db)
	if err != nil {
		return err
	}
	// A swap this run planned but never started (or rolled back) left the
	// live data alone.
	if e != nil && e.State == stateSwapping && (!j.prepared || j.dirty) {
		return fmt.Errorf("%s database %s: the swap of backup %s is under way, not dropping its %s (the next restore finishes it)", j.server(), j.db, e.Backup, what)
	}
	if err := drop(ctx); err != nil {
		return err
	}
	return j.journal.put(ctx, journalEntry{Database: j.db, State: stateIdle, Restored: j.restored})
}

// Finish records the restore's outcome in the journal.
func (j *journalled[J]) Finish(ctx context.Context, backup string, err error) error {
	return j.journal.putOutcome(ctx, Outcome{Database: j.db, Backup: backup, OK: err == nil, Error: outcomeError(err)})
}

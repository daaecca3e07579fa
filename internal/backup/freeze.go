package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/usererr"
)

// A freeze stops the writes of a site's applications so that a final backup
// loses nothing. Its record, <prefix>freeze/<site>.json in the bucket, is
// written before each change the freeze makes (write-ahead): it keeps what
// the servers were like before (read_only, super_read_only), so that
// unfreeze puts back exactly that after a freeze killed at any step. It
// lives in S3, beside the backups, so that it survives the primary and the
// DR site reads it; the servers' own state (read_only) is always read back,
// never assumed from the record.
//
// The states of the record, in order:
//
//	freezing    a freeze began; Before says what to put back
//	frozen      every step was done and checked
//	unfreezing  an unfreeze began; the next unfreeze finishes it
//
// and no record: not frozen (unfreeze deleted it).
const (
	freezeFreezing   = "freezing"
	freezeFrozen     = "frozen"
	freezeUnfreezing = "unfreezing"
	// FreezeUnfrozen is the state an unfreeze reports (its record is gone).
	FreezeUnfrozen = "unfrozen"
)

// freezeDB holds the probe table the check user writes to; checkUser is
// the throwaway non-admin user whose test write must be refused.
const (
	freezeDB  = "slipway_freeze"
	checkUser = "slipway_freeze_check"
)

// FreezeOptions configures Freeze and Unfreeze.
type FreezeOptions struct {
	Common
	Site  string
	MySQL MySQLConfig
	Mongo MongoConfig
}

// freezeRecord is the journal of a site's freeze, in S3.
type freezeRecord struct {
	Format   int          `json:"format"`
	Site     string       `json:"site"`
	State    string       `json:"state"`
	Started  time.Time    `json:"started"`
	FrozenAt time.Time    `json:"frozenAt,omitzero"`
	MySQL    *mysqlFreeze `json:"mysql,omitempty"`
	Mongo    *mongoFreeze `json:"mongo,omitempty"`
}

// mysqlFreeze is what a freeze did to one MySQL server.
type mysqlFreeze struct {
	Server string `json:"server"`
	// ReadOnlyBefore and SuperReadOnlyBefore are the values unfreeze puts
	// back; SuperReadOnlyBefore is "" when the server has no
	// super_read_only (MariaDB).
	ReadOnlyBefore      bool   `json:"readOnlyBefore"`
	SuperReadOnlyBefore string `json:"superReadOnlyBefore,omitempty"`
	// ReadOnlyAt is the server's clock when read_only was in effect.
	ReadOnlyAt         time.Time `json:"readOnlyAt,omitzero"`
	GTID               string    `json:"gtid,omitempty"`
	KilledTransactions int       `json:"killedTransactions,omitempty"`
	WriteRefused       bool      `json:"writeRefused"`
}

// mongoFreeze is what a freeze did to the MongoDB server.
type mongoFreeze struct {
	Frozen bool   `json:"frozen"`
	Note   string `json:"note"`
}

const freezeFormat = 1

func freezeKey(prefix, site string) string { return prefix + "freeze/" + site + ".json" }

func readFreeze(ctx context.Context, store ObjectStore, prefix, site string) (*freezeRecord, error) {
	rc, err := store.Get(ctx, freezeKey(prefix, site))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the freeze record of site %s: %w", site, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the freeze record of site %s: %w", site, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var r freezeRecord
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decoding the freeze record %s: %w", freezeKey(prefix, site), err)
	}
	if r.Format != freezeFormat {
		return nil, fmt.Errorf("the freeze record %s has format %d (want %d)", freezeKey(prefix, site), r.Format, freezeFormat)
	}
	return &r, nil
}

func writeFreeze(ctx context.Context, store ObjectStore, prefix string, r *freezeRecord) error {
	data, _ := json.MarshalIndent(r, "", "  ")
	if err := store.Put(ctx, freezeKey(prefix, r.Site), bytes.NewReader(append(data, '\n'))); err != nil {
		return fmt.Errorf("writing the freeze record of site %s: %w", r.Site, err)
	}
	return nil
}

// summary is the record as results and manifests show it.
func (r *freezeRecord) summary() *result.BackupFreeze {
	s := &result.BackupFreeze{Site: r.Site, State: r.State, FrozenAt: r.FrozenAt}
	if my := r.MySQL; my != nil {
		s.LastWriteAt, s.GTID, s.WriteRefused, s.KilledTransactions = my.ReadOnlyAt, my.GTID, my.WriteRefused, my.KilledTransactions
		if !my.ReadOnlyAt.IsZero() {
			s.Frozen = append(s.Frozen, "mysql "+my.Server+": read_only")
			if my.SuperReadOnlyBefore != "" {
				s.Frozen = append(s.Frozen, "mysql "+my.Server+": super_read_only")
			}
		}
		if my.SuperReadOnlyBefore == "" {
			s.NotFrozen = append(s.NotFrozen, "mysql "+my.Server+": users with READ_ONLY ADMIN or SUPER (root) can still write (the server has no super_read_only)")
		}
	}
	if mg := r.Mongo; mg != nil {
		if mg.Frozen {
			s.Frozen = append(s.Frozen, "mongo: "+mg.Note)
		} else {
			s.NotFrozen = append(s.NotFrozen, "mongo: "+mg.Note)
		}
	}
	return s
}

// FreezeReport says what a freeze or unfreeze found and did.
type FreezeReport struct {
	Freeze *result.BackupFreeze
	// Done lists the steps that changed something (none: nothing to do).
	Done     []string
	Duration time.Duration
}

// server names a MySQL server as the freeze record keeps it.
func (c MySQLConfig) server() string {
	if c.Socket != "" {
		return c.Socket
	}
	port := c.Port
	if port == 0 {
		port = 3306
	}
	return c.Host + ":" + strconv.Itoa(port)
}

// Freeze stops the writes of the site's application users: MySQL
// read_only (and super_read_only where the server has it), open write
// transactions of non-admin users killed, a test write as a throwaway
// non-admin user verified refused; MongoDB as far as the server allows
// (see docs/backup.md). Each step is journalled first; a freeze of a frozen
// site checks that it holds and changes nothing; a freeze killed at any
// step is finished by the next one or undone by Unfreeze.
func Freeze(ctx context.Context, opts FreezeOptions) (*FreezeReport, error) {
	return opts.run(ctx, freeze)
}

// Unfreeze undoes what Freeze recorded: read_only and super_read_only back
// to their values before the freeze, the check user dropped, then the
// record deleted. Without a record it does nothing. An unfreeze killed at
// any step is finished by the next one.
func Unfreeze(ctx context.Context, opts FreezeOptions) (*FreezeReport, error) {
	return opts.run(ctx, unfreeze)
}

// run checks the options, reads the site's freeze record (nil: not
// frozen), refusing one of other servers, and has do freeze or unfreeze.
func (o *FreezeOptions) run(ctx context.Context, do func(context.Context, FreezeOptions, *S3Store, *freezeRecord) (*FreezeReport, error)) (*FreezeReport, error) {
	t0 := time.Now()
	store, err := o.setup()
	if err != nil {
		return nil, err
	}
	if o.Site == "" || strings.ContainsAny(o.Site, "/\\ ") {
		return nil, usererr.Errorf("%s %q is empty or holds a slash or space: name the site whose databases are frozen (e.g. primary)", o.Names.of("Site"), o.Site)
	}
	if !o.MySQL.Enabled() && !o.Mongo.Enabled() {
		return nil, usererr.Errorf("nothing to freeze: give %s (or %s) and/or %s", o.Names.of("MySQL.Host"), o.Names.of("MySQL.Socket"), o.Names.of("Mongo.URI"))
	}
	if o.MySQL.Enabled() {
		if err := o.MySQL.validate(o.Names); err != nil {
			return nil, err
		}
	}
	if o.Mongo.Enabled() {
		if err := o.Mongo.validate(o.Names); err != nil {
			return nil, err
		}
	}
	rec, err := readFreeze(ctx, store, o.S3.Prefix, o.Site)
	if err != nil {
		return nil, err
	}
	if err := rec.matches(*o); err != nil {
		return nil, err
	}
	rep, err := do(ctx, *o, store, rec)
	if err != nil {
		return nil, err
	}
	rep.Duration = time.Since(t0)
	return rep, nil
}

func freeze(ctx context.Context, opts FreezeOptions, store *S3Store, rec *freezeRecord) (*FreezeReport, error) {
	prefix := opts.S3.Prefix
	rep := &FreezeReport{}
	var my *mysqlFreezer
	var err error
	if opts.MySQL.Enabled() {
		if my, err = newMySQLFreezer(ctx, opts.MySQL); err != nil {
			return nil, err
		}
		defer my.close()
	}
	if rec == nil {
		rec = &freezeRecord{Format: freezeFormat, Site: opts.Site, State: freezeFreezing, Started: opts.Now().UTC()}
		if my != nil {
			if rec.MySQL, err = my.before(ctx); err != nil {
				return nil, err
			}
		}
		if opts.Mongo.Enabled() {
			rec.Mongo = &mongoFreeze{}
		}
		if err := writeFreeze(ctx, store, prefix, rec); err != nil {
			return nil, err
		}
		rep.Done = append(rep.Done, "recorded")
		crashpoint.Hit("backup.freeze.recorded")
	}
	save := func() error { return writeFreeze(ctx, store, prefix, rec) }
	if rec.State != freezeFrozen {
		rec.State = freezeFreezing
	}
	// A server the record does not cover yet (an earlier freeze without
	// it): its state before goes into the record before it is changed.
	if my != nil && rec.MySQL == nil {
		if rec.MySQL, err = my.before(ctx); err != nil {
			return nil, err
		}
		rec.State = freezeFreezing
		if err := save(); err != nil {
			return nil, err
		}
	}
	if opts.Mongo.Enabled() && rec.Mongo == nil {
		rec.Mongo = &mongoFreeze{}
	}
	if my != nil {
		done, err := my.freeze(ctx, rec.MySQL, save, opts.Logger)
		rep.Done = append(rep.Done, done...)
		if err != nil {
			return nil, fmt.Errorf("freezing MySQL server %s of site %s (backup unfreeze --site %s puts it back): %w", rec.MySQL.Server, opts.Site, opts.Site, err)
		}
	}
	if opts.Mongo.Enabled() {
		if err := freezeMongo(ctx, opts.Mongo, rec.Mongo); err != nil {
			return nil, fmt.Errorf("freezing MongoDB of site %s (backup unfreeze --site %s puts it back): %w", opts.Site, opts.Site, err)
		}
	}
	if rec.State != freezeFrozen || len(rep.Done) > 0 {
		rec.State = freezeFrozen
		rec.FrozenAt = opts.Now().UTC()
		crashpoint.Hit("backup.freeze.frozen")
		if err := save(); err != nil {
			return nil, err
		}
		rep.Done = append(rep.Done, "frozen")
		opts.Logger.Info("site frozen", "site", opts.Site, "last_write_at", rec.summary().LastWriteAt)
	} else {
		opts.Logger.Info("site already frozen, and the freeze holds: nothing to do", "site", opts.Site)
	}
	rep.Freeze = rec.summary()
	return rep, nil
}

// matches refuses a record of servers other than those given: unfreeze
// must put back the servers it changed.
func (r *freezeRecord) matches(opts FreezeOptions) error {
	if r == nil {
		return nil
	}
	if r.MySQL != nil {
		if !opts.MySQL.Enabled() {
			return usererr.Errorf("site %s's freeze record names MySQL server %s: give %s (or %s)", r.Site, r.MySQL.Server, opts.Names.of("MySQL.Host"), opts.Names.of("MySQL.Socket"))
		}
		if s := opts.MySQL.server(); s != r.MySQL.Server {
			return usererr.Errorf("site %s's freeze record names MySQL server %s, not %s: give the server it froze", r.Site, r.MySQL.Server, s)
		}
	}
	if r.Mongo != nil && !opts.Mongo.Enabled() {
		return usererr.Errorf("site %s's freeze record covers MongoDB: give %s", r.Site, opts.Names.of("Mongo.URI"))
	}
	return nil
}

func unfreeze(ctx context.Context, opts FreezeOptions, store *S3Store, rec *freezeRecord) (*FreezeReport, error) {
	prefix := opts.S3.Prefix
	rep := &FreezeReport{Freeze: &result.BackupFreeze{Site: opts.Site, State: FreezeUnfrozen}}
	if rec == nil {
		opts.Logger.Info("site is not frozen (no freeze record): nothing to do", "site", opts.Site)
		return rep, nil
	}
	if rec.State != freezeUnfreezing {
		rec.State = freezeUnfreezing
		if err := writeFreeze(ctx, store, prefix, rec); err != nil {
			return nil, err
		}
		crashpoint.Hit("backup.unfreeze.started")
	}
	if rec.MySQL != nil {
		my, err := newMySQLFreezer(ctx, opts.MySQL)
		if err != nil {
			return nil, err
		}
		defer my.close()
		done, err := my.unfreeze(ctx, rec.MySQL)
		rep.Done = append(rep.Done, done...)
		if err != nil {
			return nil, fmt.Errorf("unfreezing MySQL server %s of site %s (rerun backup unfreeze): %w", rec.MySQL.Server, opts.Site, err)
		}
	}
	crashpoint.Hit("backup.unfreeze.done")
	if err := store.Delete(ctx, freezeKey(prefix, opts.Site)); err != nil {
		return nil, fmt.Errorf("deleting the freeze record of site %s (rerun backup unfreeze): %w", opts.Site, err)
	}
	rep.Done = append(rep.Done, "record deleted")
	rep.Freeze = rec.summary()
	rep.Freeze.State = FreezeUnfrozen
	opts.Logger.Info("site unfrozen", "site", opts.Site)
	return rep, nil
}

// mysqlFreezer changes one MySQL server's read_only state, holding the
// lock slipway:freeze so that two freezes or unfreezes never interleave.
type mysqlFreezer struct {
	cfg  MySQLConfig
	db   *sql.DB
	conn *sql.Conn
	// super: the server has super_read_only (MySQL, not MariaDB).
	super bool
}

func newMySQLFreezer(ctx context.Context, cfg MySQLConfig) (_ *mysqlFreezer, err error) {
	db, err := cfg.open()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to MySQL %s: %w", cfg.server(), err)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK('slipway:freeze', 0)").Scan(&got); err != nil {
		conn.Close()
		return nil, fmt.Errorf("locking MySQL %s for the freeze: %w", cfg.server(), err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, fmt.Errorf("another freeze or unfreeze of MySQL %s is running (it holds the lock slipway:freeze): let it finish, then rerun", cfg.server())
	}
	f := &mysqlFreezer{cfg: cfg, db: db, conn: conn}
	var name, val string
	err = conn.QueryRowContext(ctx, "SHOW GLOBAL VARIABLES LIKE 'super_read_only'").Scan(&name, &val)
	switch {
	case err == nil:
		f.super = true
	case !errors.Is(err, sql.ErrNoRows):
		conn.Close()
		return nil, fmt.Errorf("reading super_read_only of MySQL %s: %w", cfg.server(), err)
	}
	return f, nil
}

func (f *mysqlFreezer) close() {
	f.conn.Close()
	f.db.Close()
}

// state reads read_only and super_read_only ("" without it).
func (f *mysqlFreezer) state(ctx context.Context) (readOnly bool, super string, err error) {
	if err := f.conn.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&readOnly); err != nil {
		return false, "", fmt.Errorf("reading read_only: %w", err)
	}
	if f.super {
		var on bool
		if err := f.conn.QueryRowContext(ctx, "SELECT @@GLOBAL.super_read_only").Scan(&on); err != nil {
			return false, "", fmt.Errorf("reading super_read_only: %w", err)
		}
		super = map[bool]string{true: "ON", false: "OFF"}[on]
	}
	return readOnly, super, nil
}

// before is the server's state before a freeze, as the record keeps it.
func (f *mysqlFreezer) before(ctx context.Context) (*mysqlFreeze, error) {
	ro, super, err := f.state(ctx)
	if err != nil {
		return nil, err
	}
	return &mysqlFreeze{Server: f.cfg.server(), ReadOnlyBefore: ro, SuperReadOnlyBefore: super}, nil
}

func (f *mysqlFreezer) exec(ctx context.Context, stmts ...string) error {
	for _, q := range stmts {
		if _, err := f.conn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", strings.SplitN(q, " IDENTIFIED", 2)[0], err)
		}
	}
	return nil
}

const checkAccount = "'" + checkUser + "'@'%'"

// freeze makes each step that does not hold yet, saving the record after
// each change; done names the steps that changed something.
func (f *mysqlFreezer) freeze(ctx context.Context, r *mysqlFreeze, save func() error, logger *slog.Logger) (done []string, err error) {
	ro, super, err := f.state(ctx)
	if err != nil {
		return nil, err
	}
	holds := ro && (!f.super || super == "ON")
	if holds && r.WriteRefused && !r.ReadOnlyAt.IsZero() {
		return nil, nil
	}
	// The check user first: under super_read_only not even root may make
	// it. Its password is random and lives only in this run.
	pw := logging.Secret("c" + rand.Text())
	logging.Register(pw.Reveal())
	if !holds || !f.super {
		if err := f.exec(ctx,
			"CREATE DATABASE IF NOT EXISTS "+quoteID(freezeDB),
			"CREATE TABLE IF NOT EXISTS "+quoteID(freezeDB)+".probe (id INT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL) ENGINE=InnoDB",
			"CREATE USER IF NOT EXISTS "+checkAccount+" IDENTIFIED BY '"+pw.Reveal()+"'",
			"ALTER USER "+checkAccount+" IDENTIFIED BY '"+pw.Reveal()+"'",
			"GRANT INSERT ON "+quoteID(freezeDB)+".probe TO "+checkAccount,
		); err != nil {
			return done, fmt.Errorf("making the check user %s: %w", checkAccount, err)
		}
		crashpoint.Hit("backup.freeze.checkuser")
	}
	if !holds {
		// SET GLOBAL read_only waits for commits in flight; a session lock
		// timeout keeps a long lock from hanging the freeze.
		stmts := []string{"SET SESSION lock_wait_timeout = 60", "SET GLOBAL read_only = ON"}
		if f.super {
			stmts = append(stmts, "SET GLOBAL super_read_only = ON")
		}
		if err := f.exec(ctx, stmts...); err != nil {
			return done, err
		}
		crashpoint.Hit("backup.freeze.readonly")
		done = append(done, "read_only")
		r.ReadOnlyAt = time.Time{}
	}
	if r.ReadOnlyAt.IsZero() {
		// Every write accepted before now: read_only is in effect.
		if err := f.conn.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(6)").Scan(&r.ReadOnlyAt); err != nil {
			return done, fmt.Errorf("reading the server's clock: %w", err)
		}
		r.GTID = f.gtid(ctx)
		if err := save(); err != nil {
			return done, err
		}
	}
	// A transaction of an application user that wrote cannot commit any
	// more (read_only refuses the COMMIT); ending it frees its locks.
	n, err := f.killWriters(ctx)
	if err != nil {
		return done, err
	}
	if n > 0 {
		r.KilledTransactions += n
		logger.Info("killed the open write transactions of application users", "count", n)
		done = append(done, "killed "+strconv.Itoa(n)+" write transactions")
	}
	crashpoint.Hit("backup.freeze.killed")
	if !holds || !f.super {
		if err := f.verify(ctx, pw); err != nil {
			return done, err
		}
		crashpoint.Hit("backup.freeze.verified")
		if !r.WriteRefused {
			r.WriteRefused = true
			done = append(done, "write refused")
		}
	}
	return done, save()
}

// gtid is the server's binlog GTID position, "" without a binlog.
func (f *mysqlFreezer) gtid(ctx context.Context) string {
	for _, q := range []string{"SELECT @@GLOBAL.gtid_binlog_pos", "SELECT @@GLOBAL.gtid_executed"} {
		var s sql.NullString
		if err := f.conn.QueryRowContext(ctx, q).Scan(&s); err == nil {
			return s.String
		}
	}
	return ""
}

// killWriters kills the connections of users that read_only stops (no
// SUPER, READ_ONLY ADMIN or CONNECTION_ADMIN) whose open transaction
// changed rows.
func (f *mysqlFreezer) killWriters(ctx context.Context) (int, error) {
	rows, err := f.conn.QueryContext(ctx, `SELECT p.ID FROM information_schema.INNODB_TRX t
JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
WHERE p.ID <> CONNECTION_ID() AND t.trx_rows_modified > 0
AND p.USER NOT IN (SELECT SUBSTRING_INDEX(SUBSTRING(GRANTEE, 2), "'@'", 1) FROM information_schema.USER_PRIVILEGES
  WHERE PRIVILEGE_TYPE IN ('SUPER', 'READ_ONLY ADMIN', 'CONNECTION_ADMIN'))`)
	if err != nil {
		return 0, fmt.Errorf("listing open write transactions: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		if _, err := f.conn.ExecContext(ctx, "KILL CONNECTION "+strconv.FormatInt(id, 10)); err != nil {
			var me *mysql.MySQLError
			if errors.As(err, &me) && me.Number == 1094 { // unknown thread: it ended
				continue
			}
			return n, fmt.Errorf("killing connection %d: %w", id, err)
		}
		n++
	}
	return n, nil
}

// errReadOnly is the server's refusal of a statement under read_only
// (ER_OPTION_PREVENTS_STATEMENT) or super_read_only (ER_READ_ONLY_MODE).
func errReadOnly(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1290 || me.Number == 1836)
}

// verify writes as the check user: the server must refuse it.
func (f *mysqlFreezer) verify(ctx context.Context, pw logging.Secret) error {
	c := f.cfg
	c.User, c.Password = checkUser, pw
	db, err := c.open()
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "INSERT INTO "+quoteID(freezeDB)+".probe (at) VALUES (UTC_TIMESTAMP(6))")
	switch {
	case err == nil:
		return fmt.Errorf("a test write as the non-admin user %s was accepted: read_only does not hold", checkUser)
	case errReadOnly(err):
		return nil
	default:
		return fmt.Errorf("the test write as the non-admin user %s failed for another reason than read_only: %w", checkUser, err)
	}
}

// unfreeze puts read_only and super_read_only back and drops the check
// user; every step can be repeated.
func (f *mysqlFreezer) unfreeze(ctx context.Context, r *mysqlFreeze) (done []string, err error) {
	ro, super, err := f.state(ctx)
	if err != nil {
		return nil, err
	}
	// Under super_read_only not even root may drop the check user.
	if f.super && super == "ON" {
		if err := f.exec(ctx, "SET GLOBAL super_read_only = OFF"); err != nil {
			return done, err
		}
	}
	probe, err := exists(ctx, f.conn, freezeDB)
	if err != nil {
		return done, fmt.Errorf("looking for database %s: %w", freezeDB, err)
	}
	var users int
	if err := f.conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM mysql.user WHERE User = ?", checkUser).Scan(&users); err != nil {
		return done, fmt.Errorf("looking for the check user: %w", err)
	}
	if probe || users > 0 {
		if err := f.exec(ctx, "DROP USER IF EXISTS "+checkAccount, "DROP DATABASE IF EXISTS "+quoteID(freezeDB)); err != nil {
			return done, err
		}
		done = append(done, "check user dropped")
	}
	crashpoint.Hit("backup.unfreeze.checkuser")
	stmts := []string{"SET GLOBAL read_only = " + onOff(r.ReadOnlyBefore)}
	if f.super && r.SuperReadOnlyBefore == "ON" {
		stmts = append(stmts, "SET GLOBAL super_read_only = ON")
	}
	if err := f.exec(ctx, stmts...); err != nil {
		return done, err
	}
	if ro != r.ReadOnlyBefore || (f.super && super != r.SuperReadOnlyBefore) {
		done = append(done, "read_only "+onOff(r.ReadOnlyBefore))
	}
	crashpoint.Hit("backup.unfreeze.readonly")
	return done, nil
}

func onOff(b bool) string {
	if b {
		return "ON"
	}
	return "OFF"
}

// freezeMongo freezes what the MongoDB server lets it freeze. FerretDB has
// neither user management (usersInfo, revokeRolesFromUser) nor fsyncLock:
// there, and on MongoDB until role revocation is built, the application
// workloads at 0 replicas are what stops writes, and the record says so.
func freezeMongo(ctx context.Context, cfg MongoConfig, r *mongoFreeze) error {
	c, err := connectMongo(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Disconnect(context.WithoutCancel(ctx))
	err = c.Database("admin").RunCommand(ctx, bson.D{{Key: "usersInfo", Value: 1}}).Err()
	var ce mongo.CommandError
	switch {
	case errors.As(err, &ce) && ce.Code == 59: // CommandNotFound
		r.Note = "the server has no user management (usersInfo: CommandNotFound; FerretDB) nor fsyncLock: only the application workloads at 0 replicas stop its writes"
	case err != nil:
		return fmt.Errorf("reading MongoDB users: %w", err)
	default:
		r.Note = "write roles are not revoked (not built yet): only the application workloads at 0 replicas stop its writes"
	}
	r.Frozen = false
	return nil
}

// freezeWatch is a backup's view of its site's freeze: read at its start
// and again before its manifest, so the backup records whether the freeze
// held and how long before its start writes were still accepted.
type freezeWatch struct {
	store  ObjectStore
	prefix string
	site   string
	mysql  MySQLConfig
	rec    *freezeRecord
	// start is the backup's start by the MySQL server's clock, which also
	// dated read_only (local clock without MySQL).
	start time.Time
	// readOnly: read_only was in effect at the start.
	readOnly bool
}

// watchFreeze reads the site's freeze record at a backup's start: nil when
// the site is not frozen.
func watchFreeze(ctx context.Context, store ObjectStore, opts CreateOptions, start time.Time) (*freezeWatch, error) {
	rec, err := readFreeze(ctx, store, opts.S3.Prefix, opts.Site)
	if err != nil || rec == nil {
		return nil, err
	}
	w := &freezeWatch{store: store, prefix: opts.S3.Prefix, site: opts.Site, mysql: opts.MySQL, rec: rec, start: start}
	if rec.MySQL != nil && opts.MySQL.Enabled() {
		db, err := opts.MySQL.open()
		if err != nil {
			return nil, err
		}
		defer db.Close()
		if err := db.QueryRowContext(ctx, "SELECT UTC_TIMESTAMP(6), @@GLOBAL.read_only").Scan(&w.start, &w.readOnly); err != nil {
			return nil, fmt.Errorf("reading the MySQL server's clock: %w", err)
		}
	}
	return w, nil
}

// finish reads the record and the server again after the dumps: the
// window is known when read_only is in effect then, and is how long after
// the backup's start it took effect (0: before the start).
func (w *freezeWatch) finish(ctx context.Context) (*result.BackupFreeze, *float64, error) {
	rec, err := readFreeze(ctx, w.store, w.prefix, w.site)
	if err != nil {
		return nil, nil, err
	}
	if rec == nil { // unfrozen during the backup
		s := w.rec.summary()
		s.State = FreezeUnfrozen
		return s, nil, nil
	}
	s := rec.summary()
	if rec.MySQL == nil || rec.MySQL.ReadOnlyAt.IsZero() || !w.mysql.Enabled() || w.mysql.server() != rec.MySQL.Server {
		return s, nil, nil
	}
	db, err := w.mysql.open()
	if err != nil {
		return nil, nil, err
	}
	defer db.Close()
	var ro bool
	if err := db.QueryRowContext(ctx, "SELECT @@GLOBAL.read_only").Scan(&ro); err != nil {
		return nil, nil, fmt.Errorf("reading read_only of MySQL %s: %w", rec.MySQL.Server, err)
	}
	if !ro || (!w.readOnly && !rec.MySQL.ReadOnlyAt.After(w.start)) {
		s.NotFrozen = append(s.NotFrozen, "mysql "+rec.MySQL.Server+": read_only was OFF during the backup (changed by hand?): the window is unknown")
		return s, nil, nil
	}
	window := max(0, rec.MySQL.ReadOnlyAt.Sub(w.start).Seconds())
	return s, &window, nil
}

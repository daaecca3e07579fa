package backup

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/usererr"
)

// MySQLConfig says how to reach a MySQL/MariaDB server and its tools.
type MySQLConfig struct {
	Host     string // with Port; or Socket
	Port     int
	Socket   string
	User     string
	Password logging.Secret
	// Databases to back up (create); restore takes them from the manifest.
	Databases []string
	DumpBin   string // mariadb-dump or mysqldump; found on PATH if empty
	ClientBin string // mariadb or mysql; found on PATH if empty
}

// Enabled reports whether a MySQL server was configured.
func (c MySQLConfig) Enabled() bool { return c.Host != "" || c.Socket != "" }

func (c MySQLConfig) validate(n Names) error {
	if c.Host != "" && c.Socket != "" {
		return usererr.Errorf("%s and %s both set: give one", n.of("MySQL.Host"), n.of("MySQL.Socket"))
	}
	if c.User == "" {
		return usererr.Errorf("%s is empty", n.of("MySQL.User"))
	}
	return checkDatabases(c.Databases, checkMySQLName)
}

func checkMySQLName(db string) error {
	if db == journalDB || db == freezeDB {
		return fmt.Errorf("MySQL database name %q is reserved for the restore journal and the freeze check", db)
	}
	if db == "" || len(db)+len(mysqlNewSuffix) > 64 || strings.ContainsAny(db, "`/\\.\x00") {
		return fmt.Errorf("MySQL database name %q is empty, longer than %d characters or holds a backquote, slash, backslash or dot", db, 64-len(mysqlNewSuffix))
	}
	return nil
}

const (
	mysqlNewSuffix = "_slipway_new"
	mysqlOldSuffix = "_slipway_old"
)

func findTool(given string, names ...string) (string, error) {
	if given != "" {
		return exec.LookPath(given)
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("none of %s found on PATH", strings.Join(names, ", "))
}

// connArgs are the client options shared by the dump and load tools. The
// first reads the client's only option file, clientConfig, from a pipe
// (tool.secretFile): the password is never in argv, in the child's
// environment (MYSQL_PWD is readable in /proc/PID/environ) or on disk.
func (c MySQLConfig) connArgs() []string {
	args := []string{"--defaults-file=" + secretFD, "--user=" + c.User, "--default-character-set=utf8mb4"}
	if c.Socket != "" {
		args = append(args, "--socket="+c.Socket, "--protocol=socket")
	} else {
		port := c.Port
		if port == 0 {
			port = 3306
		}
		args = append(args, "--host="+c.Host, "--port="+strconv.Itoa(port), "--protocol=tcp")
	}
	return args
}

// clientConfig is the option file connArgs names: the password, quoted as
// option files read it (backslash escapes inside double quotes).
func (c MySQLConfig) clientConfig() []byte {
	cfg := "[client]\n"
	if !c.Password.Empty() {
		q := strings.NewReplacer("\\", "\\\\", "\"", "\\\"", "\n", "\\n", "\r", "\\r", "\t", "\\t").Replace(c.Password.Reveal())
		cfg += "password=\"" + q + "\"\n"
	}
	return []byte(cfg)
}

// client is a MySQL tool run with the connection options and the option
// file; args follow the connection options.
func (c MySQLConfig) client(bin string, args ...string) tool {
	return tool{path: bin, args: append(c.connArgs(), args...), secretFile: c.clientConfig()}
}

func (c MySQLConfig) open() (*sql.DB, error) { return c.openWith(nil) }

// openWith is open with the driver's settings changed by edit.
func (c MySQLConfig) openWith(edit func(*mysql.Config)) (*sql.DB, error) {
	cfg := mysql.NewConfig()
	cfg.User = c.User
	cfg.Passwd = c.Password.Reveal()
	if c.Socket != "" {
		cfg.Net, cfg.Addr = "unix", c.Socket
	} else {
		port := c.Port
		if port == 0 {
			port = 3306
		}
		cfg.Net, cfg.Addr = "tcp", fmt.Sprintf("%s:%d", c.Host, port)
	}
	cfg.Collation = "utf8mb4_unicode_ci"
	cfg.ParseTime = true
	if edit != nil {
		edit(cfg)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("configuring MySQL connection: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	return db, nil
}

// source dumps database db with mariadb-dump/mysqldump (bin): a consistent
// dump without CREATE DATABASE/USE, so it can be loaded into a staging
// database of another name.
func (c MySQLConfig) source(bin, db string) *dumpSource {
	return &dumpSource{kind: KindMySQL, db: db, ext: ".sql", bin: bin, dump: func() tool {
		return c.client(bin, "--single-transaction", "--quick", "--routines", "--events", "--triggers", "--max-allowed-packet=1G", "--", db)
	}}
}

// mysqlTarget loads a dump into <db>_slipway_new, then swaps its tables and
// objects into <db> in one RENAME TABLE, journalling each step in the
// server's slipway_restore database.
type mysqlTarget struct {
	journalled[mysqlJournal]
	cfg    MySQLConfig
	client string
	sqldb  *sql.DB
	lock   *sql.Conn // holds the database's restore lock
	jobs   int
	logger *slog.Logger
	resume bool
	swap   *mysqlSwap
}

var _ Target = (*mysqlTarget)(nil)

// newMySQLTarget connects, takes the database's restore lock (two restores
// of one database must not interleave; the server drops the lock when a
// killed run's connection goes) and makes sure the journal exists.
func newMySQLTarget(ctx context.Context, cfg MySQLConfig, client, db, backup string, jobs int, logger *slog.Logger) (_ *mysqlTarget, err error) {
	sqldb, err := cfg.open()
	if err != nil {
		return nil, err
	}
	sqldb.SetMaxOpenConns(4)
	defer func() {
		if err != nil {
			sqldb.Close()
		}
	}()
	lock, err := sqldb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to MySQL: %w", err)
	}
	var got sql.NullInt64
	if err := lock.QueryRowContext(ctx, "SELECT GET_LOCK(?, 0)", "slipway:"+db).Scan(&got); err != nil {
		lock.Close()
		return nil, fmt.Errorf("locking MySQL database %s for the restore: %w", db, err)
	}
	if got.Int64 != 1 {
		lock.Close()
		return nil, fmt.Errorf("another restore of MySQL database %s is running (it holds the lock slipway:%s): let it finish, then rerun", db, db)
	}
	t := &mysqlTarget{journalled: journalled[mysqlJournal]{kind: KindMySQL, journal: mysqlJournal{sqldb}, db: db, backup: backup},
		cfg: cfg, client: client, sqldb: sqldb, lock: lock, jobs: jobs, logger: logger}
	if err := t.journal.init(ctx); err != nil {
		lock.Close()
		return nil, err
	}
	return t, nil
}

func (t *mysqlTarget) close() {
	if t.swap != nil {
		t.swap.conn.Close()
	}
	t.lock.Close()
	t.sqldb.Close()
}

func (t *mysqlTarget) staging() string { return t.db + mysqlNewSuffix }
func (t *mysqlTarget) old() string     { return t.db + mysqlOldSuffix }

// Recover reads the journal: a swap that had begun is finished from its
// plan; staging of this backup is resumed unless fresh; other staging is
// dropped.
func (t *mysqlTarget) Recover(ctx context.Context, backup string, fresh bool) (Recovery, error) {
	e, err := t.read(ctx)
	if err != nil || e == nil {
		return Recovery{}, err
	}
	switch e.State {
	case stateSwapping:
		var plan mysqlPlan
		if err := t.plan(e, &plan); err != nil {
			return Recovery{}, err
		}
		s, err := t.newSwap(ctx)
		if err != nil {
			return Recovery{}, err
		}
		defer s.conn.Close()
		s.mysqlPlan = plan
		if err := s.run(ctx, true); err != nil {
			return Recovery{}, err
		}
		if err := t.commit(ctx, e.Backup, t.dropCopies); err != nil {
			return Recovery{}, err
		}
		return Recovery{Finished: true, Restored: e.Backup}, nil
	case stateLoading, stateStaged:
		if e.Backup == backup && !fresh {
			ok, err := exists(ctx, t.sqldb, t.staging())
			if err != nil {
				return Recovery{}, err
			}
			if ok {
				t.resume = true
				return Recovery{Restored: e.Restored, Resume: true}, nil
			}
		}
		t.logger.Info("dropping staging data an interrupted restore left", "database", t.db, "backup", e.Backup)
		if err := t.Discard(ctx); err != nil {
			return Recovery{}, err
		}
	}
	return Recovery{Restored: e.Restored}, nil
}

// Stage loads the dump into the staging database, its tables over Jobs
// connections: from scratch, or on top of the tables a killed run of the
// same backup finished (the journal lists them).
func (t *mysqlTarget) Stage(ctx context.Context, r io.Reader, p *stageProgress) error {
	done := map[string]bool{}
	if t.resume {
		var err error
		if done, err = t.journal.loaded(ctx, t.db, t.backup); err != nil {
			return err
		}
		t.logger.Info("resuming the staging load of an interrupted restore", "database", t.db, "backup", t.backup, "tables_loaded", len(done))
	} else {
		// The journal first: a staging database is never left unrecorded.
		if err := t.journal.put(ctx, t.entry(stateLoading)); err != nil {
			return err
		}
		if err := t.journal.clearLoaded(ctx, t.db); err != nil {
			return err
		}
		if _, err := t.sqldb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteID(t.staging())); err != nil {
			return fmt.Errorf("dropping old staging database %s: %w", t.staging(), err)
		}
		if _, err := t.sqldb.ExecContext(ctx, "CREATE DATABASE "+quoteID(t.staging())+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
			return fmt.Errorf("creating staging database %s: %w", t.staging(), err)
		}
	}
	crashpoint.Hit("backup.restore.load")
	db, err := t.cfg.openWith(func(c *mysql.Config) { c.MultiStatements = true; c.MaxAllowedPacket = 0 })
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(t.jobs + 2)
	l := &mysqlLoader{db: db, staging: t.staging(), jobs: t.jobs, done: done, progress: p,
		tableLoaded: func(ctx context.Context, table string) error { return t.journal.markLoaded(ctx, t.db, t.backup, table) },
		post: func(ctx context.Context, sql []byte) error {
			return t.cfg.client(t.client, "--max-allowed-packet=1G", "--batch", "--", t.staging()).run(ctx, bytes.NewReader(sql), io.Discard)
		},
	}
	if err := l.load(ctx, r); err != nil {
		return fmt.Errorf("loading into staging database %s: %w", t.staging(), err)
	}
	return nil
}

func (t *mysqlTarget) newSwap(ctx context.Context) (*mysqlSwap, error) {
	conn, err := t.sqldb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to MySQL: %w", err)
	}
	return &mysqlSwap{conn: conn, live: t.db, stage: t.staging(), old: t.old()}, nil
}

// Prepare reads what the staging and the live database hold and journals
// the swap: from here on, a killed run is finished by the next one.
func (t *mysqlTarget) Prepare(ctx context.Context) error {
	s, err := t.newSwap(ctx)
	if err != nil {
		return err
	}
	if err := s.load(ctx); err != nil {
		s.conn.Close()
		return err
	}
	if err := t.prepare(ctx, s.mysqlPlan); err != nil {
		s.conn.Close()
		return err
	}
	t.swap = s
	return nil
}

// Swap moves the staged tables into the live database in one atomic
// RENAME TABLE (the live ones go to <db>_slipway_old), then recreates the
// staged views, triggers, routines and events there. Triggers and views
// cannot move between databases, hence the drop-and-recreate. Any error
// rolls the live database back to what it was.
func (t *mysqlTarget) Swap(ctx context.Context) (undo func(context.Context) error, err error) {
	s := t.swap
	rollback := func(ctx context.Context) error {
		if err := s.rollback(ctx); err != nil {
			return err
		}
		t.dirty = false
		// Rolled back; staging lost its triggers and views to the swap,
		// which a resumed load recreates.
		return t.journal.put(ctx, t.entry(stateLoading))
	}
	t.dirty = true
	if err := s.run(ctx, false); err != nil {
		return nil, errors.Join(err, rollback(context.WithoutCancel(ctx)))
	}
	return rollback, nil
}

// Commit drops the staging and old databases after every swap succeeded.
func (t *mysqlTarget) Commit(ctx context.Context) error { return t.commit(ctx, t.backup, t.dropCopies) }

func (t *mysqlTarget) dropCopies(ctx context.Context) error {
	for _, db := range []string{t.staging(), t.old()} {
		if _, err := t.sqldb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteID(db)); err != nil {
			return fmt.Errorf("dropping %s: %w", db, err)
		}
	}
	return t.journal.clearLoaded(ctx, t.db)
}

// Discard drops the staging data, unless the journal says a swap is under
// way: the next run finishes that one, and needs both copies.
func (t *mysqlTarget) Discard(ctx context.Context) error {
	return t.discard(ctx, "staging copy", t.dropCopies)
}

// sqlObject is a view, trigger, routine or event and how to recreate it.
type sqlObject struct {
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	SQLMode string `json:"sqlMode"`
	Create  string `json:"create"`
}

func quoteID(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// queryer runs queries: a *sql.DB, or one of its connections.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

var (
	_ queryer = (*sql.DB)(nil)
	_ queryer = (*sql.Conn)(nil)
)

// exists reports whether the server has database db.
func exists(ctx context.Context, conn queryer, db string) (bool, error) {
	var n int
	err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", db).Scan(&n)
	return n > 0, err
}

// queryStrings returns the one column of the rows of query q.
func queryStrings(ctx context.Context, conn queryer, q string, args ...any) ([]string, error) {
	rows, err := conn.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func tables(ctx context.Context, conn *sql.Conn, db string) ([]string, error) {
	return queryStrings(ctx, conn, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'VIEW' ORDER BY TABLE_NAME", db)
}

// showCreate runs a SHOW CREATE statement and picks the sql_mode and the
// statement columns by name (their positions differ per object kind).
func showCreate(ctx context.Context, conn *sql.Conn, q string) (mode, create string, err error) {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return "", "", err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return "", "", err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", "", err
		}
		return "", "", fmt.Errorf("%s returned nothing", q)
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return "", "", err
	}
	for i, c := range cols {
		switch {
		case c == "sql_mode":
			mode = vals[i].String
		case strings.HasPrefix(c, "Create ") || c == "SQL Original Statement":
			create = vals[i].String
		}
	}
	if create == "" {
		return "", "", fmt.Errorf("%s: no statement column in %v", q, cols)
	}
	return mode, create, rows.Err()
}

// objects reads every view, trigger, routine and event of db, in an order in
// which they can be recreated (views may need retries: see createObjects).
func objects(ctx context.Context, conn *sql.Conn, db string) ([]sqlObject, error) {
	if _, err := conn.ExecContext(ctx, "USE "+quoteID(db)); err != nil {
		return nil, err
	}
	var out []sqlObject
	add := func(kind, listQ, showQ string) error {
		names, err := queryStrings(ctx, conn, listQ, db)
		if err != nil {
			return fmt.Errorf("listing %ss of %s: %w", strings.ToLower(kind), db, err)
		}
		for _, n := range names {
			mode, create, err := showCreate(ctx, conn, showQ+" "+quoteID(n))
			if err != nil {
				return fmt.Errorf("reading %s %s.%s: %w", strings.ToLower(kind), db, n, err)
			}
			out = append(out, sqlObject{Kind: kind, Name: n, SQLMode: mode, Create: create})
		}
		return nil
	}
	steps := []struct{ kind, list, show string }{
		{"VIEW", "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME", "SHOW CREATE VIEW"},
		{"PROCEDURE", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'PROCEDURE' ORDER BY ROUTINE_NAME", "SHOW CREATE PROCEDURE"},
		{"FUNCTION", "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? AND ROUTINE_TYPE = 'FUNCTION' ORDER BY ROUTINE_NAME", "SHOW CREATE FUNCTION"},
		{"TRIGGER", "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER", "SHOW CREATE TRIGGER"},
		{"EVENT", "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME", "SHOW CREATE EVENT"},
	}
	for _, s := range steps {
		if err := add(s.kind, s.list, s.show); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func dropObjects(ctx context.Context, conn *sql.Conn, db string, objs []sqlObject, kinds ...string) error {
	want := map[string]bool{}
	for _, k := range kinds {
		want[k] = true
	}
	for _, o := range objs {
		if !want[o.Kind] {
			continue
		}
		if _, err := conn.ExecContext(ctx, "DROP "+o.Kind+" IF EXISTS "+quoteID(db)+"."+quoteID(o.Name)); err != nil {
			return fmt.Errorf("dropping %s %s.%s: %w", strings.ToLower(o.Kind), db, o.Name, err)
		}
	}
	return nil
}

// createObjects recreates objs in db. A view can depend on a view created
// later, so failed views are retried while each round makes progress.
func createObjects(ctx context.Context, conn *sql.Conn, db string, objs []sqlObject) error {
	if _, err := conn.ExecContext(ctx, "USE "+quoteID(db)); err != nil {
		return err
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "SET SESSION sql_mode = DEFAULT")
	pending := objs
	for len(pending) > 0 {
		var failed []sqlObject
		var lastErr error
		for _, o := range pending {
			if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = ?", o.SQLMode); err != nil {
				return err
			}
			if _, err := conn.ExecContext(ctx, o.Create); err != nil {
				if o.Kind != "VIEW" {
					return fmt.Errorf("creating %s %s.%s: %w", strings.ToLower(o.Kind), db, o.Name, err)
				}
				failed = append(failed, o)
				lastErr = fmt.Errorf("creating view %s.%s: %w", db, o.Name, err)
				continue
			}
			crashpoint.Hit("backup.restore.objects")
		}
		if len(failed) == len(pending) {
			return lastErr
		}
		pending = failed
	}
	return nil
}

func renameTables(ctx context.Context, conn *sql.Conn, moves [][3]string) error {
	if len(moves) == 0 {
		return nil
	}
	parts := make([]string, len(moves))
	for i, m := range moves {
		parts[i] = quoteID(m[0]) + "." + quoteID(m[2]) + " TO " + quoteID(m[1]) + "." + quoteID(m[2])
	}
	_, err := conn.ExecContext(ctx, "RENAME TABLE "+strings.Join(parts, ", "))
	return err
}

// mysqlPlan is what a swap does, as the journal keeps it: a run that finds
// the swap interrupted finishes it from here, since the live database may
// already have lost its views and triggers.
type mysqlPlan struct {
	LiveExisted bool        `json:"liveExisted"`
	NewObjs     []sqlObject `json:"newObjects"`
	OldObjs     []sqlObject `json:"oldObjects"`
	NewTables   []string    `json:"newTables"`
	LiveTables  []string    `json:"liveTables"`
}

// mysqlSwap is one swap of a staging database into its live one: what both
// held before, and whether the tables have moved yet.
type mysqlSwap struct {
	conn             *sql.Conn
	live, stage, old string
	mysqlPlan
	renamed bool
}

// load reads what the staging and the live database hold.
func (s *mysqlSwap) load(ctx context.Context) (err error) {
	if s.LiveExisted, err = exists(ctx, s.conn, s.live); err != nil {
		return err
	}
	if s.NewObjs, err = objects(ctx, s.conn, s.stage); err != nil {
		return err
	}
	if s.NewTables, err = tables(ctx, s.conn, s.stage); err != nil {
		return err
	}
	if !s.LiveExisted {
		return nil
	}
	if s.OldObjs, err = objects(ctx, s.conn, s.live); err != nil {
		return err
	}
	s.LiveTables, err = tables(ctx, s.conn, s.live)
	return err
}

// moves are the swap's renames in one RENAME TABLE: the live tables to the
// old database first, then the staged ones into the live one.
func (s *mysqlSwap) moves() [][3]string {
	var moves [][3]string
	for _, tb := range s.LiveTables {
		moves = append(moves, [3]string{s.live, s.old, tb})
	}
	for _, tb := range s.NewTables {
		moves = append(moves, [3]string{s.stage, s.live, tb})
	}
	return moves
}

// hasRenamed tells from the servers' tables whether an interrupted swap's
// RENAME TABLE (atomic: all or nothing) happened.
func (s *mysqlSwap) hasRenamed(ctx context.Context) (bool, error) {
	db, want := s.stage, s.NewTables
	if len(want) == 0 {
		db, want = s.live, s.LiveTables
	}
	if len(want) == 0 {
		return true, nil
	}
	cur, err := tables(ctx, s.conn, db)
	if err != nil {
		return false, err
	}
	for _, c := range cur {
		if slices.Contains(want, c) {
			return false, nil
		}
	}
	return true, nil
}

// run makes the swap, or finishes an interrupted one (resume); its error
// names the step that failed. Every step can be repeated.
func (s *mysqlSwap) run(ctx context.Context, resume bool) error {
	fail := func(step string, err error) error {
		return fmt.Errorf("swapping %s into %s (%s): %w", s.stage, s.live, step, err)
	}
	if resume {
		var err error
		if s.renamed, err = s.hasRenamed(ctx); err != nil {
			return fail("reading the interrupted swap", err)
		}
	}
	var prep []string
	if !s.renamed {
		prep = append(prep, "DROP DATABASE IF EXISTS "+quoteID(s.old))
	}
	prep = append(prep, "CREATE DATABASE IF NOT EXISTS "+quoteID(s.old), "CREATE DATABASE IF NOT EXISTS "+quoteID(s.live)+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	for _, q := range prep {
		if _, err := s.conn.ExecContext(ctx, q); err != nil {
			return fail("preparing", err)
		}
	}
	if !s.renamed {
		if err := dropObjects(ctx, s.conn, s.stage, s.NewObjs, "TRIGGER", "VIEW"); err != nil {
			return fail("clearing staging triggers", err)
		}
		if err := dropObjects(ctx, s.conn, s.live, s.OldObjs, "TRIGGER", "VIEW"); err != nil {
			return fail("clearing live triggers", err)
		}
		crashpoint.Hit("backup.restore.swap.before")
		if err := renameTables(ctx, s.conn, s.moves()); err != nil {
			return fail("renaming tables", err)
		}
		s.renamed = true
	}
	crashpoint.Hit("backup.restore.swap.after")
	if err := faultHook("mysql swap " + s.live); err != nil {
		return fail("fault injected", err)
	}
	if err := dropObjects(ctx, s.conn, s.live, s.OldObjs, "PROCEDURE", "FUNCTION", "EVENT"); err != nil {
		return fail("dropping old routines", err)
	}
	// What a killed run created already goes, so that every object is
	// created from the plan.
	if err := dropObjects(ctx, s.conn, s.live, s.NewObjs, "TRIGGER", "VIEW", "PROCEDURE", "FUNCTION", "EVENT"); err != nil {
		return fail("dropping half-recreated objects", err)
	}
	if err := createObjects(ctx, s.conn, s.live, s.NewObjs); err != nil {
		return fail("recreating objects", err)
	}
	return nil
}

// rollback puts the live database back as load found it.
func (s *mysqlSwap) rollback(ctx context.Context) error {
	var errs []error
	if s.LiveExisted || s.renamed {
		if cur, err := objects(ctx, s.conn, s.live); err == nil {
			errs = append(errs, dropObjects(ctx, s.conn, s.live, cur, "TRIGGER", "VIEW", "PROCEDURE", "FUNCTION", "EVENT"))
		} else {
			errs = append(errs, err)
		}
	}
	if s.renamed {
		// The moves reversed, each the other way round.
		moves := s.moves()
		back := make([][3]string, len(moves))
		for i, m := range moves {
			back[len(moves)-1-i] = [3]string{m[1], m[0], m[2]}
		}
		errs = append(errs, renameTables(ctx, s.conn, back))
	}
	if s.LiveExisted {
		errs = append(errs, createObjects(ctx, s.conn, s.live, s.OldObjs))
	} else {
		_, err := s.conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteID(s.live))
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rolling back MySQL database %s: %w", s.live, err)
	}
	return nil
}

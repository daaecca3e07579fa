package backup

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

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
	for _, db := range c.Databases {
		if err := checkMySQLName(db); err != nil {
			return usererr.Wrap(err)
		}
	}
	return nil
}

func checkMySQLName(db string) error {
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
// password goes through MYSQL_PWD, never argv.
func (c MySQLConfig) connArgs() []string {
	args := []string{"--no-defaults", "--user=" + c.User, "--default-character-set=utf8mb4"}
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

func (c MySQLConfig) env() []string {
	if c.Password.Empty() {
		return nil
	}
	return []string{"MYSQL_PWD=" + c.Password.Reveal()}
}

func (c MySQLConfig) open() (*sql.DB, error) {
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
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("configuring MySQL connection: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(2)
	return db, nil
}

// mysqlSource dumps one database with mariadb-dump/mysqldump.
type mysqlSource struct {
	cfg MySQLConfig
	bin string
	db  string
}

var _ Source = (*mysqlSource)(nil)

func (s *mysqlSource) Kind() string     { return KindMySQL }
func (s *mysqlSource) Database() string { return s.db }
func (s *mysqlSource) Ext() string      { return ".sql" }

func (s *mysqlSource) Version(ctx context.Context) string {
	v, _ := tool{path: s.bin, args: []string{"--version"}}.output(ctx)
	return v
}

// Dump writes a consistent dump of the database without CREATE DATABASE/USE,
// so it can be loaded into a staging database of another name.
func (s *mysqlSource) Dump(ctx context.Context, w io.Writer) error {
	args := append(s.cfg.connArgs(),
		"--single-transaction", "--quick", "--routines", "--events", "--triggers",
		"--max-allowed-packet=1G", "--", s.db)
	return tool{path: s.bin, args: args, env: s.cfg.env()}.run(ctx, nil, w)
}

// mysqlTarget loads a dump into <db>_slipway_new, then swaps its tables and
// objects into <db> in one RENAME TABLE.
type mysqlTarget struct {
	cfg    MySQLConfig
	client string
	sqldb  *sql.DB
	db     string
}

var _ Target = (*mysqlTarget)(nil)

func (t *mysqlTarget) staging() string { return t.db + mysqlNewSuffix }
func (t *mysqlTarget) old() string     { return t.db + mysqlOldSuffix }

func (t *mysqlTarget) Stage(ctx context.Context, r io.Reader) error {
	if _, err := t.sqldb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteID(t.staging())); err != nil {
		return fmt.Errorf("dropping old staging database %s: %w", t.staging(), err)
	}
	if _, err := t.sqldb.ExecContext(ctx, "CREATE DATABASE "+quoteID(t.staging())+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return fmt.Errorf("creating staging database %s: %w", t.staging(), err)
	}
	args := append(t.cfg.connArgs(), "--max-allowed-packet=1G", "--batch", "--", t.staging())
	if err := (tool{path: t.client, args: args, env: t.cfg.env()}).run(ctx, r, io.Discard); err != nil {
		return fmt.Errorf("loading into staging database %s: %w", t.staging(), err)
	}
	return nil
}

func (t *mysqlTarget) Discard(ctx context.Context) error {
	for _, db := range []string{t.staging(), t.old()} {
		if _, err := t.sqldb.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteID(db)); err != nil {
			return fmt.Errorf("dropping %s: %w", db, err)
		}
	}
	return nil
}

// sqlObject is a view, trigger, routine or event and how to recreate it.
type sqlObject struct {
	kind, name, sqlMode, create string
}

func quoteID(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func exists(ctx context.Context, conn *sql.Conn, db string) (bool, error) {
	var n int
	err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", db).Scan(&n)
	return n > 0, err
}

func queryStrings(ctx context.Context, conn *sql.Conn, q string, args ...any) ([]string, error) {
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
			out = append(out, sqlObject{kind: kind, name: n, sqlMode: mode, create: create})
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
		if !want[o.kind] {
			continue
		}
		if _, err := conn.ExecContext(ctx, "DROP "+o.kind+" IF EXISTS "+quoteID(db)+"."+quoteID(o.name)); err != nil {
			return fmt.Errorf("dropping %s %s.%s: %w", strings.ToLower(o.kind), db, o.name, err)
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
			if _, err := conn.ExecContext(ctx, "SET SESSION sql_mode = ?", o.sqlMode); err != nil {
				return err
			}
			if _, err := conn.ExecContext(ctx, o.create); err != nil {
				if o.kind != "VIEW" {
					return fmt.Errorf("creating %s %s.%s: %w", strings.ToLower(o.kind), db, o.name, err)
				}
				failed = append(failed, o)
				lastErr = fmt.Errorf("creating view %s.%s: %w", db, o.name, err)
			}
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

// Swap moves the staged tables into the live database in one atomic
// RENAME TABLE (the live ones go to <db>_slipway_old), then recreates the
// staged views, triggers, routines and events there. Triggers and views
// cannot move between databases, hence the drop-and-recreate. Any error
// rolls the live database back to what it was.
func (t *mysqlTarget) Swap(ctx context.Context) (undo func(context.Context) error, err error) {
	conn, err := t.sqldb.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connecting to MySQL: %w", err)
	}
	// The undo keeps the connection; a failed swap closes it.
	defer func() {
		if err != nil {
			conn.Close()
		}
	}()
	s := &mysqlSwap{conn: conn, live: t.db, stage: t.staging(), old: t.old()}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	if err := s.run(ctx); err != nil {
		return nil, errors.Join(err, s.rollback(context.WithoutCancel(ctx)))
	}
	return func(ctx context.Context) error {
		defer conn.Close()
		return s.rollback(ctx)
	}, nil
}

// mysqlSwap is one swap of a staging database into its live one: what both
// held before, and whether the tables have moved yet.
type mysqlSwap struct {
	conn                  *sql.Conn
	live, stage, old      string
	liveExisted           bool
	newObjs, oldObjs      []sqlObject
	newTables, liveTables []string
	renamed               bool
}

// load reads what the staging and the live database hold.
func (s *mysqlSwap) load(ctx context.Context) (err error) {
	if s.liveExisted, err = exists(ctx, s.conn, s.live); err != nil {
		return err
	}
	if s.newObjs, err = objects(ctx, s.conn, s.stage); err != nil {
		return err
	}
	if s.newTables, err = tables(ctx, s.conn, s.stage); err != nil {
		return err
	}
	if !s.liveExisted {
		return nil
	}
	if s.oldObjs, err = objects(ctx, s.conn, s.live); err != nil {
		return err
	}
	s.liveTables, err = tables(ctx, s.conn, s.live)
	return err
}

// moves are the swap's renames in one RENAME TABLE: the live tables to the
// old database first, then the staged ones into the live one.
func (s *mysqlSwap) moves() [][3]string {
	var moves [][3]string
	for _, tb := range s.liveTables {
		moves = append(moves, [3]string{s.live, s.old, tb})
	}
	for _, tb := range s.newTables {
		moves = append(moves, [3]string{s.stage, s.live, tb})
	}
	return moves
}

// run makes the swap; its error names the step that failed.
func (s *mysqlSwap) run(ctx context.Context) error {
	fail := func(step string, err error) error {
		return fmt.Errorf("swapping %s into %s (%s): %w", s.stage, s.live, step, err)
	}
	for _, q := range []string{"DROP DATABASE IF EXISTS " + quoteID(s.old), "CREATE DATABASE " + quoteID(s.old), "CREATE DATABASE IF NOT EXISTS " + quoteID(s.live) + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"} {
		if _, err := s.conn.ExecContext(ctx, q); err != nil {
			return fail("preparing", err)
		}
	}
	if err := dropObjects(ctx, s.conn, s.stage, s.newObjs, "TRIGGER", "VIEW"); err != nil {
		return fail("clearing staging triggers", err)
	}
	if err := dropObjects(ctx, s.conn, s.live, s.oldObjs, "TRIGGER", "VIEW"); err != nil {
		return fail("clearing live triggers", err)
	}
	if err := renameTables(ctx, s.conn, s.moves()); err != nil {
		return fail("renaming tables", err)
	}
	s.renamed = true
	if err := faultHook("mysql swap " + s.live); err != nil {
		return fail("fault injected", err)
	}
	if err := dropObjects(ctx, s.conn, s.live, s.oldObjs, "PROCEDURE", "FUNCTION", "EVENT"); err != nil {
		return fail("dropping old routines", err)
	}
	if err := createObjects(ctx, s.conn, s.live, s.newObjs); err != nil {
		return fail("recreating objects", err)
	}
	return nil
}

// rollback puts the live database back as load found it.
func (s *mysqlSwap) rollback(ctx context.Context) error {
	var errs []error
	if s.liveExisted || s.renamed {
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
	if s.liveExisted {
		errs = append(errs, createObjects(ctx, s.conn, s.live, s.oldObjs))
	} else {
		_, err := s.conn.ExecContext(ctx, "DROP DATABASE IF EXISTS "+quoteID(s.live))
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("rolling back MySQL database %s: %w", s.live, err)
	}
	return nil
}

// Commit drops the staging and old databases after every swap succeeded.
func (t *mysqlTarget) Commit(ctx context.Context) error { return t.Discard(ctx) }

func (t *mysqlTarget) Name() string { return KindMySQL + " " + t.db }

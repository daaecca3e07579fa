package backup

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/backup/backuptest"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/usererr"
)

// freezeEnv is a test's view of a freeze of the primary MariaDB: the
// server's read_only is global, so freeze tests take a lock of their own
// (backuptest.FreezeLock) and put read_only back when they end.
type freezeEnv struct {
	*env
	app   MySQLConfig // an application user: no SUPER, no READ_ONLY ADMIN
	appDB string
}

func newFreezeEnv(t *testing.T) *freezeEnv {
	t.Helper()
	e := newEnv(t)
	backuptest.MariaDB{Host: e.primary.Host, Port: e.primary.Port}.FreezeLock(t)
	f := &freezeEnv{env: e, appDB: e.db("frz")}
	e.dropDBs(f.appDB)
	root := sqlDB(t, e.primary)
	name := "slipway_app_" + randHex(3)
	pw := "app-" + randHex(8)
	mustExec(t, root, "CREATE DATABASE "+quoteID(f.appDB),
		"CREATE TABLE "+quoteID(f.appDB)+".notes (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB",
		"CREATE USER '"+name+"'@'%' IDENTIFIED BY '"+pw+"'",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON "+quoteID(f.appDB)+".* TO '"+name+"'@'%'")
	t.Cleanup(func() {
		db, err := e.primary.open()
		if err != nil {
			return
		}
		defer db.Close()
		db.Exec("DROP USER IF EXISTS '" + name + "'@'%'")
		// A failed test may leave the server frozen: thaw it for the others.
		db.Exec("SET GLOBAL read_only = OFF")
		db.Exec("DROP USER IF EXISTS " + checkAccount)
		db.Exec("DROP DATABASE IF EXISTS " + quoteID(freezeDB))
	})
	f.app = e.primary
	f.app.User, f.app.Password = name, logging.Secret(pw)
	return f
}

func (f *freezeEnv) opts() FreezeOptions {
	return FreezeOptions{Common: f.common(), Site: "primary", MySQL: f.primary, Mongo: f.mongoP}
}

// appWrite inserts a row as the application user; nil when accepted.
func (f *freezeEnv) appWrite(t *testing.T) error {
	t.Helper()
	db := sqlDB(t, f.app)
	_, err := db.Exec("INSERT INTO " + quoteID(f.appDB) + ".notes (v) VALUES ('x')")
	return err
}

// serverState is what a freeze changes on the server.
func (f *freezeEnv) serverState(t *testing.T) string {
	t.Helper()
	db := sqlDB(t, f.primary)
	var ro bool
	var users, dbs int
	if err := db.QueryRow("SELECT @@GLOBAL.read_only, (SELECT COUNT(*) FROM mysql.user WHERE User = ?), (SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?)",
		checkUser, freezeDB).Scan(&ro, &users, &dbs); err != nil {
		t.Fatal(err)
	}
	return "read_only=" + onOff(ro) + " check_user=" + strconv.Itoa(users) + " freeze_db=" + strconv.Itoa(dbs)
}

func (f *freezeEnv) record(t *testing.T) *freezeRecord {
	t.Helper()
	r, err := readFreeze(context.Background(), f.store, f.s3.Prefix, "primary")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

const thawed = "read_only=OFF check_user=0 freeze_db=0"

// thawed checks that an unfreeze put everything back: the server thawed,
// the application's write accepted, no freeze record left.
func (f *freezeEnv) thawed(t *testing.T) {
	t.Helper()
	if got := f.serverState(t); got != thawed {
		t.Fatalf("after unfreeze: %s, want %s", got, thawed)
	}
	if err := f.appWrite(t); err != nil {
		t.Fatalf("write after unfreeze: %v", err)
	}
	if r := f.record(t); r != nil {
		t.Fatalf("freeze record left: %+v", r)
	}
}

// TestFreeze: freeze refuses the application user's write and kills its
// open write transaction; a second freeze changes nothing; a backup of the
// frozen site has a data-loss window of 0; unfreeze puts everything back
// and a second unfreeze does nothing.
func TestFreeze(t *testing.T) {
	ctx := context.Background()
	f := newFreezeEnv(t)
	if err := f.appWrite(t); err != nil {
		t.Fatalf("write before the freeze: %v", err)
	}
	// An open write transaction of the application.
	appDB := sqlDB(t, f.app)
	tx, err := appDB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO " + quoteID(f.appDB) + ".notes (v) VALUES ('open')"); err != nil {
		t.Fatal(err)
	}

	rep, err := Freeze(ctx, f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Freeze.State != freezeFrozen || !rep.Freeze.WriteRefused || rep.Freeze.KilledTransactions != 1 || rep.Freeze.LastWriteAt.IsZero() {
		t.Fatalf("freeze = %+v, want frozen, write refused, 1 transaction killed, a last write time", rep.Freeze)
	}
	if len(rep.Freeze.NotFrozen) != 2 || !strings.Contains(rep.Freeze.NotFrozen[1], "mongo") {
		t.Errorf("notFrozen = %q, want MariaDB's admins and FerretDB named", rep.Freeze.NotFrozen)
	}
	if err := tx.Commit(); err == nil {
		t.Error("the open transaction committed after the freeze")
	}
	if err := f.appWrite(t); !errReadOnly(err) {
		t.Fatalf("write as the application user while frozen: %v, want read_only's refusal", err)
	}
	var n int
	sqlDB(t, f.primary).QueryRow("SELECT COUNT(*) FROM " + quoteID(f.appDB) + ".notes WHERE v = 'open'").Scan(&n)
	if n != 0 {
		t.Error("the killed transaction's row is in the table")
	}

	again, err := Freeze(ctx, f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if len(again.Done) != 0 || !again.Freeze.LastWriteAt.Equal(rep.Freeze.LastWriteAt) {
		t.Fatalf("second freeze did %q (last write %v, first %v), want nothing", again.Done, again.Freeze.LastWriteAt, rep.Freeze.LastWriteAt)
	}

	my := f.primary
	my.Databases = []string{f.appDB}
	m, err := Create(ctx, CreateOptions{Common: f.common(), Site: "primary", MySQL: my})
	if err != nil {
		t.Fatal(err)
	}
	if m.Freeze == nil || m.Freeze.State != freezeFrozen || m.DataLossWindowSeconds == nil || *m.DataLossWindowSeconds != 0 {
		t.Fatalf("backup of the frozen site: freeze %+v, window %v; want frozen, 0", m.Freeze, m.DataLossWindowSeconds)
	}
	got, err := readManifest(ctx, f.store, f.s3.Prefix, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.DataLossWindowSeconds == nil || *got.DataLossWindowSeconds != 0 || got.Freeze == nil || !got.Freeze.LastWriteAt.Equal(rep.Freeze.LastWriteAt) {
		t.Fatalf("manifest: freeze %+v, window %v", got.Freeze, got.DataLossWindowSeconds)
	}

	un, err := Unfreeze(ctx, f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if un.Freeze.State != FreezeUnfrozen || len(un.Done) == 0 {
		t.Fatalf("unfreeze = %+v, done %q", un.Freeze, un.Done)
	}
	f.thawed(t)
	un2, err := Unfreeze(ctx, f.opts())
	if err != nil || len(un2.Done) != 0 {
		t.Fatalf("second unfreeze: done %q, err %v; want nothing", un2.Done, err)
	}

	// A backup of the thawed site records no freeze.
	m2, err := Create(ctx, CreateOptions{Common: f.common(), Site: "primary", MySQL: my})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Freeze != nil || m2.DataLossWindowSeconds != nil {
		t.Fatalf("backup of the thawed site: freeze %+v, window %v", m2.Freeze, m2.DataLossWindowSeconds)
	}
}

// TestUnfreezeRestoresPrevious: a server that was read-only before the
// freeze stays read-only after the unfreeze; an unfreeze without a freeze
// changes nothing.
func TestUnfreezeRestoresPrevious(t *testing.T) {
	ctx := context.Background()
	f := newFreezeEnv(t)
	root := sqlDB(t, f.primary)

	rep, err := Unfreeze(ctx, f.opts())
	if err != nil || len(rep.Done) != 0 {
		t.Fatalf("unfreeze without a freeze: done %q, err %v", rep.Done, err)
	}
	if got := f.serverState(t); got != thawed {
		t.Fatalf("unfreeze without a freeze changed the server: %s", got)
	}

	// A freeze of MongoDB alone, then of both: the second adds MySQL.
	mongoOnly := f.opts()
	mongoOnly.MySQL = MySQLConfig{}
	if _, err := Freeze(ctx, mongoOnly); err != nil {
		t.Fatal(err)
	}
	if got := f.serverState(t); got != thawed {
		t.Fatalf("a MongoDB-only freeze changed MySQL: %s", got)
	}
	if r := f.record(t); r == nil || r.MySQL != nil || r.Mongo == nil {
		t.Fatalf("record of a MongoDB-only freeze: %+v", r)
	}
	if rep, err := Freeze(ctx, f.opts()); err != nil || rep.Freeze.State != freezeFrozen || !rep.Freeze.WriteRefused || f.record(t).MySQL == nil {
		t.Fatalf("freeze adding MySQL: %+v, %v", rep, err)
	}
	if err := f.appWrite(t); !errReadOnly(err) {
		t.Fatalf("write after the freeze added MySQL: %v", err)
	}
	if _, err := Unfreeze(ctx, f.opts()); err != nil {
		t.Fatal(err)
	}
	if got := f.serverState(t); got != thawed {
		t.Fatalf("after unfreeze: %s", got)
	}

	mustExec(t, root, "SET GLOBAL read_only = ON")
	if _, err := Freeze(ctx, f.opts()); err != nil {
		t.Fatal(err)
	}
	if _, err := Unfreeze(ctx, f.opts()); err != nil {
		t.Fatal(err)
	}
	if got, want := f.serverState(t), "read_only=ON check_user=0 freeze_db=0"; got != want {
		t.Fatalf("after unfreeze: %s, want %s (as before the freeze)", got, want)
	}
	mustExec(t, root, "SET GLOBAL read_only = OFF")
}

// TestFreezeBadInput: bad options are user errors and change nothing.
func TestFreezeBadInput(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		edit func(*FreezeOptions)
		want string
	}{
		{"no site", func(o *FreezeOptions) { o.Site = "" }, "Site"},
		{"site with a slash", func(o *FreezeOptions) { o.Site = "a/b" }, "Site"},
		{"no server", func(o *FreezeOptions) { o.MySQL, o.Mongo = MySQLConfig{}, MongoConfig{} }, "nothing to freeze"},
		{"bad mongo URI", func(o *FreezeOptions) { o.Mongo.URI = "http://x" }, "Mongo.URI"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := FreezeOptions{Common: e.common(), Site: "primary", MySQL: e.primary, Mongo: e.mongoP}
			tc.edit(&o)
			for _, do := range []func(context.Context, FreezeOptions) (*FreezeReport, error){Freeze, Unfreeze} {
				_, err := do(ctx, o)
				if !usererr.Is(err) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want a user error naming %s", err, tc.want)
				}
			}
			if objs, _ := e.store.List(ctx, e.s3.Prefix); len(objs) != 0 {
				t.Fatalf("objects written: %v", objs)
			}
		})
	}
}

// TestFreezeCrash kills freeze and unfreeze (SIGKILL, through the crash
// hook) at each of their steps: after a killed freeze, a rerun freezes
// (application write refused) and unfreeze puts the server back as it was;
// after a killed unfreeze, one rerun does.
func TestFreezeCrash(t *testing.T) {
	f := newFreezeEnv(t)
	c := newCrashEnv(f.env)
	uri := f.mongoP.URI.Reveal()
	args := func(verb string) []string {
		return append(append([]string{verb, "--site", "primary"}, c.s3Args()...),
			"--mysql-host", f.primary.Host, "--mysql-port", strconv.Itoa(f.primary.Port))
	}
	run := func(point, verb string) crashRun {
		t.Helper()
		return c.run(point, uri, args(verb)...)
	}
	ok := func(r crashRun, what string) {
		t.Helper()
		if r.killed || r.code != 0 {
			t.Fatalf("%s: killed %v, exit %d\n%s", what, r.killed, r.code, r.stderr)
		}
	}
	var steps []string
	clean := run("", "freeze")
	ok(clean, "clean freeze")
	for _, s := range clean.steps {
		if strings.HasPrefix(s, "backup.freeze.") {
			steps = append(steps, s)
		}
	}
	if err := f.appWrite(t); !errReadOnly(err) {
		t.Fatalf("write while frozen: %v", err)
	}
	un := run("", "unfreeze")
	ok(un, "clean unfreeze")
	for _, s := range un.steps {
		if strings.HasPrefix(s, "backup.unfreeze.") {
			steps = append(steps, s)
		}
	}
	want := []string{"backup.freeze.recorded", "backup.freeze.checkuser", "backup.freeze.readonly", "backup.freeze.killed", "backup.freeze.verified", "backup.freeze.frozen",
		"backup.unfreeze.started", "backup.unfreeze.checkuser", "backup.unfreeze.readonly", "backup.unfreeze.done"}
	if diff := cmp.Diff(want, steps); diff != "" {
		t.Fatalf("steps of a clean freeze and unfreeze (-want +got):\n%s", diff)
	}
	for _, point := range steps {
		t.Run(point, func(t *testing.T) {
			if strings.HasPrefix(point, "backup.unfreeze.") {
				ok(run("", "freeze"), "freeze")
				if r := run(point, "unfreeze"); !r.killed {
					t.Fatalf("unfreeze not killed at %s: exit %d\n%s", point, r.code, r.stderr)
				}
			} else {
				if r := run(point, "freeze"); !r.killed {
					t.Fatalf("freeze not killed at %s: exit %d\n%s", point, r.code, r.stderr)
				}
				// A rerun finishes the freeze.
				ok(run("", "freeze"), "freeze rerun")
				if err := f.appWrite(t); !errReadOnly(err) {
					t.Fatalf("write after the freeze rerun: %v, want refused", err)
				}
				if r := f.record(t); r == nil || r.State != freezeFrozen || r.MySQL.ReadOnlyBefore {
					t.Fatalf("record after the rerun: %+v, want frozen with read_only OFF before", r)
				}
			}
			ok(run("", "unfreeze"), "unfreeze")
			f.thawed(t)
			again := run("", "unfreeze")
			ok(again, "second unfreeze")
			if !strings.Contains(again.stderr, "nothing to do") {
				t.Errorf("second unfreeze did not say it had nothing to do:\n%s", again.stderr)
			}
			c.noOrphans()
		})
	}
}

// TestDataLossWindow: a backup's window is how long after its start
// read_only took effect, 0 when before, and unknown when read_only was off
// at its end, or off at its start with the record's instant before it.
func TestDataLossWindow(t *testing.T) {
	ctx := context.Background()
	f := newFreezeEnv(t)
	if _, err := Freeze(ctx, f.opts()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Unfreeze(context.Background(), f.opts()) })
	at := f.record(t).MySQL.ReadOnlyAt
	root := sqlDB(t, f.primary)
	for _, tc := range []struct {
		name      string
		start     time.Duration // backup start relative to read_only taking effect
		startRO   bool          // read_only at the start
		endRO     bool          // read_only at the end
		want      float64
		unknown   bool
		notFrozen string
	}{
		{"frozen before the start", 2 * time.Second, true, true, 0, false, ""},
		{"frozen during the backup", -5 * time.Second, false, true, 5, false, ""},
		{"off at the end", 2 * time.Second, true, false, 0, true, "read_only was OFF during the backup"},
		{"off at the start, frozen earlier", 2 * time.Second, false, true, 0, true, "read_only was OFF during the backup"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mustExec(t, root, "SET GLOBAL read_only = "+onOff(tc.endRO))
			w := &freezeWatch{store: f.store, prefix: f.s3.Prefix, site: "primary", mysql: f.primary, rec: f.record(t), start: at.Add(tc.start), readOnly: tc.startRO}
			s, window, err := w.finish(ctx)
			mustExec(t, root, "SET GLOBAL read_only = ON")
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.unknown && window != nil:
				t.Fatalf("window = %v, want unknown", *window)
			case !tc.unknown && (window == nil || *window != tc.want):
				t.Fatalf("window = %v, want %v", window, tc.want)
			}
			if tc.notFrozen != "" && !strings.Contains(strings.Join(s.NotFrozen, "; "), tc.notFrozen) {
				t.Errorf("notFrozen %q lacks %q", s.NotFrozen, tc.notFrozen)
			}
		})
	}
}

package backup

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/progress"
)

// seedSchemaZoo makes a database with many tables and every kind of object a
// parallel load must get right: foreign keys between tables (and to itself),
// generated columns (virtual and stored), partitions, a MyISAM table, a name
// needing quotes, a BEFORE INSERT trigger that would change rows if it ran
// during the load, views on views, routines and an event; one table is
// large enough to go in several chunks.
func seedSchemaZoo(t *testing.T, c MySQLConfig, db string, orphan bool) {
	t.Helper()
	sdb := sqlDB(t, c)
	ctx := context.Background()
	conn, err := sdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stmts := []string{
		"CREATE DATABASE " + quoteID(db) + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		"USE " + quoteID(db),
		"CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(50), twice INT AS (id * 2) VIRTUAL, label VARCHAR(60) AS (CONCAT('p-', name)) STORED, KEY (label)) ENGINE=InnoDB",
		"CREATE TABLE child (id INT PRIMARY KEY, parent_id INT NOT NULL, note TEXT, FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE) ENGINE=InnoDB",
		"CREATE TABLE tree (id INT PRIMARY KEY, up INT NULL, FOREIGN KEY (up) REFERENCES tree (id)) ENGINE=InnoDB",
		"CREATE TABLE pair (a INT, b INT, v VARCHAR(10), PRIMARY KEY (a, b)) ENGINE=InnoDB",
		"CREATE TABLE pair_ref (id INT PRIMARY KEY, a INT, b INT, FOREIGN KEY (a, b) REFERENCES pair (a, b)) ENGINE=InnoDB",
		"CREATE TABLE parts (id INT NOT NULL, at DATE NOT NULL, v INT, PRIMARY KEY (id, at)) PARTITION BY RANGE (YEAR(at)) (PARTITION p2024 VALUES LESS THAN (2025), PARTITION p2025 VALUES LESS THAN (2026), PARTITION pmax VALUES LESS THAN MAXVALUE)",
		"CREATE TABLE legacy (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM",
		"CREATE TABLE `order-items; -- x` (id INT PRIMARY KEY, qty INT)",
		"CREATE TABLE big (id INT PRIMARY KEY, body TEXT, blob_ LONGBLOB, u VARCHAR(40), UNIQUE KEY (u)) ENGINE=InnoDB",
		"CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(100)) ENGINE=InnoDB",
		"CREATE TABLE empty_one (id INT PRIMARY KEY)",
		"INSERT INTO parent (id, name) SELECT seq, CONCAT('név ', seq, ' 🚀') FROM seq_1_to_2000",
		"INSERT INTO child SELECT seq, 1 + seq % 2000, CONCAT('line1\\nline2; -- not a comment\\n', REPEAT('ü', seq % 50)) FROM seq_1_to_20000",
		"INSERT INTO tree VALUES (1, NULL)",
		"INSERT INTO tree SELECT seq, seq - 1 FROM seq_2_to_500",
		"INSERT INTO pair SELECT seq, seq % 7, 'x' FROM seq_1_to_300",
		"INSERT INTO pair_ref SELECT seq, seq, seq % 7 FROM seq_1_to_300",
		"INSERT INTO parts SELECT seq, DATE('2024-01-01') + INTERVAL seq DAY, seq FROM seq_1_to_900",
		"INSERT INTO legacy SELECT seq, CONCAT('v', seq) FROM seq_1_to_100",
		"INSERT INTO `order-items; -- x` SELECT seq, seq * 3 FROM seq_1_to_50",
		"INSERT INTO big SELECT seq, REPEAT(MD5(seq), 20), RANDOM_BYTES(2000), CONCAT('u', seq) FROM seq_1_to_6000",
		"CREATE TRIGGER child_bi BEFORE INSERT ON child FOR EACH ROW BEGIN SET NEW.note = CONCAT(NEW.note, ' [trigger ran]'); INSERT INTO audit (what) VALUES (CONCAT('child ', NEW.id)); END",
		"CREATE VIEW parent_names AS SELECT id, name, label FROM parent WHERE id < 100",
		"CREATE VIEW parent_names_short AS SELECT id, name FROM parent_names WHERE id < 10",
		"CREATE PROCEDURE count_children(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM child; END",
		"CREATE FUNCTION twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
		"CREATE EVENT cleanup ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01' DISABLE DO DELETE FROM audit WHERE id < 0",
	}
	// Each table of a set of small ones is a section of its own.
	for i := range 25 {
		stmts = append(stmts, fmt.Sprintf("CREATE TABLE small_%02d (id INT PRIMARY KEY, v VARCHAR(20))", i),
			fmt.Sprintf("INSERT INTO small_%02d SELECT seq, CONCAT('s', seq) FROM seq_1_to_%d", i, 10+i*7))
	}
	if orphan {
		stmts = append(stmts, "SET SESSION foreign_key_checks = 0", "INSERT INTO child VALUES (999999, 424242, 'orphan')", "SET SESSION foreign_key_checks = 1")
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// byTable drops the database name from a mysqlState fingerprint, so two
// databases' tables compare.
func byTable(st map[string]string, db string) map[string]string {
	out := map[string]string{}
	for k, v := range st {
		if strings.HasPrefix(k, "leftover ") {
			out[k] = v
			continue
		}
		out[strings.TrimPrefix(strings.TrimPrefix(k, db+"."), db+" ")] = v
	}
	return out
}

// TestParallelLoad restores a dump with many tables, foreign keys,
// generated columns, partitions, triggers, views, routines and an event
// over several connections, and checks that it gives the same tables
// (row counts and CHECKSUM TABLE) and objects as the primary and as a serial
// load of the same dump by the mariadb client; that the data did go in
// chunks over the connections with only the objects left for the client;
// and that a dump whose rows break a foreign key is refused before the
// swap, the DR database unchanged.
func TestParallelLoad(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	zoo, serial := e.db("zoo"), e.db("zoo_serial")
	e.dropDBs(zoo, serial)
	seedSchemaZoo(t, e.primary, zoo, false)
	want := byTable(mysqlState(t, e.primary, zoo), zoo)

	// The serial baseline: mariadb-dump | mariadb into another database.
	var dump bytes.Buffer
	src := e.primary.source("mariadb-dump", zoo)
	if err := src.Dump(ctx, &dump); err != nil {
		t.Fatal(err)
	}
	drDB := sqlDB(t, e.dr)
	mustExec(t, drDB, "CREATE DATABASE "+quoteID(serial))
	if err := e.dr.client("mariadb", "--", serial).run(ctx, bytes.NewReader(dump.Bytes()), nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, byTable(mysqlState(t, e.dr, serial), serial)); diff != "" {
		t.Fatalf("serial load differs from the primary (-primary +serial):\n%s", diff)
	}

	t.Run("loader", func(t *testing.T) {
		// The loader itself, on the same dump: data in chunks on the
		// connections, nothing but objects for the client.
		stage := e.db("zoo_stage")
		e.dropDBs(stage)
		mustExec(t, drDB, "CREATE DATABASE "+quoteID(stage)+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
		db, err := e.dr.openWith(func(c *mysql.Config) { c.MultiStatements = true; c.MaxAllowedPacket = 0 })
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var mu sync.Mutex
		var loaded []string
		var post []byte
		l := &mysqlLoader{db: db, staging: stage, jobs: 3, done: map[string]bool{},
			progress: newStageProgress(progress.Discard().Start("zoo", int64(dump.Len())), int64(dump.Len())),
			tableLoaded: func(_ context.Context, table string) error {
				mu.Lock()
				defer mu.Unlock()
				loaded = append(loaded, table)
				return nil
			},
			post: func(ctx context.Context, sql []byte) error {
				post = sql
				return e.dr.client("mariadb", "--", stage).run(ctx, bytes.NewReader(sql), nil)
			},
		}
		if err := l.load(ctx, bytes.NewReader(dump.Bytes())); err != nil {
			t.Fatal(err)
		}
		if len(loaded) != 36 {
			t.Errorf("%d tables recorded as loaded, want 36: %v", len(loaded), loaded)
		}
		if bytes.Contains(post, []byte("INSERT INTO `")) || bytes.Contains(post, []byte("CREATE TABLE")) {
			t.Errorf("data or structures were left for the client:\n%.2000s", post)
		}
		for _, s := range []string{"TRIGGER child_bi", "FUNCTION `twice`", "PROCEDURE `count_children`", "EVENT `cleanup`", "VIEW `parent_names_short`"} {
			if !bytes.Contains(post, []byte(s)) {
				t.Errorf("the objects run by the client lack %s", s)
			}
		}
		if diff := cmp.Diff(want, byTable(mysqlState(t, e.dr, stage), stage)); diff != "" {
			t.Errorf("parallel load differs from the primary (-primary +parallel):\n%s", diff)
		}
	})

	my := e.primary
	my.Databases = []string{zoo}
	m, err := Create(ctx, CreateOptions{Common: e.common(), Site: "primary", MySQL: my})
	if err != nil {
		t.Fatal(err)
	}
	for _, jobs := range []int{1, 4} {
		t.Run(fmt.Sprintf("restore jobs=%d", jobs), func(t *testing.T) {
			rep, err := Restore(ctx, RestoreOptions{Common: e.common(), ID: m.ID, MySQL: e.dr, Jobs: jobs, Fresh: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Databases) != 1 {
				t.Errorf("restored %v", rep.Databases)
			}
			if diff := cmp.Diff(want, byTable(mysqlState(t, e.dr, zoo), zoo)); diff != "" {
				t.Errorf("restore differs from the primary (-primary +dr):\n%s", diff)
			}
			var n int
			if err := drDB.QueryRow("SELECT " + quoteID(zoo) + ".twice(21)").Scan(&n); err != nil || n != 42 {
				t.Errorf("restored function: %d, %v", n, err)
			}
		})
	}

	t.Run("broken foreign key", func(t *testing.T) {
		c := e.common()
		c.S3, _ = s3Env(t)
		mustExec(t, sqlDB(t, e.primary), "DROP DATABASE "+quoteID(zoo))
		seedSchemaZoo(t, e.primary, zoo, true)
		m, err := Create(ctx, CreateOptions{Common: c, Site: "primary", MySQL: my})
		if err != nil {
			t.Fatal(err)
		}
		before := mysqlState(t, e.dr, zoo)
		_, err = Restore(ctx, RestoreOptions{Common: c, ID: m.ID, MySQL: e.dr, Jobs: 2})
		if err == nil || !strings.Contains(err.Error(), "parent is missing") || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("restore of a dump breaking a foreign key: %v", err)
		}
		if diff := cmp.Diff(before, mysqlState(t, e.dr, zoo)); diff != "" {
			t.Errorf("DR changed (-before +after):\n%s", diff)
		}
	})
}

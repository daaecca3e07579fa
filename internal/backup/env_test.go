package backup

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/slipwayci/slipway/internal/backup/backuptest"
	"github.com/slipwayci/slipway/internal/logging"
)

// env is one test's view of the real servers: its own S3 prefix and its own
// database names, so tests can share the servers.
type env struct {
	t       *testing.T
	s3      S3Config
	store   *S3Store
	primary MySQLConfig
	dr      MySQLConfig
	mongoP  MongoConfig
	mongoD  MongoConfig
	tag     string
}

var (
	randHex  = backuptest.RandHex
	mustExec = backuptest.MustExec
)

func s3Env(t *testing.T) (S3Config, *S3Store) {
	t.Helper()
	s := backuptest.NewS3(t)
	cfg := S3Config{Endpoint: s.Endpoint, AccessKey: logging.Secret(s.AccessKey), SecretKey: logging.Secret(s.SecretKey), Region: s.Region, Bucket: s.Bucket,
		Prefix: s.Prefix, PartSize: 5 << 20}
	st, err := NewS3Store(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, st
}

func mysqlEnv(t *testing.T, site string) MySQLConfig {
	t.Helper()
	m := backuptest.NewMariaDB(t, site)
	return MySQLConfig{Host: m.Host, Port: m.Port, User: "root"}
}

func mongoEnv(t *testing.T, site string) MongoConfig {
	t.Helper()
	m := backuptest.NewMongo(t, site)
	return MongoConfig{URI: logging.Secret(m.URI), DumpBin: m.DumpBin, RestoreBin: m.RestoreBin, NoIndexRestore: true}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, tag: randHex(3)}
	e.s3, e.store = s3Env(t)
	e.primary, e.dr = mysqlEnv(t, "PRIMARY"), mysqlEnv(t, "DR")
	e.mongoP, e.mongoD = mongoEnv(t, "PRIMARY"), mongoEnv(t, "DR")
	return e
}

func (e *env) common() Common {
	return Common{S3: e.s3, Logger: testLogger(e.t)}
}

// db returns this test's name for a logical database.
func (e *env) db(name string) string { return name + "_" + e.tag }

// seed makes this test's MySQL databases app1 and app2 and its MongoDB
// database shop on both sites, dropped when it ends: rows and docs size the
// primary's data, drRows and drDocs the DR site's own, different data.
func (e *env) seed(rows, docs, drRows, drDocs int) (app1, app2, shop string) {
	app1, app2, shop = e.db("app1"), e.db("app2"), e.db("shop")
	e.dropDBs(app1, app2, shop)
	seedMySQL(e.t, e.primary, app1, app2, rows)
	seedMongo(e.t, e.mongoP, shop, docs)
	seedMySQL(e.t, e.dr, app1, app2, drRows)
	seedMongo(e.t, e.mongoD, shop, drDocs)
	return app1, app2, shop
}

func sqlDB(t *testing.T, c MySQLConfig) *sql.DB {
	t.Helper()
	db, err := c.open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dropDBs removes the test's databases (and any staging copies) on both
// sites when it ends.
func (e *env) dropDBs(names ...string) {
	var mysqlNames []string
	for _, n := range names {
		mysqlNames = append(mysqlNames, n, n+mysqlNewSuffix, n+mysqlOldSuffix)
	}
	for _, c := range []MySQLConfig{e.primary, e.dr} {
		backuptest.MariaDB{Host: c.Host, Port: c.Port}.DropOnCleanup(e.t, mysqlNames...)
	}
	for _, c := range []MongoConfig{e.mongoP, e.mongoD} {
		mongoOf(c).DropOnCleanup(e.t, names...)
	}
	// And their restore journal entries.
	e.t.Cleanup(func() {
		ctx := context.Background()
		if db, err := e.dr.open(); err == nil {
			for _, n := range names {
				db.Exec("DELETE FROM "+quoteID(journalDB)+".journal WHERE db = ?", n)
				db.Exec("DELETE FROM "+quoteID(journalDB)+".loaded WHERE db = ?", n)
			}
			db.Close()
		}
		if c, err := connectMongo(ctx, e.mongoD); err == nil {
			for _, n := range names {
				mongoJournal{c}.coll().DeleteOne(ctx, bson.D{{Key: "_id", Value: n}})
			}
			c.Disconnect(ctx)
		}
	})
}

func mongoOf(c MongoConfig) backuptest.Mongo { return backuptest.Mongo{URI: c.URI.Reveal()} }

// seedMySQL makes two databases with ~100k rows between them: utf8mb4 text
// with emoji, random BLOBs, a MyISAM table, a trigger, a view, a procedure,
// a function and an event. rows scales the big tables.
func seedMySQL(t *testing.T, c MySQLConfig, app1, app2 string, rows int) {
	t.Helper()
	db := sqlDB(t, c)
	mustExec(t, db,
		"CREATE DATABASE "+quoteID(app1)+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
		"CREATE DATABASE "+quoteID(app2)+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	run := func(stmts ...string) {
		t.Helper()
		for _, s := range stmts {
			if _, err := conn.ExecContext(ctx, s); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
		}
	}
	run("USE "+quoteID(app1),
		"CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(100), bio TEXT, created DATETIME(6)) ENGINE=InnoDB",
		"CREATE TABLE files (id INT PRIMARY KEY, data LONGBLOB) ENGINE=InnoDB",
		"CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, user_id INT, at DATETIME) ENGINE=InnoDB",
		"CREATE TRIGGER users_ai AFTER INSERT ON users FOR EACH ROW INSERT INTO audit (user_id, at) VALUES (NEW.id, '2026-01-01')",
		fmt.Sprintf("INSERT INTO users SELECT seq, CONCAT('użytkownik ', seq, ' 🚀 日本語'), REPEAT(CONCAT('bio ', seq, ' ✓ '), 5), TIMESTAMP('2026-01-01') + INTERVAL seq SECOND FROM seq_1_to_%d", rows*4/10),
		fmt.Sprintf("INSERT INTO files SELECT seq, RANDOM_BYTES(1024) FROM seq_1_to_%d", rows/10),
		"CREATE VIEW recent_users AS SELECT id, name FROM users WHERE id > 100",
		"CREATE PROCEDURE count_users(OUT n INT) BEGIN SELECT COUNT(*) INTO n FROM users; END",
		"CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01' DISABLE DO DELETE FROM audit WHERE at < '2000-01-01'",
		"USE "+quoteID(app2),
		"CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(12,2), note VARCHAR(200), receipt BLOB) ENGINE=InnoDB",
		fmt.Sprintf("INSERT INTO orders SELECT seq, seq * 1.25, CONCAT('zamówienie №', seq), RANDOM_BYTES(64) FROM seq_1_to_%d", rows/2),
		"CREATE TABLE legacy (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=MyISAM",
		"INSERT INTO legacy SELECT seq, CONCAT('v', seq) FROM seq_1_to_100",
		"CREATE FUNCTION double_it(x INT) RETURNS INT DETERMINISTIC RETURN x * 2",
	)
}

// mysqlState fingerprints databases: per table its row count and CHECKSUM
// TABLE EXTENDED, plus the names of views, triggers, routines and events.
func mysqlState(t *testing.T, c MySQLConfig, dbs ...string) map[string]string {
	t.Helper()
	db := sqlDB(t, c)
	st := map[string]string{}
	for _, d := range dbs {
		rows, err := db.Query("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", d)
		if err != nil {
			t.Fatal(err)
		}
		var tabs [][2]string
		for rows.Next() {
			var n, typ string
			rows.Scan(&n, &typ)
			tabs = append(tabs, [2]string{n, typ})
		}
		rows.Close()
		for _, tb := range tabs {
			var cnt int64
			if err := db.QueryRow("SELECT COUNT(*) FROM " + quoteID(d) + "." + quoteID(tb[0])).Scan(&cnt); err != nil {
				t.Fatal(err)
			}
			val := fmt.Sprintf("%s rows=%d", tb[1], cnt)
			if tb[1] != "VIEW" {
				val += " content=" + contentHash(t, db, d, tb[0])
			}
			st[d+"."+tb[0]] = val
		}
		for _, q := range []string{
			"SELECT CONCAT('trigger ', TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
			"SELECT CONCAT(ROUTINE_TYPE, ' ', ROUTINE_NAME) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ?",
			"SELECT CONCAT('event ', EVENT_NAME) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ?",
		} {
			rows, err := db.Query(q, d)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var s string
				rows.Scan(&s)
				st[d+" "+s] = "present"
			}
			rows.Close()
		}
	}
	// Staging leftovers would show up here.
	for _, d := range dbs {
		rows, err := db.Query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (?, ?)", d+mysqlNewSuffix, d+mysqlOldSuffix)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			rows.Scan(&s)
			st["leftover "+s] = "present"
		}
		rows.Close()
	}
	return st
}

// contentHash fingerprints a table's rows, in any order, from every
// column's bytes (CHECKSUM TABLE is not stable for generated columns).
func contentHash(t *testing.T, db *sql.DB, schema, table string) string {
	t.Helper()
	rows, err := db.Query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION", schema, table)
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	for rows.Next() {
		var c string
		rows.Scan(&c)
		cols = append(cols, "COALESCE(HEX("+quoteID(c)+"), 'NULL')")
	}
	rows.Close()
	row := "CONCAT_WS('#', " + strings.Join(cols, ", ") + ")"
	var h sql.NullString
	q := "SELECT CONCAT(BIT_XOR(CAST(CONV(LEFT(MD5(" + row + "), 16), 16, 10) AS UNSIGNED)), ':', SUM(CRC32(" + row + "))) FROM " + quoteID(schema) + "." + quoteID(table)
	if err := db.QueryRow(q).Scan(&h); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return h.String
}

func mongoClient(t *testing.T, c MongoConfig) *mongo.Client { return mongoOf(c).Client(t) }

func seedMongo(t *testing.T, c MongoConfig, dbName string, n int) { mongoOf(c).Seed(t, dbName, n) }

// mongoState fingerprints a database: every document of every collection,
// in _id order, as canonical extended JSON.
func mongoState(t *testing.T, c MongoConfig, dbName string) map[string]string {
	t.Helper()
	ctx := context.Background()
	cl := mongoClient(t, c)
	db := cl.Database(dbName)
	names, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	st := map[string]string{}
	for _, n := range names {
		cur, err := db.Collection(n).Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		count := 0
		for cur.Next(ctx) {
			ej, err := bson.MarshalExtJSON(cur.Current, true, false)
			if err != nil {
				t.Fatal(err)
			}
			sb.Write(ej)
			sb.WriteByte('\n')
			count++
		}
		cur.Close(ctx)
		h := newHashCounter()
		h.Write([]byte(sb.String()))
		st[dbName+"."+n] = fmt.Sprintf("docs=%d sha256=%s", count, h.Sum())
	}
	return st
}

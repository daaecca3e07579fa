package backup

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/testenv"
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

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func s3Env(t *testing.T) (S3Config, *S3Store) {
	t.Helper()
	v := testenv.Require(t, "SLIPWAY_TEST_S3_ENDPOINT", "SLIPWAY_TEST_S3_ACCESS_KEY", "SLIPWAY_TEST_S3_SECRET_KEY", "SLIPWAY_TEST_S3_REGION", "SLIPWAY_TEST_S3_BUCKET")
	cfg := S3Config{Endpoint: v[0], AccessKey: logging.Secret(v[1]), SecretKey: logging.Secret(v[2]), Region: v[3], Bucket: v[4],
		Prefix: "t-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + randHex(3) + "/", PartSize: 5 << 20}
	st, err := NewS3Store(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cfg, st
}

func mysqlEnv(t *testing.T, site string) MySQLConfig {
	t.Helper()
	addr := testenv.Get(t, "SLIPWAY_TEST_MARIADB_"+site+"_ADDR")
	testenv.Tool(t, "mariadb-dump")
	testenv.Tool(t, "mariadb")
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return MySQLConfig{Host: host, Port: p, User: "root"}
}

func mongoEnv(t *testing.T, site string) MongoConfig {
	t.Helper()
	v := testenv.Require(t, "SLIPWAY_TEST_MONGO_"+site+"_URI", "SLIPWAY_TEST_MONGODUMP", "SLIPWAY_TEST_MONGORESTORE")
	return MongoConfig{URI: logging.Secret(v[0]), DumpBin: v[1], RestoreBin: v[2], NoIndexRestore: true}
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

func sqlDB(t *testing.T, c MySQLConfig) *sql.DB {
	t.Helper()
	db, err := c.open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// dropDBs removes the test's databases on both servers when it ends.
func (e *env) dropDBs(names ...string) {
	e.t.Cleanup(func() {
		for _, c := range []MySQLConfig{e.primary, e.dr} {
			db, err := c.open()
			if err != nil {
				continue
			}
			for _, n := range names {
				for _, s := range []string{"", mysqlNewSuffix, mysqlOldSuffix} {
					db.Exec("DROP DATABASE IF EXISTS " + quoteID(n+s))
				}
			}
			db.Close()
		}
		for _, c := range []MongoConfig{e.mongoP, e.mongoD} {
			cl, err := connectMongo(context.Background(), c)
			if err != nil {
				continue
			}
			for _, n := range names {
				cl.Database(n).Drop(context.Background())
			}
			cl.Disconnect(context.Background())
		}
	})
}

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
				var name string
				var sum sql.NullInt64
				if err := db.QueryRow("CHECKSUM TABLE "+quoteID(d)+"."+quoteID(tb[0])+" EXTENDED").Scan(&name, &sum); err != nil {
					t.Fatal(err)
				}
				val += fmt.Sprintf(" checksum=%d", sum.Int64)
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
	rows, err := db.Query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '%slipway%'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		st["leftover "+s] = "present"
	}
	rows.Close()
	return st
}

func mongoClient(t *testing.T, c MongoConfig) *mongo.Client {
	t.Helper()
	cl, err := mongo.Connect(options.Client().ApplyURI(c.URI.Reveal()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Disconnect(context.Background()) })
	return cl
}

func seedMongo(t *testing.T, c MongoConfig, dbName string, n int) {
	t.Helper()
	ctx := context.Background()
	cl := mongoClient(t, c)
	db := cl.Database(dbName)
	var docs []any
	flush := func(coll string) {
		if len(docs) == 0 {
			return
		}
		if _, err := db.Collection(coll).InsertMany(ctx, docs); err != nil {
			t.Fatal(err)
		}
		docs = docs[:0]
	}
	for i := 0; i < n; i++ {
		docs = append(docs, bson.D{
			{Key: "_id", Value: i}, {Key: "name", Value: fmt.Sprintf("klient %d ñ 🚀 中文", i)},
			{Key: "address", Value: bson.D{{Key: "city", Value: "Łódź"}, {Key: "zip", Value: fmt.Sprintf("%05d", i)}}},
			{Key: "tags", Value: bson.A{"a", i % 7, true}},
			{Key: "blob", Value: bson.Binary{Data: []byte(fmt.Sprintf("bin-%d-\x00\xff", i))}},
			{Key: "at", Value: time.Date(2026, 1, 1, 0, 0, i%60, 0, time.UTC)},
		})
		if len(docs) == 1000 {
			flush("customers")
		}
	}
	flush("customers")
	for i := 0; i < 50; i++ {
		docs = append(docs, bson.D{{Key: "_id", Value: fmt.Sprintf("k%d", i)}, {Key: "v", Value: i}})
	}
	flush("settings")
}

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

// Package backuptest gives the backup stage's tests (the logic's and the
// command's) the real servers they run against: S3, one MariaDB per site and
// one MongoDB-wire server per site, each test with names of its own.
package backuptest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/slipwayci/slipway/internal/testenv"
)

// RandHex returns 2n random hex digits, for names no other test uses.
func RandHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// S3 is the test S3 server and a key prefix of the test's own.
type S3 struct {
	Endpoint, Region, Bucket, Prefix string
	AccessKey, SecretKey             string
}

// NewS3 returns the S3 server, with a prefix named after the test.
func NewS3(t *testing.T) S3 {
	t.Helper()
	v := testenv.Require(t, "SLIPWAY_TEST_S3_ENDPOINT", "SLIPWAY_TEST_S3_ACCESS_KEY", "SLIPWAY_TEST_S3_SECRET_KEY", "SLIPWAY_TEST_S3_REGION", "SLIPWAY_TEST_S3_BUCKET")
	return S3{Endpoint: v[0], AccessKey: v[1], SecretKey: v[2], Region: v[3], Bucket: v[4],
		Prefix: "t-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-")) + "-" + RandHex(3) + "/"}
}

// MariaDB is one site's MariaDB server; its root user has no password.
type MariaDB struct {
	Host string
	Port int
}

// NewMariaDB returns the server of site (PRIMARY or DR) and checks that the
// client tools are on PATH.
func NewMariaDB(t *testing.T, site string) MariaDB {
	t.Helper()
	addr := testenv.Get(t, "SLIPWAY_TEST_MARIADB_"+site+"_ADDR")
	testenv.Tool(t, "mariadb-dump")
	testenv.Tool(t, "mariadb")
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	return MariaDB{Host: host, Port: p}
}

// DB connects as root; the connection closes when the test ends.
func (m MariaDB) DB(t *testing.T) *sql.DB {
	t.Helper()
	db := m.open()
	t.Cleanup(func() { db.Close() })
	return db
}

func (m MariaDB) open() *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = "root", "tcp", net.JoinHostPort(m.Host, strconv.Itoa(m.Port))
	cfg.Collation = "utf8mb4_unicode_ci"
	conn, _ := mysql.NewConnector(cfg) // fails only on a bad config
	return sql.OpenDB(conn)
}

// DropOnCleanup drops the databases when the test ends.
func (m MariaDB) DropOnCleanup(t *testing.T, names ...string) {
	t.Cleanup(func() {
		db := m.open()
		defer db.Close()
		for _, n := range names {
			db.Exec("DROP DATABASE IF EXISTS `" + strings.ReplaceAll(n, "`", "``") + "`")
		}
	})
}

// MustExec runs each statement or fails the test.
func MustExec(t *testing.T, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// Mongo is one site's MongoDB-wire server and the tools that dump and
// restore it.
type Mongo struct {
	URI, DumpBin, RestoreBin string
}

// NewMongo returns the server of site (PRIMARY or DR).
func NewMongo(t *testing.T, site string) Mongo {
	t.Helper()
	v := testenv.Require(t, "SLIPWAY_TEST_MONGO_"+site+"_URI", "SLIPWAY_TEST_MONGODUMP", "SLIPWAY_TEST_MONGORESTORE")
	return Mongo{URI: v[0], DumpBin: v[1], RestoreBin: v[2]}
}

// Client connects; the client disconnects when the test ends.
func (m Mongo) Client(t *testing.T) *mongo.Client {
	t.Helper()
	cl, err := mongo.Connect(options.Client().ApplyURI(m.URI))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Disconnect(context.Background()) })
	return cl
}

// DropOnCleanup drops the databases when the test ends.
func (m Mongo) DropOnCleanup(t *testing.T, names ...string) {
	t.Cleanup(func() {
		ctx := context.Background()
		cl, err := mongo.Connect(options.Client().ApplyURI(m.URI))
		if err != nil {
			return
		}
		defer cl.Disconnect(ctx)
		for _, n := range names {
			cl.Database(n).Drop(ctx)
		}
	})
}

// Seed fills database db with n customers (unicode, nested documents,
// arrays, binary data, dates) and 50 settings.
func (m Mongo) Seed(t *testing.T, dbName string, n int) {
	t.Helper()
	ctx := context.Background()
	db := m.Client(t).Database(dbName)
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

// FreezeLock serialises the tests that freeze this server (read_only is
// global, and the backup packages' tests run at the same time): it holds a
// lock on the server until the test ends.
func (m MariaDB) FreezeLock(t *testing.T) {
	t.Helper()
	db := m.open()
	conn, err := db.Conn(context.Background())
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(context.Background(), "SELECT GET_LOCK('slipway-test:freeze', 900)").Scan(&got); err != nil || got.Int64 != 1 {
		conn.Close()
		db.Close()
		t.Fatalf("waiting for the freeze tests' lock: %v (got %v)", err, got)
	}
	t.Cleanup(func() {
		conn.Close()
		db.Close()
	})
}

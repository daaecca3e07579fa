package crash

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/slipwayci/slipway/internal/backup/backuptest"
	"github.com/slipwayci/slipway/internal/testenv"
)

// site is one backup world: a prefix in S3, one MySQL and one MongoDB
// database of its own at the primary site, restored under the same names
// at the DR site.
type site struct {
	s3                 backuptest.S3
	primary, dr        backuptest.MariaDB
	mongoP, mongoDR    backuptest.Mongo
	db                 string
	dir                string
	primaryURI, drURI  string // files holding the MongoDB URIs
	createRes, restRes string
	// The sites' application users (with a password, in a 0600 file),
	// as a pipeline logs in; root sets the worlds up and checks them.
	primaryUser, primaryPassword, drUser, drPassword string
}

func newSite(t *testing.T, id string) *site {
	s := &site{s3: backuptest.NewS3(t), primary: backuptest.NewMariaDB(t, "PRIMARY"), dr: backuptest.NewMariaDB(t, "DR"),
		mongoP: backuptest.NewMongo(t, "PRIMARY"), mongoDR: backuptest.NewMongo(t, "DR"),
		db: "crash_" + backuptest.RandHex(3) + "_" + id, dir: t.TempDir()}
	v := testenv.Require(t, "SLIPWAY_TEST_MARIADB_PRIMARY_USER", "SLIPWAY_TEST_MARIADB_PRIMARY_PASSWORD_FILE",
		"SLIPWAY_TEST_MARIADB_DR_USER", "SLIPWAY_TEST_MARIADB_DR_PASSWORD_FILE")
	s.primaryUser, s.primaryPassword, s.drUser, s.drPassword = v[0], v[1], v[2], v[3]
	s.primary.DropOnCleanup(t, s.db)
	s.dr.DropOnCleanup(t, s.db)
	s.mongoP.DropOnCleanup(t, s.db)
	s.mongoDR.DropOnCleanup(t, s.db)
	backuptest.MustExec(t, s.primary.DB(t),
		"CREATE DATABASE `"+s.db+"`",
		"CREATE TABLE `"+s.db+"`.courses (id INT PRIMARY KEY, title VARCHAR(200), syllabus BLOB)",
		"CREATE TABLE `"+s.db+"`.enrollments (course INT, learner VARCHAR(64), PRIMARY KEY (course, learner))",
		"CREATE VIEW `"+s.db+"`.course_sizes AS SELECT course, COUNT(*) AS n FROM `"+s.db+"`.enrollments GROUP BY course")
	db := s.primary.DB(t)
	for i := range 300 {
		backuptest.MustExec(t, db, fmt.Sprintf("INSERT INTO `%s`.courses VALUES (%d, 'Kurs %d — ñ 中文', REPEAT('syllabus %d ', 200))", s.db, i, i, i),
			fmt.Sprintf("INSERT INTO `%s`.enrollments VALUES (%d, 'learner-%d'), (%d, 'learner-%d')", s.db, i%40, i, i%40, i+1000))
	}
	s.mongoP.Seed(t, s.db, 2000)
	s.primaryURI, s.drURI = filepath.Join(s.dir, "primary-uri"), filepath.Join(s.dir, "dr-uri")
	for p, uri := range map[string]string{s.primaryURI: s.mongoP.URI, s.drURI: s.mongoDR.URI} {
		if err := os.WriteFile(p, []byte(uri), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s.createRes, s.restRes = filepath.Join(s.dir, "create.json"), filepath.Join(s.dir, "restore.json")
	return s
}

func (s *site) s3Args() []string {
	return []string{"--s3-endpoint", s.s3.Endpoint, "--s3-bucket", s.s3.Bucket, "--s3-prefix", s.s3.Prefix, "--s3-region", s.s3.Region}
}

func (s *site) env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + s.s3.AccessKey, "AWS_SECRET_ACCESS_KEY=" + s.s3.SecretKey, "AWS_CA_BUNDLE=", "HOME=" + s.dir}
}

func (s *site) create() *command {
	return &command{bin: "backup", env: s.env(), dirs: []string{s.dir},
		args: append([]string{"create", "--site", "primary", "--result", s.createRes,
			"--mysql-host", s.primary.Host, "--mysql-port", strconv.Itoa(s.primary.Port), "--mysql-database", s.db,
			"--mysql-user", s.primaryUser, "--mysql-password-file", s.primaryPassword,
			"--mongo-uri-file", s.primaryURI, "--mongo-database", s.db, "--mongodump-bin", s.mongoP.DumpBin}, s.s3Args()...),
		state:     s.backups,
		leftovers: s.leftInS3,
	}
}

func (s *site) restore() *command {
	return &command{bin: "backup", env: s.env(), dirs: []string{s.dir},
		args: append([]string{"restore", "--latest", "--result", s.restRes,
			"--mysql-host", s.dr.Host, "--mysql-port", strconv.Itoa(s.dr.Port),
			"--mysql-user", s.drUser, "--mysql-password-file", s.drPassword,
			"--mongo-uri-file", s.drURI, "--mongorestore-bin", s.mongoDR.RestoreBin, "--mongo-no-index-restore"}, s.s3Args()...),
		state: func(t *testing.T) string { return s.contents(t, s.dr, s.mongoDR) },
		leftovers: func(t *testing.T) []string {
			return append(s.leftInS3(t), s.staging(t)...)
		},
		unchanged: func(o outcome) error {
			if !strings.Contains(o.stderr, "nothing to do") {
				return fmt.Errorf("the restore did not report the DR databases as holding the backup")
			}
			return nil
		},
	}
}

func crashBackup(t *testing.T) {
	crash(t, "backup", 3,
		scenario{name: "create", setup: func(t *testing.T, id string) *command { return newSite(t, id).create() }},
		scenario{name: "restore", setup: func(t *testing.T, id string) *command {
			s := newSite(t, id)
			if o := run(t, s.create(), nil); o.code != 0 {
				t.Fatalf("creating the backup to restore: %s", o)
			}
			return s.restore()
		}},
	)
}

// backups describes the newest complete backup of the prefix: its dumps
// (kind and database, the name of the world replaced) and that the primary
// data equals what a restore must bring. Every complete backup is one
// point in time, so a further create adds one of the same shape.
func (s *site) backups(t *testing.T) string {
	t.Helper()
	o := run(t, &command{bin: "backup", env: s.env(), args: append([]string{"list"}, s.s3Args()...)}, nil)
	if o.code != 0 {
		return "backup list: " + o.String()
	}
	var entries []struct {
		ID       string `json:"id"`
		Complete bool   `json:"complete"`
		Manifest struct {
			Dumps []struct {
				Kind     string `json:"kind"`
				Database string `json:"database"`
			} `json:"dumps"`
		} `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(o.stdout), &entries); err != nil {
		return "backup list printed " + o.stdout
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].ID > entries[j].ID })
	for _, e := range entries {
		if !e.Complete {
			continue
		}
		var dumps []string
		for _, d := range e.Manifest.Dumps {
			dumps = append(dumps, d.Kind+" "+strings.ReplaceAll(d.Database, s.db, "DB"))
		}
		sort.Strings(dumps)
		v := run(t, &command{bin: "backup", env: s.env(), args: append([]string{"verify", e.ID}, s.s3Args()...)}, nil)
		return fmt.Sprintf("newest complete backup: %s; verify exit %d", strings.Join(dumps, ", "), v.code)
	}
	return "no complete backup"
}

// contents is the world's data at a site: every table's rows (checksum and
// count), the view's result, and every collection's documents.
func (s *site) contents(t *testing.T, m backuptest.MariaDB, mg backuptest.Mongo) string {
	t.Helper()
	db := m.DB(t)
	var lines []string
	for _, q := range []string{
		"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(id, title, syllabus))), 0) FROM `" + s.db + "`.courses",
		"SELECT COUNT(*), COALESCE(SUM(CRC32(CONCAT(course, learner))), 0) FROM `" + s.db + "`.enrollments",
		"SELECT COUNT(*), COALESCE(SUM(n), 0) FROM `" + s.db + "`.course_sizes",
	} {
		var n, sum sql.NullString
		if err := db.QueryRow(q).Scan(&n, &sum); err != nil {
			lines = append(lines, strings.ReplaceAll(q, s.db, "DB")+": "+strings.ReplaceAll(err.Error(), s.db, "DB"))
			continue
		}
		lines = append(lines, fmt.Sprintf("%s: %s rows, sum %s", strings.ReplaceAll(q, s.db, "DB"), n.String, sum.String))
	}
	ctx := context.Background()
	mdb := mg.Client(t).Database(s.db)
	names, err := mdb.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	for _, c := range names {
		n, err := mdb.Collection(c).CountDocuments(ctx, bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, fmt.Sprintf("mongo %s: %d documents", c, n))
	}
	return strings.Join(lines, "\n")
}

// staging lists databases at the DR site a restore uses on the way (the
// staging and old copies of the world's databases).
func (s *site) staging(t *testing.T) []string {
	t.Helper()
	var left []string
	rows, err := s.dr.DB(t).Query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?", s.db+"%")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		if name != s.db {
			left = append(left, "MySQL database at the DR site: "+name)
		}
	}
	ctx := context.Background()
	cl := s.mongoDR.Client(t)
	dbs, err := cl.ListDatabaseNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dbs {
		if strings.HasPrefix(d, s.db) && d != s.db {
			left = append(left, "MongoDB database at the DR site: "+d)
		}
	}
	names, err := cl.Database(s.db).ListCollectionNames(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, "slipway") {
			left = append(left, "MongoDB collection at the DR site: "+s.db+"."+n)
		}
	}
	return left
}

// leftInS3 lists unfinished multipart uploads under the prefix, and
// objects of backups that never completed (no manifest).
func (s *site) leftInS3(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	cl := s3.New(s3.Options{Region: s.s3.Region, BaseEndpoint: aws.String(s.s3.Endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(s.s3.AccessKey, s.s3.SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired, ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired})
	var left []string
	ups, err := cl.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(s.s3.Bucket), Prefix: aws.String(s.s3.Prefix)})
	if err != nil {
		t.Fatalf("listing multipart uploads: %v", err)
	}
	for _, u := range ups.Uploads {
		left = append(left, "multipart upload "+aws.ToString(u.Key))
	}
	objs, err := cl.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(s.s3.Bucket), Prefix: aws.String(s.s3.Prefix)})
	if err != nil {
		t.Fatalf("listing objects: %v", err)
	}
	complete := map[string]bool{}
	for _, o := range objs.Contents {
		if k := aws.ToString(o.Key); strings.HasSuffix(k, "/manifest.json") {
			complete[filepath.Dir(k)] = true
		}
	}
	for _, o := range objs.Contents {
		if k := aws.ToString(o.Key); !complete[filepath.Dir(k)] {
			left = append(left, "object of an incomplete backup "+strings.TrimPrefix(k, s.s3.Prefix))
		}
	}
	return left
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/slipwayci/slipway/internal/backup"
	"github.com/slipwayci/slipway/internal/backup/backuptest"
	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/result"
)

// runCLI runs the backup binary's app in-process, as main does.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	a := app()
	var out, errb bytes.Buffer
	a.Writer, a.ErrWriter = &out, &errb
	code = cli.Run(context.Background(), a, append([]string{"backup"}, args...))
	return code, out.String(), errb.String()
}

func s3Args(s backuptest.S3) []string {
	return []string{"--s3-endpoint", s.Endpoint, "--s3-bucket", s.Bucket, "--s3-prefix", s.Prefix, "--s3-region", s.Region}
}

// s3Env is the test's S3 prefix, its credentials in the environment.
func s3Env(t *testing.T) backuptest.S3 {
	s := backuptest.NewS3(t)
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	return s
}

// listBackups runs backup list and decodes what it prints.
func listBackups(t *testing.T, args ...string) (entries []backup.Entry, stdout string) {
	t.Helper()
	code, stdout, stderr := runCLI(t, append([]string{"list"}, args...)...)
	if code != 0 {
		t.Fatalf("list: exit %d\n%s", code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), &entries); err != nil {
		t.Fatalf("list printed %q: %v", stdout, err)
	}
	return entries, stdout
}

// TestCLIUsageErrors: bad input exits 2 with one line naming the problem,
// prints nothing on stdout and writes nothing to S3.
func TestCLIUsageErrors(t *testing.T) {
	cfg := s3Env(t)
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "backup", "primary.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, append(example, "extra: 1\n"...), 0o644)
	extraLine := bytes.Count(example, []byte("\n")) + 1
	badPod := filepath.Join(t.TempDir(), "badpod.yaml")
	os.WriteFile(badPod, bytes.Replace(example, []byte("operator: Equal"), []byte("operator: Always"), 1), 0o644)
	tolLine := bytes.Count(example[:bytes.Index(example, []byte("operator: Equal"))], []byte("\n")) + 1
	s3 := s3Args(cfg)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"compression", append([]string{"create", "--site", "p", "--compression", "xz"}, s3...), `--compression "xz" is not zstd or gzip`},
		{"no site", append([]string{"create", "--mysql-host", "h", "--mysql-database", "a"}, s3...), "--site is empty"},
		{"nothing to back up", append([]string{"create", "--site", "p"}, s3...), "nothing to back up"},
		{"database without host", append([]string{"create", "--site", "p", "--mysql-database", "app"}, s3...), "--mysql-database given without --mysql-host"},
		{"bad database name", append([]string{"create", "--site", "p", "--mysql-host", "h", "--mysql-database", "a.b"}, s3...), `MySQL database name "a.b"`},
		{"bad recipient", append([]string{"create", "--site", "p", "--mysql-host", "h", "--mysql-database", "a", "--age-recipient", "age1bogus"}, s3...), `--age-recipient "age1bogus"`},
		{"prefix", []string{"list", "--s3-bucket", cfg.Bucket, "--s3-endpoint", cfg.Endpoint, "--s3-prefix", "acme"}, `--s3-prefix "acme" must end in "/"`},
		{"no bucket", []string{"list", "--s3-endpoint", cfg.Endpoint}, "--s3-bucket is empty"},
		{"restore without id", append([]string{"restore", "--mysql-host", "h"}, s3...), "give a backup ID or --latest"},
		{"restore id and latest", append(append([]string{"restore", "--latest"}, s3...), "20260101T000000Z"), "not both"},
		{"restore jobs", append([]string{"restore", "--latest", "--restore-jobs", "-1", "--mysql-host", "h"}, s3...), "--restore-jobs -1 is negative"},
		{"dump jobs", append([]string{"create", "--site", "p", "--dump-jobs", "-2", "--mysql-host", "h", "--mysql-database", "a"}, s3...), "--dump-jobs -2 is negative"},
		{"journal name", append([]string{"create", "--site", "p", "--mysql-host", "h", "--mysql-database", "slipway_restore"}, s3...), `"slipway_restore" is reserved for the restore journal`},
		{"bad id", append(append([]string{"verify"}, s3...), "yesterday"), `backup ID "yesterday" is not of the form`},
		{"two ids", append(append([]string{"verify"}, s3...), "20260101T000000Z", "20260102T000000Z"), "give one backup ID"},
		{"prune without rule", append([]string{"prune"}, s3...), "no retention rule given"},
		{"status format", append([]string{"status", "--format", "xml"}, s3...), `--format "xml"`},
		{"unknown flag", append([]string{"create", "--colour"}, s3...), "flag provided but not defined: -colour"},
		{"password file", append([]string{"create", "--site", "p", "--mysql-password-file", "/nonexistent/pw"}, s3...), "--mysql-password-file"},
		{"values", []string{"cronjob", "--values", bad}, fmt.Sprintf("%s:%d: extra: unknown field", bad, extraLine)},
		{"no values", []string{"cronjob"}, "--values is required"},
		{"freeze without site", append([]string{"freeze", "--mysql-host", "h"}, s3...), `--site "" is empty`},
		{"freeze site with slash", append([]string{"freeze", "--site", "a/b", "--mysql-host", "h"}, s3...), `--site "a/b"`},
		{"freeze nothing", append([]string{"freeze", "--site", "primary"}, s3...), "nothing to freeze: give --mysql-host"},
		{"freeze host and socket", append([]string{"freeze", "--site", "primary", "--mysql-host", "h", "--mysql-socket", "/s"}, s3...), "--mysql-host and --mysql-socket both set"},
		{"unfreeze nothing", append([]string{"unfreeze", "--site", "primary"}, s3...), "nothing to freeze: give --mysql-host"},
		{"show without id", append([]string{"show"}, s3...), "give a backup ID or --latest"},
		{"show id and latest", append(append([]string{"show", "--latest"}, s3...), "20260101T000000Z"), "not both"},
		{"ca file missing", append([]string{"list", "--s3-ca-file", "/nonexistent/ca.pem"}, s3...), "--s3-ca-file: open /nonexistent/ca.pem"},
		{"ca file not PEM", append([]string{"list", "--s3-ca-file", bad}, s3...), "--s3-ca-file: " + bad + " holds no PEM certificate"},
		{"values: pod field", []string{"cronjob", "--values", badPod}, fmt.Sprintf("%s:%d: tolerations[0].operator: \"Always\" is not Exists or Equal", badPod, tolLine)},
		{"status site without servers", append([]string{"status", "--site", "dr"}, s3...), "--site dr: give the servers of that site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr: %s", code, stderr)
			}
			lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "backup: ") || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr %q: want one line \"backup: ...%s...\"", stderr, tc.want)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
	if entries, _ := listBackups(t, s3...); len(entries) != 0 {
		t.Errorf("bad usage wrote to S3: %+v", entries)
	}
}

// putFakeBackup stores a complete backup (one tiny dump and its manifest)
// that finished at `at`.
func putFakeBackup(t *testing.T, s backuptest.S3, at time.Time) {
	t.Helper()
	st, err := backup.NewS3Store(backup.S3Config{Endpoint: s.Endpoint, Region: s.Region, Bucket: s.Bucket,
		AccessKey: logging.Secret(s.AccessKey), SecretKey: logging.Secret(s.SecretKey)})
	if err != nil {
		t.Fatal(err)
	}
	id := backup.NewID(at)
	dump := backup.Dump{Kind: backup.KindMySQL, Database: "app", Key: s.Prefix + id + "/mysql-app.sql.zst", Size: 4, SHA256: strings.Repeat("a", 64)}
	m, _ := json.Marshal(backup.Manifest{Format: backup.ManifestFormat, ID: id, Site: "primary", Started: at, Finished: at,
		Compression: backup.CompressZstd, Dumps: []backup.Dump{dump}})
	for key, body := range map[string][]byte{dump.Key: []byte("dump"), s.Prefix + id + "/manifest.json": m} {
		if err := st.Put(context.Background(), key, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCLIStatus(t *testing.T) {
	cfg := s3Env(t)
	code, _, stderr := runCLI(t, append([]string{"status", "--max-age", "1h"}, s3Args(cfg)...)...)
	if code != 1 || !strings.Contains(stderr, "no complete backup") {
		t.Errorf("status of an empty prefix: exit %d, stderr %q; want 1 and a stale message", code, stderr)
	}
	putFakeBackup(t, cfg, time.Now().Add(-10*time.Minute))
	code, stdout, stderr := runCLI(t, append([]string{"status", "--max-age", "1h", "--format", "prometheus"}, s3Args(cfg)...)...)
	if code != 0 || !strings.Contains(stdout, "slipway_backup_stale 0\n") {
		t.Errorf("fresh status: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, append([]string{"status", "--max-age", "5m"}, s3Args(cfg)...)...)
	if code != 1 || !strings.Contains(stdout, `"stale": true`) {
		t.Errorf("stale status: exit %d, stdout %q", code, stdout)
	}
}

func writeWrapper(t *testing.T, dir, name, real, argvFile string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	script := fmt.Sprintf("#!/bin/sh\nprintf '%%s\\n' \"$0\" \"$@\" >> %s\nexec %s \"$@\"\n", argvFile, real)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecretsStayHidden runs create and restore through the CLI with a
// password-protected MariaDB user, a MongoDB URI with credentials and the
// S3 secret, then checks that none of them shows up in stdout, stderr
// (debug JSON logs), the child processes' argv, the result file or the
// manifest; nor in the errors of runs with wrong credentials.
func TestSecretsStayHidden(t *testing.T) {
	s3 := s3Env(t)
	primary, dr := backuptest.NewMariaDB(t, "PRIMARY"), backuptest.NewMariaDB(t, "DR")
	mongoP, mongoD := backuptest.NewMongo(t, "PRIMARY"), backuptest.NewMongo(t, "DR")
	tag := backuptest.RandHex(3)
	app, shop := "sec_"+tag, "secshop_"+tag
	for _, m := range []backuptest.MariaDB{primary, dr} {
		m.DropOnCleanup(t, app)
	}
	for _, m := range []backuptest.Mongo{mongoP, mongoD} {
		m.DropOnCleanup(t, shop)
	}
	user, pw := "bk_"+tag, "Pw-"+backuptest.RandHex(8)
	root := primary.DB(t)
	backuptest.MustExec(t, root, "CREATE DATABASE "+app, "CREATE TABLE "+app+".t (id INT PRIMARY KEY, v TEXT)",
		"INSERT INTO "+app+".t VALUES (1, 'x'), (2, 'y')",
		fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'", user, pw),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON *.* TO '%s'@'127.0.0.1'", user))
	t.Cleanup(func() { root.Exec(fmt.Sprintf("DROP USER '%s'@'127.0.0.1'", user)) })
	mongoP.Seed(t, shop, 20)

	mongoPW := "MongoPw-" + backuptest.RandHex(8)
	withCreds := func(uri string) string {
		u, err := url.Parse(uri)
		if err != nil {
			t.Fatal(err)
		}
		u.User = url.UserPassword("bk", mongoPW)
		u.RawQuery = "authMechanism=PLAIN"
		return u.String()
	}
	dir := t.TempDir()
	argv := filepath.Join(dir, "argv.txt")
	realDump, _ := exec.LookPath("mariadb-dump")
	realClient, _ := exec.LookPath("mariadb")
	dumpW := writeWrapper(t, dir, "dump", realDump, argv)
	clientW := writeWrapper(t, dir, "client", realClient, argv)
	mdumpW := writeWrapper(t, dir, "mongodump", mongoP.DumpBin, argv)
	mrestW := writeWrapper(t, dir, "mongorestore", mongoP.RestoreBin, argv)
	resultFile := filepath.Join(dir, "result.json")

	t.Setenv("SLIPWAY_MYSQL_PASSWORD", pw)
	t.Setenv("SLIPWAY_MONGO_URI", withCreds(mongoP.URI))
	secrets := []string{pw, mongoPW, s3.SecretKey}
	check := func(what, s string) {
		t.Helper()
		for _, sec := range secrets {
			if strings.Contains(s, sec) {
				t.Errorf("%s contains a secret (%.4s...):\n%s", what, sec, s)
			}
		}
	}
	base := append([]string{"--debug", "--log-format", "json"}, []string{}...)
	primaryPort := strconv.Itoa(primary.Port)
	code, stdout, stderr := runCLI(t, append(append(base, "create", "--site", "primary", "--result", resultFile,
		"--mysql-host", "127.0.0.1", "--mysql-port", primaryPort, "--mysql-user", user, "--mysql-database", app, "--mysql-dump-bin", dumpW,
		"--mongo-database", shop, "--mongodump-bin", mdumpW), s3Args(s3)...)...)
	if code != 0 {
		t.Fatalf("create: exit %d\n%s", code, stderr)
	}
	check("create stdout", stdout)
	check("create stderr", stderr)
	if !strings.Contains(stdout, `"kind": "BackupResult"`) {
		t.Errorf("create stdout is not a BackupResult:\n%s", stdout)
	}
	res, _ := os.ReadFile(resultFile)
	check("result file", string(res))
	entries, listed := listBackups(t, s3Args(s3)...)
	if len(entries) != 1 || !entries[0].Complete {
		t.Fatalf("backups after create: %+v", entries)
	}
	check("manifest", listed)

	// Restore at the DR site through the CLI, credentials in the URI.
	t.Setenv("SLIPWAY_MONGO_URI", withCreds(mongoD.URI))
	t.Setenv("SLIPWAY_MYSQL_PASSWORD", "")
	drPort := strconv.Itoa(dr.Port)
	code, stdout, stderr = runCLI(t, append(append(base, "restore", "--latest", "--mysql-host", "127.0.0.1", "--mysql-port", drPort,
		"--mysql-client-bin", clientW, "--mongorestore-bin", mrestW, "--mongo-no-index-restore"), s3Args(s3)...)...)
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, stderr)
	}
	check("restore stdout", stdout)
	check("restore stderr", stderr)
	var n int
	if err := dr.DB(t).QueryRow("SELECT COUNT(*) FROM " + app + ".t").Scan(&n); err != nil || n != 2 {
		t.Errorf("restored rows: %d, %v", n, err)
	}

	// Wrong credentials: the errors must not echo them either.
	wrong := "Wrong-" + backuptest.RandHex(8)
	secrets = append(secrets, wrong)
	t.Setenv("SLIPWAY_MYSQL_PASSWORD", wrong)
	other := s3
	other.Prefix += "wrong/" // a backup may already exist for this second
	code, _, stderr = runCLI(t, append(append(base, "create", "--site", "primary", "--mysql-host", "127.0.0.1", "--mysql-port", primaryPort,
		"--mysql-user", user, "--mysql-database", app, "--mysql-dump-bin", dumpW), s3Args(other)...)...)
	if code != 1 || !strings.Contains(stderr, "Access denied") {
		t.Errorf("wrong MySQL password: exit %d, stderr %q", code, stderr)
	}
	check("wrong-password stderr", stderr)
	t.Setenv("SLIPWAY_MYSQL_PASSWORD", pw)
	t.Setenv("AWS_SECRET_ACCESS_KEY", wrong)
	code, _, stderr = runCLI(t, append(append(base, "list"), s3Args(s3)...)...)
	if code != 1 || !strings.Contains(stderr, "SignatureDoesNotMatch") {
		t.Errorf("wrong S3 secret: exit %d, stderr %q", code, stderr)
	}
	check("wrong-S3-secret stderr", stderr)

	args, _ := os.ReadFile(argv)
	if !strings.Contains(string(args), "--single-transaction") || !strings.Contains(string(args), "--archive") {
		t.Errorf("wrappers did not record the tools' arguments:\n%s", args)
	}
	check("child process arguments", string(args))
	if strings.Contains(string(args), "mongodb://") {
		t.Errorf("a MongoDB URI was passed on a command line:\n%s", args)
	}
}

// TestCLIFreeze runs the failover's primary-side commands as the failover
// job does: freeze, a final create, unfreeze, and reads the fields its
// report prints from their results.
func TestCLIFreeze(t *testing.T) {
	cfg := s3Env(t)
	my := backuptest.NewMariaDB(t, "PRIMARY")
	my.FreezeLock(t)
	db := my.DB(t)
	name := "cli_frz_" + backuptest.RandHex(3)
	my.DropOnCleanup(t, name)
	backuptest.MustExec(t, db, "CREATE DATABASE "+name, "CREATE TABLE "+name+".t (id INT PRIMARY KEY)", "INSERT INTO "+name+".t VALUES (1)")
	t.Cleanup(func() { db.Exec("SET GLOBAL read_only = OFF") })
	conn := append(s3Args(cfg), "--site", "primary", "--mysql-host", my.Host, "--mysql-port", strconv.Itoa(my.Port))
	run := func(args ...string) result.BackupResult {
		t.Helper()
		code, stdout, stderr := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d\n%s", args[0], code, stderr)
		}
		var r result.BackupResult
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("%s printed %q: %v", args[0], stdout, err)
		}
		return r
	}
	fr := run(append([]string{"freeze"}, conn...)...)
	if fr.Operation != "freeze" || fr.Freeze == nil || fr.Freeze.State != "frozen" || !fr.Freeze.WriteRefused || fr.Freeze.LastWriteAt.IsZero() || len(fr.Done) == 0 {
		t.Fatalf("freeze result: %+v freeze %+v", fr, fr.Freeze)
	}
	if again := run(append([]string{"freeze"}, conn...)...); len(again.Done) != 0 {
		t.Fatalf("second freeze did %q", again.Done)
	}
	// The scheduled create makes no backup while the site is frozen.
	if sk := run(append([]string{"create", "--skip-frozen", "--mysql-database", name}, conn...)...); sk.Backup != nil || sk.Skipped == "" {
		t.Fatalf("create --skip-frozen at the frozen site: %+v", sk)
	}
	if entries, _ := listBackups(t, s3Args(cfg)...); len(entries) != 0 {
		t.Fatalf("create --skip-frozen at the frozen site left backups: %+v", entries)
	}
	// The failover's final backup: create, then verify, in one run (the
	// primary's <name>-final CronJob).
	cr := run(append([]string{"create", "--verify", "--mysql-database", name}, conn...)...)
	if cr.Backup == nil || cr.Backup.DataLossWindowSeconds == nil || *cr.Backup.DataLossWindowSeconds != 0 || cr.Backup.Freeze == nil ||
		!cr.Backup.Freeze.LastWriteAt.Equal(fr.Freeze.LastWriteAt) || !cr.Verified {
		t.Fatalf("create --verify at the frozen site: verified %t %+v", cr.Verified, cr.Backup)
	}
	// What the failover's report reads from S3 alone, on a node that
	// reaches no database: show prints it at create's paths, list has it in
	// each manifest.
	for _, args := range [][]string{append([]string{"show", "--latest"}, s3Args(cfg)...), append(append([]string{"show"}, s3Args(cfg)...), cr.Backup.ID)} {
		sh := run(args...)
		if sh.Operation != "show" || sh.Backup == nil || sh.Backup.ID != cr.Backup.ID || sh.Backup.DataLossWindowSeconds == nil ||
			*sh.Backup.DataLossWindowSeconds != 0 || sh.Backup.Freeze == nil || !sh.Backup.Freeze.LastWriteAt.Equal(fr.Freeze.LastWriteAt) {
			t.Fatalf("%v: %+v", args, sh.Backup)
		}
	}
	if entries, _ := listBackups(t, s3Args(cfg)...); len(entries) == 0 || entries[0].Manifest == nil || entries[0].Manifest.DataLossWindowSeconds == nil ||
		entries[0].Manifest.Freeze == nil || entries[0].ID != cr.Backup.ID {
		t.Fatalf("list: %+v", entries)
	}
	un := run(append([]string{"unfreeze"}, conn...)...)
	if un.Freeze == nil || un.Freeze.State != "unfrozen" || len(un.Done) == 0 {
		t.Fatalf("unfreeze result: %+v", un)
	}
	var ro bool
	if err := db.QueryRow("SELECT @@GLOBAL.read_only").Scan(&ro); err != nil || ro {
		t.Fatalf("read_only after unfreeze: %v %v", ro, err)
	}
	// Unfrozen, the scheduled create backs up again (and records no freeze).
	if again := run(append([]string{"create", "--skip-frozen", "--mysql-database", name}, conn...)...); again.Backup == nil || again.Skipped != "" || again.Backup.Freeze != nil {
		t.Fatalf("create --skip-frozen after unfreeze: %+v", again)
	}
}

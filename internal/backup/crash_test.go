package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/testenv"
)

var crashBin struct {
	once sync.Once
	dir  string
	err  error
}

// TestMain removes the crash-hooked binary the crash tests build.
func TestMain(m *testing.M) {
	code := m.Run()
	if crashBin.dir != "" {
		os.RemoveAll(crashBin.dir)
	}
	os.Exit(code)
}

// crashBinary builds the backup command with the crash hook, once.
func crashBinary(t *testing.T) string {
	t.Helper()
	crashBin.once.Do(func() {
		if crashBin.dir, crashBin.err = os.MkdirTemp("", "slipway-crash-bin-"); crashBin.err != nil {
			return
		}
		// One build for every test package of the run.
		_, crashBin.err = testenv.CrashBinaries(crashBin.dir, "./cmd/backup")
	})
	if crashBin.err != nil {
		t.Fatal(crashBin.err)
	}
	return filepath.Join(crashBin.dir, "backup")
}

// crashRun is one run of the hooked binary.
type crashRun struct {
	killed         bool
	code           int
	stdout, stderr string
	steps          []string
}

// crashEnv runs the hooked binary against this test's servers, each run
// with a private TMPDIR and an environment marker its children inherit.
type crashEnv struct {
	e      *env
	bin    string
	tmp    string
	marker string
}

func newCrashEnv(e *env) *crashEnv {
	tmp := filepath.Join(e.t.TempDir(), "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		e.t.Fatal(err)
	}
	return &crashEnv{e: e, bin: crashBinary(e.t), tmp: tmp, marker: "SLIPWAY_CRASH_TEST=" + randHex(6)}
}

func (c *crashEnv) s3Args() []string {
	s := c.e.s3
	return []string{"--s3-endpoint", s.Endpoint, "--s3-bucket", s.Bucket, "--s3-region", s.Region, "--s3-prefix", s.Prefix}
}

func (c *crashEnv) drArgs() []string {
	return []string{"--mysql-host", c.e.dr.Host, "--mysql-port", strconv.Itoa(c.e.dr.Port),
		"--mongorestore-bin", c.e.mongoD.RestoreBin, "--mongo-no-index-restore"}
}

// run runs the binary; point names the crash step ("" for none).
func (c *crashEnv) run(point string, mongoURI string, args ...string) crashRun {
	t := c.e.t
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "steps")
	cmd := exec.Command(c.bin, append([]string{"--log-format", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+c.tmp, c.marker,
		"AWS_ACCESS_KEY_ID="+c.e.s3.AccessKey.Reveal(), "AWS_SECRET_ACCESS_KEY="+c.e.s3.SecretKey.Reveal(),
		"SLIPWAY_MONGO_URI="+mongoURI, crashpoint.EnvLog+"="+logPath)
	if point != "" {
		cmd.Env = append(cmd.Env, crashpoint.EnvPoint+"="+point)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := crashRun{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		r.killed = ws.Signaled() && ws.Signal() == syscall.SIGKILL
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	steps, _ := os.ReadFile(logPath)
	r.steps = strings.Fields(string(steps))
	return r
}

// noOrphans fails when a child of a killed run still runs (it would carry
// the marker in its environment) or a run left a temporary file.
func (c *crashEnv) noOrphans() {
	t := c.e.t
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var alive []string
		procs, _ := filepath.Glob("/proc/[0-9]*/environ")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err == nil && bytes.Contains(b, []byte(c.marker)) {
				cmdline, _ := os.ReadFile(filepath.Join(filepath.Dir(p), "cmdline"))
				alive = append(alive, strings.ReplaceAll(string(cmdline), "\x00", " "))
			}
		}
		if len(alive) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of a killed run still run: %q", alive)
		}
		time.Sleep(100 * time.Millisecond)
	}
	left, _ := os.ReadDir(c.tmp)
	if len(left) > 0 {
		var names []string
		for _, l := range left {
			names = append(names, l.Name())
		}
		t.Errorf("temporary files left behind: %v", names)
	}
}

// resetDR gives the DR site its own, older data again, and forgets the
// journal entries of this test's databases.
func (e *env) resetDR(drRows, drDocs int, app1, app2, shop string) {
	t := e.t
	t.Helper()
	ctx := context.Background()
	db := sqlDB(t, e.dr)
	for _, n := range []string{app1, app2} {
		for _, s := range []string{"", mysqlNewSuffix, mysqlOldSuffix} {
			mustExec(t, db, "DROP DATABASE IF EXISTS "+quoteID(n+s))
		}
	}
	e.forgetJournal(app1, app2, shop)
	if err := mongoClient(t, e.mongoD).Database(shop).Drop(ctx); err != nil {
		t.Fatal(err)
	}
	seedMySQL(t, e.dr, app1, app2, drRows)
	seedMongo(t, e.mongoD, shop, drDocs)
}

// forgetJournal deletes the journal entries of the databases.
func (e *env) forgetJournal(names ...string) {
	t := e.t
	ctx := context.Background()
	db := sqlDB(t, e.dr)
	if err := (mysqlJournal{db}).init(ctx); err != nil {
		t.Fatal(err)
	}
	cl := mongoClient(t, e.mongoD)
	for _, n := range names {
		mustExec(t, db, "DELETE FROM "+quoteID(journalDB)+".journal WHERE db = '"+n+"'", "DELETE FROM "+quoteID(journalDB)+".loaded WHERE db = '"+n+"'")
		if _, err := (mongoJournal{cl}).coll().DeleteOne(ctx, bson.D{{Key: "_id", Value: n}}); err != nil {
			t.Fatal(err)
		}
	}
}

// pendingJournal lists the journal entries of the databases that are not idle.
func (e *env) pendingJournal(names ...string) []string {
	t := e.t
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, n := range names {
		my, err := mysqlJournal{sqlDB(t, e.dr)}.get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		mg, err := mongoJournal{mongoClient(t, e.mongoD)}.get(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range []*journalEntry{my, mg} {
			if j != nil && j.pending() {
				out = append(out, j.Database+" "+j.State)
			}
		}
		var loaded int
		sqlDB(t, e.dr).QueryRow("SELECT COUNT(*) FROM "+quoteID(journalDB)+".loaded WHERE db = ?", n).Scan(&loaded)
		if loaded > 0 {
			out = append(out, fmt.Sprintf("%s: %d loaded-table records", n, loaded))
		}
	}
	return out
}

// TestRestoreCrash kills the restore binary (SIGKILL, through the crash
// hook) at every named step of the load and of the swap, with two MySQL
// databases and a MongoDB one, and checks that ONE rerun (alternately of
// --latest and of the backup's ID) completes with the DR site equal to the
// backup and nothing left behind; that status reports an interrupted swap
// in between; and that a further run changes nothing.
func TestRestoreCrash(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	const drRows, drDocs = 500, 30
	app1, app2, shop := e.seed(4000, 300, drRows, drDocs)
	my, mg := e.primary, e.mongoP
	my.Databases, mg.Databases = []string{app1, app2}, []string{shop}
	m, err := Create(ctx, CreateOptions{Common: e.common(), Site: "primary", MySQL: my, Mongo: mg})
	if err != nil {
		t.Fatal(err)
	}
	wantMy, wantMg := mysqlState(t, e.primary, app1, app2), mongoState(t, e.mongoP, shop)
	c := newCrashEnv(e)
	drURI := e.mongoD.URI.Reveal()
	// Flags first: a backup ID ends the command line.
	restore := func(point string, args ...string) crashRun {
		return c.run(point, drURI, append(append(append([]string{"restore"}, c.s3Args()...), c.drArgs()...), args...)...)
	}
	status := func() crashRun {
		return c.run("", drURI, append(append([]string{"status", "--max-age", "1000h"}, c.s3Args()...), "--mysql-host", e.dr.Host, "--mysql-port", strconv.Itoa(e.dr.Port))...)
	}
	for i, tc := range []struct {
		point  string
		swap   bool // killed once the swap began: status reports it
		resume bool // the rerun resumes the staging load
	}{
		{point: "backup.restore.load", resume: true},
		{point: "backup.restore.table:3", resume: true},
		{point: "backup.restore.staged:2", resume: true},
		{point: "backup.restore.prepared", swap: true},
		{point: "backup.restore.swap.before", swap: true},
		{point: "backup.restore.swap.after", swap: true},
		{point: "backup.restore.objects:2", swap: true},
		{point: "backup.restore.swap.after:2", swap: true},
		{point: "backup.restore.mongo.rename", swap: true},
		{point: "backup.restore.swapped", swap: true},
		{point: "backup.restore.commit", swap: true},
	} {
		parent := t
		t.Run(tc.point, func(t *testing.T) {
			e.t = t
			defer func() { e.t = parent }()
			e.resetDR(drRows, drDocs, app1, app2, shop)
			r := restore(tc.point, "--latest", "--restore-jobs", "2")
			if !r.killed {
				t.Fatalf("restore not killed at %s (exit %d; steps %v):\n%s", tc.point, r.code, r.steps, r.stderr)
			}
			c.noOrphans()
			st := status()
			if tc.swap {
				if st.code != 1 || !strings.Contains(st.stderr, "interrupted during the swap") || !strings.Contains(st.stderr, m.ID) {
					t.Errorf("status after a kill during the swap: exit %d, stderr:\n%s", st.code, st.stderr)
				}
			} else if st.code != 0 {
				t.Errorf("status after a kill during the load: exit %d, stderr:\n%s", st.code, st.stderr)
			}
			pick := "--latest"
			if i%2 == 1 {
				pick = m.ID
			}
			r = restore("", pick)
			if r.code != 0 {
				t.Fatalf("rerun of restore %s: exit %d\n%s", pick, r.code, r.stderr)
			}
			if got := strings.Contains(r.stderr, "resuming the staging load"); got != tc.resume {
				t.Errorf("rerun resumed the load: %v, want %v\n%s", got, tc.resume, r.stderr)
			}
			c.noOrphans()
			if diff := cmp.Diff(wantMy, mysqlState(t, e.dr, app1, app2)); diff != "" {
				t.Errorf("DR MySQL after the rerun (-backup +dr):\n%s", diff)
			}
			if diff := cmp.Diff(wantMg, mongoState(t, e.mongoD, shop)); diff != "" {
				t.Errorf("DR MongoDB after the rerun (-backup +dr):\n%s", diff)
			}
			if p := e.pendingJournal(app1, app2, shop); len(p) > 0 {
				t.Errorf("journal entries left pending: %v", p)
			}
			if st := status(); st.code != 0 {
				t.Errorf("status after the rerun: exit %d\n%s", st.code, st.stderr)
			}
			// A further run finds every database holding the backup.
			r = restore("", "--latest")
			var res struct{ Restored, Unchanged []string }
			if err := json.Unmarshal([]byte(r.stdout), &res); r.code != 0 || err != nil {
				t.Fatalf("further restore: exit %d, %v\n%s", r.code, err, r.stderr)
			}
			if len(res.Restored) != 0 || len(res.Unchanged) != 3 {
				t.Errorf("further restore: restored %v, unchanged %v; want nothing restored, 3 unchanged", res.Restored, res.Unchanged)
			}
		})
	}
}

// TestCreateCrash kills backup create (SIGKILL, through the crash hook) in
// the middle of a multipart upload, after each dump and before the
// manifest, and checks that one rerun succeeds, removes what the killed run
// left (its objects and open multipart uploads, once its heartbeat is
// stale) and that list never shows a killed backup as complete.
func TestCreateCrash(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	app1, app2, shop := e.seed(2000, 100, 10, 5)
	// Over two parts of incompressible data: the upload is multipart.
	mustExec(t, sqlDB(t, e.primary), "CREATE TABLE "+quoteID(app1)+".bulk (id INT PRIMARY KEY, b LONGBLOB)",
		"INSERT INTO "+quoteID(app1)+".bulk SELECT seq, RANDOM_BYTES(1024) FROM "+quoteID(app1)+".seq_1_to_14000")
	c := newCrashEnv(e)
	primaryURI := e.mongoP.URI.Reveal()
	const stale = 2 * time.Second
	create := func(point string) crashRun {
		return c.run(point, primaryURI, append([]string{"create", "--site", "primary", "--stale-after", stale.String(),
			"--mysql-host", e.primary.Host, "--mysql-port", strconv.Itoa(e.primary.Port), "--mysql-database", app1, "--mysql-database", app2,
			"--mongo-database", shop, "--mongodump-bin", e.mongoP.DumpBin}, c.s3Args()...)...)
	}
	completes := 0
	count := func() (complete, incomplete []string) {
		t.Helper()
		entries, err := List(ctx, ListOptions{Common: e.common()})
		if err != nil {
			t.Fatal(err)
		}
		for _, en := range entries {
			if en.Complete {
				complete = append(complete, en.ID)
			} else {
				incomplete = append(incomplete, en.ID)
			}
		}
		return complete, incomplete
	}
	for _, point := range []string{"backup.create.upload", "backup.create.dumped", "backup.create.dumped:2", "backup.create.manifest"} {
		t.Run(point, func(t *testing.T) {
			r := create(point)
			if !r.killed {
				t.Fatalf("create not killed at %s (exit %d; steps %v):\n%s", point, r.code, r.steps, r.stderr)
			}
			c.noOrphans()
			if ups, err := e.store.ListUploads(ctx, e.s3.Prefix); err != nil || (point == "backup.create.upload" && len(ups) == 0) {
				t.Errorf("open multipart uploads after the kill: %d, %v", len(ups), err)
			}
			if complete, _ := count(); len(complete) != completes {
				t.Errorf("after the kill: complete backups %v, want %d: the killed one is listed as complete", complete, completes)
			}
			time.Sleep(stale + time.Second)
			if r = create(""); r.code != 0 {
				t.Fatalf("rerun of create: exit %d\n%s", r.code, r.stderr)
			}
			completes++
			c.noOrphans()
			if complete, incomplete := count(); len(complete) != completes || len(incomplete) != 0 {
				t.Errorf("after the rerun: complete %v (want %d), incomplete %v (want none)", complete, completes, incomplete)
			}
			ups, err := e.store.ListUploads(ctx, e.s3.Prefix)
			if err != nil {
				t.Fatal(err)
			}
			if len(ups) != 0 {
				t.Errorf("multipart uploads left open: %+v", ups)
			}
			if _, err := Verify(ctx, VerifyOptions{Common: e.common(), Latest: true}); err != nil {
				t.Errorf("verify of the rerun's backup: %v", err)
			}
		})
	}
}

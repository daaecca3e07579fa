package push

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/push/pushtest"
	"github.com/slipwayci/slipway/internal/testenv"
)

// killedRun is what a push-registry killed with SIGKILL mid-upload
// leaves: the records of its open sessions (its journal's lock is
// released by the kernel, the files stay) and the sessions themselves.
type killedRun struct {
	journal *uploadJournal
	c       *client
	repo    string
}

// open starts an upload session of blob d, as a push does (recorded
// before any byte is sent).
func (k *killedRun) open(t *testing.T, d v1.Hash) string {
	t.Helper()
	loc, mounted, err := k.c.startUpload(context.Background(), k.repo, "", d)
	if err != nil || mounted {
		t.Fatalf("starting an upload: %v (mounted %t)", err, mounted)
	}
	return loc
}

// patch sends n bytes into the session at loc: its data grows past the
// offset its location records, as when a run dies sending a blob.
func (k *killedRun) patch(t *testing.T, loc string, n int) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPatch, loc, bytes.NewReader(make([]byte, n)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := k.c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH: %s", resp.Status)
	}
}

// die is the kill: the kernel drops the run's lock; nothing else of the
// run is undone.
func (k *killedRun) die() { k.journal.lock.Close() }

// records lists the upload records in stateDir, checking they are
// private.
func records(t *testing.T, stateDir string) []uploadRecord {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(uploadsDir(stateDir), "*", "*.json"))
	var out []uploadRecord
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
		data, _ := os.ReadFile(f)
		var rec uploadRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, rec)
	}
	return out
}

// noRunState fails when a run's upload directory is left in stateDir.
func noRunState(t *testing.T, stateDir string) {
	t.Helper()
	if left, _ := filepath.Glob(filepath.Join(uploadsDir(stateDir), "*")); len(left) > 0 {
		t.Errorf("upload state left: %v", left)
	}
}

// uploadObjects lists repo's upload session objects in st's container.
func uploadObjects(t *testing.T, st *objectStore, repo string) []string {
	t.Helper()
	names, err := st.list(context.Background(), st.container, "files/docker/registry/v2/repositories/"+repo+"/_uploads/")
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// blockingBody sends n bytes, then blocks until stop is closed (the run
// is killed mid-blob).
type blockingBody struct {
	n    int
	sent int
	stop chan struct{}
}

func (b *blockingBody) Read(p []byte) (int, error) {
	if b.sent >= b.n {
		<-b.stop
		return 0, io.ErrUnexpectedEOF
	}
	n := min(len(p), b.n-b.sent)
	clear(p[:n])
	b.sent += n
	return n, nil
}

func (b *blockingBody) Close() error { return nil }

// TestKilledUploadsSwift: a run killed (its registry too, as SIGKILL does
// through the parent-death signal) while it sends a blob of two Swift
// segments, with a second session opened and a third that got some data,
// leaves their objects in the region's container and its records in the
// state directory. One rerun of the push cancels every session (no
// _uploads object left, nor the killed upload's segments), removes the
// records, and a further run finds nothing to cancel.
func TestKilledUploadsSwift(t *testing.T) {
	k := testKeystone(t)
	img := pushtest.RandomImage(t, 2, 1500<<10)
	layers, _ := img.Layers()
	repo := pushtest.UniqueRepo(t)
	regions := []Region{k.region("a")}
	o := k.storageOpts(t, regions, img, repo, "v1")
	o.Conn.defaults()
	if err := o.Auth.load(regions); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	logins, err := swiftLogins(regions, &o.Auth)
	if err != nil {
		t.Fatal(err)
	}
	opened, stores, stop, err := openStorage(ctx, &o.Conn, o.Log, regions, logins)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	killed := &killedRun{journal: newUploadJournal(o.StateDir, o.Log), repo: repo}
	if killed.c, _, err = dial(ctx, &o.Auth, &o.Conn, opened[0], stores["a"], []string{repo}, killed.journal); err != nil {
		t.Fatal(err)
	}
	l0, _ := layers[0].Digest()
	l1, _ := layers[1].Digest()
	cfg, _ := img.ConfigName()
	sending := killed.open(t, l0)
	killed.open(t, l1)
	killed.patch(t, killed.open(t, cfg), 100)
	// Killed while its registry opened a session: recorded, no location.
	if _, err := killed.journal.begin(uploadRecord{Region: "a", Storage: storageKey(opened[0]), Repository: repo, Digest: cfg.String(), Started: time.Now().UTC(), OpenBy: time.Now().UTC().Add(time.Minute)}, stores["a"]); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(killed.c.base+"/v2/"+repo+"/blobs/uploads/", "", nil)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("opening a session: %v %v", resp, err)
	}
	resp.Body.Close()
	unrecorded := locationUUID(resp.Header.Get("Location"))

	// Send more than one segment of the first blob, then kill.
	st := k.store(t, "a")
	body := &blockingBody{n: 1200 << 10, stop: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = killed.c.putBlob(ctx, sending, l0, layerSize(t, layers[0]), body)
	}()
	dataObj := st.uploadObjectsDir(repo, locationUUID(sending)) + "data"
	var segments string
	err = poll.Until(ctx, poll.Constant(100*time.Millisecond), func(ctx context.Context) (bool, error) {
		h, err := st.head(ctx, dataObj)
		if err != nil || h == nil || h.ObjectManifest == "" {
			return false, err
		}
		segments = h.ObjectManifest
		container, prefix, _ := strings.Cut(segments, "/")
		names, err := st.list(ctx, container, prefix)
		return len(names) >= 1, err
	})
	if err != nil {
		t.Fatalf("waiting for the first segment of the upload: %v", err)
	}
	reg := stores["a"].reg
	_ = reg.cmd.Process.Kill()
	<-reg.exited
	reg.lock.Close()
	close(body.stop)
	wg.Wait()
	killed.die()

	if n := len(records(t, o.StateDir)); n != 4 {
		t.Fatalf("the killed run left %d upload records, want 4", n)
	}
	if left := strings.Join(uploadObjects(t, st, repo), " "); !strings.Contains(left, locationUUID(sending)+"/data") || !strings.Contains(left, unrecorded+"/startedat") {
		t.Fatalf("the killed run left no upload session in Swift: the test kills nothing (%s)", left)
	}

	// One rerun converges.
	if _, err := run(t, o); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if left := uploadObjects(t, st, repo); len(left) > 0 {
		t.Errorf("upload sessions left in Swift after the rerun:\n  %s", strings.Join(left, "\n  "))
	}
	container, prefix, _ := strings.Cut(segments, "/")
	if left, err := st.list(ctx, container, prefix); err != nil || len(left) > 0 {
		t.Errorf("segments of the killed upload left: %v %v", left, err)
	}
	noRunState(t, o.StateDir)
	mustBeClean(t, o.StateDir)
	if got := pushtest.TagDigest(t, testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A"), repo, "v1"); got != pushtest.Digest(t, img) {
		t.Errorf("after the rerun, tag v1 = %q", got)
	}
}

// TestKilledUploadsRegistry: in a registry region, the session a killed
// run opened and had sent nothing into is cancelled by the rerun (its
// location answers BLOB_UPLOAD_UNKNOWN); one that had got data, which
// distribution 2.8 will not cancel, is named in a warning with the
// directory to remove; both records go.
func TestKilledUploadsRegistry(t *testing.T) {
	host := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_A")
	img := pushtest.RandomImage(t, 1, 1000)
	layers, _ := img.Layers()
	l0, _ := layers[0].Digest()
	repo := pushtest.UniqueRepo(t)
	regions := []Region{{Name: "a", Registry: host}}
	o := layoutOpts(t, regions, img, repo, "v1")
	o.StateDir = t.TempDir()
	var logs bytes.Buffer
	var mu sync.Mutex
	o.Log = slog.New(slog.NewTextHandler(io.MultiWriter(lockedWriter{&mu, &logs}, tWriter{t}), nil))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	killed := &killedRun{journal: newUploadJournal(o.StateDir, o.Log), repo: repo}
	var err error
	if killed.c, _, err = dial(ctx, &o.Auth, &o.Conn, regions[0], nil, []string{repo}, killed.journal); err != nil {
		t.Fatal(err)
	}
	idle := killed.open(t, l0)
	grown := killed.open(t, l0)
	killed.patch(t, grown, 100)
	killed.die()
	if n := len(records(t, o.StateDir)); n != 2 {
		t.Fatalf("the killed run left %d upload records, want 2", n)
	}
	if code := uploadStatus(t, idle); code != "open" {
		t.Fatalf("before the rerun the session is %s", code)
	}

	if _, err := run(t, o); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	if code := uploadStatus(t, idle); code != "BLOB_UPLOAD_UNKNOWN" {
		t.Errorf("after the rerun the idle session answers %s, want BLOB_UPLOAD_UNKNOWN (cancelled)", code)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	pushtest.MustContain(t, out, "cancelled an upload session a killed run left", "an upload session cannot be cancelled through the registry",
		"directory=docker/registry/v2/repositories/"+repo+"/_uploads/"+locationUUID(grown)+"/")
	noRunState(t, o.StateDir)

	// A live run's cancel of such a session (a PUT that failed mid-blob)
	// warns and forgets it: the run leaves no record behind.
	live := &killedRun{journal: newUploadJournal(o.StateDir, o.Log), repo: repo, c: killed.c}
	live.c.journal = live.journal
	failed := live.open(t, l0)
	live.patch(t, failed, 100)
	live.c.cancelUpload(failed)
	live.journal.close()
	mu.Lock()
	out = logs.String()
	mu.Unlock()
	pushtest.MustContain(t, out, "_uploads/"+locationUUID(failed)+"/")
	noRunState(t, o.StateDir)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// uploadStatus asks the registry about the session at loc: "open", or the
// error code it answers.
func uploadStatus(t *testing.T, loc string) string {
	t.Helper()
	resp, err := http.Get(loc)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return "open"
	}
	var body struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	if len(body.Errors) == 0 {
		return resp.Status
	}
	return body.Errors[0].Code
}

// TestUploadRecords: the journal writes nothing until a session opens,
// keeps one private record per open session, and removes its directory
// when every session ended; the sweep leaves a live run's records alone.
func TestUploadRecords(t *testing.T) {
	state := t.TempDir()
	j := newUploadJournal(state, slog.New(slog.NewTextHandler(tWriter{t}, nil)))
	j.close()
	if _, err := os.Stat(uploadsDir(state)); !os.IsNotExist(err) {
		t.Fatalf("a run without uploads wrote state: %v", err)
	}
	loc := "http://127.0.0.1:5000/v2/acme/img/blobs/uploads/0d6c6b8e-3a0b-4c43-9a53-2b1f0c0e9d4a?_state=x"
	file, err := j.begin(uploadRecord{Region: "a", Storage: "registry r", Repository: "acme/img", Started: time.Now()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := records(t, state); len(got) != 1 || got[0].UUID != "" {
		t.Fatalf("before the session opens: records = %+v", got)
	}
	if err := j.opened(file, loc); err != nil {
		t.Fatal(err)
	}
	if got := records(t, state); len(got) != 1 || got[0].UUID != "0d6c6b8e-3a0b-4c43-9a53-2b1f0c0e9d4a" {
		t.Fatalf("records = %+v", got)
	}
	// A live run's records are not touched by another run's sweep.
	cancelLeftUploads(context.Background(), &Conn{StateDir: state}, &Auth{}, j.log, []Region{{Name: "a", Registry: "r"}}, nil)
	if len(records(t, state)) != 1 {
		t.Fatal("the sweep removed a live run's record")
	}
	j.done(loc)
	j.close()
	noRunState(t, state)
}

func TestLocationSession(t *testing.T) {
	for _, tc := range []struct{ loc, repo, uuid string }{
		{"http://h:5000/v2/acme/img/blobs/uploads/0d6c6b8e-3a0b-4c43-9a53-2b1f0c0e9d4a?_state=abc", "acme/img", "0d6c6b8e-3a0b-4c43-9a53-2b1f0c0e9d4a"},
		{"https://h/v2/a/blobs/uploads/0D6C6B8E-3A0B-4C43-9A53-2B1F0C0E9D4A", "a", "0D6C6B8E-3A0B-4C43-9A53-2B1F0C0E9D4A"},
		{"http://h/v2/acme/img/blobs/uploads/../x", "", ""},
		{"http://h/v2/acme/img/blobs/uploads/", "", ""},
		{"http://h/upload/0d6c6b8e-3a0b-4c43-9a53-2b1f0c0e9d4a", "", ""},
	} {
		if repo, uuid := locationSession(tc.loc); repo != tc.repo || uuid != tc.uuid {
			t.Errorf("locationSession(%q) = %q, %q; want %q, %q", tc.loc, repo, uuid, tc.repo, tc.uuid)
		}
	}
}

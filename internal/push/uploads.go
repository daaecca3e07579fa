package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/objects"

	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/runlock"
)

// A run records every blob upload session it opens, so that the next run
// cancels those a killed run (SIGKILL: no clean-up of its own) left open.
// Distribution keeps an open session's objects in the storage
// (docker/registry/v2/repositories/REPO/_uploads/UUID/) until its upload
// purging removes them, a week later by default, and never for the
// registry push-registry runs on a swift region.
//
// The records of a run are in a directory of its own below the state
// directory, uploads/runNNN: a lock the run holds, and one file (0600) per
// open session, written before its blob is sent and removed once the
// upload finished or was cancelled. A directory whose lock is free belongs
// to a run that is gone; the next run of the same regions cancels its
// sessions and removes it (runlock).

// uploadRecord is one open upload session.
type uploadRecord struct {
	Region string `json:"region"`
	// Storage says where the session is: "swift AUTHURL REGION CONTAINER
	// PREFIX" for a swift region (cancelled by deleting its objects), or
	// "registry HOST" (cancelled by DELETE of its location).
	Storage    string    `json:"storage"`
	Repository string    `json:"repository"`
	Digest     string    `json:"digest"`
	UUID       string    `json:"uuid"`
	Location   string    `json:"location"`
	Started    time.Time `json:"started"`
	// OpenBy is when the request that opens the session has ended, its
	// retries included: a session of a record without a location started
	// between Started and OpenBy.
	OpenBy time.Time `json:"openBy"`
}

// storageKey says where region r keeps its upload sessions: a record is
// acted on only by a run whose region of the same name has the same key.
func storageKey(r Region) string {
	if s := r.Swift; s != nil {
		return strings.Join([]string{"swift", s.AuthURL, s.Region, s.Container, strings.Trim(s.Prefix, "/")}, " ")
	}
	return "registry " + r.Registry
}

// recordMaxAge is how long the record of a session a dead run left is
// kept for a run of its region: distribution purges sessions older than a
// week by default.
const recordMaxAge = 7 * 24 * time.Hour

// uploadJournal holds the records of this run's open sessions. Its
// directory is made with the first session: a run that uploads nothing
// writes nothing.
type uploadJournal struct {
	stateDir string
	log      *slog.Logger

	mu      sync.Mutex
	dir     string
	lock    *os.File
	seq     int
	entries map[string]*journalEntry // by record file
	byLoc   map[string]string        // location → record file
}

type journalEntry struct {
	rec uploadRecord
	st  *storage // a swift region's storage (nil: a registry region)
}

func newUploadJournal(stateDir string, log *slog.Logger) *uploadJournal {
	return &uploadJournal{stateDir: stateDir, log: log, entries: map[string]*journalEntry{}, byLoc: map[string]string{}}
}

func uploadsDir(stateDir string) string { return filepath.Join(stateDir, "uploads") }

// begin records a session about to be opened (st: its swift region's
// storage, or nil), before the request that opens it: a run killed while
// its registry creates the session leaves this record without a
// location, by which the next run finds the session in a swift region's
// storage. It returns the record's file.
func (j *uploadJournal) begin(rec uploadRecord, st *storage) (string, error) {
	if j == nil {
		return "", nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.dir == "" {
		if err := os.MkdirAll(uploadsDir(j.stateDir), 0o700); err != nil {
			return "", err
		}
		dir, err := os.MkdirTemp(uploadsDir(j.stateDir), "run")
		if err != nil {
			return "", err
		}
		lock, ok, err := runlock.TryLock(filepath.Join(dir, "lock"), true)
		if !ok {
			_ = os.RemoveAll(dir)
			if err == nil {
				err = fmt.Errorf("locking %s: another process holds its lock", dir)
			}
			return "", err
		}
		j.dir, j.lock = dir, lock
	}
	j.seq++
	file := filepath.Join(j.dir, strconv.Itoa(j.seq)+".json")
	if err := writeRecord(file, rec); err != nil {
		return "", err
	}
	j.entries[file] = &journalEntry{rec, st}
	return file, nil
}

// opened completes the record in file with the session's location; the
// blob may be sent once it returns nil.
func (j *uploadJournal) opened(file, location string) error {
	if j == nil {
		return nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	e := j.entries[file]
	rec := e.rec
	rec.Location, rec.UUID = location, locationUUID(location)
	if err := writeRecord(file, rec); err != nil {
		return err
	}
	e.rec = rec
	j.byLoc[location] = file
	return nil
}

// writeRecord writes rec to file whole, then renames it into place: a
// record reads in full or not at all. Not result.WriteAtomic: its crash
// hook (result.write) would sit inside the window this record closes; a
// torn .new file goes with the run's directory.
func writeRecord(file string, rec uploadRecord) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_ = os.Remove(file + ".new")
	if err := writePrivate(file+".new", data); err != nil {
		return err
	}
	return os.Rename(file+".new", file)
}

// forget removes the record in file: no session was opened, or it ended.
func (j *uploadJournal) forget(file string) {
	if j == nil || file == "" {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.forgetLocked(file)
}

func (j *uploadJournal) forgetLocked(file string) {
	e, ok := j.entries[file]
	if !ok {
		return
	}
	if err := os.Remove(file); err != nil && !os.IsNotExist(err) {
		j.log.Warn("removing an upload record", "file", file, "error", err.Error())
	}
	delete(j.byLoc, e.rec.Location)
	delete(j.entries, file)
}

// done forgets the session at location: finished or cancelled.
func (j *uploadJournal) done(location string) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if file, ok := j.byLoc[location]; ok {
		j.forgetLocked(file)
	}
}

// stuck forgets the session at location, which its registry refuses to
// cancel, after a warning that names it.
func (j *uploadJournal) stuck(location string) {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if file, ok := j.byLoc[location]; ok {
		warnStuck(j.log, j.entries[file].rec)
		j.forgetLocked(file)
	}
}

func warnStuck(log *slog.Logger, rec uploadRecord) {
	log.Warn("an upload session cannot be cancelled through the registry (distribution refuses a session whose data grew past the offset its location records): its upload purging removes it, or remove it from its storage",
		"region", rec.Region, "repository", rec.Repository, "directory", "docker/registry/v2/repositories/"+rec.Repository+"/_uploads/"+rec.UUID+"/")
}

// record is the record of the session at location (zero when unknown).
func (j *uploadJournal) record(location string) uploadRecord {
	if j == nil {
		return uploadRecord{}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if e := j.entries[j.byLoc[location]]; e != nil {
		return e.rec
	}
	return uploadRecord{}
}

// close ends the journal once the run's registries are stopped. The
// sessions of swift regions that were cancelled (their objects deleted)
// while their registry may still have been writing them (an upload
// aborted mid-blob) are deleted once more now that nothing writes, and
// their records go. The directory goes when no record is left; otherwise
// the next run cancels the rest (the lock is released either way).
func (j *uploadJournal) close() {
	if j == nil {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.dir == "" {
		return
	}
	for file, e := range j.entries {
		if e.st == nil || e.rec.UUID == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		store, err := e.st.objects(ctx)
		if err == nil {
			err = store.deleteUpload(ctx, e.rec.Repository, e.rec.UUID, e.rec.Digest)
		}
		cancel()
		if err != nil {
			j.log.Warn("cancelling an upload session (the next run tries again)", "region", e.rec.Region, "repository", e.rec.Repository, "error", logging.Scrub(err.Error()))
			continue
		}
		j.forgetLocked(file)
	}
	if len(j.entries) == 0 {
		_ = os.RemoveAll(j.dir)
	} else {
		j.log.Warn("upload sessions left open: the next run cancels them", "sessions", len(j.entries))
	}
	j.lock.Close()
	j.dir, j.lock = "", nil
}

// uploadUUID is the UUID of an upload location: the last element of its
// path, as distribution names its sessions.
var uploadUUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func locationUUID(location string) string {
	_, id := locationSession(location)
	return id
}

// locationSession is the repository and UUID of an upload location
// (/v2/REPO/blobs/uploads/UUID); "" for what does not read so.
func locationSession(location string) (repo, uuid string) {
	u, err := url.Parse(location)
	if err != nil {
		return "", ""
	}
	rest, ok := strings.CutPrefix(u.Path, "/v2/")
	if !ok {
		return "", ""
	}
	dir, id := path.Split(rest)
	repo, ok = strings.CutSuffix(dir, "/blobs/uploads/")
	if !ok || !uploadUUID.MatchString(id) {
		return "", ""
	}
	return repo, id
}

// errUploadStuck is a session a registry will not cancel: distribution
// 2.8 refuses every request for a session whose data grew past the offset
// its location records (the blob was being sent when the run died).
var errUploadStuck = errors.New("the registry will not cancel it")

// leftUpload is a session a dead run left, with its record file.
type leftUpload struct {
	file string
	rec  uploadRecord
}

// cancelLeftUploads cancels the upload sessions that dead runs left open
// in the regions of this run, and removes their records; a dead run's
// directory goes with its last record. A record without a location (the
// run died while its registry opened the session) is, in a swift region,
// the session of its repository that started then and that no record
// names (until the request could have lasted); in a registry region it
// cannot be found and is dropped. A record
// of a region this run does not have is kept for a run that has it (for a
// week). Failures are warnings: the records stay for the next run.
func cancelLeftUploads(ctx context.Context, conn *Conn, a *Auth, log *slog.Logger, regions []Region, stores map[string]*storage) {
	sw := &uploadSweep{conn: conn, auth: a, log: log, stores: stores, start: time.Now(), regions: map[string]Region{}}
	for _, r := range regions {
		sw.regions[r.Name] = r
	}
	dirs := sw.runDirs()
	runlock.SweepDead(dirs, func(dir string) string { return filepath.Join(dir, "lock") }, func(dir string) {
		mine, repos := sw.ours(readRecords(dir, log, true))
		clients := sw.clients(ctx, repos)
		for _, l := range mine {
			sw.cancel(ctx, l, clients)
		}
		if len(readRecords(dir, log, false)) == 0 {
			_ = os.RemoveAll(dir)
		}
	})
}

// uploadSweep is one sweep of the upload sessions dead runs left.
type uploadSweep struct {
	conn    *Conn
	auth    *Auth
	log     *slog.Logger
	stores  map[string]*storage
	regions map[string]Region // by name
	start   time.Time
	known   map[string]bool // the session UUIDs every run (live or dead) recorded
}

// runDirs returns the runs' directories that have a lock, noting every
// session they recorded; a directory without one is being set up by a run,
// or was left by one killed then, before any record: old ones go.
func (sw *uploadSweep) runDirs() []string {
	entries, err := os.ReadDir(uploadsDir(sw.conn.StateDir))
	if err != nil {
		return nil
	}
	var dirs []string
	sw.known = map[string]bool{}
	for _, e := range entries {
		dir := filepath.Join(uploadsDir(sw.conn.StateDir), e.Name())
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "lock")); os.IsNotExist(err) {
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 10*time.Minute {
				_ = os.RemoveAll(dir)
			}
			continue
		}
		dirs = append(dirs, dir)
		for _, l := range readRecords(dir, sw.log, false) {
			sw.known[l.rec.UUID] = true
		}
	}
	return dirs
}

// ours returns the left sessions of this run's regions, with the
// repositories they are in by region; records of other regions are kept
// until they are old.
func (sw *uploadSweep) ours(left []leftUpload) (mine []leftUpload, repos map[string][]string) {
	repos = map[string][]string{}
	for _, l := range left {
		r, ok := sw.regions[l.rec.Region]
		if !ok || storageKey(r) != l.rec.Storage {
			if time.Since(l.rec.Started) > recordMaxAge {
				_ = os.Remove(l.file)
			}
			continue
		}
		if l.rec.UUID == "" && !r.storage() {
			_ = os.Remove(l.file)
			continue
		}
		mine = append(mine, l)
		repos[r.Name] = append(repos[r.Name], l.rec.Repository)
	}
	return mine, repos
}

// clients dials one client per registry region, for the repositories its
// sessions are in (storage-backed regions need none).
func (sw *uploadSweep) clients(ctx context.Context, repos map[string][]string) map[string]*client {
	clients := map[string]*client{}
	for name, rs := range repos {
		r := sw.regions[name]
		if r.storage() {
			continue
		}
		c, _, err := dial(ctx, sw.auth, sw.conn, r, nil, rs, nil)
		if err != nil {
			sw.log.Warn("cancelling the upload sessions a killed run left: connecting", "region", name, "error", logging.Scrub(err.Error()))
			continue
		}
		clients[name] = c
	}
	return clients
}

// cancel cancels one left session (in the storage, or through the
// registry) and removes its record once that is done.
func (sw *uploadSweep) cancel(ctx context.Context, l leftUpload, clients map[string]*client) {
	r := sw.regions[l.rec.Region]
	var err error
	uuids := []string{l.rec.UUID}
	switch {
	case r.storage():
		uuids, err = sw.cancelStored(ctx, l)
	case clients[r.Name] == nil:
		return
	default:
		err = clients[r.Name].deleteUpload(ctx, l.rec.Location)
	}
	switch {
	case errors.Is(err, errUploadStuck):
		warnStuck(sw.log, l.rec)
	case err != nil:
		sw.log.Warn("cancelling an upload session a killed run left (the next run tries again)", "region", r.Name, "repository", l.rec.Repository, "error", logging.Scrub(err.Error()))
		return
	default:
		for _, id := range uuids {
			sw.log.Info("cancelled an upload session a killed run left", "region", r.Name, "repository", l.rec.Repository, "blob", l.rec.Digest, "session", id)
		}
	}
	_ = os.Remove(l.file)
}

// cancelStored removes a left session from a storage-backed region's
// storage; a record without a session UUID (killed before the registry
// answered) stands for every session no run recorded in its repository
// from its start until it was open (or this sweep started).
func (sw *uploadSweep) cancelStored(ctx context.Context, l leftUpload) ([]string, error) {
	store, err := sw.stores[l.rec.Region].objects(ctx)
	if err != nil {
		return nil, err
	}
	uuids := []string{l.rec.UUID}
	if l.rec.UUID == "" {
		until := sw.start
		if !l.rec.OpenBy.IsZero() && l.rec.OpenBy.Before(until) {
			until = l.rec.OpenBy
		}
		if uuids, err = store.unrecordedUploads(ctx, l.rec.Repository, l.rec.Started, until, sw.known); err != nil {
			return nil, err
		}
	}
	for _, id := range uuids {
		if err := store.deleteUpload(ctx, l.rec.Repository, id, l.rec.Digest); err != nil {
			return uuids, err
		}
	}
	return uuids, nil
}

// readRecords reads the records of a run's directory. With remove (the
// run is dead), a record that does not read (not written by
// push-registry: records are renamed into place whole) is removed.
func readRecords(dir string, log *slog.Logger, remove bool) []leftUpload {
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var out []leftUpload
	for _, f := range files {
		var rec uploadRecord
		data, err := os.ReadFile(f)
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err == nil && ((rec.UUID != "" && !uploadUUID.MatchString(rec.UUID)) || !nsPath.MatchString(rec.Repository)) {
			err = fmt.Errorf("repository %q, uuid %q", rec.Repository, rec.UUID)
		}
		if err != nil {
			if remove {
				log.Warn("removing an upload record that does not read", "file", f, "error", err.Error())
				_ = os.Remove(f)
			}
			continue
		}
		out = append(out, leftUpload{f, rec})
	}
	return out
}

// deleteUpload cancels the session at location through the registry API
// (DELETE). A session the registry no longer knows counts as cancelled;
// errUploadStuck is one it refuses to cancel.
func (c *client) deleteUpload(ctx context.Context, location string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, location, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = registryError(resp, http.StatusNoContent, http.StatusAccepted, http.StatusOK)
	var te *transport.Error
	if errors.As(err, &te) {
		if te.StatusCode == http.StatusNotFound && len(te.Errors) == 0 {
			return nil
		}
		for _, e := range te.Errors {
			switch e.Code {
			case transport.BlobUploadUnknownErrorCode:
				return nil
			case transport.BlobUploadInvalidErrorCode:
				return errUploadStuck
			}
		}
	}
	return err
}

// uploadObjectsDir is the Swift path of an upload session's objects.
// With uuid "", that of all of repo's sessions.
func (o *objectStore) uploadObjectsDir(repo, uuid string) string {
	p := "files/docker/registry/v2/repositories/" + repo + "/_uploads/"
	if uuid != "" {
		p += uuid + "/"
	}
	if o.prefix != "" {
		p = o.prefix + "/" + p
	}
	return p
}

// deleteUpload removes an upload session's objects from the region's
// Swift: its data (a large object: its segments too), start time and hash
// states. Distribution's own cancel leaves a hash state behind, and one
// whose data grew past the offset its location records not even that.
// The segments of the data are kept when blob digest's object refers to
// them (its registry died moving the finished data there).
func (o *objectStore) deleteUpload(ctx context.Context, repo, uuid, digest string) error {
	if !uploadUUID.MatchString(uuid) || !nsPath.MatchString(repo) {
		return fmt.Errorf("not an upload session: repository %q, uuid %q", repo, uuid)
	}
	names, err := o.list(ctx, o.container, o.uploadObjectsDir(repo, uuid))
	if err != nil {
		return err
	}
	var keep string
	if d, err := v1.NewHash(digest); err == nil {
		if h, err := o.head(ctx, o.blobObject(d)); err == nil && h != nil {
			keep = h.ObjectManifest
		}
	}
	for _, n := range names {
		if err := o.deleteObject(ctx, n, keep); err != nil {
			return err
		}
	}
	return nil
}

// unrecordedUploads lists the sessions of repo in the container that no
// run recorded (known) and that started between from (a second early:
// distribution writes the start time in whole seconds) and until: those a
// run that died while its registry opened them left. Its registry ran on
// this host, so its clock is this one's.
func (o *objectStore) unrecordedUploads(ctx context.Context, repo string, from, until time.Time, known map[string]bool) ([]string, error) {
	if !nsPath.MatchString(repo) {
		return nil, fmt.Errorf("not a repository: %q", repo)
	}
	dir := o.uploadObjectsDir(repo, "")
	names, err := o.list(ctx, o.container, dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range names {
		id, file, ok := strings.Cut(strings.TrimPrefix(n, dir), "/")
		if !ok || file != "startedat" || !uploadUUID.MatchString(id) || known[id] {
			continue
		}
		dl := objects.Download(ctx, o.sc, o.container, n, nil)
		raw, err := dl.ExtractContent()
		if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s/%s: %s", o.container, n, logging.Scrub(err.Error()))
		}
		started, err := time.Parse(time.RFC3339, strings.TrimSpace(string(raw)))
		if err != nil || started.Before(from.Add(-time.Second)) || started.After(until) {
			continue
		}
		out = append(out, id)
	}
	return out, nil
}

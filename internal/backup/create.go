package backup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/fanout"
	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/usererr"
)

// CreateOptions configures Create.
type CreateOptions struct {
	Common
	Site             string
	MySQL            MySQLConfig
	Mongo            MongoConfig
	Compression      string // zstd (default) or gzip
	CompressionLevel int    // 0 = the algorithm's default
	AgeRecipients    []string
	// Jobs is how many dumps run at once, each its own consistent stream
	// into its own object (default 2: MySQL and MongoDB side by side, in
	// bounded memory).
	Jobs int
	// StaleAfter is how long an unfinished backup's heartbeat may be silent
	// before a later create takes it for a killed run and removes it, open
	// multipart uploads included (default 10m).
	StaleAfter time.Duration
	// Verify downloads the new backup once written and checks it as
	// backup verify does (the failover's final backup: create, then verify,
	// in one run). Without age identities (the primary holds none) an
	// encrypted backup's stored checksums are checked.
	Verify bool
	// SkipFrozen makes no backup at a site whose freeze record exists (a
	// failover froze it): the scheduled create, so that a frozen primary
	// adds no backup the DR site's scheduled restore would take over the
	// data written there since the failover. Create then returns nil.
	SkipFrozen bool
}

// heartbeatName is the object an unfinished create rewrites while it runs:
// a backup without a manifest whose heartbeat is stale is a killed run's.
const heartbeatName = "in-progress"

// Create dumps every configured database into a new backup and writes its
// manifest last. On any failure the manifest is not written, so the partial
// backup is never listed as complete; its objects are deleted.
func Create(ctx context.Context, opts CreateOptions) (*Manifest, error) {
	store, err := opts.setup()
	if err != nil {
		return nil, err
	}
	recipients, sources, err := opts.prepare()
	if err != nil {
		return nil, err
	}
	if opts.SkipFrozen {
		rec, err := readFreeze(ctx, store, opts.S3.Prefix, opts.Site)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			opts.Logger.Info("the site is frozen (a failover): no backup made; backup unfreeze ends the freeze, create without --skip-frozen makes one anyway",
				"site", opts.Site, "state", rec.State, "frozen_at", rec.FrozenAt)
			return nil, nil
		}
	}
	// What a killed create left goes first: its objects and open uploads
	// (a rerun in the same second as the run it follows has its ID).
	if err := sweepDead(ctx, store, opts.S3.Prefix, opts.Now().Add(-opts.StaleAfter), opts.Logger); err != nil {
		return nil, err
	}
	start, id, prefix, err := freeID(ctx, store, opts)
	if err != nil {
		return nil, err
	}
	if err := store.Put(ctx, prefix+heartbeatName, strings.NewReader(beat(start))); err != nil {
		return nil, fmt.Errorf("starting backup %s: %w", id, err)
	}
	hbCtx, stopHeartbeat := context.WithCancel(ctx)
	defer stopHeartbeat()
	go heartbeat(hbCtx, store, prefix+heartbeatName, opts.StaleAfter/4)
	m := &Manifest{Format: ManifestFormat, ID: id, Site: opts.Site, Started: start, Compression: opts.Compression, Tools: map[string]string{}}
	watch, err := watchFreeze(ctx, store, opts, start)
	if err != nil {
		stopHeartbeat()
		_ = discard(ctx, store, prefix)
		return nil, err
	}
	if len(recipients) > 0 {
		m.Encryption = "age"
	}
	cleanup := func() {
		if err := discard(ctx, store, prefix); err != nil {
			opts.Logger.Warn("could not clean up the incomplete backup; prune removes it later", "backup", id, "err", err)
		}
	}
	for _, src := range sources {
		if v := src.Version(ctx); v != "" {
			m.Tools[src.Kind()] = v
		}
	}
	if err := dumpAll(ctx, store, opts, sources, prefix, recipients, m); err != nil {
		cleanup()
		return nil, err
	}
	if watch != nil {
		if m.Freeze, m.DataLossWindowSeconds, err = watch.finish(ctx); err != nil {
			cleanup()
			return nil, err
		}
	}
	crashpoint.Hit("backup.create.manifest")
	m.Finished = opts.Now().UTC()
	if err := store.Put(ctx, prefix+manifestName, strings.NewReader(string(encodeManifest(m)))); err != nil {
		cleanup()
		return nil, fmt.Errorf("writing manifest of backup %s: %w", id, err)
	}
	stopHeartbeat()
	if err := store.Delete(ctx, prefix+heartbeatName); err != nil {
		opts.Logger.Warn("could not delete the backup's heartbeat object (harmless)", "backup", id, "err", err)
	}
	opts.Logger.Info("backup complete", "backup", id, "dumps", len(m.Dumps))
	if opts.Verify {
		if err := verifyAll(ctx, store, m, nil, opts.Logger); err != nil {
			return m, fmt.Errorf("backup %s was written but does not verify (do not restore it; run create again): %w", id, err)
		}
	}
	return m, nil
}

// prepare checks the options, fills in the defaults and returns the age
// recipients and the databases to dump.
func (opts *CreateOptions) prepare() (recipients []age.Recipient, sources []Source, err error) {
	if opts.Compression == "" {
		opts.Compression = CompressZstd
	}
	if err := checkCompression(opts.Compression); err != nil {
		return nil, nil, usererr.Errorf("%s %w", opts.Names.of("Compression"), err)
	}
	if opts.Jobs < 0 {
		return nil, nil, usererr.Errorf("%s %d is negative", opts.Names.of("DumpJobs"), opts.Jobs)
	}
	if opts.Site == "" {
		return nil, nil, usererr.Errorf("%s is empty: name the site the backup comes from (e.g. primary)", opts.Names.of("Site"))
	}
	recipients, err = readRecipients(opts.AgeRecipients, opts.Names)
	if err != nil {
		return nil, nil, err
	}
	sources, err = buildSources(opts.MySQL, opts.Mongo, opts.Names)
	if err != nil {
		return nil, nil, err
	}
	if len(sources) == 0 {
		return nil, nil, usererr.Errorf("nothing to back up: give %s and/or %s", opts.Names.of("MySQL.Databases"), opts.Names.of("Mongo.Databases"))
	}
	if opts.Jobs == 0 {
		opts.Jobs = 2
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = 10 * time.Minute
	}
	return recipients, sources, nil
}

// dumpAll dumps every source into prefix (opts.Jobs at a time), recording
// each dump in m.
func dumpAll(ctx context.Context, store ObjectStore, opts CreateOptions, sources []Source, prefix string, recipients []age.Recipient, m *Manifest) error {
	m.Dumps = make([]Dump, len(sources))
	return fanout.Each(ctx, opts.Jobs, sources, func(ctx context.Context, i int, src Source) error {
		key := prefix + src.Kind() + "-" + src.Database() + src.Ext() + suffix(opts.Compression, len(recipients) > 0)
		opts.Logger.Info("dumping", "kind", src.Kind(), "database", src.Database(), "object", key)
		t0 := time.Now()
		d, err := dumpOne(ctx, store, src, key, opts.Compression, opts.CompressionLevel, recipients)
		if err != nil {
			return fmt.Errorf("backing up %s database %s (no backup was recorded; rerun create once this is fixed): %w", src.Kind(), src.Database(), err)
		}
		secs := time.Since(t0).Seconds()
		opts.Logger.Info("dumped", "kind", src.Kind(), "database", src.Database(), "raw_bytes", d.RawSize, "stored_bytes", d.Size,
			"seconds", fmt.Sprintf("%.1f", secs), "MBps", fmt.Sprintf("%.1f", float64(d.RawSize)/1e6/max(secs, 0.001)))
		m.Dumps[i] = *d
		crashpoint.Hit("backup.create.dumped")
		return nil
	})
}

// freeID names the new backup by its start second; when a backup of that
// second exists (a rerun right after a run it follows), it waits for the
// next second, twice at most.
func freeID(ctx context.Context, store ObjectStore, opts CreateOptions) (time.Time, string, string, error) {
	for try := 0; ; try++ {
		start := opts.Now().UTC()
		id := NewID(start)
		prefix := opts.S3.Prefix + id + "/"
		existing, err := store.List(ctx, prefix)
		if err != nil {
			return start, id, prefix, fmt.Errorf("checking for backup %s: %w", id, err)
		}
		if len(existing) == 0 {
			return start, id, prefix, nil
		}
		if try == 2 {
			return start, id, prefix, fmt.Errorf("backup %s already exists (another run started in the same second?): retry in a second", id)
		}
		if err := poll.Sleep(ctx, start.Truncate(time.Second).Add(time.Second).Sub(start)+10*time.Millisecond); err != nil {
			return start, id, prefix, err
		}
	}
}

// heartbeat rewrites key every interval until ctx ends, so that a later
// create can tell this running backup from a killed one.
func heartbeat(ctx context.Context, store ObjectStore, key string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			_ = store.Put(ctx, key, strings.NewReader(beat(now)))
		}
	}
}

// beat is the heartbeat's content: the time, and who writes it (host, pid,
// the process's start time, so a reused pid is not taken for it, and its
// PID namespace: pods with hostNetwork share the node's hostname, and a pid
// means nothing across namespaces).
func beat(now time.Time) string {
	host, _ := os.Hostname()
	return beatOf(now, host, os.Getpid(), procStart(os.Getpid()), pidNS())
}

// beatOf is the content beat writes, for the writer given.
func beatOf(now time.Time, host string, pid int, start, ns string) string {
	return fmt.Sprintf("%s\nhost=%s pid=%d start=%s pidns=%s\n", now.UTC().Format(time.RFC3339), host, pid, start, ns)
}

// pidNS names this process's PID namespace ("pid:[4026531836]"); "" when
// /proc does not say.
func pidNS() string {
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil || strings.ContainsAny(ns, " \n") {
		return ""
	}
	return ns
}

// procStart is field 22 of /proc/PID/stat, the process's start time in
// clock ticks since boot; "" when there is no such process (or no /proc).
func procStart(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// deadHere reports whether the heartbeat content hb was written by a
// process of this host and PID namespace that is gone: then its backup is a
// killed run's at once, without waiting for the heartbeat to go stale. A
// heartbeat of another host, or of another PID namespace on this host (a
// CronJob pod with hostNetwork has the node's hostname), or one that does
// not name its namespace, says nothing here: --stale-after decides.
func deadHere(hb string) bool {
	_, owner, ok := strings.Cut(hb, "\n")
	if !ok {
		return false
	}
	var host, start, ns string
	var pid int
	if n, _ := fmt.Sscanf(strings.TrimSpace(owner), "host=%s pid=%d start=%s pidns=%s", &host, &pid, &start, &ns); n != 4 {
		return false
	}
	me, err := os.Hostname()
	if err != nil || host != me || pid <= 0 || start == "" || ns == "" || ns != pidNS() {
		return false
	}
	return procStart(pid) != start
}

// sweepDead removes the backups a killed create left under prefix: no
// manifest, and no heartbeat since before: their objects and their open
// multipart uploads (which list never shows, and which S3 keeps, and bills,
// until aborted).
func sweepDead(ctx context.Context, store *S3Store, prefix string, before time.Time, logger *slog.Logger) error {
	entries, err := catalog(ctx, store, prefix)
	if err != nil {
		return err
	}
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return err
	}
	// A backup's last sign of life: its newest object (the heartbeat).
	alive := map[string]time.Time{}
	for _, o := range objs {
		id, _, _ := strings.Cut(strings.TrimPrefix(o.Key, prefix), "/")
		if o.Modified.After(alive[id]) {
			alive[id] = o.Modified
		}
	}
	ups, err := store.ListUploads(ctx, prefix)
	if err != nil {
		return err
	}
	// Candidates: backups without a manifest, and backups with an open
	// upload (a run killed during its first object has nothing else).
	started := map[string]time.Time{}
	for _, e := range entries {
		if !e.Complete && e.Problem == "" {
			started[e.ID] = time.Time{}
		}
	}
	for _, u := range ups {
		id, _, _ := strings.Cut(strings.TrimPrefix(u.Key, prefix), "/")
		if _, err := ParseID(id); err != nil || slices.ContainsFunc(entries, func(e Entry) bool { return e.ID == id && e.Complete }) {
			continue
		}
		if t, ok := started[id]; !ok || u.Initiated.After(t) {
			started[id] = u.Initiated
		}
	}
	dead := map[string]bool{}
	for id, up := range started {
		last := alive[id]
		if up.After(last) {
			last = up
		}
		if last.Before(before) || ownerGone(ctx, store, prefix+id+"/"+heartbeatName) {
			dead[id] = true
		}
	}
	for id := range dead {
		logger.Info("removing a backup a killed create left (no manifest, no heartbeat)", "backup", id)
		if _, err := store.AbortUploads(ctx, prefix+id+"/", time.Now()); err != nil {
			return err
		}
		if err := discard(ctx, store, prefix+id+"/"); err != nil {
			return err
		}
	}
	return nil
}

// ownerGone reads the heartbeat at key: true when the run that wrote it
// ran on this host and is gone.
func ownerGone(ctx context.Context, store ObjectStore, key string) bool {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return false
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 4096))
	return err == nil && deadHere(string(data))
}

// discard deletes what a failed create wrote under prefix, with a context
// of its own: the run's may be why it failed.
func discard(ctx context.Context, store ObjectStore, prefix string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return err
	}
	keys := make([]string, len(objs))
	for i, o := range objs {
		keys[i] = o.Key
	}
	return store.Delete(ctx, keys...)
}

func buildSources(my MySQLConfig, mg MongoConfig, n Names) ([]Source, error) {
	var out []Source
	if len(my.Databases) > 0 {
		if !my.Enabled() {
			return nil, usererr.Errorf("%s given without %s or %s", n.of("MySQL.Databases"), n.of("MySQL.Host"), n.of("MySQL.Socket"))
		}
		if err := my.validate(n); err != nil {
			return nil, err
		}
		bin, err := findTool(my.DumpBin, "mariadb-dump", "mysqldump")
		if err != nil {
			return nil, usererr.Errorf("MySQL dump tool: %w", err)
		}
		for _, db := range my.Databases {
			out = append(out, my.source(bin, db))
		}
	}
	if len(mg.Databases) > 0 {
		if !mg.Enabled() {
			return nil, usererr.Errorf("%s given without %s", n.of("Mongo.Databases"), n.of("Mongo.URI"))
		}
		if err := mg.validate(n); err != nil {
			return nil, err
		}
		bin, err := findTool(mg.DumpBin, "mongodump")
		if err != nil {
			return nil, usererr.Errorf("MongoDB dump tool: %w", err)
		}
		for _, db := range mg.Databases {
			out = append(out, mg.source(bin, db))
		}
	}
	return out, nil
}

// dumpOne streams src through the encoder into one object.
func dumpOne(ctx context.Context, store ObjectStore, src Source, key, compression string, level int, recipients []age.Recipient) (*Dump, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	type result struct {
		enc *encoder
		err error
	}
	done := make(chan result, 1)
	// The encoder writes headers (age) at once, so it must live on the
	// writing side of the pipe, concurrent with the upload reading it.
	go func() {
		enc, err := newEncoder(pw, compression, level, recipients)
		if err == nil {
			err = src.Dump(ctx, enc.w)
			if cerr := enc.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			pw.CloseWithError(err)
		} else {
			pw.Close()
		}
		done <- result{enc, err}
	}()
	putErr := store.Put(ctx, key, &crashReader{r: pr, at: 2*DefaultPartSize + 1, point: "backup.create.upload"})
	if putErr != nil {
		// Stop the dump tool: nobody reads its output any more.
		pr.CloseWithError(putErr)
		cancel()
	}
	res := <-done
	if putErr != nil {
		return nil, putErr
	}
	if res.err != nil {
		return nil, res.err
	}
	enc := res.enc
	return &Dump{Kind: src.Kind(), Database: src.Database(), Key: key,
		Size: enc.stored.n, SHA256: enc.stored.Sum(), RawSize: enc.raw.n, RawSHA256: enc.raw.Sum()}, nil
}

// crashReader hits a crash point once at byte at (past the first parts, the
// multipart upload is open).
type crashReader struct {
	r     io.Reader
	n, at int64
	point string
}

func (c *crashReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n < c.at && c.n+int64(n) >= c.at {
		crashpoint.Hit(c.point)
	}
	c.n += int64(n)
	return n, err
}

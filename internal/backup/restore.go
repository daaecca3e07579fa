package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"time"

	"filippo.io/age"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/fanout"
	"github.com/slipwayci/slipway/internal/progress"
	"github.com/slipwayci/slipway/internal/usererr"
)

// RestoreOptions configures Restore.
type RestoreOptions struct {
	Common
	ID               string
	Latest           bool
	MySQL            MySQLConfig
	Mongo            MongoConfig
	AgeIdentityFiles []string
	// Jobs is how many connections load one MySQL database's tables in
	// parallel (default: the number of CPUs).
	Jobs int
	// Fresh drops what a killed restore left in staging instead of
	// resuming it, and restores a backup even when the journal says it is
	// already in place.
	Fresh bool
	// Progress reports bytes and tables loaded (default: none).
	Progress *progress.Printer
}

// RestoreReport says what a restore did.
type RestoreReport struct {
	Manifest  *Manifest
	Databases []string
	// Unchanged lists the databases that already held the backup (by the
	// journal): nothing was done to them.
	Unchanged []string
	// Recovered lists the databases whose swap a killed run left half done
	// and this run finished first.
	Recovered []string
	// Resumed lists the databases whose staging load continued where a
	// killed run stopped.
	Resumed  []string
	Duration time.Duration
}

// Restore loads every dump of a complete backup into staging databases
// while checking it against its manifest; only when all of them loaded and
// matched are they swapped in. Any failure before the swap leaves the live
// databases exactly as they were; a failure during the swap rolls back.
//
// Every step is journalled in the DR servers: a run killed at any point is
// finished by the next one. A swap that had begun is completed before
// anything else; staging of the same backup is resumed (unless Fresh);
// staging of another backup is dropped.
func Restore(ctx context.Context, opts RestoreOptions) (_ *RestoreReport, err error) {
	if opts.Jobs < 0 {
		return nil, usererr.Errorf("%s %d is negative", opts.Names.of("RestoreJobs"), opts.Jobs)
	}
	t0 := time.Now()
	store, ids, m, err := opts.open(ctx, opts.ID, opts.Latest, opts.AgeIdentityFiles)
	if err != nil {
		return nil, err
	}
	if m.Encryption != "" && len(ids) == 0 {
		return nil, usererr.Errorf("backup %s is encrypted: give %s", m.ID, opts.Names.of("AgeIdentityFiles"))
	}
	if opts.Jobs == 0 {
		opts.Jobs = runtime.NumCPU()
	}
	if opts.Progress == nil {
		opts.Progress = progress.Discard()
	}
	targets, closeAll, err := buildTargets(ctx, opts, m)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	// How it ended, in each DR server: status --site reads it.
	defer func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, t := range targets {
			if ferr := t.Finish(fctx, m.ID, err); ferr != nil {
				opts.Logger.Warn("could not record the restore's outcome", "target", t.Name(), "err", ferr)
			}
		}
	}()
	rep := &RestoreReport{Manifest: m}
	todo, dumps, err := recoverTargets(ctx, opts, m, targets, rep)
	if err != nil {
		return nil, err
	}
	if len(todo) == 0 {
		opts.Logger.Info("the DR databases already hold this backup: nothing to do (--fresh restores it again)", "backup", m.ID)
		rep.Duration = time.Since(t0)
		return rep, nil
	}
	if err := checkSizes(ctx, store, opts.S3.Prefix, m, dumps); err != nil {
		return nil, err
	}
	discardAll := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		for _, t := range todo {
			if err := t.Discard(dctx); err != nil {
				opts.Logger.Warn("could not drop staging data; the next restore drops it", "target", t.Name(), "err", err)
			}
		}
	}
	err = stageAll(ctx, opts, store, m, ids, todo, dumps)
	if err != nil {
		discardAll()
		return nil, fmt.Errorf("restoring backup %s (nothing was changed): %w", m.ID, err)
	}
	// Every swap is journalled before the first one starts: from here on a
	// killed run is finished by the next one.
	for _, t := range todo {
		if err := t.Prepare(ctx); err != nil {
			discardAll()
			return nil, fmt.Errorf("restoring backup %s (nothing was changed): %w", m.ID, err)
		}
	}
	crashpoint.Hit("backup.restore.prepared")
	if err := swapAll(ctx, m.ID, todo); err != nil {
		discardAll()
		return nil, err
	}
	crashpoint.Hit("backup.restore.swapped")
	for _, t := range todo {
		if err := t.Commit(ctx); err != nil {
			opts.Logger.Warn("could not drop the replaced data; the next restore drops it", "target", t.Name(), "err", err)
		}
	}
	rep.Duration = time.Since(t0)
	for _, t := range todo {
		rep.Databases = append(rep.Databases, t.Name())
	}
	opts.Logger.Info("restore complete", "backup", m.ID, "databases", len(todo))
	return rep, nil
}

// recoverTargets finishes what an interrupted restore left in each target
// (an interrupted swap first: until it is finished a live database may be
// half swapped) and returns the targets still to restore with their dumps,
// noting the others in rep.
func recoverTargets(ctx context.Context, opts RestoreOptions, m *Manifest, targets []Target, rep *RestoreReport) (todo []Target, dumps []Dump, err error) {
	for i, t := range targets {
		st, err := t.Recover(ctx, m.ID, opts.Fresh)
		if err != nil {
			return nil, nil, fmt.Errorf("finishing what an interrupted restore left in %s: %w", t.Name(), err)
		}
		if st.Finished {
			opts.Logger.Info("finished the swap an interrupted restore left", "target", t.Name(), "backup", st.Restored)
			rep.Recovered = append(rep.Recovered, t.Name())
		}
		if st.Restored == m.ID && !opts.Fresh {
			// Staging a killed --fresh run left of the backup in place.
			if st.Resume {
				if err := t.Discard(ctx); err != nil {
					return nil, nil, err
				}
			}
			rep.Unchanged = append(rep.Unchanged, t.Name())
			continue
		}
		if st.Resume {
			rep.Resumed = append(rep.Resumed, t.Name())
		}
		todo = append(todo, t)
		dumps = append(dumps, m.Dumps[i])
	}
	return todo, dumps, nil
}

// checkSizes compares the dumps' objects in S3 with the manifest: a
// truncated or replaced object fails before any work.
func checkSizes(ctx context.Context, store ObjectStore, prefix string, m *Manifest, dumps []Dump) error {
	objs, err := store.List(ctx, prefix+m.ID+"/")
	if err != nil {
		return err
	}
	sizes := map[string]int64{}
	for _, o := range objs {
		sizes[o.Key] = o.Size
	}
	for _, d := range dumps {
		if got, ok := sizes[d.Key]; !ok || got != d.Size {
			return fmt.Errorf("%w: backup %s: %s is %d bytes in S3, the manifest says %d: verify it (backup verify %s) or restore an older backup", ErrChecksum, m.ID, d.Key, got, d.Size, m.ID)
		}
	}
	return nil
}

// stageAll loads each dump into its target's staging area, side by side
// (each is its own stream and staging area), opts.Jobs at a time.
func stageAll(ctx context.Context, opts RestoreOptions, store ObjectStore, m *Manifest, ids []age.Identity, todo []Target, dumps []Dump) error {
	return fanout.Each(ctx, opts.Jobs, todo, func(ctx context.Context, i int, t Target) error {
		opts.Logger.Info("restoring into staging", "backup", m.ID, "target", t.Name())
		task := opts.Progress.Start(t.Name(), dumps[i].RawSize)
		err := stageOne(ctx, store, m, dumps[i], ids, t, task)
		if err == nil {
			err = t.Staged(ctx)
		}
		if err != nil {
			task.Done("failed")
			return err
		}
		task.Done("staged")
		crashpoint.Hit("backup.restore.staged")
		return nil
	})
}

// swapAll swaps every staged target in; when one fails, those already
// swapped are undone, newest first, and the error says whether anything
// was changed.
func swapAll(ctx context.Context, id string, todo []Target) error {
	var undos []func(context.Context) error
	for _, t := range todo {
		undo, err := t.Swap(ctx)
		if err != nil {
			rctx := context.WithoutCancel(ctx)
			var errs []error
			for i := len(undos) - 1; i >= 0; i-- {
				errs = append(errs, undos[i](rctx))
			}
			if rerr := errors.Join(errs...); rerr != nil {
				return fmt.Errorf("restoring backup %s: %w; rolling back: %v (the next restore finishes the swap)", id, err, rerr)
			}
			return fmt.Errorf("restoring backup %s (rolled back, nothing was changed): %w", id, err)
		}
		undos = append(undos, undo)
	}
	return nil
}

func buildTargets(ctx context.Context, opts RestoreOptions, m *Manifest) (targets []Target, closeAll func(), err error) {
	var closers []func()
	closeAll = func() {
		for _, c := range closers {
			c()
		}
	}
	defer func() {
		if err != nil {
			closeAll()
		}
	}()
	for _, d := range m.Dumps {
		t, closer, err := buildTarget(ctx, opts, m.ID, d)
		if err != nil {
			return nil, nil, err
		}
		closers = append(closers, closer)
		targets = append(targets, t)
	}
	return targets, closeAll, nil
}

// buildTarget connects to the server that takes dump d; closer disconnects.
func buildTarget(ctx context.Context, opts RestoreOptions, id string, d Dump) (t Target, closer func(), err error) {
	n := opts.Names
	switch d.Kind {
	case KindMySQL:
		if !opts.MySQL.Enabled() {
			return nil, nil, usererr.Errorf("backup %s holds MySQL database %s: give %s or %s", id, d.Database, n.of("MySQL.Host"), n.of("MySQL.Socket"))
		}
		if err := opts.MySQL.validate(n); err != nil {
			return nil, nil, err
		}
		if err := checkMySQLName(d.Database); err != nil {
			return nil, nil, fmt.Errorf("backup %s: %w", id, err)
		}
		bin, err := findTool(opts.MySQL.ClientBin, "mariadb", "mysql")
		if err != nil {
			return nil, nil, usererr.Errorf("MySQL client: %w", err)
		}
		t, err := newMySQLTarget(ctx, opts.MySQL, bin, d.Database, id, opts.Jobs, opts.Logger)
		if err != nil {
			return nil, nil, err
		}
		return t, t.close, nil
	case KindMongo:
		if !opts.Mongo.Enabled() {
			return nil, nil, usererr.Errorf("backup %s holds MongoDB database %s: give %s", id, d.Database, n.of("Mongo.URI"))
		}
		if err := opts.Mongo.validate(n); err != nil {
			return nil, nil, err
		}
		if err := checkMongoName(d.Database); err != nil {
			return nil, nil, fmt.Errorf("backup %s: %w", id, err)
		}
		bin, err := findTool(opts.Mongo.RestoreBin, "mongorestore")
		if err != nil {
			return nil, nil, usererr.Errorf("MongoDB restore tool: %w", err)
		}
		c, err := connectMongo(ctx, opts.Mongo)
		if err != nil {
			return nil, nil, err
		}
		return newMongoTarget(opts.Mongo, bin, c, d.Database, id),
			func() { c.Disconnect(context.Background()) }, nil
	default:
		return nil, nil, fmt.Errorf("backup %s: dump kind %q is not %s or %s", id, d.Kind, KindMySQL, KindMongo)
	}
}

// stageOne streams one dump from S3 into its target's staging area and
// fails when the stream does not match the manifest, even if the load tool
// was happy with a truncated input.
func stageOne(ctx context.Context, store ObjectStore, m *Manifest, d Dump, ids []age.Identity, t Target, task *progress.Task) error {
	sp := newStageProgress(task, d.RawSize)
	rc, err := store.Get(ctx, d.Key)
	if err != nil {
		return err
	}
	defer rc.Close()
	dec, err := newDecoder(rc, m.Compression, m.Encryption != "", ids)
	if err != nil {
		return fmt.Errorf("%w: %s %s (%s): %s", ErrChecksum, d.Kind, d.Database, d.Key, err)
	}
	defer dec.close()
	// Errors from the decoder reach the load tool as a broken stdin; keep
	// the first so the error says "does not decompress", not "exit 1".
	var readErr error
	r := readerFunc(func(p []byte) (int, error) {
		n, err := dec.r.Read(p)
		sp.add(n)
		if err != nil && err != io.EOF && readErr == nil {
			readErr = err
		}
		return n, err
	})
	stageErr := t.Stage(ctx, r, sp)
	if readErr != nil {
		return fmt.Errorf("%w: %s %s (%s) does not decompress: %s", ErrChecksum, d.Kind, d.Database, d.Key, readErr)
	}
	if stageErr != nil {
		// A load that failed on a corrupt dump says so: read the rest and
		// check it; a dump that matches means the load's error is the cause.
		if ctx.Err() == nil {
			if _, err := io.Copy(io.Discard, dec.r); err != nil {
				return fmt.Errorf("%w: %s %s (%s) does not decompress: %s", ErrChecksum, d.Kind, d.Database, d.Key, err)
			}
			_ = dec.drain()
		}
		if err := dec.check(d); err != nil && ctx.Err() == nil {
			return err
		}
		return stageErr
	}
	// The load tool may stop reading early (or not notice a cut-off stream).
	if _, err := io.Copy(io.Discard, dec.r); err != nil {
		return fmt.Errorf("%w: %s %s (%s) does not decompress: %s", ErrChecksum, d.Kind, d.Database, d.Key, err)
	}
	if err := dec.drain(); err != nil {
		return fmt.Errorf("reading %s: %w", d.Key, err)
	}
	return dec.check(d)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

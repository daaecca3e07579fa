package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"

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
	// Restorer tools; found on PATH when empty (in MySQL/Mongo configs).
}

// RestoreReport says what a restore did.
type RestoreReport struct {
	Manifest  *Manifest
	Databases []string
	Duration  time.Duration
}

// Restore loads every dump of a complete backup into staging databases
// while checking it against its manifest; only when all of them loaded and
// matched are they swapped in. Any failure before the swap leaves the live
// databases exactly as they were; a failure during the swap rolls back.
func Restore(ctx context.Context, opts RestoreOptions) (*RestoreReport, error) {
	t0 := time.Now()
	store, ids, m, err := opts.open(ctx, opts.ID, opts.Latest, opts.AgeIdentityFiles)
	if err != nil {
		return nil, err
	}
	if m.Encryption != "" && len(ids) == 0 {
		return nil, usererr.Errorf("backup %s is encrypted: give %s", m.ID, opts.Names.of("AgeIdentityFiles"))
	}
	targets, closeAll, err := buildTargets(ctx, opts, m)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	// Sizes first: a truncated or replaced object fails before any work.
	objs, err := store.List(ctx, opts.S3.Prefix+m.ID+"/")
	if err != nil {
		return nil, err
	}
	sizes := map[string]int64{}
	for _, o := range objs {
		sizes[o.Key] = o.Size
	}
	for _, d := range m.Dumps {
		if got, ok := sizes[d.Key]; !ok || got != d.Size {
			return nil, fmt.Errorf("%w: backup %s: %s is %d bytes in S3, the manifest says %d: verify it (backup verify %s) or restore an older backup", ErrChecksum, m.ID, d.Key, got, d.Size, m.ID)
		}
	}
	discardAll := func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		for _, t := range targets {
			if err := t.Discard(dctx); err != nil {
				opts.Logger.Warn("could not drop staging data", "target", t.Name(), "err", err)
			}
		}
	}
	for i, d := range m.Dumps {
		opts.Logger.Info("restoring into staging", "backup", m.ID, "target", targets[i].Name())
		if err := stageOne(ctx, store, m, d, ids, targets[i]); err != nil {
			discardAll()
			return nil, fmt.Errorf("restoring backup %s (nothing was changed): %w", m.ID, err)
		}
	}
	var undos []func(context.Context) error
	for _, t := range targets {
		undo, err := t.Swap(ctx)
		if err != nil {
			rctx := context.WithoutCancel(ctx)
			var errs []error
			for i := len(undos) - 1; i >= 0; i-- {
				errs = append(errs, undos[i](rctx))
			}
			discardAll()
			if rerr := errors.Join(errs...); rerr != nil {
				return nil, fmt.Errorf("restoring backup %s: %w; rolling back: %v", m.ID, err, rerr)
			}
			return nil, fmt.Errorf("restoring backup %s (rolled back, nothing was changed): %w", m.ID, err)
		}
		undos = append(undos, undo)
	}
	for _, t := range targets {
		if err := t.Commit(ctx); err != nil {
			opts.Logger.Warn("could not drop the replaced data; the next restore drops it", "target", t.Name(), "err", err)
		}
	}
	rep := &RestoreReport{Manifest: m, Duration: time.Since(t0)}
	for _, t := range targets {
		rep.Databases = append(rep.Databases, t.Name())
	}
	opts.Logger.Info("restore complete", "backup", m.ID, "databases", len(targets))
	return rep, nil
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
		db, err := opts.MySQL.open()
		if err != nil {
			return nil, nil, err
		}
		if err := db.PingContext(ctx); err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("connecting to MySQL: %w", err)
		}
		return &mysqlTarget{cfg: opts.MySQL, client: bin, sqldb: db, db: d.Database}, func() { db.Close() }, nil
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
		return &mongoTarget{cfg: opts.Mongo, bin: bin, client: c, db: d.Database}, func() { c.Disconnect(context.Background()) }, nil
	default:
		return nil, nil, fmt.Errorf("backup %s: dump kind %q is not %s or %s", id, d.Kind, KindMySQL, KindMongo)
	}
}

// stageOne streams one dump from S3 into its target's staging area and
// fails when the stream does not match the manifest, even if the load tool
// was happy with a truncated input.
func stageOne(ctx context.Context, store ObjectStore, m *Manifest, d Dump, ids []age.Identity, t Target) error {
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
		if err != nil && err != io.EOF && readErr == nil {
			readErr = err
		}
		return n, err
	})
	stageErr := t.Stage(ctx, r)
	if readErr != nil {
		return fmt.Errorf("%w: %s %s (%s) does not decompress: %s", ErrChecksum, d.Kind, d.Database, d.Key, readErr)
	}
	if stageErr != nil {
		if err := dec.check(d); err != nil {
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

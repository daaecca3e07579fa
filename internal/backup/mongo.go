package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/usererr"
)

// MongoConfig says how to reach a MongoDB server and its tools.
type MongoConfig struct {
	// URI may hold credentials: it is passed to the tools in a private
	// config file, never on their command line.
	URI       logging.Secret
	Databases []string
	DumpBin   string // mongodump; found on PATH if empty
	// RestoreBin is mongorestore; found on PATH if empty.
	RestoreBin string
	// NoIndexRestore skips index creation on restore (FerretDB rejects the
	// "ns" index option that mongodump records).
	NoIndexRestore bool
}

// Enabled reports whether a MongoDB server was configured.
func (c MongoConfig) Enabled() bool { return !c.URI.Empty() }

func (c MongoConfig) validate(n Names) error {
	if !strings.HasPrefix(c.URI.Reveal(), "mongodb://") && !strings.HasPrefix(c.URI.Reveal(), "mongodb+srv://") {
		return usererr.Errorf("%s does not start with mongodb:// or mongodb+srv://", n.of("Mongo.URI"))
	}
	return checkDatabases(c.Databases, checkMongoName)
}

func checkMongoName(db string) error {
	if db == journalDB {
		return fmt.Errorf("MongoDB database name %q is reserved for the restore journal", db)
	}
	if db == "" || len(db) > 60 || strings.ContainsAny(db, "/\\. \"$*<>:|?\x00") || db == "admin" || db == "local" || db == "config" {
		return fmt.Errorf("MongoDB database name %q is empty, too long, a system database or holds a forbidden character", db)
	}
	return nil
}

const (
	mongoNewPrefix = "slipway_new__"
	mongoOldPrefix = "slipway_old__"
)

// toolConfig is the YAML config (their --config) that gives mongodump and
// mongorestore the URI; it reaches them through a pipe (tool.secretFile).
func (c MongoConfig) toolConfig() []byte {
	// A single-quoted YAML scalar needs only its quotes doubled.
	return []byte("uri: '" + strings.ReplaceAll(c.URI.Reveal(), "'", "''") + "'\n")
}

// source dumps database db with mongodump (bin) --archive.
func (c MongoConfig) source(bin, db string) *dumpSource {
	return &dumpSource{kind: KindMongo, db: db, ext: ".archive", bin: bin, dump: func() tool {
		return tool{path: bin, args: []string{"--config=" + secretFD, "--db=" + db, "--archive", "--quiet"}, secretFile: c.toolConfig()}
	}}
}

// mongoTarget restores into slipway_new__<collection> inside the live
// database (FerretDB and sharded MongoDB cannot rename across databases),
// then renames collections into place, journalling each step in the
// server's slipway_restore.journal collection.
type mongoTarget struct {
	journalled[mongoJournal]
	cfg    MongoConfig
	bin    string
	client *mongo.Client
	moves  []mongoMove
}

var _ Target = (*mongoTarget)(nil)

// mongoMove is one collection rename of a swap.
type mongoMove struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// newMongoTarget restores database db of backup through client c.
func newMongoTarget(cfg MongoConfig, bin string, c *mongo.Client, db, backup string) *mongoTarget {
	return &mongoTarget{journalled: journalled[mongoJournal]{kind: KindMongo, journal: mongoJournal{c}, db: db, backup: backup}, cfg: cfg, bin: bin, client: c}
}

func (t *mongoTarget) collections(ctx context.Context) ([]string, error) {
	names, err := t.client.Database(t.db).ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("listing collections of %s: %w", t.db, err)
	}
	return names, nil
}

func (t *mongoTarget) dropPrefixed(ctx context.Context, prefixes ...string) error {
	names, err := t.collections(ctx)
	if err != nil {
		return err
	}
	for _, n := range names {
		for _, p := range prefixes {
			if strings.HasPrefix(n, p) {
				if err := t.client.Database(t.db).Collection(n).Drop(ctx); err != nil {
					return fmt.Errorf("dropping %s.%s: %w", t.db, n, err)
				}
			}
		}
	}
	return nil
}

// Recover finishes the renames of an interrupted swap from the journal and
// drops any other staging a killed run left (a MongoDB load is not resumed:
// mongorestore has no record of what it finished).
func (t *mongoTarget) Recover(ctx context.Context, _ string, _ bool) (Recovery, error) {
	e, err := t.read(ctx)
	if err != nil || e == nil {
		return Recovery{}, err
	}
	switch e.State {
	case stateSwapping:
		var moves []mongoMove
		if err := t.plan(e, &moves); err != nil {
			return Recovery{}, err
		}
		names, err := t.collections(ctx)
		if err != nil {
			return Recovery{}, err
		}
		have := map[string]bool{}
		for _, n := range names {
			have[n] = true
		}
		// A move is done when its source is gone; renames are atomic.
		for _, m := range moves {
			if !have[m.From] || have[m.To] {
				continue
			}
			if err := t.rename(ctx, m.From, m.To); err != nil {
				return Recovery{}, err
			}
			delete(have, m.From)
			have[m.To] = true
		}
		if err := t.commit(ctx, e.Backup, t.dropCopies); err != nil {
			return Recovery{}, err
		}
		return Recovery{Finished: true, Restored: e.Backup}, nil
	case stateLoading, stateStaged:
		if err := t.Discard(ctx); err != nil {
			return Recovery{}, err
		}
	}
	return Recovery{Restored: e.Restored}, nil
}

func (t *mongoTarget) Stage(ctx context.Context, r io.Reader, _ *stageProgress) error {
	if err := t.journal.put(ctx, t.entry(stateLoading)); err != nil {
		return err
	}
	if err := t.dropPrefixed(ctx, mongoNewPrefix); err != nil {
		return err
	}
	crashpoint.Hit("backup.restore.load")
	args := []string{"--config=" + secretFD, "--archive", "--quiet", "--drop",
		"--nsInclude=" + t.db + ".*",
		"--nsFrom=" + t.db + ".$c$", "--nsTo=" + t.db + "." + mongoNewPrefix + "$c$"}
	if t.cfg.NoIndexRestore {
		args = append(args, "--noIndexRestore")
	}
	if err := (tool{path: t.bin, args: args, secretFile: t.cfg.toolConfig()}).run(ctx, r, io.Discard); err != nil {
		return fmt.Errorf("restoring into staging collections of %s: %w", t.db, err)
	}
	return nil
}

func (t *mongoTarget) rename(ctx context.Context, from, to string) error {
	cmd := bson.D{{Key: "renameCollection", Value: t.db + "." + from}, {Key: "to", Value: t.db + "." + to}}
	if err := t.client.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
		return fmt.Errorf("renaming %s.%s to %s: %w", t.db, from, to, err)
	}
	return nil
}

// Prepare plans the renames (every live collection to slipway_old__<name>,
// then every staged one to its name) and journals them.
func (t *mongoTarget) Prepare(ctx context.Context) error {
	if err := t.dropPrefixed(ctx, mongoOldPrefix); err != nil {
		return err
	}
	names, err := t.collections(ctx)
	if err != nil {
		return err
	}
	var live, staged []string
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, mongoNewPrefix):
			staged = append(staged, strings.TrimPrefix(n, mongoNewPrefix))
		case strings.HasPrefix(n, mongoOldPrefix), strings.HasPrefix(n, "system."):
		default:
			live = append(live, n)
		}
	}
	t.moves = nil
	for _, n := range live {
		t.moves = append(t.moves, mongoMove{n, mongoOldPrefix + n})
	}
	for _, n := range staged {
		t.moves = append(t.moves, mongoMove{mongoNewPrefix + n, n})
	}
	return t.prepare(ctx, t.moves)
}

// Swap makes the planned renames; on error it renames everything back.
func (t *mongoTarget) Swap(ctx context.Context) (func(context.Context) error, error) {
	var done []mongoMove
	t.dirty = true
	undo := func(ctx context.Context) error {
		var errs []error
		for i := len(done) - 1; i >= 0; i-- {
			errs = append(errs, t.rename(ctx, done[i].To, done[i].From))
		}
		done = nil
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("rolling back MongoDB database %s: %w", t.db, err)
		}
		t.dirty = false
		return t.journal.put(ctx, t.entry(stateStaged))
	}
	for _, m := range t.moves {
		if err := t.rename(ctx, m.From, m.To); err != nil {
			return nil, errors.Join(fmt.Errorf("swapping staged collections into %s: %w", t.db, err), undo(context.WithoutCancel(ctx)))
		}
		done = append(done, m)
		crashpoint.Hit("backup.restore.mongo.rename")
		if err := faultHook("mongo swap " + t.db); err != nil {
			return nil, errors.Join(fmt.Errorf("swapping staged collections into %s: %w", t.db, err), undo(context.WithoutCancel(ctx)))
		}
	}
	return undo, nil
}

// Commit drops the old and staging collections after every swap succeeded.
func (t *mongoTarget) Commit(ctx context.Context) error { return t.commit(ctx, t.backup, t.dropCopies) }

// Discard drops the staging collections, unless a swap is under way (the
// next run finishes it and needs them).
func (t *mongoTarget) Discard(ctx context.Context) error {
	return t.discard(ctx, "staging collections", t.dropCopies)
}

func (t *mongoTarget) dropCopies(ctx context.Context) error {
	return t.dropPrefixed(ctx, mongoNewPrefix, mongoOldPrefix)
}

func connectMongo(ctx context.Context, cfg MongoConfig) (*mongo.Client, error) {
	c, err := mongo.Connect(options.Client().ApplyURI(cfg.URI.Reveal()))
	if err != nil {
		return nil, fmt.Errorf("connecting to MongoDB: %w", err)
	}
	if err := c.Ping(ctx, nil); err != nil {
		c.Disconnect(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("connecting to MongoDB: %w", err)
	}
	return c, nil
}

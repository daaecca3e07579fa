package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

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
	for _, db := range c.Databases {
		if err := checkMongoName(db); err != nil {
			return usererr.Wrap(err)
		}
	}
	return nil
}

func checkMongoName(db string) error {
	if db == "" || len(db) > 60 || strings.ContainsAny(db, "/\\. \"$*<>:|?\x00") || db == "admin" || db == "local" || db == "config" {
		return fmt.Errorf("MongoDB database name %q is empty, too long, a system database or holds a forbidden character", db)
	}
	return nil
}

const (
	mongoNewPrefix = "slipway_new__"
	mongoOldPrefix = "slipway_old__"
)

// withToolConfig writes the URI into a private YAML config file for
// mongodump/mongorestore (their --config), calls f with its path and removes it.
func (c MongoConfig) withToolConfig(f func(path string) error) error {
	dir, err := os.MkdirTemp("", "slipway-mongo-")
	if err != nil {
		return fmt.Errorf("creating private config directory: %w", err)
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, "tool.yaml")
	// A single-quoted YAML scalar needs only its quotes doubled.
	body := "uri: '" + strings.ReplaceAll(c.URI.Reveal(), "'", "''") + "'\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		return fmt.Errorf("writing private config file: %w", err)
	}
	return f(p)
}

// mongoSource dumps one database with mongodump --archive.
type mongoSource struct {
	cfg MongoConfig
	bin string
	db  string
}

var _ Source = (*mongoSource)(nil)

func (s *mongoSource) Kind() string     { return KindMongo }
func (s *mongoSource) Database() string { return s.db }
func (s *mongoSource) Ext() string      { return ".archive" }

func (s *mongoSource) Version(ctx context.Context) string {
	v, _ := tool{path: s.bin, args: []string{"--version"}}.output(ctx)
	first, _, _ := strings.Cut(v, "\n")
	return first
}

func (s *mongoSource) Dump(ctx context.Context, w io.Writer) error {
	return s.cfg.withToolConfig(func(conf string) error {
		args := []string{"--config=" + conf, "--db=" + s.db, "--archive", "--quiet"}
		return tool{path: s.bin, args: args}.run(ctx, nil, w)
	})
}

// mongoTarget restores into slipway_new__<collection> inside the live
// database (FerretDB and sharded MongoDB cannot rename across databases),
// then renames collections into place.
type mongoTarget struct {
	cfg    MongoConfig
	bin    string
	client *mongo.Client
	db     string
}

var _ Target = (*mongoTarget)(nil)

func (t *mongoTarget) Name() string { return KindMongo + " " + t.db }

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

func (t *mongoTarget) Stage(ctx context.Context, r io.Reader) error {
	if err := t.dropPrefixed(ctx, mongoNewPrefix); err != nil {
		return err
	}
	return t.cfg.withToolConfig(func(conf string) error {
		args := []string{"--config=" + conf, "--archive", "--quiet", "--drop",
			"--nsInclude=" + t.db + ".*",
			"--nsFrom=" + t.db + ".$c$", "--nsTo=" + t.db + "." + mongoNewPrefix + "$c$"}
		if t.cfg.NoIndexRestore {
			args = append(args, "--noIndexRestore")
		}
		if err := (tool{path: t.bin, args: args}).run(ctx, r, io.Discard); err != nil {
			return fmt.Errorf("restoring into staging collections of %s: %w", t.db, err)
		}
		return nil
	})
}

func (t *mongoTarget) rename(ctx context.Context, from, to string) error {
	cmd := bson.D{{Key: "renameCollection", Value: t.db + "." + from}, {Key: "to", Value: t.db + "." + to}}
	if err := t.client.Database("admin").RunCommand(ctx, cmd).Err(); err != nil {
		return fmt.Errorf("renaming %s.%s to %s: %w", t.db, from, to, err)
	}
	return nil
}

// Swap renames every live collection to slipway_old__<name> and every staged
// one to its name; on error it renames everything back.
func (t *mongoTarget) Swap(ctx context.Context) (func(context.Context) error, error) {
	if err := t.dropPrefixed(ctx, mongoOldPrefix); err != nil {
		return nil, err
	}
	names, err := t.collections(ctx)
	if err != nil {
		return nil, err
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
	type move struct{ from, to string }
	var done []move
	undo := func(ctx context.Context) error {
		var errs []error
		for i := len(done) - 1; i >= 0; i-- {
			errs = append(errs, t.rename(ctx, done[i].to, done[i].from))
		}
		done = nil
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("rolling back MongoDB database %s: %w", t.db, err)
		}
		return nil
	}
	var moves []move
	for _, n := range live {
		moves = append(moves, move{n, mongoOldPrefix + n})
	}
	for _, n := range staged {
		moves = append(moves, move{mongoNewPrefix + n, n})
	}
	for _, m := range moves {
		if err := t.rename(ctx, m.from, m.to); err != nil {
			return nil, errors.Join(fmt.Errorf("swapping staged collections into %s: %w", t.db, err), undo(context.WithoutCancel(ctx)))
		}
		done = append(done, m)
		if err := faultHook("mongo swap " + t.db); err != nil {
			return nil, errors.Join(fmt.Errorf("swapping staged collections into %s: %w", t.db, err), undo(context.WithoutCancel(ctx)))
		}
	}
	return undo, nil
}

func (t *mongoTarget) Commit(ctx context.Context) error {
	return t.dropPrefixed(ctx, mongoOldPrefix, mongoNewPrefix)
}

func (t *mongoTarget) Discard(ctx context.Context) error {
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

package backup

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"filippo.io/age"

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
}

// Create dumps every configured database into a new backup and writes its
// manifest last. On any failure the manifest is not written, so the partial
// backup is never listed as complete; its objects are deleted.
func Create(ctx context.Context, opts CreateOptions) (*Manifest, error) {
	store, err := opts.setup()
	if err != nil {
		return nil, err
	}
	if opts.Compression == "" {
		opts.Compression = CompressZstd
	}
	if err := checkCompression(opts.Compression); err != nil {
		return nil, usererr.Errorf("%s %w", opts.Names.of("Compression"), err)
	}
	if opts.Site == "" {
		return nil, usererr.Errorf("%s is empty: name the site the backup comes from (e.g. primary)", opts.Names.of("Site"))
	}
	recipients, err := readRecipients(opts.AgeRecipients, opts.Names)
	if err != nil {
		return nil, err
	}
	sources, err := buildSources(opts.MySQL, opts.Mongo, opts.Names)
	if err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, usererr.Errorf("nothing to back up: give %s and/or %s", opts.Names.of("MySQL.Databases"), opts.Names.of("Mongo.Databases"))
	}
	start := opts.Now().UTC()
	id := NewID(start)
	prefix := opts.S3.Prefix + id + "/"
	existing, err := store.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("checking for backup %s: %w", id, err)
	}
	if len(existing) > 0 {
		return nil, fmt.Errorf("backup %s already exists (another run started in the same second?): retry in a second", id)
	}
	m := &Manifest{Format: ManifestFormat, ID: id, Site: opts.Site, Started: start, Compression: opts.Compression, Tools: map[string]string{}}
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
		key := prefix + src.Kind() + "-" + src.Database() + src.Ext() + suffix(opts.Compression, len(recipients) > 0)
		opts.Logger.Info("dumping", "kind", src.Kind(), "database", src.Database(), "object", key)
		t0 := time.Now()
		d, err := dumpOne(ctx, store, src, key, opts.Compression, opts.CompressionLevel, recipients)
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("backing up %s database %s (no backup was recorded; rerun create once this is fixed): %w", src.Kind(), src.Database(), err)
		}
		secs := time.Since(t0).Seconds()
		opts.Logger.Info("dumped", "kind", src.Kind(), "database", src.Database(), "raw_bytes", d.RawSize, "stored_bytes", d.Size,
			"seconds", fmt.Sprintf("%.1f", secs), "MBps", fmt.Sprintf("%.1f", float64(d.RawSize)/1e6/max(secs, 0.001)))
		m.Dumps = append(m.Dumps, *d)
	}
	m.Finished = opts.Now().UTC()
	if err := store.Put(ctx, prefix+manifestName, strings.NewReader(string(encodeManifest(m)))); err != nil {
		cleanup()
		return nil, fmt.Errorf("writing manifest of backup %s: %w", id, err)
	}
	opts.Logger.Info("backup complete", "backup", id, "dumps", len(m.Dumps))
	return m, nil
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
			out = append(out, &mysqlSource{cfg: my, bin: bin, db: db})
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
			out = append(out, &mongoSource{cfg: mg, bin: bin, db: db})
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
	putErr := store.Put(ctx, key, pr)
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

// Package backup streams MySQL and MongoDB dumps through compression and
// optional age encryption into S3, and restores complete, verified backups
// into staging databases that are swapped in only after the whole restore
// succeeded.
package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/slipwayci/slipway/internal/logging"
)

// Source produces one database's dump.
type Source interface {
	Kind() string
	Database() string
	// Ext is the object name's extension before compression (".sql").
	Ext() string
	Version(ctx context.Context) string
	Dump(ctx context.Context, w io.Writer) error
}

// Target restores one database: Stage loads a dump beside the live data,
// Swap puts it in place (returning an undo), Commit removes what the swap
// left over, Discard removes a staged copy that is not wanted.
type Target interface {
	Name() string
	Stage(ctx context.Context, r io.Reader) error
	Swap(ctx context.Context) (undo func(context.Context) error, err error)
	Commit(ctx context.Context) error
	Discard(ctx context.Context) error
}

// faultHook lets tests fail a restore in the middle of a swap, to exercise
// the rollback against real servers. It is nil outside tests.
var faultHook = func(string) error { return nil }

// ErrChecksum means a stored dump does not match its manifest.
var ErrChecksum = errors.New("checksum mismatch")

// ErrUsage marks errors in the options: the CLI exits 2 for them.
var ErrUsage = errors.New("bad usage")

func usagef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, args...))
}

// IsUsage reports whether err comes from bad options.
func IsUsage(err error) bool { return errors.Is(err, ErrUsage) }

// Common holds the options every command shares.
type Common struct {
	S3     S3Config
	Logger *slog.Logger
	// Now is the clock (tests move it).
	Now func() time.Time
}

func (c *Common) setup() (*S3Store, error) {
	if c.Logger == nil {
		c.Logger = logging.Discard()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	st, err := NewS3Store(c.S3)
	if err != nil {
		return nil, usagef("%s", err)
	}
	return st, nil
}

// readRecipients parses age recipients: "age1..." strings or files of them.
func readRecipients(specs []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, s := range specs {
		if strings.HasPrefix(s, "age1") {
			r, err := age.ParseX25519Recipient(s)
			if err != nil {
				return nil, usagef("--age-recipient %q: %s", s, err)
			}
			out = append(out, r)
			continue
		}
		f, err := os.Open(s)
		if err != nil {
			return nil, usagef("--age-recipient %q is neither an age1... key nor a readable file: %s", s, err)
		}
		rs, err := age.ParseRecipients(f)
		f.Close()
		if err != nil {
			return nil, usagef("--age-recipient file %s: %s", s, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// readIdentities parses age identity files (the private keys).
func readIdentities(paths []string) ([]age.Identity, error) {
	var out []age.Identity
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, usagef("--age-identity-file: %s", err)
		}
		ids, err := age.ParseIdentities(f)
		f.Close()
		if err != nil {
			// The parser's message may quote the key; do not repeat it.
			return nil, usagef("--age-identity-file %s holds no valid age identity", p)
		}
		out = append(out, ids...)
	}
	return out, nil
}

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
		return nil, usagef("%s", err)
	}
	if opts.Site == "" {
		return nil, usagef("--site is empty: name the site the backup comes from (e.g. primary)")
	}
	recipients, err := readRecipients(opts.AgeRecipients)
	if err != nil {
		return nil, err
	}
	sources, err := buildSources(opts.MySQL, opts.Mongo)
	if err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return nil, usagef("nothing to back up: give --mysql-database and/or --mongo-database")
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
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		objs, err := store.List(dctx, prefix)
		if err != nil {
			opts.Logger.Warn("could not clean up the incomplete backup; prune removes it later", "backup", id, "err", err)
			return
		}
		keys := make([]string, len(objs))
		for i, o := range objs {
			keys[i] = o.Key
		}
		if err := store.Delete(dctx, keys...); err != nil {
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

func buildSources(my MySQLConfig, mg MongoConfig) ([]Source, error) {
	var out []Source
	if len(my.Databases) > 0 {
		if !my.Enabled() {
			return nil, usagef("--mysql-database given without --mysql-host or --mysql-socket")
		}
		if err := my.validate(); err != nil {
			return nil, usagef("%s", err)
		}
		bin, err := findTool(my.DumpBin, "mariadb-dump", "mysqldump")
		if err != nil {
			return nil, usagef("MySQL dump tool: %s", err)
		}
		for _, db := range my.Databases {
			out = append(out, &mysqlSource{cfg: my, bin: bin, db: db})
		}
	}
	if len(mg.Databases) > 0 {
		if !mg.Enabled() {
			return nil, usagef("--mongo-database given without --mongo-uri")
		}
		if err := mg.validate(); err != nil {
			return nil, usagef("%s", err)
		}
		bin, err := findTool(mg.DumpBin, "mongodump")
		if err != nil {
			return nil, usagef("MongoDB dump tool: %s", err)
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

// ListOptions configures List.
type ListOptions struct{ Common }

// List returns every backup, newest first, complete or not.
func List(ctx context.Context, opts ListOptions) ([]Entry, error) {
	store, err := opts.setup()
	if err != nil {
		return nil, err
	}
	return catalog(ctx, store, opts.S3.Prefix)
}

// VerifyOptions configures Verify.
type VerifyOptions struct {
	Common
	ID     string // empty with Latest
	Latest bool
	// AgeIdentityFiles decrypt encrypted backups; without them an encrypted
	// backup's stored checksums are checked but not its content.
	AgeIdentityFiles []string
}

func pick(ctx context.Context, store ObjectStore, prefix, id string, latest bool) (*Manifest, error) {
	switch {
	case latest && id != "":
		return nil, usagef("give a backup ID or --latest, not both")
	case !latest && id == "":
		return nil, usagef("give a backup ID or --latest (see: backup list)")
	case latest:
		entries, err := catalog(ctx, store, prefix)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.Complete {
				return e.Manifest, nil
			}
		}
		return nil, fmt.Errorf("no complete backup under s3 prefix %q: run backup create on the primary site first", prefix)
	default:
		if _, err := ParseID(id); err != nil {
			return nil, usagef("%s", err)
		}
		return readManifest(ctx, store, prefix, id)
	}
}

// Verify downloads every dump of a backup and checks its checksums and that
// it decompresses, without touching any database.
func Verify(ctx context.Context, opts VerifyOptions) (*Manifest, error) {
	store, err := opts.setup()
	if err != nil {
		return nil, err
	}
	ids, err := readIdentities(opts.AgeIdentityFiles)
	if err != nil {
		return nil, err
	}
	m, err := pick(ctx, store, opts.S3.Prefix, opts.ID, opts.Latest)
	if err != nil {
		return nil, err
	}
	for _, d := range m.Dumps {
		if err := verifyDump(ctx, store, m, d, ids); err != nil {
			return m, fmt.Errorf("verifying backup %s: %w", m.ID, err)
		}
		opts.Logger.Info("verified", "kind", d.Kind, "database", d.Database, "bytes", d.Size)
	}
	return m, nil
}

func verifyDump(ctx context.Context, store ObjectStore, m *Manifest, d Dump, ids []age.Identity) error {
	rc, err := store.Get(ctx, d.Key)
	if err != nil {
		return err
	}
	defer rc.Close()
	if m.Encryption != "" && len(ids) == 0 {
		// Only the stored bytes can be checked without the key.
		hc := newHashCounter()
		if _, err := io.Copy(hc, rc); err != nil {
			return fmt.Errorf("reading %s: %w", d.Key, err)
		}
		if hc.n != d.Size || hc.Sum() != d.SHA256 {
			return fmt.Errorf("%w: %s %s (%s): stored size %d sha256 %s, manifest says %d %s", ErrChecksum, d.Kind, d.Database, d.Key, hc.n, hc.Sum(), d.Size, d.SHA256)
		}
		return nil
	}
	dec, err := newDecoder(rc, m.Compression, m.Encryption != "", ids)
	if err != nil {
		return fmt.Errorf("%s %s (%s): %w", d.Kind, d.Database, d.Key, err)
	}
	defer dec.close()
	if _, err := io.Copy(io.Discard, dec.r); err != nil {
		return fmt.Errorf("%w: %s %s (%s) does not decompress: %s", ErrChecksum, d.Kind, d.Database, d.Key, err)
	}
	if err := dec.drain(); err != nil {
		return fmt.Errorf("reading %s: %w", d.Key, err)
	}
	return dec.check(d)
}

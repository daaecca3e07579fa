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
	"github.com/slipwayci/slipway/internal/usererr"
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

// Names says how errors name the options: an option's name as the options
// structs spell it ("Site", "S3.Bucket", "MySQL.Databases") maps to what the
// caller calls it; a CLI maps them to its flags. Unmapped options keep their
// own names.
type Names map[string]string

func (n Names) of(option string) string {
	if s, ok := n[option]; ok {
		return s
	}
	return option
}

// Common holds the options every command shares.
type Common struct {
	S3     S3Config
	Logger *slog.Logger
	// Now is the clock (tests move it).
	Now func() time.Time
	// Names names the options in errors (default: their own names).
	Names Names
}

func (c *Common) setup() (*S3Store, error) {
	if c.Logger == nil {
		c.Logger = logging.Discard()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return newS3Store(c.S3, c.Names)
}

// readRecipients parses age recipients: "age1..." strings or files of them.
func readRecipients(specs []string, n Names) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, s := range specs {
		if strings.HasPrefix(s, "age1") {
			r, err := age.ParseX25519Recipient(s)
			if err != nil {
				return nil, usererr.Errorf("%s %q: %w", n.of("AgeRecipients"), s, err)
			}
			out = append(out, r)
			continue
		}
		f, err := os.Open(s)
		if err != nil {
			return nil, usererr.Errorf("%s %q is neither an age1... key nor a readable file: %w", n.of("AgeRecipients"), s, err)
		}
		rs, err := age.ParseRecipients(f)
		f.Close()
		if err != nil {
			return nil, usererr.Errorf("%s file %s: %w", n.of("AgeRecipients"), s, err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// readIdentities parses age identity files (the private keys).
func readIdentities(paths []string, n Names) ([]age.Identity, error) {
	var out []age.Identity
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return nil, usererr.Errorf("%s: %w", n.of("AgeIdentityFiles"), err)
		}
		ids, err := age.ParseIdentities(f)
		f.Close()
		if err != nil {
			// The parser's message may quote the key; do not repeat it.
			return nil, usererr.Errorf("%s %s holds no valid age identity", n.of("AgeIdentityFiles"), p)
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

// open is the start of verify and restore: the store, the age identities
// and the backup they work on.
func (c *Common) open(ctx context.Context, id string, latest bool, identityFiles []string) (ObjectStore, []age.Identity, *Manifest, error) {
	store, err := c.setup()
	if err != nil {
		return nil, nil, nil, err
	}
	ids, err := readIdentities(identityFiles, c.Names)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := pick(ctx, store, c.S3.Prefix, id, latest, c.Names)
	if err != nil {
		return nil, nil, nil, err
	}
	return store, ids, m, nil
}

func pick(ctx context.Context, store ObjectStore, prefix, id string, latest bool, n Names) (*Manifest, error) {
	switch {
	case latest && id != "":
		return nil, usererr.Errorf("give %s or %s, not both", n.of("ID"), n.of("Latest"))
	case !latest && id == "":
		return nil, usererr.Errorf("give %s or %s (see: backup list)", n.of("ID"), n.of("Latest"))
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
			return nil, usererr.Wrap(err)
		}
		return readManifest(ctx, store, prefix, id)
	}
}

// Verify downloads every dump of a backup and checks its checksums and that
// it decompresses, without touching any database.
func Verify(ctx context.Context, opts VerifyOptions) (*Manifest, error) {
	store, ids, m, err := opts.open(ctx, opts.ID, opts.Latest, opts.AgeIdentityFiles)
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

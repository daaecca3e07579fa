package backup

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"filippo.io/age"
)

// VerifyOptions configures Verify.
type VerifyOptions struct {
	Common
	ID     string // empty with Latest
	Latest bool
	// AgeIdentityFiles decrypt encrypted backups; without them an encrypted
	// backup's stored checksums are checked but not its content.
	AgeIdentityFiles []string
}

// Verify downloads every dump of a backup and checks its checksums and that
// it decompresses, without touching any database.
func Verify(ctx context.Context, opts VerifyOptions) (*Manifest, error) {
	store, ids, m, err := opts.open(ctx, opts.ID, opts.Latest, opts.AgeIdentityFiles)
	if err != nil {
		return nil, err
	}
	return m, verifyAll(ctx, store, m, ids, opts.Logger)
}

// verifyAll checks every dump of m in store.
func verifyAll(ctx context.Context, store ObjectStore, m *Manifest, ids []age.Identity, logger *slog.Logger) error {
	for _, d := range m.Dumps {
		if err := verifyDump(ctx, store, m, d, ids); err != nil {
			return fmt.Errorf("verifying backup %s: %w", m.ID, err)
		}
		logger.Info("verified", "kind", d.Kind, "database", d.Database, "bytes", d.Size)
	}
	return nil
}

// ShowOptions configures Show.
type ShowOptions struct {
	Common
	ID     string // empty with Latest
	Latest bool
}

// Show reads one backup's manifest (the newest complete one with Latest):
// what it holds, and for a backup of a frozen site its freeze and
// data-loss window. Nothing but the manifest is read.
func Show(ctx context.Context, opts ShowOptions) (*Manifest, error) {
	_, _, m, err := opts.open(ctx, opts.ID, opts.Latest, nil)
	return m, err
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

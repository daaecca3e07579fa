package backup

import (
	"context"
	"fmt"
	"io"

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

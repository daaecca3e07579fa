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

// Target restores one database. Recover finishes or drops what a killed
// restore left; Stage loads a dump beside the live data and Staged records
// that it matched the manifest; Prepare journals the swap, Swap makes it
// (returning an undo), Commit removes what the swap left over, Discard
// removes a staged copy that is not wanted; Finish records how the restore
// ended (for the DR site's status).
type Target interface {
	Name() string
	Recover(ctx context.Context, backup string, fresh bool) (Recovery, error)
	Stage(ctx context.Context, r io.Reader, p *stageProgress) error
	Staged(ctx context.Context) error
	Prepare(ctx context.Context) error
	Swap(ctx context.Context) (undo func(context.Context) error, err error)
	Commit(ctx context.Context) error
	Discard(ctx context.Context) error
	Finish(ctx context.Context, backup string, err error) error
}

// Recovery is what a target's journal said when a restore started.
type Recovery struct {
	// Finished: a swap a killed run had begun was completed.
	Finished bool
	// Restored is the backup the live database holds ("" when unknown).
	Restored string
	// Resume: staging holds part of the backup being restored, which the
	// load continues.
	Resume bool
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

// checkDatabases checks each database name given: the first bad one is a
// user error.
func checkDatabases(dbs []string, check func(string) error) error {
	for _, db := range dbs {
		if err := check(db); err != nil {
			return usererr.Wrap(err)
		}
	}
	return nil
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

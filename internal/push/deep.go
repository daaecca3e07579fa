package push

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipwayci/slipway/internal/crashpoint"
)

// ErrDamaged marks a blob a region holds with the wrong bytes (a zero-byte
// object left by a failed upload, corruption at rest) that push-registry
// could not repair there: the error says what to remove.
var ErrDamaged = errors.New("damaged blob")

// dial connects to one region's registry: the registry push-registry runs
// on a storage-backed region's Swift without a login, any other with the
// region's login. The client records the upload sessions it opens in
// journal (nil: none).
func dial(ctx context.Context, a *Auth, conn *Conn, r Region, st *storage, repos []string, journal *uploadJournal) (*client, Credential, error) {
	cred := Credential{From: "none (push-registry's own registry)"}
	if st == nil {
		var err error
		if cred, err = a.credential(r); err != nil {
			return nil, cred, err
		}
	}
	c, err := newClient(ctx, r, cred, conn, repos)
	if err != nil {
		return nil, cred, err
	}
	c.journal, c.st = journal, st
	return c, cred, nil
}

// checkBlob reads blob d of repo back in full (GET, one pooled buffer, so
// memory does not grow with its size) and says what is wrong with it: ""
// when it has size bytes hashing to d. err is for a read that failed, not
// for damage.
func checkBlob(ctx context.Context, c *client, repo string, d v1.Hash, size int64) (damage string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(repo, "blobs", d.String()), nil)
	if err != nil {
		return "", err
	}
	resp, err := c.do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return "it is missing", nil
	default:
		return "", registryError(resp)
	}
	got, n, err := v1.SHA256(resp.Body)
	if err != nil {
		return "", fmt.Errorf("reading blob %s: %w", d, cleanErr(err))
	}
	switch {
	case n == 0 && size > 0:
		return fmt.Sprintf("it reads back as 0 bytes, want %d (a zero-byte object in the storage)", size), nil
	case n != size:
		return fmt.Sprintf("it reads back as %d bytes, want %d", n, size), nil
	case d.Algorithm == "sha256" && got != d:
		return fmt.Sprintf("its %d bytes hash to %s (corrupted in the storage)", n, got), nil
	}
	return "", nil
}

// repairStorage takes the damaged copy of blob d out of a storage-backed
// region's Swift (its object and segments), so that it can be pushed
// again. A registry region cannot be repaired from here: the error says
// what its operator must remove.
func repairStorage(ctx context.Context, r Region, st *storage, d v1.Hash, damage string) error {
	if st == nil {
		return fmt.Errorf("%w: %s; the registry will not replace it: remove %s (the blob's directory, below the root of region %s's registry storage), then rerun",
			ErrDamaged, damage, blobDir(d), r.Name)
	}
	store, err := st.objects(ctx)
	if err != nil {
		return fmt.Errorf("%w: %s; repairing it: %w", ErrDamaged, damage, err)
	}
	crashpoint.Hit("push.repair-delete")
	if err := store.deleteBlob(ctx, d); err != nil {
		return fmt.Errorf("%w: %s; repairing it: %w; rerun to try again", ErrDamaged, damage, err)
	}
	crashpoint.Hit("push.repair-deleted")
	return nil
}

// blobDir is the directory of a blob in distribution's storage layout.
func blobDir(d v1.Hash) string {
	return "docker/registry/v2/blobs/" + d.Algorithm + "/" + d.Hex[:2] + "/" + d.Hex + "/"
}

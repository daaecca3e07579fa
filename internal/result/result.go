// Package result reads and writes the versioned JSON files through which the
// stages talk to each other (the build, push, cluster, deploy and backup
// results). Files are written atomically: readers never see half a file.
package result

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/runlock"
)

// APIVersion is the version of every result file this build writes.
const APIVersion = "slipway.dev/v1"

// Header starts every result file.
type Header struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Generated  time.Time `json:"generated"`
	// Tool is the binary and version that wrote the file.
	Tool string `json:"tool,omitempty"`
}

// ResultHeader exposes the header for stamping and checking; every result
// type embeds Header and so has it.
func (h *Header) ResultHeader() *Header { return h }

// Document is implemented by every result type: it names its kind and
// exposes its header (embedding Header gives ResultHeader).
type Document interface {
	ResultHeader() *Header
	ResultKind() string
}

// ErrWrongKind is returned when a file holds another kind of result.
var ErrWrongKind = errors.New("wrong result kind")

// WriteFile stamps doc's header and writes it as indented JSON to path through
// a temporary file in the same directory, synced and renamed into place.
// perm is the final file mode (0o644 for results, 0o600 for anything private).
func WriteFile(path string, doc Document, perm os.FileMode) error {
	h := doc.ResultHeader()
	h.APIVersion = APIVersion
	h.Kind = doc.ResultKind()
	if h.Generated.IsZero() {
		h.Generated = time.Now().UTC().Truncate(time.Second)
	}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s result: %w", h.Kind, err)
	}
	return WriteAtomic(path, append(data, '\n'), perm)
}

// WriteAtomic writes data to path via a synced temporary file and a rename.
// The temporary file is locked (flock) until the rename, so the temporary
// file of a writer killed before it (free lock) is removed by the next
// write of path.
func WriteAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating directory for %s: %w", path, err)
	}
	prefix := "." + filepath.Base(path) + ".tmp-"
	removeDeadTemps(dir, prefix)
	tmp, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	fail := func(err error) error {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if ok, err := runlock.Lock(tmp); !ok {
		return fail(fmt.Errorf("locking its temporary file: %w", cmp.Or(err, errors.New("held by another process"))))
	}
	if _, err := tmp.Write(data); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(perm); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	crashpoint.Hit("result.write")
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// removeDeadTemps removes the temporary files in dir named prefix* whose
// writer is dead (their lock is free).
func removeDeadTemps(dir, prefix string) {
	entries, _ := os.ReadDir(dir)
	var temps []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			temps = append(temps, filepath.Join(dir, e.Name()))
		}
	}
	runlock.SweepDead(temps, func(temp string) string { return temp }, func(temp string) { _ = os.Remove(temp) })
}

// ReadFile decodes the result file at path into doc, checking its apiVersion
// and kind. Errors name the file.
func ReadFile(path string, doc Document) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("reading result file: %w", err)
	}
	defer f.Close()
	if err := Decode(f, doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Decode reads a result document from r and checks its header.
func Decode(r io.Reader, doc Document) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(doc); err != nil {
		return fmt.Errorf("decoding %s result: %w", doc.ResultKind(), err)
	}
	h := doc.ResultHeader()
	if h.Kind != doc.ResultKind() {
		return fmt.Errorf("%w: kind %q, want %q", ErrWrongKind, h.Kind, doc.ResultKind())
	}
	if h.APIVersion != APIVersion {
		return fmt.Errorf("apiVersion %q is not supported (want %q): rerun the stage that wrote it with this slipway version", h.APIVersion, APIVersion)
	}
	return nil
}

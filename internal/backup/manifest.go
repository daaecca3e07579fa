package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/slipwayci/slipway/internal/result"
)

// ManifestFormat is the version of the manifest this build writes and reads.
const ManifestFormat = 1

// manifestName is the object written last: a backup without it is incomplete.
const manifestName = "manifest.json"

// Manifest describes one complete backup. It is the last object written, so
// its presence is what makes a backup complete.
type Manifest struct {
	Format      int               `json:"format"`
	ID          string            `json:"id"`
	Site        string            `json:"site"`
	Started     time.Time         `json:"started"`
	Finished    time.Time         `json:"finished"`
	Compression string            `json:"compression"`
	Encryption  string            `json:"encryption,omitempty"` // "age" or empty
	Tools       map[string]string `json:"tools,omitempty"`
	Dumps       []Dump            `json:"dumps"`
	// Freeze and DataLossWindowSeconds: see result.BackupRef (a backup of a
	// frozen site only).
	Freeze                *result.BackupFreeze `json:"freeze,omitempty"`
	DataLossWindowSeconds *float64             `json:"dataLossWindowSeconds,omitempty"`
}

// Dump is one database's dump inside a backup.
type Dump struct {
	Kind     string `json:"kind"` // "mysql" or "mongo"
	Database string `json:"database"`
	Key      string `json:"key"` // object key, relative to the bucket
	// Size and SHA256 are those of the stored object (compressed, encrypted).
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// RawSize and RawSHA256 are those of the dump tool's output.
	RawSize   int64  `json:"rawSize"`
	RawSHA256 string `json:"rawSha256"`
}

// Dump kinds.
const (
	KindMySQL = "mysql"
	KindMongo = "mongo"
)

var idPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z$`)

// idLayout names backups by their start time, so keys sort by age.
const idLayout = "20060102T150405Z"

// NewID returns the backup ID for a backup started at t.
func NewID(t time.Time) string { return t.UTC().Format(idLayout) }

// ParseID checks id and returns the time it names.
func ParseID(id string) (time.Time, error) {
	if !idPattern.MatchString(id) {
		return time.Time{}, fmt.Errorf("backup ID %q is not of the form YYYYMMDDTHHMMSSZ (see: backup list)", id)
	}
	return time.Parse(idLayout, id)
}

// Ref is the manifest as result files describe a backup.
func (m *Manifest) Ref() *result.BackupRef {
	if m == nil {
		return nil
	}
	r := &result.BackupRef{ID: m.ID, Site: m.Site, Started: m.Started, Finished: m.Finished, Compression: m.Compression, Encryption: m.Encryption,
		Freeze: m.Freeze, DataLossWindowSeconds: m.DataLossWindowSeconds}
	for _, d := range m.Dumps {
		r.Dumps = append(r.Dumps, result.BackupDump{Kind: d.Kind, Database: d.Database, Key: d.Key, Size: d.Size, SHA256: d.SHA256, RawSize: d.RawSize, RawSHA256: d.RawSHA256})
	}
	return r
}

func decodeManifest(r io.Reader) (*Manifest, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding manifest: %w", err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("manifest format %d is not supported (want %d)", m.Format, ManifestFormat)
	}
	if _, err := ParseID(m.ID); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	for i, d := range m.Dumps {
		if d.Kind != KindMySQL && d.Kind != KindMongo {
			return nil, fmt.Errorf("manifest dump %d: unknown kind %q", i, d.Kind)
		}
		if d.Key == "" || len(d.SHA256) != 64 {
			return nil, fmt.Errorf("manifest dump %d (%s %s): key or sha256 missing", i, d.Kind, d.Database)
		}
	}
	return &m, nil
}

func encodeManifest(m *Manifest) []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return append(b, '\n')
}

// Entry is one backup found in the bucket.
type Entry struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Complete bool      `json:"complete"`
	Objects  int       `json:"objects"`
	Size     int64     `json:"size"`
	// Manifest is set for complete backups.
	Manifest *Manifest `json:"manifest,omitempty"`
	// Problem says why a backup with a manifest object is not usable.
	Problem string `json:"problem,omitempty"`
	keys    []string
}

// catalog lists every backup under prefix, newest first, reading each
// manifest. A backup whose manifest is missing or unreadable is incomplete.
func catalog(ctx context.Context, store ObjectStore, prefix string) ([]Entry, error) {
	objs, err := store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	byID := map[string]*Entry{}
	for _, o := range objs {
		rest := strings.TrimPrefix(o.Key, prefix)
		id, name, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		t, err := ParseID(id)
		if err != nil {
			continue // not ours
		}
		e := byID[id]
		if e == nil {
			e = &Entry{ID: id, Time: t}
			byID[id] = e
		}
		e.Objects++
		e.Size += o.Size
		e.keys = append(e.keys, o.Key)
		if name == manifestName {
			e.Complete = true
		}
	}
	var out []Entry
	for _, e := range byID {
		if e.Complete {
			m, err := readManifest(ctx, store, prefix, e.ID)
			if err != nil {
				e.Complete = false
				e.Problem = err.Error()
			} else {
				e.Manifest = m
			}
		}
		out = append(out, *e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, nil
}

func readManifest(ctx context.Context, store ObjectStore, prefix, id string) (*Manifest, error) {
	rc, err := store.Get(ctx, prefix+id+"/"+manifestName)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("backup %s has no manifest: it is incomplete and is never restored", id)
		}
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading manifest of backup %s: %w", id, err)
	}
	m, err := decodeManifest(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", id, err)
	}
	if m.ID != id {
		return nil, fmt.Errorf("backup %s: manifest names backup %s", id, m.ID)
	}
	for _, d := range m.Dumps {
		if !strings.HasPrefix(d.Key, prefix+id+"/") {
			return nil, fmt.Errorf("backup %s: dump key %s lies outside the backup", id, d.Key)
		}
	}
	return m, nil
}

package secrets

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FileHit is a secret found in a file.
type FileHit struct{ Path, Secret string }

func (h FileHit) String() string { return fmt.Sprintf("secret %s in %s", h.Secret, h.Path) }

// ScanTree reads every regular file under dir (but those skip reports, by
// their path relative to dir) and returns each file that holds a secret.
// Files are read in chunks, so image layers cost no more memory than logs.
func ScanTree(dir string, secrets []Secret, skip func(rel string) bool) ([]FileHit, error) {
	longest := 0
	for _, s := range secrets {
		longest = max(longest, len(s.Value))
	}
	var hits []FileHit
	buf := make([]byte, 1<<20+longest)
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		found, err := scanFile(path, secrets, buf, longest)
		for _, s := range found {
			hits = append(hits, FileHit{path, s})
		}
		return err
	})
	return hits, err
}

// scanFile returns the names of the secrets in one file. Each chunk keeps
// the last longest-1 bytes of the one before, so no value is split.
func scanFile(path string, secrets []Secret, buf []byte, longest int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	found := map[string]bool{}
	var names []string
	keep := 0
	for {
		n, err := io.ReadFull(f, buf[keep:])
		chunk := buf[:keep+n]
		for _, s := range secrets {
			if !found[s.Name] && bytes.Contains(chunk, []byte(s.Value)) {
				found[s.Name] = true
				names = append(names, s.Name)
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return names, nil
		}
		if err != nil {
			return names, fmt.Errorf("scanning %s: %w", path, err)
		}
		keep = max(0, min(longest-1, len(chunk)))
		copy(buf, chunk[len(chunk)-keep:])
	}
}

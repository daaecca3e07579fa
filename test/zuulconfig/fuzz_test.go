package zuulconfig

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/slipwayci/slipway/internal/testenv"
)

// FuzzParse feeds arbitrary documents to the parser: it must never panic,
// and every error it returns must be a configuration error naming the file.
func FuzzParse(f *testing.F) {
	root := testenv.RepoRoot()
	files, _ := filepath.Glob(filepath.Join(root, "zuul.d", "*.yaml"))
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("- job: {name: x, run: [{name: a.yaml, cleanup: yes}], secrets: [{name: s, secret: t}]}"))
	f.Add([]byte("- project: {check: {jobs: [{x: {branches: ['^a$']}}]}}"))
	f.Add([]byte("- secret: {name: s, data: {a: !encrypted/pkcs1-oaep [x, y]}}"))
	f.Add([]byte("- job: &a {name: x}\n- job: *a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := newConfig()
		err := cfg.Parse(bytes.NewReader(data), "fuzz.yaml")
		if err != nil && !errors.Is(err, ErrConfig) {
			t.Fatalf("error is not a configuration error: %v", err)
		}
		if err != nil && !bytes.Contains([]byte(err.Error()), []byte("fuzz.yaml")) {
			t.Fatalf("error does not name the file: %v", err)
		}
		if err == nil && len(cfg.Projects) > 0 {
			for name := range cfg.Projects[0].Pipelines {
				_, _ = Freeze(cfg, cfg.Projects[0], name, "platform/x")
			}
		}
	})
}

package testenv

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// CopyDir copies the tree at src into dst (created if missing), so a test can
// change files of an example or of the repository's own configuration.
func CopyDir(t testing.TB, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
}

// Edit replaces the first old with new in file rel under dir. The test fails
// when old is not there: a mutation that silently does not happen would make
// the test pass for the wrong reason.
func Edit(t testing.TB, dir, rel, old, new string) {
	t.Helper()
	p := filepath.Join(dir, rel)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(old)) {
		t.Fatalf("%s does not contain %q: the test's edit is out of date", rel, old)
	}
	if err := os.WriteFile(p, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

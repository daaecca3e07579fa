package zuulconfig

import (
	"path/filepath"
	"runtime"
	"testing"
)

// repoRoot is the repository this package lives in.
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the repository")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func TestRepoConfigIsValid(t *testing.T) {
	root := repoRoot(t)
	cfg, err := LoadDir(root)
	if err != nil {
		t.Fatalf("parsing zuul.d: %v", err)
	}
	if err := Validate(root, cfg); err != nil {
		t.Fatalf("validating zuul.d:\n%v", err)
	}
}

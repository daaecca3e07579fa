package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/slipwayci/slipway/internal/crashpoint"
)

// TestCrashBinaries: the command is built with the crash hook (it dies at
// its step), and a second call (another test, another package) links the
// same build instead of building again.
func TestCrashBinaries(t *testing.T) {
	const pkg = "./internal/testenv/testdata/crashcmd"
	first, err := CrashBinaries(t.TempDir(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	bin := first["crashcmd"]
	if bin == "" {
		t.Fatalf("binaries %v, want crashcmd", first)
	}
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), crashpoint.EnvPoint+"=crashcmd.step")
	var ee *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("crashcmd at its crash step: %v, want killed (built without the hook?)", err)
	}
	entries, _ := filepath.Glob(filepath.Join(binCacheDir(), "crashcmd-*"))
	if len(entries) != 1 {
		t.Fatalf("shared builds of crashcmd: %v, want one", entries)
	}
	before := inode(t, entries[0])
	second, err := CrashBinaries(t.TempDir(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	if got := inode(t, entries[0]); got != before {
		t.Errorf("the second call built crashcmd again")
	}
	if a, b := inode(t, bin), inode(t, second["crashcmd"]); a != b {
		t.Errorf("the two calls got different binaries (inodes %d, %d)", a, b)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

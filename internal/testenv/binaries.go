package testenv

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// CrashTags are the build tags of a binary with the crash hook
// (internal/crashpoint).
const CrashTags = "slipway_crashpoints"

// Binaries returns the commands pkgs (go package patterns, relative to the
// module root: "./cmd/backup", "./cmd/...") as the pipeline builds them
// (-trimpath, CGO_ENABLED=0: static), with the build tags tags (""
// for none, CrashTags for the crash hook), as paths in dir by the
// command's name ("backup"). Every test process of a run shares one build
// of each: binaries are kept under $SLIPWAY_TESTENV_DIR (the servers'
// directory, so a run's own) keyed by the build ID of their main package,
// which changes with any source file they are built from, the tags and the
// Go version; a binary is built only when no process built it yet for that
// state of the tree. dir gets hard links (or copies), so a newer build that
// replaces the shared one cannot pull a binary from under a running test.
func Binaries(dir, tags string, pkgs ...string) (map[string]string, error) {
	root := RepoRoot()
	ids, err := buildIDs(root, tags, pkgs)
	if err != nil {
		return nil, err
	}
	cache := binCacheDir()
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return nil, err
	}
	unlock, err := lockFile(filepath.Join(cache, "lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	entry := func(b build) string {
		sum := sha256.Sum256([]byte(tags + " " + b.id))
		return filepath.Join(cache, b.name+"-"+hex.EncodeToString(sum[:8]))
	}
	var missing []build
	for _, b := range ids {
		if _, err := os.Stat(entry(b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		tmp, err := os.MkdirTemp(cache, "build-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		args := append([]string{"build"}, buildFlags(tags)...)
		args = append(args, "-o", tmp+string(filepath.Separator))
		for _, b := range missing {
			args = append(args, b.importPath)
		}
		if out, err := goCmd(root, args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", strings.Join(buildFlags(tags), " "), err, out)
		}
		for _, b := range missing {
			// Older builds of the command are of an older tree: tests
			// that use them hold links of their own.
			old, _ := filepath.Glob(filepath.Join(cache, b.name+"-*"))
			for _, o := range old {
				_ = os.Remove(o)
			}
			if err := os.Rename(filepath.Join(tmp, b.name), entry(b)); err != nil {
				return nil, err
			}
		}
	}
	out := map[string]string{}
	for _, b := range ids {
		p := filepath.Join(dir, b.name)
		if err := linkOrCopy(entry(b), p); err != nil {
			return nil, err
		}
		out[b.name] = p
	}
	return out, nil
}

// CrashBinaries is Binaries with the crash hook.
func CrashBinaries(dir string, pkgs ...string) (map[string]string, error) {
	return Binaries(dir, CrashTags, pkgs...)
}

// Binary is Binaries for one command, linked into a temporary directory of
// t; the test fails when it cannot be built.
func Binary(t testing.TB, tags, pkg string) string {
	t.Helper()
	bins, err := Binaries(t.TempDir(), tags, pkg)
	if err != nil {
		t.Fatalf("building %s (tags %q): %v", pkg, tags, err)
	}
	if len(bins) != 1 {
		t.Fatalf("%s is %d commands, want one", pkg, len(bins))
	}
	for _, p := range bins {
		return p
	}
	return ""
}

// CrashBinary is Binary with the crash hook.
func CrashBinary(t testing.TB, pkg string) string {
	t.Helper()
	return Binary(t, CrashTags, pkg)
}

type build struct{ importPath, name, id string }

// listMu keeps a process's go list runs one at a time.
var listMu sync.Mutex

// buildFlags are the flags of go build and go list for tags.
func buildFlags(tags string) []string {
	f := []string{"-trimpath"}
	if tags != "" {
		f = append(f, "-tags", tags)
	}
	return f
}

// goCmd is the go command run in the module root as the pipeline builds
// (static binaries).
func goCmd(root string, args ...string) *exec.Cmd {
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

// buildIDs lists the main packages of pkgs with their build IDs (go list
// -export compiles them, through the build cache, without linking).
func buildIDs(root, tags string, pkgs []string) ([]build, error) {
	listMu.Lock()
	defer listMu.Unlock()
	args := append([]string{"list", "-export"}, buildFlags(tags)...)
	args = append(append(args, "-f", "{{.Name}} {{.ImportPath}} {{.BuildID}}"), pkgs...)
	cmd := goCmd(root, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list %s: %v\n%s", strings.Join(pkgs, " "), err, stderr.String())
	}
	var builds []build
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) != 3 || f[0] != "main" {
			continue
		}
		builds = append(builds, build{importPath: f[1], name: f[1][strings.LastIndexByte(f[1], '/')+1:], id: f[2]})
	}
	if len(builds) == 0 {
		return nil, fmt.Errorf("%s: no command", strings.Join(pkgs, " "))
	}
	return builds, nil
}

// binCacheDir is where the shared builds are kept: in the servers'
// directory (removed with them), else in the temporary directory.
func binCacheDir() string {
	if d := os.Getenv("SLIPWAY_TESTENV_DIR"); d != "" {
		return filepath.Join(d, "testbin")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("slipway-bin-%d", os.Getuid()))
}

// RepoRoot is the absolute path of the checkout the tests run from (the
// module root).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// lockFile takes an exclusive lock on path, shared by every test process.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func linkOrCopy(src, dst string) error {
	_ = os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

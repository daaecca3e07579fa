package buildimage

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/buildimage/buildtest"
	"github.com/slipwayci/slipway/internal/runlock"
)

// TestLockOutput: what a run killed while placing layouts leaves in the
// output directory is undone by the next run, which leaves the earlier
// outputs as they were.
func TestLockOutput(t *testing.T) {
	for _, tc := range []struct {
		name        string
		before      []string // directories in the output directory
		after       []string
		fromAside   string // the directory whose content must be the moved-aside one
		busy        bool
		wantErrBusy bool
	}{
		{name: "temporary layouts", before: []string{"app", ".app.tmp-123", ".web.tmp-9"}, after: []string{"app"}},
		{name: "killed between the renames", before: []string{".app.old", ".app.tmp-5", "web"}, after: []string{"app", "web"}, fromAside: "app"},
		{name: "killed before removing the old layout", before: []string{"app", ".app.old"}, after: []string{"app"}},
		{name: "an image named like a temporary file is kept", before: []string{"app.tmp-1", "app.old"}, after: []string{"app.old", "app.tmp-1"}},
		{name: "another run is writing", before: []string{".app.tmp-1"}, after: []string{".app.tmp-1"}, busy: true, wantErrBusy: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			for _, d := range tc.before {
				if err := os.MkdirAll(filepath.Join(out, d), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(out, d, "index.json"), []byte(d), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tc.busy {
				other, ok, err := runlock.TryLock(out, false)
				if err != nil || !ok {
					t.Fatalf("taking the lock as the other run: %v %v", ok, err)
				}
				defer other.Close()
			}
			lock, err := lockOutput(out, slog.New(slog.DiscardHandler))
			if got := errors.Is(err, ErrOutputBusy); got != tc.wantErrBusy {
				t.Fatalf("lockOutput error %v, want busy %v", err, tc.wantErrBusy)
			}
			if err == nil {
				defer lock.Close()
			}
			var got []string
			entries, _ := os.ReadDir(out)
			for _, e := range entries {
				got = append(got, e.Name())
			}
			if diff := cmp.Diff(tc.after, got); diff != "" {
				t.Errorf("output directory (-want +got):\n%s", diff)
			}
			if tc.fromAside != "" {
				if data, _ := os.ReadFile(filepath.Join(out, tc.fromAside, "index.json")); string(data) != "."+tc.fromAside+".old" {
					t.Errorf("%s holds %q, want the layout that was moved aside", tc.fromAside, data)
				}
			}
		})
	}
}

// TestRemoveStaleStates: the buildah state of a dead run is removed, its
// mounts first; a live run's and one without a lock are left alone.
func TestRemoveStaleStates(t *testing.T) {
	work := t.TempDir()
	dead, live, unlocked := filepath.Join(work, "slipway-buildah-1"), filepath.Join(work, "slipway-buildah-2"), filepath.Join(work, "slipway-buildah-3")
	for _, d := range []string{filepath.Join(dead, "root", "overlay"), live, unlocked} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{dead, live} {
		if err := os.WriteFile(filepath.Join(d, stateLock), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mounted := filepath.Join(dead, "root", "overlay")
	if err := syscall.Mount("tmpfs", mounted, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mounting a tmpfs as a killed buildah's mount (needs root, as buildah does): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mounted, syscall.MNT_DETACH) })
	lock, ok, err := runlock.TryLock(filepath.Join(live, stateLock), false)
	if err != nil || !ok {
		t.Fatalf("locking the live run's state: %v %v", ok, err)
	}
	defer lock.Close()

	removeStaleStates(work, slog.New(slog.DiscardHandler))
	left, _ := filepath.Glob(filepath.Join(work, "slipway-buildah-*"))
	if diff := cmp.Diff([]string{live, unlocked}, left); diff != "" {
		t.Errorf("states left (-want +got):\n%s", diff)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), dead) {
		t.Errorf("mount under %s left", dead)
	}
}

// TestBuildahKilled kills a build (SIGKILL, no clean-up runs) in the middle
// of a RUN step: buildah and the RUN step die with it, and the next run
// into the same directories succeeds and leaves no temporary layout, no
// buildah state and no mount behind. The work directory is relative.
func TestBuildahKilled(t *testing.T) {
	if dir := os.Getenv("BUILDIMAGE_KILLED_CHILD"); dir != "" {
		killedChild(dir)
		return
	}
	base, registry := buildtest.RealEnv(t)
	dir := t.TempDir()
	buildtest.WriteTree(t, dir, map[string]string{"slow/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo started; sleep 60\n",
		"fast/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo fast > /fast\n", "work/": ""})
	logPath := filepath.Join(dir, "log")
	child := exec.Command(os.Args[0], "-test.run=^TestBuildahKilled$")
	child.Env = append(os.Environ(), "BUILDIMAGE_KILLED_CHILD="+dir, "BASE_IMAGE="+base, "REGISTRY="+registry)
	child.Stdout, child.Stderr = os.Stderr, os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if data, _ := os.ReadFile(logPath); strings.Contains(string(data), "started") {
			break
		}
		if time.Now().After(deadline) {
			child.Process.Kill()
			t.Fatal("the RUN step never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = child.Wait()
	for time.Now().Before(deadline) && len(runningUnder(dir)) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	if left := runningUnder(dir); len(left) > 0 {
		t.Errorf("processes of the killed build still run: %v", left)
	}

	t.Chdir(dir)
	o := Options{OutputDir: "out", Insecure: []string{registry}, Buildah: BuildahBackend{WorkDir: "work"}, Output: testLog{t},
		Image: &Image{Name: "app", Repository: "acme/app", Context: "fast"}, Args: map[string]string{"BASE_IMAGE": base}}
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatalf("the run after the killed one: %v", err)
	}
	if len(res.Images) != 1 {
		t.Fatalf("built %d images, want 1", len(res.Images))
	}
	var got []string
	for _, d := range []string{"out", "work"} {
		entries, _ := os.ReadDir(filepath.Join(dir, d))
		for _, e := range entries {
			got = append(got, d+"/"+e.Name())
		}
	}
	if diff := cmp.Diff([]string{"out/app"}, got); diff != "" {
		t.Errorf("left in the directories (-want +got):\n%s", diff)
	}
	if mounts, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mounts), dir) {
		t.Errorf("mounts left under %s", dir)
	}
}

// killedChild is the build TestBuildahKilled kills: the slow image into
// dir/out, its buildah state in dir/work, the build log in dir/log.
func killedChild(dir string) {
	log, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		panic(err)
	}
	o := Options{OutputDir: filepath.Join(dir, "out"), Insecure: []string{os.Getenv("REGISTRY")}, Output: log,
		Buildah: BuildahBackend{WorkDir: filepath.Join(dir, "work")},
		Image:   &Image{Name: "app", Repository: "acme/app", Context: filepath.Join(dir, "slow")}, Args: map[string]string{"BASE_IMAGE": os.Getenv("BASE_IMAGE")}}
	_, _ = Run(context.Background(), o)
	os.Exit(0)
}

// runningUnder lists live processes whose root or working directory is
// under dir (buildah and the RUN step it chroots into its storage).
func runningUnder(dir string) []string {
	var out []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		for _, link := range []string{"root", "cwd"} {
			p, err := os.Readlink(filepath.Join("/proc", e.Name(), link))
			if err == nil && strings.HasPrefix(p, dir) {
				args, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
				out = append(out, e.Name()+": "+strings.ReplaceAll(string(args), "\x00", " "))
				break
			}
		}
	}
	return slices.Compact(out)
}

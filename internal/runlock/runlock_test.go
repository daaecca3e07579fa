package runlock

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestMain doubles as the child process of hold: with $RUNLOCK_HOLD set it
// holds that lock until it is killed, and runs no tests.
func TestMain(m *testing.M) {
	if path := os.Getenv("RUNLOCK_HOLD"); path != "" {
		if _, ok, err := TryLock(path, true); !ok || err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// hold starts a child process that holds the lock of path until killed.
func hold(t *testing.T, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "RUNLOCK_HOLD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	buf := make([]byte, 7)
	if n, err := out.Read(buf); err != nil || string(buf[:n]) != "locked\n" {
		t.Fatalf("helper did not lock %s: %q, %v", path, buf[:n], err)
	}
	return cmd
}

// TestSweepDead: state whose run is alive is kept, state whose run was
// killed (SIGKILL: no clean-up of its own) is undone, and state without a
// lock file is left alone.
func TestSweepDead(t *testing.T) {
	dir := t.TempDir()
	run := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		return p
	}
	alive, killed, unlocked := run("alive"), run("killed"), run("unlocked")
	hold(t, filepath.Join(alive, "lock"))
	victim := hold(t, filepath.Join(killed, "lock"))
	if err := victim.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = victim.Wait()

	var undone []string
	SweepDead([]string{alive, killed, unlocked}, func(p string) string { return filepath.Join(p, "lock") }, func(p string) {
		// The sweep holds the lock while it undoes: a second taker fails.
		if _, ok, _ := TryLock(filepath.Join(p, "lock"), false); ok {
			t.Errorf("%s: the lock is free during undo", p)
		}
		undone = append(undone, filepath.Base(p))
	})
	if want := []string{"killed"}; !slices.Equal(undone, want) {
		t.Errorf("undone = %v, want %v", undone, want)
	}
}

func TestTryLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	if _, _, err := TryLock(path, false); !os.IsNotExist(err) {
		t.Fatalf("no file, no create: err = %v, want not exist", err)
	}
	f, ok, err := TryLock(path, true)
	if !ok || err != nil {
		t.Fatalf("first lock: ok %v, err %v", ok, err)
	}
	if g, ok, err := TryLock(path, false); ok || err != nil || g != nil {
		t.Fatalf("second lock while held: f %v, ok %v, err %v; want nil, false, nil", g, ok, err)
	}
	f.Close()
	g, ok, err := TryLock(path, false)
	if !ok || err != nil {
		t.Fatalf("lock after release: ok %v, err %v", ok, err)
	}
	g.Close()
}

// TestExited: a running process has not exited; once killed (a zombie
// until reaped) and once reaped, it has.
func TestExited(t *testing.T) {
	if Exited(os.Getpid()) {
		t.Fatal("this process reads as exited")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if Exited(pid) {
		t.Errorf("running child %d reads as exited", pid)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Not reaped yet: a zombie, which counts as exited.
	deadline := time.Now().Add(time.Minute)
	for !Exited(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !Exited(pid) {
		t.Errorf("killed child %d does not read as exited", pid)
	}
	_ = cmd.Wait()
	if !Exited(pid) {
		t.Errorf("reaped child %d does not read as exited", pid)
	}
}

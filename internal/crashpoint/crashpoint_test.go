package crashpoint_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/slipwayci/slipway/internal/crashpoint"
)

// TestHit runs a child built with and without the hook and checks that only
// the hooked one dies by SIGKILL at the named step, after logging it.
func TestHit(t *testing.T) {
	if os.Getenv("CRASHPOINT_CHILD") == "1" {
		crashpoint.Hit("a")
		crashpoint.Hit("b")
		crashpoint.Hit("b")
		os.Exit(0)
	}
	for _, tc := range []struct {
		name, tags, point string
		killed            bool
		log               string
	}{
		{"product build", "", "b", false, ""},
		{"hook, first b", "slipway_crashpoints", "b", true, "a\nb\n"},
		{"hook, second b", "slipway_crashpoints", "b:2", true, "a\nb\nb\n"},
		{"hook, no such step", "slipway_crashpoints", "c", false, "a\nb\nb\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "crashpoint.test")
			args := []string{"test", "-c", "-o", bin}
			if tc.tags != "" {
				args = append(args, "-tags", tc.tags)
			}
			if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
				t.Fatalf("go test -c: %v\n%s", err, out)
			}
			logPath := filepath.Join(dir, "steps")
			cmd := exec.Command(bin, "-test.run=^TestHit$")
			cmd.Env = append(os.Environ(), "CRASHPOINT_CHILD=1", crashpoint.EnvPoint+"="+tc.point, crashpoint.EnvLog+"="+logPath)
			err := cmd.Run()
			killed := false
			if ee, ok := err.(*exec.ExitError); ok {
				ws := ee.Sys().(syscall.WaitStatus)
				killed = ws.Signaled() && ws.Signal() == syscall.SIGKILL
			} else if err != nil {
				t.Fatal(err)
			}
			if killed != tc.killed {
				t.Fatalf("killed = %v, want %v (err %v)", killed, tc.killed, err)
			}
			got, _ := os.ReadFile(logPath)
			if strings.TrimSpace(string(got)) != strings.TrimSpace(tc.log) {
				t.Fatalf("steps logged = %q, want %q", got, tc.log)
			}
		})
	}
}

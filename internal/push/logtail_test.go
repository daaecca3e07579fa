package push

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLogTail(t *testing.T) {
	for _, tc := range []struct{ name, log, want string }{
		{"empty", "", "(its log is empty)"},
		{"lines", "time=1 level=error msg=\"listen tcp: address already in use\"\n", `time=1 level=error msg="listen tcp: address already in use"`},
		{"panic without its stack", "time=1 level=info msg=starting\npanic: swift authentication failed: Operation forbidden\n\ngoroutine 1 [running]:\ngithub.com/docker/distribution/registry/handlers.NewApp(...)\n\tapp.go:127 +0x2411\n",
			"panic: swift authentication failed: Operation forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "registry.log"), []byte(tc.log), 0o600); err != nil {
				t.Fatal(err)
			}
			if got := (&localRegistry{dir: dir}).logTail(); got != tc.want {
				t.Errorf("logTail = %q, want %q", got, tc.want)
			}
		})
	}
}

//go:build slipway_crashpoints

package crashpoint

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Enabled reports whether this binary was built with the crash hook.
const Enabled = true

var (
	mu     sync.Mutex
	counts = map[string]int{}
)

// Hit marks the named step: it logs it to $SLIPWAY_CRASHPOINT_LOG and kills
// the process with SIGKILL when $SLIPWAY_CRASHPOINT names this step (and
// this is the Nth time it is reached).
func Hit(name string) {
	mu.Lock()
	defer mu.Unlock()
	counts[name]++
	if path := os.Getenv(EnvLog); path != "" {
		if f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
			_, _ = f.WriteString(name + "\n")
			_ = f.Close()
		}
	}
	want, nth, _ := strings.Cut(os.Getenv(EnvPoint), ":")
	if want != name {
		return
	}
	n := 1
	if nth != "" {
		if v, err := strconv.Atoi(nth); err == nil {
			n = v
		}
	}
	if counts[name] == n {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

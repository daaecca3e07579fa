package pushtest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/slipwayci/slipway/internal/runlock"
)

// Running lists the live processes whose command line names sub (a
// state directory push-registry starts its registries under), each as
// "PID: command line"; zombies do not count.
func Running(sub string) []string {
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(cmdline, []byte(sub)) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || runlock.Exited(pid) {
			continue
		}
		out = append(out, strconv.Itoa(pid)+": "+strings.TrimRight(strings.ReplaceAll(string(cmdline), "\x00", " "), " "))
	}
	return out
}

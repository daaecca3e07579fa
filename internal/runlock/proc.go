package runlock

import (
	"bytes"
	"os"
	"strconv"
	"strings"
)

// Exited reports whether process pid is gone: no such process, or a zombie
// nobody reaped yet (PID 1 of a container may never reap the processes
// reparented to it).
func Exited(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name, which is in parentheses and may
	// hold spaces and parentheses itself.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(f) > 0 && (f[0] == "Z" || f[0] == "X")
}

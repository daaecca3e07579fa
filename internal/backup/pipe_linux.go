package backup

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// childAttr makes a child die with this process: a backup killed with
// SIGKILL leaves no dump or load tool running on its own.
func childAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }

// growPipe raises a pipe's buffer to 1 MiB (the default pipe-max-size);
// failure only costs speed.
func growPipe(f *os.File) {
	_, _ = unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
}

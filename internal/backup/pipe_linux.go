package backup

import (
	"os"

	"golang.org/x/sys/unix"
)

// growPipe raises a pipe's buffer to 1 MiB (the default pipe-max-size);
// failure only costs speed.
func growPipe(f *os.File) {
	_, _ = unix.FcntlInt(f.Fd(), unix.F_SETPIPE_SZ, 1<<20)
}

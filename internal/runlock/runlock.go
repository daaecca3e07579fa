// Package runlock tells the state of a live run from what a killed run left
// behind. A run holds an flock on a lock file of the state it writes; the
// kernel releases it when the process dies, SIGKILL included, so state
// whose lock is free belongs to a run that is gone and the next run may
// undo it.
package runlock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Lock takes the exclusive lock on f without waiting; ok is false when
// another open file (a live run, or this one) holds it.
func Lock(f *os.File) (ok bool, err error) {
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
		return false, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return true, nil
}

// TryLock opens path (a file or a directory; with create, a file made 0600
// when missing) and takes its lock as Lock does. The lock lasts until f is
// closed or the process ends; when ok is false, f is nil.
func TryLock(path string, create bool) (f *os.File, ok bool, err error) {
	if create {
		f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	} else {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, false, err
	}
	if ok, err = Lock(f); !ok {
		f.Close()
		return nil, false, err
	}
	return f, true, nil
}

// SweepDead calls undo for each of paths whose run is gone: its lock file,
// lockOf(path), is free. The lock is held while undo runs, so two sweeps
// never undo the same state. A path whose lock file is missing or cannot be
// opened is left alone (it may be a live run still setting up).
func SweepDead(paths []string, lockOf func(path string) string, undo func(path string)) {
	for _, p := range paths {
		lock, ok, err := TryLock(lockOf(p), false)
		if err != nil || !ok {
			continue
		}
		undo(p)
		lock.Close()
	}
}

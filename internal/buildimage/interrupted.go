package buildimage

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/slipwayci/slipway/internal/runlock"
)

// A run killed with SIGKILL runs no deferred clean-up. What it leaves is
// found and undone by the next run: each run holds an flock (released by
// the kernel when the process dies) on the directories it writes, so a
// directory whose lock is free belongs to a dead run.

// ErrOutputBusy is wrapped when another run writes to the same output
// directory.
var ErrOutputBusy = errors.New("another build-image run is writing to the output directory")

// lockOutput locks the output directory for this run and undoes what a
// killed run left in it: temporary layouts are removed, and a layout that
// was moved aside to be replaced is put back when its replacement never
// arrived, so the directory holds the earlier outputs as they were.
func lockOutput(out string, log *slog.Logger) (*os.File, error) {
	lock, ok, err := runlock.TryLock(out, false)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w %s: wait for it to finish, or build into another directory", ErrOutputBusy, out)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("reading output directory: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(out, name)
		switch {
		case tempLayout.MatchString(name):
			log.Info("removing the temporary layout of an interrupted run", "path", p)
			removeAll(p)
		case movedAside.MatchString(name):
			final := filepath.Join(out, movedAside.FindStringSubmatch(name)[1])
			if _, err := os.Lstat(final); errors.Is(err, os.ErrNotExist) {
				log.Info("restoring the layout an interrupted run moved aside", "path", final)
				if err := os.Rename(p, final); err != nil {
					lock.Close()
					return nil, fmt.Errorf("restoring %s: %w", final, err)
				}
				continue
			}
			removeAll(p)
		}
	}
	return lock, nil
}

// Names of a layout being built (os.MkdirTemp of "."+name+".tmp-") and of
// the previous layout moved aside while it is replaced.
var (
	tempLayout = regexp.MustCompile(`^\..+\.tmp-[0-9]+$`)
	movedAside = regexp.MustCompile(`^\.(.+)\.old$`)
)

func asideName(final string) string {
	return filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+".old")
}

// stateLock is the lock file of a buildah run directory.
const stateLock = "lock"

// removeStaleStates removes the buildah run directories (slipway-buildah-*)
// under dir whose run is dead: their lock is free. (A directory without a
// lock is left alone: it may be a live run of an older version.) Mounts a
// killed buildah left under them are detached first.
func removeStaleStates(dir string, log *slog.Logger) {
	if dir == "" {
		dir = os.TempDir()
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "slipway-buildah-*"))
	runlock.SweepDead(matches, func(m string) string { return filepath.Join(m, stateLock) }, func(m string) {
		log.Info("removing the buildah state of an interrupted run", "path", m)
		unmountUnder(m)
		removeAll(m)
	})
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMount(fields[4])
		if p == dir || strings.HasPrefix(p, dir+string(filepath.Separator)) {
			points = append(points, p)
		}
	}
	f.Close()
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

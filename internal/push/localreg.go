package push

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/runlock"
)

// DefaultRegistryBinary is Debian's distribution 2.8, the release Magnum's
// nodes run.
const DefaultRegistryBinary = "/usr/bin/docker-registry"

// DefaultStateDir is where push-registry keeps the state of the registries
// it runs (one private directory each, with a lock and a pid file), so that
// a run finds and stops those a killed run left behind.
func DefaultStateDir() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "slipway", "push-registry")
}

// localRegistry is a distribution registry push-registry runs on the Swift
// storage of a region: the same storage parameters as the region's node
// registries, on a free loopback port, no auth.
type localRegistry struct {
	dir    string // private (0700): lock, pid, log; the config until ready
	addr   string // 127.0.0.1:PORT
	cmd    *exec.Cmd
	lock   *os.File
	exited chan struct{}
	log    *slog.Logger
}

// registryConfig is a distribution configuration (written as JSON, which
// distribution's YAML reader takes).
func localRegistryConfig(s *Swift, c SwiftCredential, addr, secret string) ([]byte, error) {
	return json.Marshal(map[string]any{
		"version": "0.1",
		"log":     map[string]any{"level": "warn", "formatter": "text", "accesslog": map[string]any{"disabled": true}},
		"storage": map[string]any{
			"swift": s.registryConfig(c),
			// The registry serves blobs itself (no temp URL redirects to
			// Swift) and does not sweep the shared container's uploads at
			// start: the node registries do that.
			"redirect":    map[string]any{"disable": true},
			"maintenance": map[string]any{"uploadpurging": map[string]any{"enabled": false}},
		},
		"http": map[string]any{"addr": addr, "secret": secret},
	})
}

// startRegistry runs a registry on r's Swift storage and waits until it
// answers /v2/. Its config (which holds the Swift password) is a 0600 file
// in a 0700 directory, removed as soon as the registry has read it; the
// password is never in its argv or environment. The registry dies with
// push-registry (SIGKILL on parent death) and stop ends it on every other
// path; a registry left by a killed run is stopped by sweepRegistries.
func startRegistry(ctx context.Context, o *Conn, log *slog.Logger, r Region, c SwiftCredential) (*localRegistry, error) {
	if err := os.MkdirAll(o.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("region %s: state directory: %w", r.Name, err)
	}
	var lastErr error
	// A free port may be taken between choosing and binding it: try again.
	for try := 0; try < 3; try++ {
		l, err := launchRegistry(ctx, o, log, r, c)
		if err == nil {
			return l, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	return nil, fmt.Errorf("region %s: starting a registry on its Swift storage: %w", r.Name, lastErr)
}

var errAddrInUse = errors.New("address already in use")

func launchRegistry(ctx context.Context, o *Conn, log *slog.Logger, r Region, c SwiftCredential) (l *localRegistry, err error) {
	// The directory is made as new-*, locked, then renamed to reg-*: a
	// reg-* directory whose lock is free belongs to a run that is gone.
	dir, err := os.MkdirTemp(o.StateDir, "new-"+r.Name+"-")
	if err != nil {
		return nil, err
	}
	l = &localRegistry{dir: dir, exited: make(chan struct{}), log: log}
	defer func() {
		if err != nil {
			l.stop()
		}
	}()
	var locked bool
	if l.lock, locked, err = runlock.TryLock(filepath.Join(dir, "lock"), true); err != nil {
		return l, err
	}
	if !locked { // a directory made just now: no other run knows it
		return l, fmt.Errorf("locking %s: another process holds its lock", dir)
	}
	final := filepath.Join(o.StateDir, "reg-"+strings.TrimPrefix(filepath.Base(dir), "new-"))
	if err := os.Rename(dir, final); err != nil {
		return l, err
	}
	dir, l.dir = final, final
	port, err := freePort()
	if err != nil {
		return l, err
	}
	l.addr = "127.0.0.1:" + strconv.Itoa(port)
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return l, err
	}
	cfg, err := localRegistryConfig(r.Swift, c, l.addr, hex.EncodeToString(secret))
	if err != nil {
		return l, err
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := writePrivate(cfgPath, cfg); err != nil {
		return l, err
	}
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + dir}
	if r.Swift.CAFile != "" {
		bundle, err := caBundle(dir, r.Swift.CAFile)
		if err != nil {
			return l, fmt.Errorf("swift.cafile: %w", err)
		}
		env = append(env, "SSL_CERT_FILE="+bundle)
	}
	logFile, err := os.OpenFile(filepath.Join(dir, "registry.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return l, err
	}
	defer logFile.Close()
	// Not CommandContext: the registry must outlive a cancelled ctx long
	// enough for push-registry to delete its open upload sessions; stop
	// ends it.
	l.cmd = exec.Command(o.RegistryBinary, "serve", cfgPath)
	l.cmd.Env = env
	l.cmd.Dir = dir
	l.cmd.Stdout, l.cmd.Stderr = logFile, logFile
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := l.cmd.Start(); err != nil {
		return l, fmt.Errorf("running %s: %w", o.RegistryBinary, err)
	}
	go func() {
		_ = l.cmd.Wait()
		close(l.exited)
	}()
	if err := writePrivate(filepath.Join(dir, "pid"), []byte(strconv.Itoa(l.cmd.Process.Pid))); err != nil {
		return l, err
	}
	crashpoint.Hit("push.registry-started")
	if err := l.waitReady(ctx, o.StartTimeout); err != nil {
		return l, err
	}
	if err := os.Remove(cfgPath); err != nil {
		return l, err
	}
	log.Debug("registry on Swift storage is up", "region", r.Name, "address", l.addr, "pid", l.cmd.Process.Pid, "container", r.Swift.Container)
	return l, nil
}

// waitReady polls /v2/ until the registry answers, it exits, or timeout.
func (l *localRegistry) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: 2 * time.Second}
	err := poll.Until(ctx, poll.Constant(50*time.Millisecond), func(ctx context.Context) (bool, error) {
		select {
		case <-l.exited:
			tail := l.logTail()
			if strings.Contains(tail, "address already in use") {
				return false, errAddrInUse
			}
			return false, fmt.Errorf("the registry exited: %s", tail)
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.addr+"/v2/", nil)
		if err != nil {
			return false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil && ctx.Err() != nil && !errors.Is(err, errAddrInUse) {
		return fmt.Errorf("no answer on /v2/ within %s (check the Swift auth URL and that Swift is reachable): %s", timeout, l.logTail())
	}
	return err
}

// logTail is the end of the registry's log, for errors; known secrets are
// scrubbed from it.
func (l *localRegistry) logTail() string {
	data, _ := os.ReadFile(filepath.Join(l.dir, "registry.log"))
	if len(data) > 2000 {
		data = data[len(data)-2000:]
	}
	s := logging.Scrub(string(data))
	// A registry that dies at start panics ("panic: swift authentication
	// failed: ..."): its cause is the panic line, the Go stack after it is
	// noise to the operator.
	if i := strings.Index(s, "panic: "); i >= 0 {
		s = s[i:]
		if j := strings.Index(s, "\ngoroutine "); j >= 0 {
			s = s[:j]
		}
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return "(its log is empty)"
	}
	return strings.Join(strings.Fields(s), " ")
}

// stop ends the registry (SIGTERM, then SIGKILL after 5 s; SIGCONT so a
// stopped one can act on it) and removes its directory.
func (l *localRegistry) stop() {
	if l.cmd != nil && l.cmd.Process != nil {
		_ = l.cmd.Process.Signal(syscall.SIGTERM)
		_ = l.cmd.Process.Signal(syscall.SIGCONT)
		select {
		case <-l.exited:
		case <-time.After(5 * time.Second):
			_ = l.cmd.Process.Kill()
			<-l.exited
		}
	}
	if err := os.RemoveAll(l.dir); err != nil {
		l.log.Warn("removing the registry's state directory", "dir", l.dir, "error", err.Error())
	}
	if l.lock != nil {
		l.lock.Close()
	}
}

// sweepRegistries stops the registries of runs that are gone (their lock
// is free) and removes their directories. Registries of runs still going
// are left alone.
func sweepRegistries(dir string, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	var started []string
	for _, e := range entries {
		switch {
		case !e.IsDir():
		case strings.HasPrefix(e.Name(), "reg-"):
			started = append(started, filepath.Join(dir, e.Name()))
		case strings.HasPrefix(e.Name(), "new-"):
			// Being set up by a run, or left by one killed then: no
			// registry was started in it. Old ones go.
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > 10*time.Minute {
				_ = os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
	runlock.SweepDead(started, func(dir string) string { return filepath.Join(dir, "lock") }, func(dir string) { sweepOne(dir, log) })
}

// sweepOne stops the registry a dead run started in dir, if it still runs,
// and removes dir.
func sweepOne(dir string, log *slog.Logger) {
	if raw, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(raw))); err == nil && ownRegistry(pid, dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = poll.Until(ctx, poll.Constant(20*time.Millisecond), func(context.Context) (bool, error) {
				return runlock.Exited(pid), nil
			})
			cancel()
			log.Warn("stopped a registry left by an earlier run", "pid", pid, "dir", dir)
		}
	}
	_ = os.RemoveAll(dir)
}

// ownRegistry reports whether pid is still the registry started in dir (a
// pid may have been reused by now).
func ownRegistry(pid int, dir string) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && !runlock.Exited(pid) && bytes.Contains(cmdline, []byte(filepath.Join(dir, "config.yml")))
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// writePrivate writes a new file only its owner can read.
func writePrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// caBundle writes the system's CA bundle plus caFile into dir: Go (the
// registry) reads SSL_CERT_FILE instead of the system bundle.
func caBundle(dir, caFile string) (string, error) {
	extra, err := os.ReadFile(caFile)
	if err != nil {
		return "", err
	}
	system, _ := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	path := filepath.Join(dir, "ca.pem")
	return path, writePrivate(path, append(append(system, '\n'), extra...))
}

package buildimage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/slipwayci/slipway/internal/config"
	"github.com/slipwayci/slipway/internal/logging"
	"github.com/slipwayci/slipway/internal/runlock"
)

// BuildahBackend builds Dockerfiles with buildah: chroot isolation (no
// daemon, no OCI runtime needed for RUN), storage and configuration private
// to the run, so nothing global is read or written.
type BuildahBackend struct {
	// Path is the buildah binary (default "buildah" on PATH).
	Path string
	// Root and RunRoot are buildah's storage directories. Empty: a fresh
	// pair under WorkDir, removed by Close. A kept root caches layers
	// between runs.
	Root, RunRoot string
	// StorageDriver is overlay (default) or vfs. Digests of RUN layers can
	// differ between drivers: pick one.
	StorageDriver string
	// Isolation is chroot (default) or oci (needs runc).
	Isolation string
	// Insecure lists registries (host:port) reached over plain HTTP.
	Insecure []string
	// WorkDir holds the run's config files, temp files and fresh storage
	// (default: the system temp dir).
	WorkDir string
	// Reproducible is set when SOURCE_DATE_EPOCH is: with a kept Root the
	// layer cache is then bypassed, because it ignores --timestamp.
	Reproducible bool
	// Output receives buildah's output (the build log), prefixed per image.
	Output io.Writer
	Log    *slog.Logger

	state     string   // run directory
	lock      *os.File // held on state/lock while the run lives
	freshRoot bool
	env       []string
	have      map[string]bool // images of this run present in storage
}

var (
	_ Backend     = (*BuildahBackend)(nil)
	_ preflighter = (*BuildahBackend)(nil)
)

// LocalName is the name an image of this run has in local storage, which
// the images depending on it receive as the build arg DependencyArg(name).
func LocalName(image string) string { return "localhost/slipway-build/" + image + ":latest" }

func (b *BuildahBackend) path() string {
	if b.Path == "" {
		return "buildah"
	}
	return b.Path
}

// Preflight implements preflighter: buildah must run.
func (b *BuildahBackend) Preflight(ctx context.Context) error {
	p, err := exec.LookPath(b.path())
	if err != nil {
		return fmt.Errorf("buildah not found (%s): install it (hack/install-deps.sh) or build native images only", b.path())
	}
	b.Path = p
	if err := choose(&b.StorageDriver, "storage_driver", "overlay", "vfs"); err != nil {
		return err
	}
	if err := choose(&b.Isolation, "isolation", "chroot", "oci"); err != nil {
		return err
	}
	if (b.Root == "") != (b.RunRoot == "") {
		return &config.Error{Field: "storage_root", Msg: "goes with a storage runroot: set both or neither"}
	}
	// buildah runs in the run directory: relative paths would not hold.
	for _, d := range []*string{&b.WorkDir, &b.Root, &b.RunRoot} {
		if *d != "" {
			abs, err := filepath.Abs(*d)
			if err != nil {
				return fmt.Errorf("resolving %s: %w", *d, err)
			}
			*d = abs
		}
	}
	return nil
}

// choose checks that an option is one of allowed, the first being its
// default. The error names the option as field, which the command turns
// into its flag.
func choose(v *string, field string, allowed ...string) error {
	switch {
	case *v == "":
		*v = allowed[0]
	case !slices.Contains(allowed, *v):
		return &config.Error{Field: field, Msg: fmt.Sprintf("%q is not %s", *v, strings.Join(allowed, " or "))}
	}
	return nil
}

// start creates the run's private configuration and storage.
func (b *BuildahBackend) start() error {
	if b.state != "" {
		return nil
	}
	removeStaleStates(b.WorkDir, b.log())
	dir, err := os.MkdirTemp(b.WorkDir, "slipway-buildah-")
	if err != nil {
		return fmt.Errorf("creating buildah work directory: %w", err)
	}
	b.state = dir
	lock, _, err := runlock.TryLock(filepath.Join(dir, stateLock), true)
	if err != nil {
		return fmt.Errorf("creating buildah work directory: %w", err)
	}
	b.lock = lock
	for _, d := range []string{"tmp", "cni"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return fmt.Errorf("creating buildah work directory: %w", err)
		}
	}
	if b.Root == "" {
		b.Root, b.RunRoot, b.freshRoot = filepath.Join(dir, "root"), filepath.Join(dir, "run"), true
	}
	// network_config_dir keeps buildah from creating /etc/cni; runtime pins
	// runc (crun fails on cgroup hybrid hosts).
	conf := fmt.Sprintf("[network]\nnetwork_backend = \"cni\"\nnetwork_config_dir = %q\n\n[engine]\nruntime = \"runc\"\n", filepath.Join(dir, "cni"))
	var reg strings.Builder
	reg.WriteString("unqualified-search-registries = []\n")
	for _, r := range b.Insecure {
		fmt.Fprintf(&reg, "\n[[registry]]\nlocation = %q\ninsecure = true\n", r)
	}
	for name, data := range map[string]string{"containers.conf": conf, "registries.conf": reg.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			return fmt.Errorf("writing buildah %s: %w", name, err)
		}
	}
	b.env = append(filteredEnv(os.Environ(), "CONTAINERS_CONF", "CONTAINERS_REGISTRIES_CONF", "TMPDIR", "BUILDAH_ISOLATION", "BUILDAH_LAYERS", "BUILDAH_FORMAT", "SOURCE_DATE_EPOCH"),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
		"TMPDIR="+filepath.Join(dir, "tmp"),
	)
	b.have = map[string]bool{}
	return nil
}

func filteredEnv(env []string, drop ...string) []string {
	var out []string
	for _, e := range env {
		k, _, _ := strings.Cut(e, "=")
		if !slices.Contains(drop, k) {
			out = append(out, e)
		}
	}
	return out
}

func (b *BuildahBackend) global() []string {
	return []string{"--root", b.Root, "--runroot", b.RunRoot, "--storage-driver", b.StorageDriver}
}

// Build implements Backend.
func (b *BuildahBackend) Build(ctx context.Context, p *Planned, deps map[string]*Built, dir string) error {
	if err := b.start(); err != nil {
		return err
	}
	for _, d := range p.DependsOn {
		dep := deps[d]
		if dep == nil {
			return fmt.Errorf("dependency %s of %s was not built", d, p.Name)
		}
		if err := b.ensure(ctx, dep); err != nil {
			return err
		}
	}
	cmd := append(b.global(), "build", "--isolation", b.Isolation, "--force-rm", "--identity-label=false",
		"--format", "oci", "--iidfile", filepath.Join(b.state, "iid-"+p.Name))
	if b.Reproducible && !b.freshRoot {
		cmd = append(cmd, "--no-cache")
	} else {
		cmd = append(cmd, "--layers")
	}
	if b.Reproducible {
		cmd = append(cmd, "--timestamp", strconv.FormatInt(p.Created.Unix(), 10))
	}
	for _, kv := range sortedPairs(manifestAnnotations(p.Labels)) {
		cmd = append(cmd, "--annotation", kv)
	}
	flags, err := buildFlags(filepath.Join(b.state, "secrets"), p)
	defer removeAll(filepath.Join(b.state, "secrets"))
	if err != nil {
		return err
	}
	cmd = append(append(cmd, flags...), "-f", p.Dockerfile, "-t", LocalName(p.Name), p.Context)
	b.log().Info("building with buildah", "image", p.Name, "dockerfile", p.Dockerfile, "target", p.Target)
	if out, err := b.run(ctx, p.Name, cmd...); err != nil {
		return buildFailure(p.Name, out, err)
	}
	b.have[p.Name] = true
	if out, err := b.run(ctx, p.Name, append(b.global(), "push", "--quiet", LocalName(p.Name), "oci:"+dir+":build")...); err != nil {
		return fmt.Errorf("writing %s to its layout: %w: %s", p.Name, err, out.tailString())
	}
	return nil
}

// buildFlags are the flags of a Dockerfile build that buildah and docker
// share: target, build args (the local name of each image p depends on,
// then p's own, which win), labels and secrets. Env secrets are written to
// 0600 files in secretDir, so values never reach a command line.
func buildFlags(secretDir string, p *Planned) ([]string, error) {
	args := map[string]string{}
	for _, d := range p.DependsOn {
		args[DependencyArg(d)] = LocalName(d)
	}
	maps.Copy(args, p.BuildArgs)
	var flags []string
	if p.Target != "" {
		flags = append(flags, "--target", p.Target)
	}
	for _, kv := range sortedPairs(args) {
		flags = append(flags, "--build-arg", kv)
	}
	for _, kv := range sortedPairs(p.Labels) {
		flags = append(flags, "--label", kv)
	}
	secrets, err := secretArgs(secretDir, p)
	return append(flags, secrets...), err
}

// secretArgs returns --secret flags for p's secrets.
func secretArgs(dir string, p *Planned) ([]string, error) {
	var args []string
	for _, s := range p.Secrets {
		src := s.File
		if s.Env != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("preparing secrets of %s: %w", p.Name, err)
			}
			src = filepath.Join(dir, p.Name+"-"+s.ID)
			if err := os.WriteFile(src, []byte(p.SecretValues[s.ID].Reveal()), 0o600); err != nil {
				return nil, fmt.Errorf("preparing secret %s of %s: %w", s.ID, p.Name, err)
			}
		}
		args = append(args, "--secret", "id="+s.ID+",src="+src)
	}
	return args, nil
}

// ensure makes an image of this run (built by another backend) available
// in buildah's storage under its local name.
func (b *BuildahBackend) ensure(ctx context.Context, dep *Built) error {
	if b.have[dep.Name] {
		return nil
	}
	ref := "oci:" + dep.Layout + ":" + dep.Tags[0]
	out, err := b.run(ctx, dep.Name, append(b.global(), "pull", "--quiet", ref)...)
	if err != nil {
		return fmt.Errorf("loading %s into buildah: %w: %s", dep.Name, err, out.tailString())
	}
	id := strings.TrimSpace(out.last())
	if out, err := b.run(ctx, dep.Name, append(b.global(), "tag", id, LocalName(dep.Name))...); err != nil {
		return fmt.Errorf("naming %s in buildah: %w: %s", dep.Name, err, out.tailString())
	}
	b.have[dep.Name] = true
	return nil
}

// Close implements Backend: removes containers left by failed builds and,
// for a fresh root, the whole storage.
func (b *BuildahBackend) Close(ctx context.Context) error {
	if b.state == "" {
		return nil
	}
	// Cleanup must run even when the build was interrupted.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	b.Output = nil // the clean-up's chatter is not the build log
	var errs []error
	if _, err := b.run(ctx, "", append(b.global(), "rm", "--all")...); err != nil {
		errs = append(errs, fmt.Errorf("removing buildah containers: %w", err))
	}
	if b.freshRoot {
		if _, err := b.run(ctx, "", append(b.global(), "rmi", "--all", "--force")...); err != nil {
			errs = append(errs, fmt.Errorf("removing buildah images: %w", err))
		}
	}
	if err := os.RemoveAll(b.state); err != nil {
		errs = append(errs, fmt.Errorf("removing buildah work directory (check for leftover mounts under it): %w", err))
	}
	b.state = ""
	b.lock.Close()
	return errors.Join(errs...)
}

func (b *BuildahBackend) log() *slog.Logger {
	if b.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.Log
}

// run runs buildah with the run's environment, streaming its output to
// b.Output (prefixed with the image name) and keeping the last lines.
func (b *BuildahBackend) run(ctx context.Context, image string, args ...string) (*tailWriter, error) {
	tw := newTailWriter(b.Output, image, 40)
	c := exec.CommandContext(ctx, b.Path, args...)
	c.Env = b.env
	c.Dir = b.state
	c.Stdout, c.Stderr = tw, tw
	// On cancellation let buildah remove its working container itself;
	// if this process is killed, buildah is told the same way.
	c.Cancel = func() error { return c.Process.Signal(syscall.SIGTERM) }
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	c.WaitDelay = 30 * time.Second
	err := c.Run()
	tw.flush()
	return tw, toolError("buildah "+args[len(b.global())], ctx, err)
}

// exitError is a tool that exited with a status. It deliberately has no
// ExitCode method: the stage's own exit code is decided by cli.ExitCode.
type exitError struct {
	tool   string
	status int
}

func (e *exitError) Error() string { return fmt.Sprintf("%s: exit status %d", e.tool, e.status) }

// toolError turns the error of a finished command into an exitError, or
// the context's error when the run was cancelled.
func toolError(tool string, ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", tool, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() > 0 {
		return &exitError{tool: tool, status: ee.ExitCode()}
	}
	return fmt.Errorf("%s: %w", tool, err)
}

// tailWriter passes output on line by line and remembers the last lines.
type tailWriter struct {
	mu      sync.Mutex
	out     io.Writer
	prefix  string
	partial []byte
	lines   []string
	max     int
}

func newTailWriter(out io.Writer, image string, max int) *tailWriter {
	prefix := ""
	if image != "" {
		prefix = "[" + image + "] "
	}
	return &tailWriter{out: out, prefix: prefix, max: max}
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.line(string(t.partial[:i]))
		t.partial = t.partial[i+1:]
	}
	return len(p), nil
}

func (t *tailWriter) line(l string) {
	// A RUN step may print a build secret; it never reaches the log.
	l = logging.Scrub(strings.TrimRight(l, "\r"))
	if t.out != nil {
		fmt.Fprintf(t.out, "%s%s\n", t.prefix, l)
	}
	t.lines = append(t.lines, l)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

func (t *tailWriter) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partial) > 0 {
		t.line(string(t.partial))
		t.partial = nil
	}
}

func (t *tailWriter) last() string {
	if len(t.lines) == 0 {
		return ""
	}
	return t.lines[len(t.lines)-1]
}

func (t *tailWriter) tailString() string {
	n := len(t.lines)
	if n > 5 {
		n = 5
	}
	return strings.Join(t.lines[len(t.lines)-n:], " | ")
}

// StepError is a Dockerfile build that failed at a step: exit 1 with the
// image, the step and the last lines of its output.
type StepError struct {
	Image string
	Step  string
	// Status is the step's exit status (buildah's exit code), or 0.
	Status int
	// Output holds the last lines the step printed.
	Output []string
	// Hint says what to do, when the output shows a known mistake.
	Hint string
	// PlainHTTP is a registry the step found speaking plain HTTP, the
	// mistake Hint is about (the command names its flag for it).
	PlainHTTP string
	Err       error
}

func (e *StepError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "building image %s", e.Image)
	if e.Step != "" {
		fmt.Fprintf(&b, " failed at step %q", e.Step)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, " (exit status %d)", e.Status)
	} else if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if len(e.Output) > 0 {
		fmt.Fprintf(&b, "; last output: %s", strings.Join(e.Output, " | "))
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, " (%s)", e.Hint)
	}
	return b.String()
}

func (e *StepError) Unwrap() error { return e.Err }

var (
	errStepRe   = regexp.MustCompile(`^Error: building at STEP "(.*)": (.*)$`)
	stepLineRe  = regexp.MustCompile(`^(?:\[\d+/\d+\] )?STEP \d+/\d+: (.*)$`)
	exitRe      = regexp.MustCompile(`exit status (\d+)`)
	plainHTTPRe = regexp.MustCompile(`pinging container registry ([^:]+:\d+): .*HTTP response to HTTPS client`)
)

// buildFailure turns buildah's output into a StepError: the step from the
// final "Error: building at STEP" line (else the last STEP line), and the
// output lines the step printed before buildah's own error lines.
func buildFailure(image string, out *tailWriter, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("building image %s: %w", image, err)
	}
	e := &StepError{Image: image, Err: err}
	var ee *exitError
	if errors.As(err, &ee) {
		e.Status = ee.status
	}
	var tail []string
	lastStep := ""
	for _, l := range out.lines {
		switch {
		case errStepRe.MatchString(l):
			m := errStepRe.FindStringSubmatch(l)
			e.Step = m[1]
			if exitRe.FindStringSubmatch(m[2]) == nil {
				tail = append(tail, m[2]) // buildah's reason, e.g. a missing COPY source
			}
		case stepLineRe.MatchString(l):
			lastStep = stepLineRe.FindStringSubmatch(l)[1]
			tail = tail[:0] // keep only what the failing step printed
		case strings.HasPrefix(l, "subprocess exited with status"),
			strings.HasPrefix(l, "time=") && strings.Contains(l, "level=error"),
			strings.TrimSpace(l) == "":
		default:
			tail = append(tail, l)
		}
	}
	if e.Step == "" {
		e.Step = lastStep
	}
	for _, l := range out.lines {
		if m := plainHTTPRe.FindStringSubmatch(l); m != nil {
			e.PlainHTTP = m[1]
			e.Hint = "the registry " + m[1] + " speaks plain HTTP: list it as an insecure registry"
		}
	}
	if len(tail) > 8 {
		tail = tail[len(tail)-8:]
	}
	e.Output = tail
	return e
}

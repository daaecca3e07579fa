package backup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"

	"github.com/slipwayci/slipway/internal/logging"
)

// tailBuffer keeps the last max bytes written to it: a child's stderr for the
// error message, without unbounded memory.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(string(bytes.ToValidUTF8(t.buf, []byte("?"))))
	return strings.ReplaceAll(s, "\n", "; ")
}

// tool is a child process: its secrets travel in secretFile, never in args
// or its environment (/proc/PID/environ is readable by the same user).
type tool struct {
	path string
	args []string
	// secretFile, when set, is readable by the child as /dev/fd/3 (a pipe:
	// no file on disk that a killed run could leave behind).
	secretFile []byte
}

// secretVars are the variables this program takes secrets from: a child
// does not inherit them.
var secretVars = map[string]bool{
	"AWS_ACCESS_KEY_ID": true, "AWS_SECRET_ACCESS_KEY": true, "AWS_SESSION_TOKEN": true,
	"SLIPWAY_MYSQL_PASSWORD": true, "SLIPWAY_MONGO_URI": true, "MYSQL_PWD": true,
}

// childEnv is this process's environment without its secrets: neither the
// variables they come from nor any variable holding a registered secret.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if secretVars[name] || logging.Scrub(kv) != kv {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// secretFD is the path under which the child reads secretFile.
const secretFD = "/dev/fd/3"

// run starts the tool with stdin/stdout and waits for it. The error names
// the tool and quotes the end of its stderr.
func (t tool) run(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	cmd := exec.CommandContext(ctx, t.path, t.args...)
	cmd.Env = childEnv()
	cmd.SysProcAttr = childAttr()
	if t.secretFile != nil {
		sr, sw, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("running %s: %w", t.path, err)
		}
		defer sr.Close()
		// It fits the pipe's buffer: written whole before the child starts.
		if _, err := sw.Write(t.secretFile); err != nil {
			sw.Close()
			return fmt.Errorf("running %s: passing its configuration: %w", t.path, err)
		}
		sw.Close()
		cmd.ExtraFiles = []*os.File{sr}
	}
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	errBuf := &tailBuffer{max: 2048}
	cmd.Stderr = errBuf
	var copyErr chan error
	if stdout != nil && stdout != io.Discard {
		// A dump tool writes faster than a 64 KiB pipe drained in 32 KiB
		// reads lets it on a busy machine: give it a 1 MiB pipe and read
		// in big chunks, so it rarely waits for this process.
		pr, pw, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("running %s: %w", t.path, err)
		}
		growPipe(pw)
		cmd.Stdout = pw
		copyErr = make(chan error, 1)
		go func() {
			buf := make([]byte, 512<<10)
			_, err := io.CopyBuffer(stdout, struct{ io.Reader }{pr}, buf)
			if err != nil {
				// Stop the writer: it gets EPIPE and exits.
				pr.Close()
				copyErr <- err
				return
			}
			pr.Close()
			copyErr <- nil
		}()
		defer func() {
			if copyErr != nil {
				pr.Close()
			}
		}()
		if err := cmd.Start(); err != nil {
			pw.Close()
			return fmt.Errorf("running %s: %w", t.path, err)
		}
		pw.Close() // the child holds its copy
		werr := cmd.Wait()
		cerr := <-copyErr
		copyErr = nil
		if werr == nil && cerr != nil {
			return fmt.Errorf("running %s: writing its output: %w", t.path, cerr)
		}
		return t.exitError(ctx, werr, errBuf, cerr)
	}
	return t.exitError(ctx, cmd.Run(), errBuf, nil)
}

// exitError words a child's failure: the context's error when it was
// cancelled, else the exit status and the end of its stderr.
func (t tool) exitError(ctx context.Context, err error, errBuf *tailBuffer, outErr error) error {
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("running %s: %w", t.path, ctx.Err())
		}
		// %v, not %w: an *exec.ExitError carries the child's exit code,
		// which must not become this program's (2 means bad usage here).
		if msg := errBuf.String(); msg != "" {
			return fmt.Errorf("running %s: %v: %s", t.path, err, msg)
		}
		if outErr != nil {
			return fmt.Errorf("running %s: %v (its output could not be written: %w)", t.path, err, outErr)
		}
		return fmt.Errorf("running %s: %v", t.path, err)
	}
	return nil
}

// dumpSource is a Source whose dump tool (mariadb-dump, mongodump) writes
// the dump to its stdout.
type dumpSource struct {
	kind, db, ext string
	bin           string // the dump tool, for --version
	// dump is the tool's run, made when it starts: its secret file is not
	// kept in the source.
	dump func() tool
}

var _ Source = (*dumpSource)(nil)

func (s *dumpSource) Kind() string     { return s.kind }
func (s *dumpSource) Database() string { return s.db }
func (s *dumpSource) Ext() string      { return s.ext }

// Version is the first line of the tool's --version.
func (s *dumpSource) Version(ctx context.Context) string {
	v, _ := tool{path: s.bin, args: []string{"--version"}}.output(ctx)
	first, _, _ := strings.Cut(v, "\n")
	return first
}

func (s *dumpSource) Dump(ctx context.Context, w io.Writer) error { return s.dump().run(ctx, nil, w) }

// output runs the tool and returns its stdout (for --version).
func (t tool) output(ctx context.Context) (string, error) {
	var out bytes.Buffer
	if err := t.run(ctx, nil, &out); err != nil {
		return "", err
	}
	return strings.TrimSpace(out.String()), nil
}

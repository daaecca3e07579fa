// Package progress reports long work (uploads, downloads, waits) on stderr:
// a redrawn line per task on a terminal, periodic plain lines otherwise, so
// Zuul logs get a readable line every few seconds instead of a flood.
package progress

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Printer draws every task's progress to one writer.
type Printer struct {
	mu       sync.Mutex
	out      io.Writer
	tty      bool
	interval time.Duration
	now      func() time.Time
	tasks    map[string]*Task
	lastDraw time.Time
	drawn    int // lines drawn in the last TTY frame
}

// Option configures a Printer.
type Option func(*Printer)

// WithInterval sets how often plain-mode lines are printed per task
// (default 10s). On a TTY the frame is redrawn at most every 200ms.
func WithInterval(d time.Duration) Option { return func(p *Printer) { p.interval = d } }

// WithTTY forces terminal (true) or plain (false) mode.
func WithTTY(tty bool) Option { return func(p *Printer) { p.tty = tty } }

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(p *Printer) { p.now = now } }

// New returns a Printer on out; it uses terminal mode when out is a terminal.
func New(out io.Writer, opts ...Option) *Printer {
	p := &Printer{out: out, interval: 10 * time.Second, now: time.Now, tasks: map[string]*Task{}}
	if f, ok := out.(*os.File); ok {
		p.tty = term.IsTerminal(int(f.Fd()))
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Discard returns a Printer that prints nothing.
func Discard() *Printer { return New(io.Discard, WithTTY(false), WithInterval(24*time.Hour)) }

// Task is one unit of work: bytes moved (Total > 0) or a status (waits).
type Task struct {
	p       *Printer
	name    string
	total   int64
	done    int64
	status  string
	start   time.Time
	printed time.Time
	ended   bool
}

// Start begins a task. total is the expected byte count, or 0 for a task that
// only reports status.
func (p *Printer) Start(name string, total int64) *Task {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := &Task{p: p, name: name, total: total, start: p.now()}
	t.printed = t.start
	p.tasks[name] = t
	return t
}

// Add records n more bytes done. It is safe for concurrent use.
func (t *Task) Add(n int64) {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	t.done += n
	t.p.update(t, false)
}

// Write implements io.Writer so a Task can count bytes through io.TeeReader
// or io.MultiWriter.
func (t *Task) Write(b []byte) (int, error) {
	t.Add(int64(len(b)))
	return len(b), nil
}

// Status sets the task's status text (e.g. "CREATE_IN_PROGRESS").
func (t *Task) Status(format string, args ...any) {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	s := fmt.Sprintf(format, args...)
	changed := s != t.status
	t.status = s
	// In plain mode a status change is printed at once: it is news.
	t.p.update(t, changed)
}

// Done ends the task with a final line.
func (t *Task) Done(format string, args ...any) {
	t.p.mu.Lock()
	defer t.p.mu.Unlock()
	if format != "" {
		t.status = fmt.Sprintf(format, args...)
	}
	t.ended = true
	t.p.update(t, true)
	delete(t.p.tasks, t.name)
}

func (p *Printer) update(t *Task, force bool) {
	now := p.now()
	if p.tty {
		if !force && now.Sub(p.lastDraw) < 200*time.Millisecond {
			return
		}
		p.lastDraw = now
		p.drawFrame(t)
		return
	}
	if force || now.Sub(t.printed) >= p.interval {
		t.printed = now
		fmt.Fprintln(p.out, t.line(now))
	}
}

// drawFrame redraws all live tasks; an ended task's line is left in place.
func (p *Printer) drawFrame(ended *Task) {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn)
	}
	now := p.now()
	names := make([]string, 0, len(p.tasks))
	for n := range p.tasks {
		names = append(names, n)
	}
	sort.Strings(names)
	if ended != nil && ended.ended {
		fmt.Fprintf(&b, "\r\x1b[2K%s\n", ended.line(now))
	}
	p.drawn = 0
	for _, n := range names {
		t := p.tasks[n]
		if t.ended {
			continue
		}
		fmt.Fprintf(&b, "\r\x1b[2K%s\n", t.line(now))
		p.drawn++
	}
	_, _ = io.WriteString(p.out, b.String())
}

func (t *Task) line(now time.Time) string {
	elapsed := now.Sub(t.start)
	var parts []string
	parts = append(parts, t.name)
	if t.total > 0 {
		pct := float64(t.done) * 100 / float64(t.total)
		parts = append(parts, fmt.Sprintf("%s %3.0f%% %s/%s", bar(t.done, t.total, 20), pct, Bytes(t.done), Bytes(t.total)))
	} else if t.done > 0 {
		parts = append(parts, Bytes(t.done))
	}
	if t.done > 0 && elapsed > 0 {
		parts = append(parts, Bytes(int64(float64(t.done)/elapsed.Seconds()))+"/s")
	}
	if t.status != "" {
		parts = append(parts, t.status)
	}
	parts = append(parts, elapsed.Round(time.Second).String())
	return strings.Join(parts, " ")
}

func bar(done, total int64, width int) string {
	n := int(done * int64(width) / total)
	if n > width {
		n = width
	}
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

// Bytes formats n with a binary unit.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// printer is a Printer on a fake clock that writes into buf.
func printer(tty bool, opts ...Option) (*Printer, *bytes.Buffer, *clock) {
	var buf bytes.Buffer
	c := &clock{t: time.Unix(0, 0)}
	return New(&buf, append([]Option{WithTTY(tty), WithClock(c.now)}, opts...)...), &buf, c
}

func TestPlainModePrintsPeriodically(t *testing.T) {
	p, buf, c := printer(false, WithInterval(10*time.Second))
	task := p.Start("region a", 100<<20)
	for i := 0; i < 100; i++ { // 100 writes over 5 s: no line yet
		c.advance(50 * time.Millisecond)
		task.Add(512 << 10)
	}
	if buf.Len() != 0 {
		t.Fatalf("printed before the interval: %q", buf.String())
	}
	c.advance(6 * time.Second)
	task.Add(1 << 20)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "region a") || !strings.Contains(lines[0], "51.0 MiB/100.0 MiB") {
		t.Fatalf("after the interval got %q", buf.String())
	}
	task.Done("pushed")
	out := buf.String()
	if !strings.Contains(out, "pushed") || strings.Contains(out, "\x1b[") {
		t.Errorf("final output %q: want a plain 'pushed' line with no escapes", out)
	}
}

func TestStatusChangePrintsAtOnce(t *testing.T) {
	p, buf, c := printer(false)
	w := p.Start("cluster acme", 0)
	w.Status("CREATE_IN_PROGRESS")
	c.advance(time.Second)
	w.Status("CREATE_IN_PROGRESS") // unchanged: no new line
	c.advance(time.Second)
	w.Status("CREATE_COMPLETE")
	got := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(got) != 2 || !strings.Contains(got[0], "CREATE_IN_PROGRESS") || !strings.Contains(got[1], "CREATE_COMPLETE 2s") {
		t.Errorf("lines = %q", got)
	}
}

func TestTTYRedraws(t *testing.T) {
	p, buf, c := printer(true)
	a := p.Start("a", 10)
	b := p.Start("b", 10)
	c.advance(time.Second)
	a.Add(5)
	c.advance(time.Second)
	b.Add(10)
	if !strings.Contains(buf.String(), "\x1b[2A") {
		t.Errorf("TTY frame does not move the cursor back over 2 lines: %q", buf.String())
	}
	a.Done("")
	b.Done("")
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

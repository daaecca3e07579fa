// Package secrets finds known secret values where they must never be: in
// the process list while a job runs (a Sampler reading /proc/*/cmdline and
// /proc/*/environ as often as it can) and in the files a run leaves behind
// (ScanTree: job logs, result files).
package secrets

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Options tune a Sampler.
type Options struct {
	// JobMarker is an environment entry, or its prefix, that marks a job's
	// processes (the local Zuul runner gives ansible-playbook
	// ZUUL_JOBDIR=<state>/jobs/<job>). The environ of a marked process and of
	// every descendant is checked; any other process's environ is not. Empty:
	// no environ is checked.
	JobMarker string
	// Sources add secrets while sampling: files a run writes (the local
	// secret values, a kubeconfig fetched from Magnum). Each is read every
	// 250 ms until the Sampler stops.
	Sources []Source
	// Interval is the pause between sweeps of /proc (default 1 ms).
	Interval time.Duration
}

// A Source returns secrets known so far; an error is kept for the report
// and the Source is asked again later.
type Source func() (Known, error)

// Hit is one secret seen in one process.
type Hit struct {
	// Secret names the secret (never its value).
	Secret string
	PID    int
	// Comm is the process name, Argv its command line with every known
	// secret replaced by <its name>.
	Comm, Argv string
	// Where is "argv" or "environ NAME".
	Where string
	// Job reports whether the process belongs to a job (see JobMarker).
	Job bool
	// Sweeps counts the sweeps that saw it.
	Sweeps int
}

func (h Hit) String() string {
	owner := "outside the jobs"
	if h.Job {
		owner = "a job process"
	}
	return fmt.Sprintf("secret %s in the %s of pid %d %q (%s): %s", h.Secret, h.Where, h.PID, h.Comm, owner, h.Argv)
}

// Report is what a Sampler saw.
type Report struct {
	Sweeps   int
	Duration time.Duration
	// Processes counts the distinct processes seen; JobProcesses those that
	// belong to a job.
	Processes, JobProcesses int
	// Secrets are the secrets looked for (Sources' included); Skipped says
	// which were not, and why.
	Secrets []Secret
	Skipped []string
	Hits    []Hit
	// SourceErrors are the errors of the Sources' last reading (at Stop).
	SourceErrors []error
}

// Summary is one line for a test log.
func (r Report) Summary() string {
	rate := 0.0
	if r.Duration > 0 {
		rate = float64(r.Sweeps) / r.Duration.Seconds()
	}
	return fmt.Sprintf("%d sweeps of /proc in %s (%.0f/s), %d processes (%d of jobs), %d secrets looked for, %d skipped, %d hits",
		r.Sweeps, r.Duration.Round(time.Millisecond), rate, r.Processes, r.JobProcesses, len(r.Secrets), len(r.Skipped), len(r.Hits))
}

// Sampler reads the command line of every process it can, and the
// environment of a job's processes, in a loop, looking for known secrets.
type Sampler struct {
	opts    Options
	start   time.Time
	stop    chan struct{}
	done    chan struct{}
	secrets atomic.Pointer[[]Secret]

	mu      sync.Mutex // guards the fields below and known
	known   *set
	srcErrs []error

	// Owned by the sweep loop until done is closed.
	sweeps  int
	hits    map[hitKey]*Hit
	seen    map[proc]bool
	jobSeen map[proc]bool
	jobs    map[int]uint64 // pid -> start time of the job processes
	buf     [3][]byte
}

type hitKey struct {
	p      proc
	where  string
	secret string
}

// proc is one process: pids are reused, start times tell them apart.
type proc struct {
	pid   int
	start uint64
}

// Start starts sampling for the secrets of k (and of o.Sources) until Stop.
func Start(k Known, o Options) *Sampler {
	s := newSampler(k, o)
	go s.loop()
	return s
}

func newSampler(k Known, o Options) *Sampler {
	if o.Interval <= 0 {
		o.Interval = time.Millisecond
	}
	s := &Sampler{
		opts: o, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{}),
		known: newSet(), hits: map[hitKey]*Hit{}, seen: map[proc]bool{}, jobSeen: map[proc]bool{}, jobs: map[int]uint64{},
	}
	s.add(k)
	s.poll()
	return s
}

// add merges k into the known set and publishes the secrets to look for.
func (s *Sampler) add(k Known) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known.add(k) {
		active := s.known.active()
		s.secrets.Store(&active)
	}
}

// poll asks every Source once.
func (s *Sampler) poll() {
	var errs []error
	for _, src := range s.opts.Sources {
		k, err := src()
		if err != nil {
			errs = append(errs, err)
		}
		s.add(k)
	}
	s.mu.Lock()
	s.srcErrs = errs
	s.mu.Unlock()
}

func (s *Sampler) loop() {
	defer close(s.done)
	var polled time.Time
	for {
		if len(s.opts.Sources) > 0 && time.Since(polled) > 250*time.Millisecond {
			s.poll()
			polled = time.Now()
		}
		s.sweep()
		select {
		case <-s.stop:
			return
		case <-time.After(s.opts.Interval):
		}
	}
}

// Stop ends sampling (after one last sweep and a last look at the Sources)
// and reports.
func (s *Sampler) Stop() Report {
	close(s.stop)
	<-s.done
	s.poll()
	s.sweep()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := Report{Sweeps: s.sweeps, Duration: time.Since(s.start), Processes: len(s.seen), JobProcesses: len(s.jobSeen),
		Secrets: s.known.active(), Skipped: s.known.skippedReasons(), SourceErrors: s.srcErrs}
	for _, h := range s.hits {
		r.Hits = append(r.Hits, *h)
	}
	sort.Slice(r.Hits, func(i, j int) bool {
		a, b := r.Hits[i], r.Hits[j]
		if a.PID != b.PID {
			return a.PID < b.PID
		}
		return a.Where+a.Secret < b.Where+b.Secret
	})
	return r
}

// sweep reads every process once.
func (s *Sampler) sweep() {
	s.sweeps++
	secrets := s.secrets.Load()
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	// Parents usually have lower pids: visiting in order lets a child
	// find its parent marked in the same sweep.
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	for _, pid := range pids {
		s.process(pid, secrets)
	}
}

func (s *Sampler) process(pid int, secrets *[]Secret) {
	dir := "/proc/" + strconv.Itoa(pid) + "/"
	cmdline := s.read(0, dir+"cmdline")
	if len(cmdline) == 0 {
		return // a kernel thread, a zombie, or gone
	}
	stat := s.read(1, dir+"stat")
	ppid, start, ok := parseStat(stat)
	if !ok {
		return
	}
	p := proc{pid, start}
	s.seen[p] = true
	var environ []byte
	job := false
	if s.opts.JobMarker != "" {
		environ = s.read(2, dir+"environ")
		parentStart, parentIsJob := s.jobs[ppid]
		job = hasEntry(environ, s.opts.JobMarker) || (parentIsJob && parentStart <= start)
		if job {
			s.jobs[pid], s.jobSeen[p] = start, true
		} else {
			delete(s.jobs, pid) // the pid may have been reused
		}
	}
	if secrets == nil {
		return
	}
	for _, sec := range *secrets {
		v := []byte(sec.Value)
		if bytes.Contains(cmdline, v) {
			s.hit(p, "argv", sec, cmdline, job)
		}
		if job && bytes.Contains(environ, v) {
			for _, e := range bytes.Split(environ, []byte{0}) {
				if bytes.Contains(e, v) {
					name, _, _ := bytes.Cut(e, []byte("="))
					s.hit(p, "environ "+string(name), sec, cmdline, job)
				}
			}
		}
	}
}

func (s *Sampler) hit(p proc, where string, sec Secret, cmdline []byte, job bool) {
	k := hitKey{p, where, sec.Name}
	if h, ok := s.hits[k]; ok {
		h.Sweeps++
		return
	}
	s.hits[k] = &Hit{Secret: sec.Name, PID: p.pid, Comm: comm(p.pid), Argv: s.redact(cmdline), Where: where, Job: job, Sweeps: 1}
}

// redact turns a command line into one line with every known secret
// replaced by its name, so that a report never shows a value.
func (s *Sampler) redact(cmdline []byte) string {
	a := strings.TrimRight(strings.ReplaceAll(string(cmdline), "\x00", " "), " ")
	if secrets := s.secrets.Load(); secrets != nil {
		for _, sec := range *secrets {
			a = strings.ReplaceAll(a, sec.Value, "<"+sec.Name+">")
		}
	}
	if len(a) > 400 {
		a = a[:400] + "..."
	}
	return a
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// read reads a small /proc file into buffer i, reused across sweeps. It
// calls the system directly: os.File's poller bookkeeping would double a
// sweep's cost, and a sweep is mostly these reads.
func (s *Sampler) read(i int, path string) []byte {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer syscall.Close(fd)
	b := s.buf[i][:0]
	for {
		if len(b) == cap(b) {
			b = append(b, make([]byte, max(4096, cap(b)))...)[:len(b)]
		}
		n, err := syscall.Read(fd, b[len(b):cap(b)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			b = b[:0]
			break
		}
		if n == 0 {
			break
		}
		b = b[:len(b)+n]
	}
	s.buf[i] = b
	return b
}

// parseStat reads the parent pid and start time (fields 4 and 22) of
// /proc/PID/stat; the command name before them may hold spaces and ')'.
func parseStat(stat []byte) (ppid int, start uint64, ok bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state).
	if len(f) < 20 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	return ppid, start, err1 == nil && err2 == nil
}

// hasEntry reports whether a NUL-separated environment has an entry that
// starts with prefix.
func hasEntry(environ []byte, prefix string) bool {
	p := []byte(prefix)
	return bytes.HasPrefix(environ, p) || bytes.Contains(environ, append([]byte{0}, p...))
}

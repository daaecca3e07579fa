// Package crash kills every stage with SIGKILL at points spread over a real
// run against the real test servers, runs the same command once more, and
// checks that the stage converged: exit 0, the same end state as a run
// that was never interrupted, nothing left behind, and a further run that
// changes nothing.
//
// The binaries are built once with -tags slipway_crashpoints
// (testenv.CrashBinaries), so a stage can also be killed at its named steps
// (internal/crashpoint). The number of points spread over each command is
// SLIPWAY_CRASH_POINTS (default 2: one named step and one instant); some
// commands also try named steps of their own whatever that number (every
// step of deploy-k8s, the repair steps of push-registry).
// SLIPWAY_CRASH_REPORT names a file that receives the report table printed
// at the end.
//
// The stages run side by side, and so do the commands of a stage: each
// command's worlds are its own (repositories, namespaces, projects,
// databases), and a stage's kill points share one limit of runs at once.
package crash

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/slipwayci/slipway/internal/crashpoint"
	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/testenv"
)

// binDir holds the five binaries built with the crash hook.
var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "slipway-crash-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		// One build for every test package of the run (testenv).
		if _, err := testenv.CrashBinaries(dir, "./cmd/..."); err != nil {
			fmt.Fprintf(os.Stderr, "building the stages with the crash hook: %v\n", err)
			return 1
		}
		binDir = dir
		// Orphans of a killed stage (its buildah, mysqldump...) are
		// re-parented to this process, where the tests find them.
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
			fmt.Fprintf(os.Stderr, "becoming a child subreaper: %v\n", errno)
			return 1
		}
		code := m.Run()
		// Processes that dropped their marker are found here.
		if left := orphans(""); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "left running by the stages:\n  %s\n", strings.Join(left, "\n  "))
			code = 1
		}
		report.print()
		return code
	}()
	os.Exit(code)
}

const prSetChildSubreaper = 36

func example(rel string) string { return filepath.Join(testenv.RepoRoot(), "examples", rel) }

// points is SLIPWAY_CRASH_POINTS, the kill points tried per command.
func points(t *testing.T) int {
	s := os.Getenv("SLIPWAY_CRASH_POINTS")
	if s == "" {
		return 2
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("SLIPWAY_CRASH_POINTS=%q: want a whole number of at least 1", s)
	}
	return n
}

// command is one stage command in a world of its own (its repositories,
// namespace, project or prefix), with the checks of its outcome.
type command struct {
	bin  string // the binary's name
	args []string
	// marker is in the environment of every run of the command, and so of
	// the processes it starts: what is left running is found by it.
	marker string
	// tmp is the command's TMPDIR, which must be empty after every run.
	tmp string
	env []string // added to the test's environment
	// dirs are the command's own directories: no temporary file or mount
	// may remain in them.
	dirs []string
	// state describes the end state in a form equal for equal worlds
	// (names of the world replaced by placeholders).
	state func(t *testing.T) string
	// leftovers lists what the command left behind on its servers
	// (upload sessions, staging databases, multipart uploads...).
	leftovers func(t *testing.T) []string
	// unchanged checks that a further run reported no change; nil when
	// every run of the command does new work (run-job).
	unchanged func(out outcome) error
	// afterKill, when set, checks what a killed run left before the rerun
	// (no tag moved before the tag step, say).
	afterKill func(t *testing.T, killed outcome)
	// afterRerun, when set, checks the rerun against what the killed run
	// left (a job it started taken over, not run again).
	afterRerun func(t *testing.T, k killPoint, killed, rerun outcome)
}

// scenario is one command of a stage: setup makes a fresh world named id,
// runs the earlier commands there uninterrupted, and returns the command
// to kill.
type scenario struct {
	name  string
	setup func(t *testing.T, id string) *command
	// everyStep: every named step the uninterrupted run reaches is also
	// tried, at its first hit (each is a case a fix of deploy-k8s covers).
	everyStep bool
	// always are named steps (NAME:N) tried whatever the number of
	// points; the uninterrupted run must reach each.
	always []string
	// alwaysOnly: by default only the always points are tried; the
	// spread ones too when SLIPWAY_CRASH_POINTS is set (the repair
	// scenarios: their other steps are those of the push scenario, and
	// each of their worlds costs a push to two Swift regions).
	alwaysOnly bool
}

// outcome is one run of a command.
type outcome struct {
	code           int
	killed         bool
	stdout, stderr string
	took           time.Duration
	steps          []string
}

func (o outcome) String() string {
	if o.killed {
		return "killed"
	}
	return fmt.Sprintf("exit %d after %s; stderr:\n%s", o.code, o.took.Round(time.Millisecond), tail(o.stderr, 15))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// killPoint is where a run is killed: at the nth time step is reached, or
// after a delay.
type killPoint struct {
	step  string
	nth   int
	after time.Duration
	// forced: a named step the scenario always tries; a run must die
	// there.
	forced bool
}

func (k killPoint) String() string {
	if k.step != "" {
		return fmt.Sprintf("at %s:%d", k.step, k.nth)
	}
	return fmt.Sprintf("after %s", k.after.Round(time.Millisecond))
}

// runLimit bounds one run of a command: far above a run's time even on a
// loaded 2-core machine (a build of the samples took over 5 minutes there).
const runLimit = 15 * time.Minute

// run runs c, killed at k when k is set, with the crash hook's step log.
func run(t *testing.T, c *command, k *killPoint) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	logFile := filepath.Join(t.TempDir(), "steps")
	if c.marker == "" {
		c.marker = envMarker + "=" + deploytest.RandHex(8)
		c.tmp = t.TempDir()
	}
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, c.bin), c.args...)
	cmd.Dir = testenv.RepoRoot()
	cmd.Env = append(append(os.Environ(), "TMPDIR="+c.tmp), c.env...)
	cmd.Env = append(cmd.Env, crashpoint.EnvLog+"="+logFile, c.marker)
	if k != nil && k.step != "" {
		cmd.Env = append(cmd.Env, fmt.Sprintf("%s=%s:%d", crashpoint.EnvPoint, k.step, k.nth))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started.Store(cmd.Process.Pid, true)
	defer started.Delete(cmd.Process.Pid)
	if k != nil && k.step == "" {
		timer := time.AfterFunc(k.after, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	err := cmd.Wait()
	o := outcome{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start), steps: readLines(logFile)}
	if ee, ok := err.(*exec.ExitError); ok {
		ws := ee.Sys().(syscall.WaitStatus)
		o.killed = ws.Signaled() && ws.Signal() == syscall.SIGKILL
		o.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", c.bin, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not finish in %s", c.bin, strings.Join(c.args, " "), runLimit)
	}
	return o
}

func readLines(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return strings.Fields(string(data))
}

// choose spreads n kill points over a clean run: every other one at a
// named step (a distinct step and occurrence, spread over the steps
// reached), the rest at instants spread over its duration.
func choose(steps []string, took time.Duration, n int) []killPoint {
	type occ struct {
		step string
		nth  int
	}
	var occs []occ
	seen := map[string]int{}
	for _, s := range steps {
		seen[s]++
		occs = append(occs, occ{s, seen[s]})
	}
	named := 0
	if len(occs) > 0 {
		named = min((n+1)/2, len(occs))
	}
	var out []killPoint
	for i := range named {
		o := occs[(2*i+1)*len(occs)/(2*named)]
		out = append(out, killPoint{step: o.step, nth: o.nth})
	}
	timed := n - named
	for i := range timed {
		out = append(out, killPoint{after: took * time.Duration(2*i+1) / time.Duration(2*timed)})
	}
	return out
}

// crash runs the scenarios of stage side by side: for each a clean run for
// the reference state and the steps, then each kill point in a fresh world
// with one rerun, checking convergence. At most limit kill points of the
// stage run at once: each has a world of its own and its runs mostly wait
// on servers (goroutines and t.Run, not t.Parallel: -parallel would queue
// them behind other stages).
func crash(t *testing.T, stage string, limit int, scenarios ...scenario) {
	t.Helper()
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for _, s := range scenarios {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(s.name, func(t *testing.T) { crashScenario(t, stage, s, sem) })
		}()
	}
	wg.Wait()
}

func crashScenario(t *testing.T, stage string, s scenario, sem chan struct{}) {
	stats := report.row(stage + " " + s.name)
	ref := s.setup(t, "ref")
	clean := run(t, ref, nil)
	if clean.code != 0 || clean.killed {
		t.Fatalf("uninterrupted %s: %s", s.name, clean)
	}
	want := ref.state(t)
	if left := leftovers(t, ref); len(left) > 0 {
		t.Fatalf("the uninterrupted run left behind:\n  %s", strings.Join(left, "\n  "))
	}
	t.Logf("uninterrupted run: %s, %d named steps: %s", clean.took.Round(time.Millisecond), len(clean.steps), strings.Join(slices.Compact(slices.Clone(clean.steps)), " "))
	kps, err := killPoints(s, clean, points(t))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	for i, k := range kps {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			t.Run(strings.ReplaceAll(k.String(), "/", "_"), func(t *testing.T) { crashAt(t, s, i, k, want, stats) })
		}()
	}
}

// killPoints are the n points choose spreads over the clean run, then
// those s always tries: its every step (first hit) and its named ones,
// each point once.
func killPoints(s scenario, clean outcome, n int) ([]killPoint, error) {
	var kps []killPoint
	if !s.alwaysOnly || os.Getenv("SLIPWAY_CRASH_POINTS") != "" {
		kps = choose(clean.steps, clean.took, n)
	}
	add := func(k killPoint) {
		k.forced = true
		if i := slices.IndexFunc(kps, func(o killPoint) bool { return o.String() == k.String() }); i >= 0 {
			kps[i].forced = true
			return
		}
		kps = append(kps, k)
	}
	if s.everyStep {
		for _, step := range clean.steps {
			add(killPoint{step: step, nth: 1})
		}
	}
	count := map[string]int{}
	for _, step := range clean.steps {
		count[step]++
	}
	for _, a := range s.always {
		step, nth, _ := strings.Cut(a, ":")
		k := killPoint{step: step, nth: 1}
		if nth != "" {
			var err error
			if k.nth, err = strconv.Atoi(nth); err != nil {
				return nil, fmt.Errorf("kill point %q: want NAME or NAME:N", a)
			}
		}
		if count[step] < k.nth {
			return nil, fmt.Errorf("the uninterrupted run reached %s %d times, so the kill point %s is never tried: the scenario no longer covers it", step, count[step], a)
		}
		add(k)
	}
	return kps, nil
}

// crashAt kills the command of s at k in world i, reruns it once and checks
// it converged to want.
func crashAt(t *testing.T, s scenario, i int, k killPoint, want string, stats *row) {
	c := s.setup(t, strconv.Itoa(i))
	killed := run(t, c, &k)
	// Runs are faster or slower than the clean one: an instant
	// past the end is tried again, earlier, in a fresh world.
	for try := 1; !killed.killed && k.step == "" && try < 3; try++ {
		k.after /= 2
		t.Logf("the run ended before the kill point: trying again, killed after %s", k.after.Round(time.Millisecond))
		c = s.setup(t, fmt.Sprintf("%d-%d", i, try))
		killed = run(t, c, &k)
	}
	stats.add(func(r *row) { r.tried++ })
	if !killed.killed {
		if k.forced {
			t.Errorf("the run was never killed %s, a step the uninterrupted run reached (%s)", k, killed)
		}
		t.Logf("the run was never killed (%s): checking its rerun all the same", killed)
	}
	ok := true
	if c.afterKill != nil {
		c.afterKill(t, killed)
		ok = !t.Failed()
	}
	rerun := run(t, c, nil)
	stats.rerun(rerun.took)
	if rerun.code != 0 {
		stats.fail(fmt.Sprintf("%s %s killed %s: rerun %s", c.bin, strings.Join(c.args[:min(2, len(c.args))], " "), k, firstError(rerun.stderr)))
		t.Fatalf("killed %s, the rerun did not converge: %s", k, rerun)
	}
	if c.afterRerun != nil {
		c.afterRerun(t, k, killed, rerun)
		ok = ok && !t.Failed()
	}
	if checkAfter(t, c, want) && ok {
		stats.add(func(r *row) { r.converged++ })
	} else {
		stats.fail(fmt.Sprintf("%s %s killed %s: end state or leftovers differ", c.bin, strings.Join(c.args[:min(2, len(c.args))], " "), k))
	}
}

// TestCrash runs every stage's scenarios, the stages side by side.
func TestCrash(t *testing.T) {
	var wg sync.WaitGroup
	for _, st := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"build-image", crashBuildImage}, {"push-registry", crashPushRegistry}, {"magnum-cluster", crashMagnumCluster},
		{"deploy-k8s", crashDeployK8s}, {"backup", crashBackup},
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(st.name, st.run)
		}()
	}
	wg.Wait()
}

// checkAfter checks the end state, leftovers, orphans and a further run;
// it reports whether all held.
func checkAfter(t *testing.T, c *command, want string) bool {
	t.Helper()
	ok := true
	if got := c.state(t); got != want {
		t.Errorf("end state differs from the uninterrupted run's (-want +got):\n%s", cmp.Diff(want, got))
		ok = false
	}
	if left := leftovers(t, c); len(left) > 0 {
		t.Errorf("left behind:\n  %s", strings.Join(left, "\n  "))
		ok = false
	}
	again := run(t, c, nil)
	if again.code != 0 {
		t.Errorf("a further run failed: %s", again)
		return false
	}
	if c.unchanged != nil {
		if err := c.unchanged(again); err != nil {
			t.Errorf("a further run changed something: %v\nstderr:\n%s", err, tail(again.stderr, 10))
			ok = false
		}
	}
	if got := c.state(t); got != want {
		t.Errorf("a further run changed the end state (-want +got):\n%s", cmp.Diff(want, got))
		ok = false
	}
	return ok
}

// leftovers is everything c left behind: on its servers, as processes, in
// its directories.
func leftovers(t *testing.T, c *command) []string {
	var left []string
	if c.leftovers != nil {
		left = c.leftovers(t)
	}
	entries, _ := os.ReadDir(c.tmp)
	for _, e := range entries {
		left = append(left, "in TMPDIR: "+e.Name())
	}
	return append(append(left, orphans(c.marker)...), leftInDirs(c.dirs)...)
}

func firstError(stderr string) string {
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	return lines[len(lines)-1]
}

// envMarker names the variable that marks a command's processes.
const envMarker = "SLIPWAY_CRASH_COMMAND"

// started holds the pids of the runs under way, which orphans leaves to
// their exec.Cmd.
var started sync.Map

// orphans lists (and then kills and reaps) processes left running by a
// killed stage: as a child subreaper, this process inherits them. With
// marker "", every live orphan is listed; otherwise those of the command
// that marker marks. Orphans that exited are reaped.
func orphans(marker string) []string {
	var out []string
	self := strconv.Itoa(os.Getpid())
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ours := started.Load(pid); ours {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 || f[1] != self {
			continue
		}
		if f[0] != "Z" {
			env, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
			if marker != "" && !slices.Contains(strings.Split(string(env), "\x00"), marker) {
				continue
			}
			args, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			out = append(out, fmt.Sprintf("process %d still running: %s", pid, strings.ReplaceAll(strings.TrimRight(string(args), "\x00"), "\x00", " ")))
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, 0, nil)
	}
	return out
}

// leftInDirs lists temporary files and mounts left under dirs.
func leftInDirs(dirs []string) []string {
	var out []string
	for _, d := range dirs {
		_ = filepath.WalkDir(d, func(p string, e os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			name := e.Name()
			if strings.Contains(name, ".tmp") || strings.HasSuffix(name, ".old") || strings.HasPrefix(name, "slipway-buildah-") {
				out = append(out, "temporary file "+p)
				if e.IsDir() {
					return filepath.SkipDir
				}
			}
			return nil
		})
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		for _, d := range dirs {
			if len(fields) > 4 && (fields[4] == d || strings.HasPrefix(fields[4], d+"/")) {
				out = append(out, "mount "+fields[4])
			}
		}
	}
	return out
}

// report is what the harness prints at the end: per command, points tried,
// converged, slowest rerun, and the cases that did not converge.
var report = &table{}

type table struct {
	mu   sync.Mutex
	rows []*row
}

type row struct {
	mu               sync.Mutex
	name             string
	tried, converged int
	slowest          time.Duration
	failures         []string
}

func (tb *table) row(name string) *row {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	r := &row{name: name}
	tb.rows = append(tb.rows, r)
	return r
}

// add changes the row under its lock: the points of a scenario run in
// parallel.
func (r *row) add(change func(*row)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change(r)
}

func (r *row) rerun(d time.Duration) { r.add(func(r *row) { r.slowest = max(r.slowest, d) }) }

func (r *row) fail(what string) { r.add(func(r *row) { r.failures = append(r.failures, what) }) }

func (tb *table) print() {
	if len(tb.rows) == 0 {
		return
	}
	var b bytes.Buffer
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "crash harness\tpoints tried\tconverged\tslowest rerun")
	order := []string{"build-image", "push-registry", "magnum-cluster", "deploy-k8s", "backup"}
	rank := func(r *row) int {
		return slices.IndexFunc(order, func(s string) bool { return strings.HasPrefix(r.name, s+" ") })
	}
	slices.SortStableFunc(tb.rows, func(a, b *row) int { return rank(a) - rank(b) })
	var failures []string
	stages := map[string]*row{}
	for _, r := range tb.rows {
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", r.name, r.tried, r.converged, r.slowest.Round(10*time.Millisecond))
		failures = append(failures, r.failures...)
		stage, _, _ := strings.Cut(r.name, " ")
		if stages[stage] == nil {
			stages[stage] = &row{name: stage}
		}
		st := stages[stage]
		st.tried, st.converged, st.slowest = st.tried+r.tried, st.converged+r.converged, max(st.slowest, r.slowest)
	}
	fmt.Fprintln(w, "per stage\t\t\t")
	for _, name := range order {
		if st := stages[name]; st != nil {
			fmt.Fprintf(w, "%s\t%d\t%d\t%s\n", st.name, st.tried, st.converged, st.slowest.Round(10*time.Millisecond))
		}
	}
	w.Flush()
	for _, f := range failures {
		fmt.Fprintln(&b, "not converged:", f)
	}
	os.Stdout.Write(b.Bytes())
	if p := os.Getenv("SLIPWAY_CRASH_REPORT"); p != "" {
		_ = os.WriteFile(p, b.Bytes(), 0o644)
	}
}

// TestChoose: kill points alternate named steps (spread over the steps
// reached, each a distinct occurrence) and instants (spread over the run).
func TestChoose(t *testing.T) {
	steps := []string{"a", "b", "b", "c", "d", "d"}
	for _, tc := range []struct {
		name  string
		steps []string
		n     int
		want  []string
	}{
		{"default", steps, 2, []string{"at c:1", "after 5s"}},
		{"wider", steps, 5, []string{"at b:1", "at c:1", "at d:2", "after 2.5s", "after 7.5s"}},
		{"no steps", nil, 2, []string{"after 2.5s", "after 7.5s"}},
		{"more points than steps", []string{"a"}, 4, []string{"at a:1", "after 1.667s", "after 5s", "after 8.333s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, k := range choose(tc.steps, 10*time.Second, tc.n) {
				got = append(got, k.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("points (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKillPoints: a scenario's own points come after the spread ones, each
// point once; a named point the clean run never reaches is an error.
func TestKillPoints(t *testing.T) {
	t.Setenv("SLIPWAY_CRASH_POINTS", "")
	clean := outcome{steps: []string{"a", "b", "b", "c"}, took: 10 * time.Second}
	for _, tc := range []struct {
		name    string
		s       scenario
		want    []string
		wantErr string
	}{
		{"spread only", scenario{}, []string{"at b:2", "after 5s"}, ""},
		{"every step", scenario{everyStep: true}, []string{"at b:2", "after 5s", "at a:1", "at b:1", "at c:1"}, ""},
		{"always", scenario{always: []string{"b:2", "c", "a:1"}}, []string{"at b:2", "after 5s", "at c:1", "at a:1"}, ""},
		{"always only", scenario{always: []string{"c"}, alwaysOnly: true}, []string{"at c:1"}, ""},
		{"never reached", scenario{always: []string{"b:3"}}, nil, "reached b 2 times"},
		{"bad point", scenario{always: []string{"b:x"}}, nil, `kill point "b:x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kps, err := killPoints(tc.s, clean, 2)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, k := range kps {
				got = append(got, k.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("points (-want +got):\n%s", diff)
			}
		})
	}
}

package zuulconfig

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

//go:embed zuul_return.py
var zuulReturnPlugin []byte

// Runner runs the jobs of one project pipeline locally, the way a Zuul
// executor would: it freezes each job from zuul.d, writes the `zuul`
// variables, an inventory whose hosts are the job's nodes on localhost
// (connection: local), and the secrets bound to each playbook, runs the
// pre-run, run and post-run playbooks with ansible-playbook, and hands each
// job's zuul_return data to the jobs that depend on it (zuul.artifacts and
// variables), in dependency order.
type Runner struct {
	// Root is the repository (zuul.d, playbooks, roles).
	Root string
	// StateDir keeps every job's work and log directories, so a later run
	// can rerun one job with the results of the earlier ones.
	StateDir string
	Config   *Config
	Project  *Project
	Pipeline string
	Branch   string
	// Zuul holds the item's `zuul` variables (project, ref, newrev,
	// buildset, tenant...); the runner adds job, build, executor, artifacts.
	Zuul map[string]any
	// SiteVars have the highest precedence, like Zuul's site variables.
	SiteVars map[string]any
	// Secrets maps a secret's name to its (decrypted) data.
	Secrets map[string]map[string]any
	// Only restricts the run to these jobs; the results of the jobs they
	// depend on are read from StateDir (a manual rerun).
	Only []string
	// ExtraVars are extra variables for every job, above everything else
	// (like ansible-playbook -e): how a manual rerun changes one input.
	ExtraVars map[string]any
	// AnsiblePlaybook is the ansible-playbook binary (default: Debian's).
	AnsiblePlaybook string
	// Log receives one line per job and playbook.
	Log io.Writer
	// Env is the environment of ansible-playbook (default: ExecutorEnv of
	// os.Environ()).
	Env []string
}

// executorEnv are the variables a Zuul executor's ansible-playbook keeps of
// its caller's environment (the Go ones let base/pre.yaml build the
// binaries); everything else a job's processes see comes from the job.
var executorEnv = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true, "TERM": true,
	"LANG": true, "LANGUAGE": true, "TZ": true, "TMPDIR": true,
	"GOCACHE": true, "GOMODCACHE": true, "GOPATH": true, "GOFLAGS": true, "GOPROXY": true,
	"GONOSUMDB": true, "GOTOOLCHAIN": true,
}

// ExecutorEnv returns the part of environ a job starts with, as on a Zuul
// executor: no variable of the caller reaches the job unless it is a
// locale, a path or a Go setting. So the test runner's SLIPWAY_TEST_*
// secrets (hack/pipeline.sh runs under it) are in no job process, and a
// secret in a job process's environment can only have come from the job:
// from a playbook's `environment:`, which is a leak.
func ExecutorEnv(environ []string) []string {
	var out []string
	for _, e := range environ {
		name, _, _ := strings.Cut(e, "=")
		if executorEnv[name] || strings.HasPrefix(name, "LC_") {
			out = append(out, e)
		}
	}
	return out
}

// JobResult is what one job did.
type JobResult struct {
	Name string
	// Result is SUCCESS, FAILURE, POST_FAILURE or SKIPPED, as Zuul reports.
	Result   string
	Duration time.Duration
	// Data and SecretData are what the job returned with zuul_return.
	Data       map[string]any
	SecretData map[string]any
	LogDir     string
	WorkDir    string
}

// ErrJobFailed is wrapped when a job did not succeed.
var ErrJobFailed = errors.New("job failed")

// Run runs the pipeline's jobs and returns their results in run order.
func (r *Runner) Run(ctx context.Context) ([]*JobResult, error) {
	jobs, err := Freeze(r.Config, r.Project, r.Pipeline, r.Branch)
	if err != nil {
		return nil, err
	}
	if len(jobs) == 0 {
		return nil, fmt.Errorf("pipeline %s runs no jobs for branch %s", r.Pipeline, r.Branch)
	}
	if err := r.setup(); err != nil {
		return nil, err
	}
	only := map[string]bool{}
	for _, n := range r.Only {
		only[n] = true
	}
	for n := range only {
		if !containsJob(jobs, n) {
			return nil, fmt.Errorf("job %s does not run in pipeline %s for branch %s", n, r.Pipeline, r.Branch)
		}
	}
	byName := map[string]*FrozenJob{}
	for _, j := range jobs {
		byName[j.Name] = j
	}
	results := map[string]*JobResult{}
	var out []*JobResult
	var failed []string
	for _, j := range jobs {
		if len(only) > 0 && !only[j.Name] {
			prev, err := r.previous(j.Name)
			if err != nil && needed(j.Name, only, byName) {
				return out, err
			}
			if prev != nil {
				results[j.Name] = prev
			}
			continue
		}
		if dep := failedDep(j, results); dep != "" {
			res := &JobResult{Name: j.Name, Result: "SKIPPED"}
			r.logf("%-26s SKIPPED (dependency %s did not succeed)", j.Name, dep)
			results[j.Name], out = res, append(out, res)
			continue
		}
		res, err := r.runJob(ctx, j, ancestors(j, byName), results)
		if err != nil {
			return out, err
		}
		results[j.Name], out = res, append(out, res)
		if res.Result != "SUCCESS" {
			failed = append(failed, fmt.Sprintf("%s (%s, log: %s)", j.Name, res.Result, filepath.Join(res.LogDir, "job-output.txt")))
		}
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
	}
	if len(failed) > 0 {
		return out, fmt.Errorf("%w: %s", ErrJobFailed, strings.Join(failed, "; "))
	}
	return out, nil
}

func containsJob(jobs []*FrozenJob, name string) bool {
	for _, j := range jobs {
		if j.Name == name {
			return true
		}
	}
	return false
}

// needed reports whether a job selected with Only depends on name.
func needed(name string, only map[string]bool, byName map[string]*FrozenJob) bool {
	for n := range only {
		for _, a := range ancestors(byName[n], byName) {
			if a == name {
				return true
			}
		}
	}
	return false
}

// ancestors returns the transitive dependencies of j, nearest last.
func ancestors(j *FrozenJob, byName map[string]*FrozenJob) []string {
	seen := map[string]bool{}
	var out []string
	var walk func(*FrozenJob)
	walk = func(x *FrozenJob) {
		for _, d := range x.Deps {
			if seen[d.Name] {
				continue
			}
			seen[d.Name] = true
			if dj, ok := byName[d.Name]; ok {
				walk(dj)
			}
			out = append(out, d.Name)
		}
	}
	walk(j)
	return out
}

func failedDep(j *FrozenJob, results map[string]*JobResult) string {
	for _, d := range j.Deps {
		if res, ok := results[d.Name]; ok && res.Result != "SUCCESS" {
			return d.Name
		}
	}
	return ""
}

func (r *Runner) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", args...)
	}
}

func (r *Runner) setup() error {
	plugins := filepath.Join(r.StateDir, "ansible", "action_plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		return fmt.Errorf("preparing local zuul state in %s: %w", r.StateDir, err)
	}
	if err := os.WriteFile(filepath.Join(plugins, "zuul_return.py"), zuulReturnPlugin, 0o644); err != nil {
		return fmt.Errorf("writing the zuul_return stand-in: %w", err)
	}
	cfg := "[defaults]\nhost_key_checking = False\nretry_files_enabled = False\nnocows = True\n" +
		"action_plugins = " + plugins + "\nroles_path = " + filepath.Join(r.Root, "roles") + "\n" +
		"local_tmp = " + filepath.Join(r.StateDir, "ansible", "tmp") + "\n"
	return os.WriteFile(filepath.Join(r.StateDir, "ansible", "ansible.cfg"), []byte(cfg), 0o644)
}

// previous loads the result an earlier run left for a job.
func (r *Runner) previous(name string) (*JobResult, error) {
	jobDir := filepath.Join(r.StateDir, "jobs", name)
	data, err := os.ReadFile(filepath.Join(jobDir, "work", "results.json"))
	if err != nil {
		return nil, fmt.Errorf("no result of job %s in %s: run the whole pipeline once first: %w", name, r.StateDir, err)
	}
	res := &JobResult{Name: name, Result: "SUCCESS", LogDir: filepath.Join(jobDir, "logs"), WorkDir: filepath.Join(jobDir, "work")}
	if err := decodeResults(data, res); err != nil {
		return nil, fmt.Errorf("reading the result of job %s: %w", name, err)
	}
	status, err := os.ReadFile(filepath.Join(jobDir, "result"))
	if err == nil {
		res.Result = strings.TrimSpace(string(status))
	}
	if res.Result != "SUCCESS" {
		return nil, fmt.Errorf("job %s did not succeed in the earlier run (%s): rerun it first", name, res.Result)
	}
	return res, nil
}

func decodeResults(data []byte, res *JobResult) error {
	if len(strings.TrimSpace(string(data))) == 0 {
		return nil
	}
	var doc struct {
		Data       map[string]any `json:"data"`
		SecretData map[string]any `json:"secret_data"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return err
	}
	res.Data, _ = numbers(doc.Data).(map[string]any)
	res.SecretData, _ = numbers(doc.SecretData).(map[string]any)
	return nil
}

// numbers turns json.Numbers into int64 or float64, so a size stays an
// integer when it is handed on to the next job (as Zuul's JSON does).
func numbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
		return x
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (r *Runner) runJob(ctx context.Context, j *FrozenJob, deps []string, results map[string]*JobResult) (*JobResult, error) {
	start := time.Now()
	jobDir := filepath.Join(r.StateDir, "jobs", j.Name)
	res := &JobResult{Name: j.Name, WorkDir: filepath.Join(jobDir, "work"), LogDir: filepath.Join(jobDir, "logs")}
	// A rerun starts from an empty job directory, as a new build would.
	if err := os.RemoveAll(jobDir); err != nil {
		return nil, fmt.Errorf("cleaning %s: %w", jobDir, err)
	}
	for _, d := range []string{res.WorkDir, res.LogDir, filepath.Join(jobDir, "private")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("preparing job %s: %w", j.Name, err)
		}
	}
	resultsFile := filepath.Join(res.WorkDir, "results.json")
	if err := os.WriteFile(resultsFile, nil, 0o600); err != nil {
		return nil, fmt.Errorf("preparing job %s: %w", j.Name, err)
	}

	inventoryFile, extraFiles, secretReturned, err := r.writeJobVars(j, res, jobDir, resultsFile, deps, results)
	if err != nil {
		return nil, err
	}

	r.logf("%-26s started (logs: %s)", j.Name, filepath.Join(res.LogDir, "job-output.txt"))
	outFile, err := os.Create(filepath.Join(res.LogDir, "job-output.txt"))
	if err != nil {
		return nil, fmt.Errorf("creating the log of job %s: %w", j.Name, err)
	}
	defer outFile.Close()

	status, err := r.runPhases(ctx, j, jobDir, inventoryFile, extraFiles, secretReturned, outFile)
	if err != nil {
		return nil, err
	}
	res.Result = status
	res.Duration = time.Since(start).Round(100 * time.Millisecond)
	data, err := os.ReadFile(resultsFile)
	if err != nil {
		return nil, fmt.Errorf("reading the zuul_return data of job %s: %w", j.Name, err)
	}
	if err := decodeResults(data, res); err != nil {
		return nil, fmt.Errorf("reading the zuul_return data of job %s: %w", j.Name, err)
	}
	r.writeStatus(jobDir, status)
	r.logf("%-26s %s in %s", j.Name, status, res.Duration)
	return res, nil
}

// returnedVars are the variables returned by the jobs deps: artifacts go
// to zuul.artifacts (with the job that returned them), other keys become
// variables of the lowest precedence.
func (r *Runner) returnedVars(deps []string, results map[string]*JobResult) (artifacts []any, returned, secretReturned map[string]any) {
	returned, secretReturned = map[string]any{}, map[string]any{}
	for _, d := range deps {
		dr, ok := results[d]
		if !ok {
			continue
		}
		if z, ok := dr.Data["zuul"].(map[string]any); ok {
			if arts, ok := z["artifacts"].([]any); ok {
				for _, a := range arts {
					if am, ok := a.(map[string]any); ok {
						c := map[string]any{"job": d, "project": r.Zuul["project"], "branch": r.Branch}
						for k, v := range am {
							c[k] = v
						}
						artifacts = append(artifacts, c)
					}
				}
			}
		}
		for k, v := range dr.Data {
			if k != "zuul" {
				returned[k] = v
			}
		}
		for k, v := range dr.SecretData {
			secretReturned[k] = v
		}
	}
	return artifacts, returned, secretReturned
}

// writeJobVars writes what a job's playbooks read: the zuul variables,
// the inventory (with the variables returned by the jobs it depends on) and
// the extra-vars files. It returns the inventory, the extra-vars files and
// the secret data the dependencies returned.
func (r *Runner) writeJobVars(j *FrozenJob, res *JobResult, jobDir, resultsFile string, deps []string, results map[string]*JobResult) (inventoryFile string, extraFiles []string, secretReturned map[string]any, err error) {
	artifacts, returned, secretReturned := r.returnedVars(deps, results)
	zuulVars := map[string]any{}
	for k, v := range r.Zuul {
		zuulVars[k] = v
	}
	inventoryFile = filepath.Join(jobDir, "inventory.yaml")
	zuulVars["job"] = j.Name
	zuulVars["build"] = newUUID()
	zuulVars["pipeline"] = r.Pipeline
	zuulVars["branch"] = r.Branch
	zuulVars["post_review"] = Pipelines[r.Pipeline]
	zuulVars["voting"] = true
	zuulVars["attempts"] = 1
	zuulVars["timeout"] = j.Timeout
	zuulVars["child_jobs"] = []any{}
	zuulVars["executor"] = map[string]any{
		"hostname":         "localhost",
		"work_root":        res.WorkDir,
		"log_root":         res.LogDir,
		"src_root":         filepath.Dir(r.Root),
		"result_data_file": resultsFile,
		"inventory_file":   inventoryFile,
	}
	if len(artifacts) > 0 {
		zuulVars["artifacts"] = artifacts
	}
	zuulFile := filepath.Join(jobDir, "zuul-vars.json")
	if err := writeJSON(zuulFile, map[string]any{"zuul": zuulVars}, 0o644); err != nil {
		return "", nil, nil, err
	}

	nodes := j.Nodes
	if len(nodes) == 0 {
		nodes = []string{"localhost"}
	}
	hosts := map[string]any{}
	for _, n := range nodes {
		hv := map[string]any{"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3"}
		for k, v := range j.Vars {
			hv[k] = v
		}
		hosts[n] = hv
	}
	inv := map[string]any{"all": map[string]any{"hosts": hosts, "vars": returned}}
	if err := writeYAML(inventoryFile, inv); err != nil {
		return "", nil, nil, err
	}
	extraFiles = []string{zuulFile}
	for _, x := range []struct {
		name string
		vars map[string]any
	}{{"job-extra-vars.json", j.ExtraVars}, {"site-vars.json", r.SiteVars}, {"cli-vars.json", r.ExtraVars}} {
		if len(x.vars) == 0 {
			continue
		}
		p := filepath.Join(jobDir, x.name)
		if err := writeJSON(p, x.vars, 0o644); err != nil {
			return "", nil, nil, err
		}
		extraFiles = append(extraFiles, p)
	}
	return inventoryFile, extraFiles, secretReturned, nil
}

// runPhases runs the job's pre-run, run and post-run playbooks as Zuul
// does (post-run always; the rest stops at a failure) and returns the
// build's result.
func (r *Runner) runPhases(ctx context.Context, j *FrozenJob, jobDir, inventoryFile string, extraFiles []string, secretReturned map[string]any, outFile *os.File) (string, error) {
	status := "SUCCESS"
	runOK := true
	for phaseIdx, phase := range []Phase{PhasePre, PhaseRun, PhasePost} {
		for i, pb := range j.Playbooks {
			if pb.Phase != phase {
				continue
			}
			if phase != PhasePost && !runOK {
				continue
			}
			vars := map[string]any{}
			if phase == PhasePost {
				vars["zuul_success"] = runOK
				vars["zuul_will_retry"] = false
			}
			err := r.playbook(ctx, j, pb, fmt.Sprintf("%d-%d", phaseIdx, i), jobDir, inventoryFile, extraFiles, vars, secretReturned, outFile)
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				r.writeStatus(jobDir, "ABORTED")
				return "", fmt.Errorf("job %s interrupted: %w", j.Name, ctx.Err())
			}
			r.logf("%-26s %s playbook %s failed: %v", j.Name, phase, pb.Path, err)
			switch {
			case phase == PhasePost && status == "SUCCESS":
				status = "POST_FAILURE"
			case phase != PhasePost:
				status, runOK = "FAILURE", false
			}
		}
	}
	return status, nil
}

func (r *Runner) writeStatus(jobDir, status string) {
	_ = os.WriteFile(filepath.Join(jobDir, "result"), []byte(status+"\n"), 0o644)
}

// playbook runs one playbook. Its secrets (and secret_data returned by the
// jobs it depends on) are written to a private file passed with -e @file,
// removed when the playbook ends: never on a command line.
func (r *Runner) playbook(ctx context.Context, j *FrozenJob, pb FrozenPlaybook, id, jobDir, inventory string, extraFiles []string, vars, secretReturned map[string]any, out io.Writer) error {
	args := []string{"-i", inventory}
	secrets := map[string]any{}
	for k, v := range secretReturned {
		secrets[k] = v
	}
	for _, s := range pb.Secrets {
		data, ok := r.Secrets[s.Secret]
		if !ok {
			return fmt.Errorf("secret %s (for %s in job %s) has no local value: give it in the secrets file", s.Secret, pb.Path, j.Name)
		}
		secrets[s.Name] = data
	}
	files := append([]string{}, extraFiles[:1]...)
	if len(secrets) > 0 {
		p := filepath.Join(jobDir, "private", "secrets-"+id+".json")
		if err := writeJSON(p, secrets, 0o600); err != nil {
			return err
		}
		defer os.Remove(p)
		files = append(files, p)
	}
	files = append(files, extraFiles[1:]...)
	for _, f := range files {
		args = append(args, "-e", "@"+f)
	}
	if len(vars) > 0 {
		p := filepath.Join(jobDir, "phase-vars-"+id+".json")
		if err := writeJSON(p, vars, 0o644); err != nil {
			return err
		}
		args = append(args, "-e", "@"+p)
	}
	args = append(args, filepath.Join(r.Root, pb.Path))
	bin := r.AnsiblePlaybook
	if bin == "" {
		bin = "/usr/bin/ansible-playbook"
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = r.Root
	env := r.Env
	if env == nil {
		env = ExecutorEnv(os.Environ())
	}
	cmd.Env = append(append([]string{}, env...),
		"ANSIBLE_CONFIG="+filepath.Join(r.StateDir, "ansible", "ansible.cfg"),
		"ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0",
		"ZUUL_JOBDIR="+jobDir,
	)
	cmd.WaitDelay = 10 * time.Second
	fmt.Fprintf(out, "\n=== %s playbook %s (%s) ===\n", pb.Phase, pb.Path, time.Now().UTC().Format(time.RFC3339))
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	var tail []string
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(out, line)
			tail = append(tail, line)
			if len(tail) > 25 {
				tail = tail[1:]
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err := cmd.Run()
	pw.Close()
	<-done
	if err != nil {
		return fmt.Errorf("%w; last lines:\n%s", err, indent(failureLines(tail)))
	}
	return nil
}

// failureLines keeps the lines of an ansible failure worth showing.
func failureLines(tail []string) string {
	var keep []string
	for _, l := range tail {
		if strings.TrimSpace(l) != "" {
			keep = append(keep, l)
		}
	}
	if len(keep) > 12 {
		keep = keep[len(keep)-12:]
	}
	return strings.Join(keep, "\n")
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

func writeJSON(path string, v any, perm os.FileMode) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(data, '\n'), perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Chmod(path, perm)
}

func writeYAML(path string, v any) error {
	data, err := yaml.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// SortedNames returns m's keys in order (for stable output).
func SortedNames[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

package zuulconfig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// ExternalJobs are jobs the tenant's config-project defines (Zuul's base job);
// a parent outside this repository must be one of them.
var ExternalJobs = map[string]bool{"base": true}

// Validate checks cfg against the repository at root: everything Zuul would
// reject when loading it or when freezing a job of a project pipeline, plus
// slipway's own rules (anchored branch matchers, explicit post-review on jobs
// with secrets, defined semaphores and queues). It returns every problem.
func Validate(root string, cfg *Config) error {
	v := &validator{root: root, cfg: cfg, byName: map[string][]*Job{}}
	for _, j := range cfg.Jobs {
		v.byName[j.Name] = append(v.byName[j.Name], j)
	}
	for _, j := range cfg.Jobs {
		v.job(j, false)
	}
	v.parentCycles()
	for _, p := range cfg.Projects {
		v.project(p)
	}
	return errors.Join(v.errs...)
}

type validator struct {
	root   string
	cfg    *Config
	byName map[string][]*Job
	errs   []error
}

func (v *validator) errorf(pos Pos, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("%s: %w: %s", pos, ErrConfig, fmt.Sprintf(format, args...)))
}

// job checks one definition; variant is true for a project-pipeline entry.
func (v *validator) job(j *Job, variant bool) {
	what := "job " + j.Name
	if j.HasParent && j.Parent != "" && len(v.byName[j.Parent]) == 0 && !ExternalJobs[j.Parent] {
		v.errorf(j.Pos, "%s: parent %q is not defined", what, j.Parent)
	}
	if j.HasParent && j.Parent == "" {
		v.errorf(j.Pos, "%s: parent: null (a base job) is only allowed in a config-project", what)
	}
	for _, list := range [][]Playbook{j.PreRun, j.Run, j.PostRun, j.CleanupRun} {
		for _, pb := range list {
			v.playbook(j, pb)
			for _, s := range pb.Semaphores {
				v.semaphore(j, s)
			}
		}
	}
	if len(j.CleanupRun) > 0 {
		v.errorf(j.Pos, "%s: cleanup-run is deprecated: use post-run entries with cleanup: true", what)
	}
	for _, s := range j.Semaphores {
		v.semaphore(j, s)
	}
	for _, u := range j.Secrets {
		if _, ok := v.cfg.Secrets[u.Secret]; !ok {
			v.errorf(j.Pos, "%s: secret %q is not defined in this project (zuul.d/*.yaml `- secret:`)", what, u.Secret)
		}
	}
	if len(j.Secrets) > 0 && j.PostReview == nil {
		v.errorf(j.Pos, "%s: has secrets, so Zuul makes it post-review: say `post-review: true` so that is visible", what)
	}
	seen := map[string]bool{}
	for _, d := range j.Deps {
		if d.Name == j.Name {
			v.errorf(j.Pos, "%s: depends on itself", what)
		}
		if len(v.byName[d.Name]) == 0 {
			v.errorf(j.Pos, "%s: dependency %q is not a defined job", what, d.Name)
		}
		if seen[d.Name] {
			v.errorf(j.Pos, "%s: dependency %q listed twice", what, d.Name)
		}
		seen[d.Name] = true
	}
	for _, b := range j.Branches {
		if err := CheckBranchMatcher(b); err != nil {
			v.errorf(j.Pos, "%s: branches: %v", what, err)
		}
	}
	_ = variant
}

func (v *validator) playbook(j *Job, pb Playbook) {
	if !strings.HasSuffix(pb.Name, ".yaml") && !strings.HasSuffix(pb.Name, ".yml") {
		v.errorf(j.Pos, "job %s: playbook %q must be a .yaml or .yml file", j.Name, pb.Name)
		return
	}
	if filepath.IsAbs(pb.Name) || strings.Contains(pb.Name, "..") {
		v.errorf(j.Pos, "job %s: playbook %q must be a path inside the repository", j.Name, pb.Name)
		return
	}
	if _, err := os.Stat(filepath.Join(v.root, pb.Name)); err != nil {
		v.errorf(j.Pos, "job %s: playbook %s does not exist", j.Name, pb.Name)
	}
}

func (v *validator) semaphore(j *Job, name string) {
	if _, ok := v.cfg.Semaphores[name]; !ok {
		v.errorf(j.Pos, "job %s: semaphore %q is not defined (`- semaphore: {name: %s, max: 1}`)", j.Name, name, name)
	}
}

func (v *validator) parentCycles() {
	for name := range v.byName {
		seen := map[string]bool{}
		for cur := name; cur != ""; {
			if seen[cur] {
				v.errorf(v.byName[name][0].Pos, "job %s: parent chain loops through %s", name, cur)
				break
			}
			seen[cur] = true
			defs := v.byName[cur]
			if len(defs) == 0 {
				break
			}
			cur = defs[0].Parent
		}
	}
}

var plainBranch = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)

// CheckBranchMatcher reports whether a branch regex compiles (RE2, as Zuul
// uses) and is anchored at both ends. Zuul anchors only the start, so
// ^platform/a would also match platform/abc and deploy into a namespace
// another branch owns.
func CheckBranchMatcher(re string) error {
	if _, err := regexp.Compile(re); err != nil {
		return fmt.Errorf("%q does not compile: %v", re, err)
	}
	if !strings.HasPrefix(re, "^") || !strings.HasSuffix(re, "$") || strings.HasSuffix(re, `\$`) {
		return fmt.Errorf("%q must be anchored as ^...$ (Zuul matches only the start, so it would also match longer branch names)", re)
	}
	return nil
}

// SampleBranch returns the branch an anchored literal matcher (^platform/x$)
// names, or "" when the regex is not a plain literal.
func SampleBranch(re string) string {
	lit := strings.TrimSuffix(strings.TrimPrefix(re, "^"), "$")
	if plainBranch.MatchString(lit) && !strings.Contains(lit, ".") {
		return lit
	}
	return ""
}

func (v *validator) project(p *Project) {
	if p.Queue != "" {
		if _, ok := v.cfg.Queues[p.Queue]; !ok {
			v.errorf(p.Pos, "project: queue %q is not defined (`- queue: {name: %s}`)", p.Queue, p.Queue)
		}
	}
	var names []string
	for n := range p.Pipelines {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, pname := range names {
		pp := p.Pipelines[pname]
		branches := map[string]bool{"main": true}
		for _, e := range pp.Jobs {
			j := e.Variant
			if len(v.byName[j.Name]) == 0 {
				v.errorf(j.Pos, "project pipeline %s: job %q is not defined", pname, j.Name)
				continue
			}
			if j.Keys["secrets"] {
				v.errorf(j.Pos, "project pipeline %s: job %s: secrets belong on the job definition, not a project-pipeline variant", pname, j.Name)
			}
			v.job(j, true)
			for _, b := range j.Branches {
				if s := SampleBranch(b); s != "" {
					branches[s] = true
				}
			}
		}
		// Freeze the pipeline for every branch a matcher names: this is
		// where Zuul reports abstract jobs, missing run playbooks, hard
		// dependencies that do not run and post-review jobs in check.
		var bl []string
		for b := range branches {
			bl = append(bl, b)
		}
		sort.Strings(bl)
		for _, b := range bl {
			if _, err := Freeze(v.cfg, p, pname, b); err != nil {
				v.errs = append(v.errs, err)
			}
		}
	}
}

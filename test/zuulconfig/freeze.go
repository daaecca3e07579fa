package zuulconfig

import (
	"fmt"
	"regexp"
)

// Phase of a playbook in a job.
type Phase string

// Phases in run order.
const (
	PhasePre  Phase = "pre"
	PhaseRun  Phase = "run"
	PhasePost Phase = "post"
)

// FrozenPlaybook is one playbook of a frozen job with the secrets bound to it.
type FrozenPlaybook struct {
	Phase   Phase
	Path    string
	Cleanup bool
	// Secrets are those declared by the job definition that lists this
	// playbook (or passed to it by a child with pass-to-parent).
	Secrets []SecretUse
	// Job is the definition that listed the playbook.
	Job string
}

// FrozenJob is a job as Zuul would run it for one pipeline and branch:
// inheritance, variants and the project-pipeline variant applied.
type FrozenJob struct {
	Name       string
	Nodes      []string
	Playbooks  []FrozenPlaybook
	Vars       map[string]any
	ExtraVars  map[string]any
	Deps       []Dependency
	PostReview bool
	Semaphores []string
	Timeout    int
}

// BranchMatches reports whether a Zuul branch matcher matches branch: RE2,
// anchored at the start only (Python's re.match).
func BranchMatches(re, branch string) bool {
	r, err := regexp.Compile(`^(?:` + re + `)`)
	return err == nil && r.MatchString(branch)
}

func matches(j *Job, branch string) bool {
	if len(j.Branches) == 0 {
		return true
	}
	for _, b := range j.Branches {
		if BranchMatches(b, branch) {
			return true
		}
	}
	return false
}

// Freeze returns the jobs project p runs in pipeline for branch, in an order
// where every job comes after the jobs it depends on.
func Freeze(cfg *Config, p *Project, pipeline, branch string) ([]*FrozenJob, error) {
	pp, ok := p.Pipelines[pipeline]
	if !ok {
		return nil, fmt.Errorf("%s: %w: project has no %s pipeline", p.Pos, ErrConfig, pipeline)
	}
	byName := map[string][]*Job{}
	for _, j := range cfg.Jobs {
		byName[j.Name] = append(byName[j.Name], j)
	}
	var order []string
	variants := map[string][]*Job{}
	for _, e := range pp.Jobs {
		if !matches(e.Variant, branch) {
			continue
		}
		if _, seen := variants[e.Variant.Name]; !seen {
			order = append(order, e.Variant.Name)
		}
		variants[e.Variant.Name] = append(variants[e.Variant.Name], e.Variant)
	}
	where := fmt.Sprintf("%s: pipeline %s, branch %s", pp.Pos, pipeline, branch)
	frozen := map[string]*FrozenJob{}
	for _, name := range order {
		fj, err := freezeJob(byName, name, branch, 0)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		fj.Vars = deepMerge(p.Vars, fj.Vars)
		for _, v := range variants[name] {
			apply(fj, v)
		}
		if isAbstract(byName[name], branch) {
			return nil, fmt.Errorf("%s: %w: job %s is abstract and may not be directly run", where, ErrConfig, name)
		}
		if fj.PostReview && !Pipelines[pipeline] {
			return nil, fmt.Errorf("%s: %w: pre-review pipeline %s does not allow post-review job %s (it has secrets): move it to gate/post or drop its secrets", where, ErrConfig, pipeline, name)
		}
		if !hasRun(fj) {
			return nil, fmt.Errorf("%s: %w: job %s does not specify a run playbook", where, ErrConfig, name)
		}
		frozen[name] = fj
	}
	for _, name := range order {
		fj := frozen[name]
		var deps []Dependency
		for _, d := range fj.Deps {
			if _, ok := frozen[d.Name]; ok {
				deps = append(deps, d)
			} else if !d.Soft {
				return nil, fmt.Errorf("%s: %w: job %s depends on %s, which does not run here: add it to the pipeline or make the dependency soft", where, ErrConfig, name, d.Name)
			}
		}
		fj.Deps = deps
	}
	return topoSort(order, frozen, where)
}

func hasRun(fj *FrozenJob) bool {
	for _, pb := range fj.Playbooks {
		if pb.Phase == PhaseRun {
			return true
		}
	}
	return false
}

func isAbstract(defs []*Job, branch string) bool {
	abstract := false
	for _, d := range defs {
		if matches(d, branch) && d.Keys["abstract"] {
			abstract = d.Abstract
		}
	}
	return abstract
}

func freezeJob(byName map[string][]*Job, name, branch string, depth int) (*FrozenJob, error) {
	if depth > 20 {
		return nil, fmt.Errorf("%w: job %s: parent chain too deep (a loop?)", ErrConfig, name)
	}
	var defs []*Job
	for _, d := range byName[name] {
		if matches(d, branch) {
			defs = append(defs, d)
		}
	}
	if len(defs) == 0 {
		if ExternalJobs[name] {
			return &FrozenJob{Name: name}, nil
		}
		return nil, fmt.Errorf("%w: job %s has no definition matching branch %s", ErrConfig, name, branch)
	}
	parent := "base"
	if defs[0].HasParent {
		parent = defs[0].Parent
	}
	var fj *FrozenJob
	if parent == "" {
		fj = &FrozenJob{}
	} else {
		var err error
		if fj, err = freezeJob(byName, parent, branch, depth+1); err != nil {
			return nil, err
		}
	}
	fj.Name = name
	for _, d := range defs {
		apply(fj, d)
	}
	return fj, nil
}

// apply merges one definition (or project-pipeline variant) into fj.
func apply(fj *FrozenJob, d *Job) {
	bind := func(phase Phase, pbs []Playbook) []FrozenPlaybook {
		var out []FrozenPlaybook
		for _, pb := range pbs {
			out = append(out, FrozenPlaybook{Phase: phase, Path: pb.Name, Cleanup: pb.Cleanup, Secrets: d.Secrets, Job: d.Name})
		}
		return out
	}
	var passed []SecretUse
	for _, s := range d.Secrets {
		if s.PassToParent {
			passed = append(passed, s)
		}
	}
	if len(passed) > 0 {
		for i := range fj.Playbooks {
			fj.Playbooks[i].Secrets = append(fj.Playbooks[i].Secrets, passed...)
		}
	}
	var pre, run, post []FrozenPlaybook
	for _, pb := range fj.Playbooks {
		switch pb.Phase {
		case PhasePre:
			pre = append(pre, pb)
		case PhaseRun:
			run = append(run, pb)
		case PhasePost:
			post = append(post, pb)
		}
	}
	pre = append(pre, bind(PhasePre, d.PreRun)...)
	if d.Keys["run"] {
		run = bind(PhaseRun, d.Run)
	}
	post = append(bind(PhasePost, d.PostRun), post...)
	fj.Playbooks = append(append(pre, run...), post...)
	if d.Vars != nil {
		fj.Vars = deepMerge(fj.Vars, d.Vars)
	}
	if d.ExtraVars != nil {
		fj.ExtraVars = deepMerge(fj.ExtraVars, d.ExtraVars)
	}
	if d.HasDeps {
		fj.Deps = d.Deps
	}
	if d.PostReview != nil && *d.PostReview || len(d.Secrets) > 0 {
		fj.PostReview = true
	}
	if len(d.Nodes) > 0 {
		fj.Nodes = d.Nodes
	}
	fj.Semaphores = append(fj.Semaphores, d.Semaphores...)
	if d.Timeout > 0 {
		fj.Timeout = d.Timeout
	}
}

// deepMerge returns base with over merged in; over wins, mappings merge.
func deepMerge(base, over map[string]any) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		if bm, ok := out[k].(map[string]any); ok {
			if om, ok := v.(map[string]any); ok {
				out[k] = deepMerge(bm, om)
				continue
			}
		}
		out[k] = v
	}
	return out
}

func topoSort(order []string, jobs map[string]*FrozenJob, where string) ([]*FrozenJob, error) {
	const (
		unseen = iota
		visiting
		done
	)
	state := map[string]int{}
	var out []*FrozenJob
	var visit func(string) error
	visit = func(n string) error {
		switch state[n] {
		case visiting:
			return fmt.Errorf("%s: %w: dependency cycle through job %s", where, ErrConfig, n)
		case done:
			return nil
		}
		state[n] = visiting
		for _, d := range jobs[n].Deps {
			if err := visit(d.Name); err != nil {
				return err
			}
		}
		state[n] = done
		out = append(out, jobs[n])
		return nil
	}
	for _, n := range order {
		if err := visit(n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

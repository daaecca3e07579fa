package zuulconfig

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ExternalJobs are jobs the tenant's config-project defines (Zuul's base job);
// a parent outside this repository must be one of them.
var ExternalJobs = map[string]bool{"base": true}

// Validate checks cfg against the repository at root: everything Zuul would
// reject when loading it or when freezing a job of a project pipeline, plus
// slipway's own rules (anchored branch matchers, explicit post-review on jobs
// with secrets, defined semaphores and queues, no secret in an Ansible
// `environment:` or command line: CheckSecretEnvironment). It returns every
// problem.
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
	v.errs = append(v.errs, CheckSecretEnvironment(root, cfg))
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

// CheckPlaybooks parses every playbook under root/playbooks and every task
// file under root/roles, and checks that each role they use
// (include_role, import_role, roles:) exists in root/roles. ansible-playbook
// --syntax-check does not catch a missing include_role: it is resolved at
// run time.
func CheckPlaybooks(root string) error {
	var errs []error
	for _, dir := range []string{"playbooks", "roles"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				return nil
			}
			rel, _ := filepath.Rel(root, path)
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(data, &doc); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w: %v", rel, ErrConfig, err))
				return nil
			}
			for _, use := range roleUses(&doc) {
				if _, err := os.Stat(filepath.Join(root, "roles", use.name, "tasks", "main.yaml")); err != nil {
					errs = append(errs, fmt.Errorf("%s:%d: %w: role %q does not exist (roles/%s/tasks/main.yaml)", rel, use.line, ErrConfig, use.name, use.name))
				}
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

type roleUse struct {
	name string
	line int
}

var roleKeys = map[string]bool{
	"include_role": true, "import_role": true,
	"ansible.builtin.include_role": true, "ansible.builtin.import_role": true,
}

// roleUses finds the roles a playbook or task file names.
func roleUses(n *yaml.Node) []roleUse {
	var out []roleUse
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n == nil {
			return
		}
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				switch {
				case roleKeys[k.Value] && v.Kind == yaml.MappingNode:
					for j := 0; j+1 < len(v.Content); j += 2 {
						if v.Content[j].Value == "name" && !strings.Contains(v.Content[j+1].Value, "{{") {
							out = append(out, roleUse{v.Content[j+1].Value, v.Content[j+1].Line})
						}
					}
				case k.Value == "roles" && v.Kind == yaml.SequenceNode:
					for _, r := range v.Content {
						switch r.Kind {
						case yaml.ScalarNode:
							out = append(out, roleUse{r.Value, r.Line})
						case yaml.MappingNode:
							for j := 0; j+1 < len(r.Content); j += 2 {
								if r.Content[j].Value == "role" || r.Content[j].Value == "name" {
									out = append(out, roleUse{r.Content[j+1].Value, r.Content[j+1].Line})
								}
							}
						}
					}
				}
				walk(v)
			}
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(n)
	return out
}

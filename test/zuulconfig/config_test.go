package zuulconfig

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func parse(t *testing.T, src string) (*Config, error) {
	t.Helper()
	cfg := newConfig()
	return cfg, cfg.Parse(strings.NewReader(src), "f.yaml")
}

// TestParseShortForms checks Zuul's short forms read as their long ones.
func TestParseShortForms(t *testing.T) {
	cfg, err := parse(t, `
- job:
    name: a
    run: a.yaml
    post-run: [{name: p.yaml, cleanup: true, semaphores: s}]
    secrets: s_var
    dependencies: [b, {name: c, soft: true}]
    branches: ^main$
    nodeset: tenant-nodeset
- project:
    check:
      jobs:
        - a
        - b:
        - c: {branches: ^m$}
`)
	if err != nil {
		t.Fatal(err)
	}
	j := cfg.Jobs[0]
	want := &Job{
		Pos: Pos{"f.yaml", 3}, Name: "a",
		Run:     []Playbook{{Name: "a.yaml"}},
		PostRun: []Playbook{{Name: "p.yaml", Cleanup: true, Semaphores: []string{"s"}}},
		Secrets: []SecretUse{{Name: "s_var", Secret: "s_var"}},
		Deps:    []Dependency{{Name: "b"}, {Name: "c", Soft: true}}, HasDeps: true,
		Branches: []string{"^main$"},
		Keys: map[string]bool{"name": true, "run": true, "post-run": true, "secrets": true,
			"dependencies": true, "branches": true, "nodeset": true},
	}
	if diff := cmp.Diff(want, j); diff != "" {
		t.Errorf("job (-want +got):\n%s", diff)
	}
	var got []string
	for _, e := range cfg.Projects[0].Pipelines["check"].Jobs {
		got = append(got, e.Variant.Name+" "+strings.Join(e.Variant.Branches, ","))
	}
	if diff := cmp.Diff([]string{"a ", "b ", "c ^m$"}, got); diff != "" {
		t.Errorf("check jobs (-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"not a list", "job: {name: a}", `^f.yaml:1: the file must be a list of objects`},
		{"not YAML", "- job: [", `^f.yaml:\d+: not valid YAML`},
		{"two keys in an item", "- {job: {name: a}, queue: {name: q}}", `^f.yaml:1: each list item must be a mapping with exactly one key`},
		{"unknown object", "- jobs: {name: a}", `^f.yaml:1: jobs: unknown field \(known: job, nodeset, pragma, project, project-template, queue, secret, semaphore\)`},
		{"empty job", "- job:", `^f.yaml:1: job: must be a mapping of fields, not empty`},
		{"job without name", "- job:\n    run: a.yaml", `^f.yaml:1: job.name: missing`},
		{"yes is not a boolean", "- job: {name: a, abstract: yes}", `^f.yaml:1: job.abstract: must be true or false, not "yes"`},
		{"secret use without secret", "- job: {name: a, secrets: [{name: s}]}", `^f.yaml:1: job.secrets\[0\].secret: missing`},
		{"node without label", "- job: {name: a, nodeset: {nodes: [{name: n}]}}", `^f.yaml:1: job.nodeset.nodes\[0\].label: missing`},
		{"semaphore max 0", "- semaphore: {name: s, max: 0}", `^f.yaml:1: semaphore.max: must be a positive integer, not 0`},
		{"secret tag", "- secret: {name: s, data: {a: !encrypted/rsa x}}", `^f.yaml:1: secret.data.a: unknown tag !encrypted/rsa`},
		{"secret that contains itself", "- secret: &s {name: s, data: {a: *s}}", `^f.yaml:1: secret.data.a.data.a: the value contains itself`},
		{"variant with two names", "- project: {check: {jobs: [{a: {}, b: {}}]}}", `^f.yaml:1: project pipeline check: each job must be a name or a mapping of one name`},
		{"variant renamed", "- project: {check: {jobs: [{a: {name: b}}]}}", `^f.yaml:1: project pipeline check: job a: name "b" differs`},
		{"variant key", "- project:\n    gate:\n      jobs:\n        - a: {branch: x}", `^f.yaml:4: project.gate.jobs\[0\].branch: unknown field`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.src)
			wantConfigError(t, err, tt.want)
		})
	}
}

// wantConfigError checks err is a configuration error matching the regexp want.
func wantConfigError(t *testing.T, err error, want string) {
	t.Helper()
	if err == nil {
		t.Fatal("the broken configuration was accepted")
	}
	if !errors.Is(err, ErrConfig) {
		t.Errorf("error does not wrap ErrConfig: %v", err)
	}
	if !regexp.MustCompile(want).MatchString(err.Error()) {
		t.Errorf("error does not match %q:\n%v", want, err)
	}
}

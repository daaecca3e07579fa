// Package zuul reads the Zuul job context (the `zuul` variables of a build)
// and writes the data a job hands back to Zuul with zuul_return.
package zuul

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/slipwayci/slipway/internal/result"
)

// Context is the part of Zuul's `zuul` variable slipway uses. Which fields are
// set depends on the item: changes (check, gate) have Change and Patchset;
// branch items (post, periodic) have Newrev; tag items have Tag.
type Context struct {
	Tenant    string  `yaml:"tenant" json:"tenant,omitempty"`
	Pipeline  string  `yaml:"pipeline" json:"pipeline,omitempty"`
	Job       string  `yaml:"job" json:"job,omitempty"`
	Build     string  `yaml:"build" json:"build,omitempty"`
	Buildset  string  `yaml:"buildset" json:"buildset,omitempty"`
	Project   Project `yaml:"project" json:"project"`
	Branch    string  `yaml:"branch" json:"branch,omitempty"`
	Ref       string  `yaml:"ref" json:"ref,omitempty"`
	Change    string  `yaml:"change" json:"change,omitempty"`
	Patchset  string  `yaml:"patchset" json:"patchset,omitempty"`
	ChangeURL string  `yaml:"change_url" json:"change_url,omitempty"`
	Topic     string  `yaml:"topic" json:"topic,omitempty"`
	Oldrev    string  `yaml:"oldrev" json:"oldrev,omitempty"`
	Newrev    string  `yaml:"newrev" json:"newrev,omitempty"`
	CommitID  string  `yaml:"commit_id" json:"commit_id,omitempty"`
	Tag       string  `yaml:"tag" json:"tag,omitempty"`
	// PostReview is true in pipelines that run after review (gate, post).
	PostReview bool     `yaml:"post_review" json:"post_review,omitempty"`
	Executor   Executor `yaml:"executor" json:"executor"`
	// Artifacts are those returned by the jobs this one depends on.
	Artifacts []Artifact `yaml:"artifacts" json:"artifacts,omitempty"`
}

// Project identifies the project under test.
type Project struct {
	Name              string `yaml:"name" json:"name,omitempty"`
	ShortName         string `yaml:"short_name" json:"short_name,omitempty"`
	CanonicalHostname string `yaml:"canonical_hostname" json:"canonical_hostname,omitempty"`
	CanonicalName     string `yaml:"canonical_name" json:"canonical_name,omitempty"`
	SrcDir            string `yaml:"src_dir" json:"src_dir,omitempty"`
}

// Executor holds the executor's paths.
type Executor struct {
	WorkRoot string `yaml:"work_root" json:"work_root,omitempty"`
	LogRoot  string `yaml:"log_root" json:"log_root,omitempty"`
}

// Artifact is one entry of zuul.artifacts.
type Artifact struct {
	Name     string         `yaml:"name" json:"name"`
	URL      string         `yaml:"url" json:"url"`
	Metadata map[string]any `yaml:"metadata,omitempty" json:"metadata,omitempty"`
	// Job is filled in by Zuul for artifacts of parent jobs.
	Job string `yaml:"job,omitempty" json:"job,omitempty"`
}

// Kind of the item being built.
type Kind string

// Item kinds.
const (
	KindNone   Kind = ""       // not running under Zuul
	KindChange Kind = "change" // check, gate: a proposed change
	KindBranch Kind = "branch" // post, periodic: a branch head
	KindTag    Kind = "tag"    // tag, release
)

// Kind tells which kind of item the context describes.
func (c *Context) Kind() Kind {
	switch {
	case c.Change != "":
		return KindChange
	case c.Tag != "":
		return KindTag
	case c.Newrev != "" || c.Branch != "" || c.Pipeline != "":
		return KindBranch
	default:
		return KindNone
	}
}

// Revision is the commit the build is for, if Zuul said so.
func (c *Context) Revision() string {
	if c.Newrev != "" {
		return c.Newrev
	}
	return c.CommitID
}

// ShortSHA is the first 12 characters of Revision.
func (c *Context) ShortSHA() string {
	r := c.Revision()
	if len(r) > 12 {
		return r[:12]
	}
	return r
}

// ResultRef is the slice of the context recorded in result files.
func (c *Context) ResultRef() *result.ZuulRef {
	if c.Kind() == KindNone {
		return nil
	}
	return &result.ZuulRef{
		Pipeline: c.Pipeline, Project: c.Project.Name, Branch: c.Branch,
		Change: c.Change, Patchset: c.Patchset, Newrev: c.Revision(),
		Tag: c.Tag, Buildset: c.Buildset,
	}
}

// ErrBadVars is wrapped by every error about the vars file's content.
var ErrBadVars = errors.New("bad zuul vars")

// Load reads Zuul variables from r: a YAML or JSON document whose top-level
// `zuul` key holds the variables (the shape of Zuul's own vars file, or of
// `{{ {'zuul': zuul} | to_json }}` written by a playbook). name is used in
// errors. Unknown keys are ignored: Zuul adds variables over time.
func Load(r io.Reader, name string) (*Context, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	var doc struct {
		Zuul *Context `yaml:"zuul"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", name, ErrBadVars, err)
	}
	if doc.Zuul == nil {
		return nil, fmt.Errorf("%s: %w: no top-level `zuul` key", name, ErrBadVars)
	}
	if err := doc.Zuul.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return doc.Zuul, nil
}

// LoadFile reads Zuul variables from a file (see Load).
func LoadFile(path string) (*Context, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading zuul vars: %w", err)
	}
	return Load(bytes.NewReader(data), path)
}

// Env variable names FromEnv reads, for runs outside Ansible (a laptop, a
// hand-run rerun on an autohold node).
var envNames = map[string]func(*Context) *string{
	"ZUUL_PIPELINE":   func(c *Context) *string { return &c.Pipeline },
	"ZUUL_PROJECT":    func(c *Context) *string { return &c.Project.Name },
	"ZUUL_BRANCH":     func(c *Context) *string { return &c.Branch },
	"ZUUL_CHANGE":     func(c *Context) *string { return &c.Change },
	"ZUUL_PATCHSET":   func(c *Context) *string { return &c.Patchset },
	"ZUUL_CHANGE_URL": func(c *Context) *string { return &c.ChangeURL },
	"ZUUL_NEWREV":     func(c *Context) *string { return &c.Newrev },
	"ZUUL_OLDREV":     func(c *Context) *string { return &c.Oldrev },
	"ZUUL_TAG":        func(c *Context) *string { return &c.Tag },
	"ZUUL_BUILDSET":   func(c *Context) *string { return &c.Buildset },
	"ZUUL_BUILD":      func(c *Context) *string { return &c.Build },
	"ZUUL_JOB":        func(c *Context) *string { return &c.Job },
	"ZUUL_REF":        func(c *Context) *string { return &c.Ref },
}

// FromEnv builds a context from ZUUL_* variables looked up with lookup
// (os.LookupEnv in binaries). It returns a context of KindNone when none is set.
func FromEnv(lookup func(string) (string, bool)) (*Context, error) {
	c := &Context{}
	for name, field := range envNames {
		if v, ok := lookup(name); ok {
			*field(c) = v
		}
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("environment: %w", err)
	}
	return c, nil
}

var (
	numeric = regexp.MustCompile(`^[0-9]+$`)
	hexRev  = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
)

func (c *Context) validate() error {
	if c.Change != "" && !numeric.MatchString(c.Change) {
		return fmt.Errorf("%w: zuul.change %q is not a number", ErrBadVars, c.Change)
	}
	if c.Patchset != "" && !numeric.MatchString(c.Patchset) {
		return fmt.Errorf("%w: zuul.patchset %q is not a number", ErrBadVars, c.Patchset)
	}
	if c.Change != "" && c.Patchset == "" {
		return fmt.Errorf("%w: zuul.change %s has no zuul.patchset", ErrBadVars, c.Change)
	}
	for name, v := range map[string]string{"zuul.newrev": c.Newrev, "zuul.oldrev": c.Oldrev, "zuul.commit_id": c.CommitID} {
		if v != "" && !hexRev.MatchString(v) {
			return fmt.Errorf("%w: %s %q is not a commit hash", ErrBadVars, name, v)
		}
	}
	return nil
}

// Expand fills a tag (or name) template. Placeholders: {pipeline}, {branch}
// (with "/" turned into "-"), {change}, {patchset}, {sha} (full revision),
// {short_sha}, {tag}, {buildset}. A placeholder whose value is empty in this
// context is an error naming it, so a post-only template cannot silently
// produce "change__" in check.
func (c *Context) Expand(template string) (string, error) {
	values := map[string]string{
		"pipeline":  c.Pipeline,
		"branch":    strings.ReplaceAll(c.Branch, "/", "-"),
		"change":    c.Change,
		"patchset":  c.Patchset,
		"sha":       c.Revision(),
		"short_sha": c.ShortSHA(),
		"tag":       c.Tag,
		"buildset":  c.Buildset,
	}
	var out strings.Builder
	rest := template
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			out.WriteString(rest)
			return out.String(), nil
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("template %q: unclosed {", template)
		}
		key := rest[i+1 : i+j]
		v, known := values[key]
		if !known {
			return "", fmt.Errorf("template %q: unknown placeholder {%s}", template, key)
		}
		if v == "" {
			return "", fmt.Errorf("template %q: {%s} is empty in this %s context", template, key, c.describe())
		}
		out.WriteString(rest[:i])
		out.WriteString(v)
		rest = rest[i+j+1:]
	}
}

func (c *Context) describe() string {
	if k := c.Kind(); k != KindNone {
		return string(k) + " (pipeline " + c.Pipeline + ")"
	}
	return "non-Zuul"
}

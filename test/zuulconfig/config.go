// Package zuulconfig parses slipway's zuul.d directory the way Zuul's
// configloader does (strictly: an unknown key is an error naming file, line
// and key), checks it against the repository (playbooks, parents,
// dependencies, secrets, semaphores, branch matchers, post-review rules), and
// runs a pipeline's jobs locally through the same playbooks with Zuul-like
// variables (see Runner).
package zuulconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/slipwayci/slipway/internal/config"
)

// Pos is where a configuration object starts.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// ErrConfig is wrapped by every error about the configuration's content.
var ErrConfig = errors.New("zuul configuration error")

// configError is a *config.Error in a Zuul file: errors.Is(err, ErrConfig)
// and errors.As(err, **config.Error) both hold.
type configError struct{ err error }

func (e configError) Error() string   { return e.err.Error() }
func (e configError) Unwrap() []error { return []error{e.err, ErrConfig} }

// asConfig marks the decoder's errors as configuration errors.
func asConfig(err error) error {
	var ce *config.Error
	if errors.As(err, &ce) {
		return configError{err}
	}
	return err
}

// errAt reports a problem on a line of file; field is the dotted path of
// the value, or "".
func errAt(file string, line int, field, format string, args ...any) error {
	return configError{&config.Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}}
}

// Playbook is one pre-run, run or post-run entry.
type Playbook struct {
	Name       string   `yaml:"name"`
	Cleanup    bool     `yaml:"cleanup"`
	Semaphores []string `yaml:"semaphores"`
}

// SecretUse is one entry of a job's secrets list.
type SecretUse struct {
	// Name is the Ansible variable the secret appears as.
	Name string `yaml:"name"`
	// Secret is the name of the secret object.
	Secret       string `yaml:"secret"`
	PassToParent bool   `yaml:"pass-to-parent"`
}

// Dependency is one entry of a job's dependencies list.
type Dependency struct {
	Name string `yaml:"name"`
	Soft bool   `yaml:"soft"`
}

// Job is one job definition (a variant: several may share a name).
type Job struct {
	Pos
	Name        string
	Parent      string
	HasParent   bool
	Abstract    bool
	Final       bool
	Description string
	Nodes       []string
	PreRun      []Playbook
	Run         []Playbook
	PostRun     []Playbook
	CleanupRun  []Playbook
	Vars        map[string]any
	ExtraVars   map[string]any
	Secrets     []SecretUse
	Deps        []Dependency
	HasDeps     bool
	Semaphores  []string
	Branches    []string
	// PostReview is nil when unset.
	PostReview *bool
	Provides   []string
	Requires   []string
	Timeout    int
	// Keys lists the attributes the definition set, for variant merging.
	Keys map[string]bool
}

// Secret is a secret object. Encrypted values are kept as their ciphertext
// chunks; Placeholder is true when any of them is a PLACEHOLDER.
type Secret struct {
	Pos
	Name        string
	Data        map[string]any
	Encrypted   []string // dotted paths of encrypted fields
	Placeholder bool
}

// Semaphore is a semaphore object.
type Semaphore struct {
	Pos
	Name string
	Max  int
}

// Queue is a queue object.
type Queue struct {
	Pos
	Name      string
	PerBranch bool
}

// ProjectJob is a job listed in a project pipeline, with its local variant.
type ProjectJob struct {
	Variant *Job
}

// ProjectPipeline is a pipeline section of a project stanza.
type ProjectPipeline struct {
	Pos
	Jobs []ProjectJob
}

// Project is a project stanza.
type Project struct {
	Pos
	Name      string
	Queue     string
	Vars      map[string]any
	Templates []string
	Pipelines map[string]*ProjectPipeline
}

// Config is everything in a zuul.d directory, in file order.
type Config struct {
	Jobs       []*Job
	Secrets    map[string]*Secret
	Semaphores map[string]*Semaphore
	Queues     map[string]*Queue
	Projects   []*Project
	// Files are the files read, relative to the repository root.
	Files []string
}

// Pipelines slipway's tenant defines (in its config-project), and whether
// each is post-review. A project stanza naming another pipeline is an error.
var Pipelines = map[string]bool{
	"check": false, "gate": true, "post": true, "promote": true,
	"deploy": true, "periodic": true, "tag": true, "release": true,
	// Manual: an operator enqueues a branch (zuul-client enqueue-ref).
	"failover": true, "unfreeze": true,
}

// ansibleVarName is Zuul's ansible_var_name schema.
var ansibleVarName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// LoadDir parses every *.yaml and *.yml file in root/zuul.d (Zuul's order:
// sorted by name). root is the repository root; file names in errors are
// relative to it. It returns all errors found, joined.
func LoadDir(root string) (*Config, error) {
	dir := filepath.Join(root, "zuul.d")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading zuul configuration: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && (strings.HasSuffix(e.Name(), ".yaml") || strings.HasSuffix(e.Name(), ".yml")) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	cfg := newConfig()
	var errs []error
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("reading zuul configuration: %w", err)
		}
		if err := cfg.Parse(bytes.NewReader(data), "zuul.d/"+n); err != nil {
			errs = append(errs, err)
		}
	}
	return cfg, errors.Join(errs...)
}

func newConfig() *Config {
	return &Config{Secrets: map[string]*Secret{}, Semaphores: map[string]*Semaphore{}, Queues: map[string]*Queue{}}
}

// Parse adds the objects of one configuration file read from r; name is the
// file name used in errors. Each list item is decoded by slipway's one
// strict decoder (internal/config) after Zuul's short forms are rewritten
// into their long ones (see shapes.go); the errors of all items are joined.
func (c *Config) Parse(r io.Reader, name string) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	c.Files = append(c.Files, name)
	// Zuul accepts a file with no objects (empty, or only comments).
	var probe yaml.Node
	if yaml.Unmarshal(data, &probe) == nil && len(probe.Content) == 0 {
		return nil
	}
	var top yaml.Node
	if _, err := config.Decode(bytes.NewReader(data), name, &top); err != nil {
		return asConfig(err)
	}
	if top.Kind != yaml.SequenceNode {
		return errAt(name, top.Line, "", "the file must be a list of objects (- job: ..., - project: ...)")
	}
	var errs []error
	for _, item := range top.Content {
		if err := c.parseItem(name, item); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// item is one list item of a file: a mapping of exactly one key, the kind
// of object.
type item struct {
	Job       *jobDef       `yaml:"job"`
	Secret    *secretDef    `yaml:"secret"`
	Semaphore *semaphoreDef `yaml:"semaphore"`
	Queue     *queueDef     `yaml:"queue"`
	Project   *projectDef   `yaml:"project"`
	// Accepted, not used by slipway.
	Nodeset         map[string]any `yaml:"nodeset"`
	ProjectTemplate map[string]any `yaml:"project-template"`
	Pragma          map[string]any `yaml:"pragma"`
}

// jobDef is a job as Zuul's JobParser accepts it (ZUUL.md §1), after
// jobShape. Attributes slipway does not use are accepted and dropped.
type jobDef struct {
	Name            string         `yaml:"name"`
	Parent          *string        `yaml:"parent"` // null: a base job
	Description     string         `yaml:"description"`
	Abstract        bool           `yaml:"abstract"`
	Final           bool           `yaml:"final"`
	PostReview      *bool          `yaml:"post-review"`
	Timeout         seconds        `yaml:"timeout"`
	PreTimeout      seconds        `yaml:"pre-timeout"`
	PostTimeout     seconds        `yaml:"post-timeout"`
	Attempts        seconds        `yaml:"attempts"`
	PreRun          []Playbook     `yaml:"pre-run"`
	Run             []Playbook     `yaml:"run"`
	PostRun         []Playbook     `yaml:"post-run"`
	CleanupRun      []Playbook     `yaml:"cleanup-run"`
	Vars            map[string]any `yaml:"vars"`
	ExtraVars       map[string]any `yaml:"extra-vars"`
	HostVars        map[string]any `yaml:"host-vars"`
	GroupVars       map[string]any `yaml:"group-vars"`
	Secrets         []SecretUse    `yaml:"secrets"`
	Dependencies    []Dependency   `yaml:"dependencies"`
	Semaphore       any            `yaml:"semaphore"` // deprecated: rejected
	Semaphores      []string       `yaml:"semaphores"`
	Branches        []string       `yaml:"branches"`
	Provides        []string       `yaml:"provides"`
	Requires        []string       `yaml:"requires"`
	Files           []string       `yaml:"files"`
	IrrelevantFiles []string       `yaml:"irrelevant-files"`
	Tags            []string       `yaml:"tags"`
	AllowedProjects []string       `yaml:"allowed-projects"`
	Nodeset         *nodesetDef    `yaml:"nodeset"`
	Protected       any            `yaml:"protected"`
	Intermediate    any            `yaml:"intermediate"`
	AttrControl     any            `yaml:"attribute-control"`
	SuccessMessage  any            `yaml:"success-message"`
	FailureMessage  any            `yaml:"failure-message"`
	HoldFollowing   any            `yaml:"hold-following-changes"`
	Voting          any            `yaml:"voting"`
	OverrideCheck   any            `yaml:"override-checkout"`
	OverrideBranch  any            `yaml:"override-branch"`
	SplitStreams    any            `yaml:"ansible-split-streams"`
	AnsibleVersion  any            `yaml:"ansible-version"`
	Roles           any            `yaml:"roles"`
	RequiredProj    any            `yaml:"required-projects"`
	IncludeVars     any            `yaml:"include-vars"`
	MatchOnConfig   any            `yaml:"match-on-config-updates"`
	Deduplicate     any            `yaml:"deduplicate"`
	FailureOutput   any            `yaml:"failure-output"`
	WorkspaceScheme any            `yaml:"workspace-scheme"`
	WorkspaceCheck  any            `yaml:"workspace-checkout"`
	VariantDesc     any            `yaml:"variant-description"`
	ImageBuildName  any            `yaml:"image-build-name"`
	FailureURL      any            `yaml:"failure-url"`
	SuccessURL      any            `yaml:"success-url"`
}

// jobKeys are the attributes a job may set (jobDef's yaml names).
var jobKeys = yamlNames(reflect.TypeOf(jobDef{}))

func yamlNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		out = append(out, name)
	}
	return out
}

// seconds is a timeout in whole seconds.
type seconds int

func (s *seconds) UnmarshalYAML(n *yaml.Node) error {
	var i int
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
		return fmt.Errorf("must be a whole number of seconds, not %q", n.Value)
	}
	if i < 0 {
		return fmt.Errorf("%d is not a timeout (whole seconds, 0 or more)", i)
	}
	*s = seconds(i)
	return nil
}

type nodesetDef struct {
	Nodes []struct {
		Name  string `yaml:"name"`
		Label string `yaml:"label"`
	} `yaml:"nodes"`
	Groups []struct {
		Name  any `yaml:"name"`
		Nodes any `yaml:"nodes"`
	} `yaml:"groups"`
	Alternatives any `yaml:"alternatives"`
}

type secretDef struct {
	Name string    `yaml:"name"`
	Data yaml.Node `yaml:"data"`
}

type semaphoreDef struct {
	Name string `yaml:"name"`
	Max  *int   `yaml:"max"`
}

type queueDef struct {
	Name                string `yaml:"name"`
	PerBranch           bool   `yaml:"per-branch"`
	AllowCircular       any    `yaml:"allow-circular-dependencies"`
	DependenciesByTopic any    `yaml:"dependencies-by-topic"`
}

// projectDef is a project stanza: its attributes and one section per
// pipeline of the tenant (Pipelines; pipelines lists them again).
type projectDef struct {
	Name          string         `yaml:"name"`
	Queue         string         `yaml:"queue"`
	Vars          map[string]any `yaml:"vars"`
	Templates     []string       `yaml:"templates"`
	Branches      any            `yaml:"branches"`
	DefaultBranch any            `yaml:"default-branch"`
	MergeMode     any            `yaml:"merge-mode"`
	Description   any            `yaml:"description"`
	Check         *pipelineDef   `yaml:"check"`
	Gate          *pipelineDef   `yaml:"gate"`
	Post          *pipelineDef   `yaml:"post"`
	Promote       *pipelineDef   `yaml:"promote"`
	Deploy        *pipelineDef   `yaml:"deploy"`
	Periodic      *pipelineDef   `yaml:"periodic"`
	Tag           *pipelineDef   `yaml:"tag"`
	Release       *pipelineDef   `yaml:"release"`
	// Failover and Unfreeze are manual pipelines of the tenant (trigger:
	// zuul-client enqueue-ref only), for slipway-failover and -unfreeze.
	Failover *pipelineDef `yaml:"failover"`
	Unfreeze *pipelineDef `yaml:"unfreeze"`
}

func (p *projectDef) pipelines() map[string]*pipelineDef {
	return map[string]*pipelineDef{
		"check": p.Check, "gate": p.Gate, "post": p.Post, "promote": p.Promote,
		"deploy": p.Deploy, "periodic": p.Periodic, "tag": p.Tag, "release": p.Release,
		"failover": p.Failover, "unfreeze": p.Unfreeze,
	}
}

type pipelineDef struct {
	Jobs     []jobDef `yaml:"jobs"`
	Debug    any      `yaml:"debug"`
	FailFast any      `yaml:"fail-fast"`
}

func (c *Config) parseItem(file string, n *yaml.Node) error {
	n = deref(n)
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		return errAt(file, n.Line, "", "each list item must be a mapping with exactly one key (job, project, secret, semaphore, queue, nodeset)")
	}
	kind, body := n.Content[0].Value, deref(n.Content[1])
	sh := &shaper{file: file}
	n = sh.item(n)
	if sh.err != nil {
		return sh.err
	}
	var it item
	doc, err := config.DecodeNode(file, n, &it)
	if err != nil {
		return asConfig(err)
	}
	if isNull(body) {
		return errAt(file, body.Line, kind, "must be a mapping of fields, not empty")
	}
	pos := Pos{file, body.Line}
	switch {
	case it.Job != nil:
		j, err := it.Job.job(doc, "job", pos, true)
		if err != nil {
			return err
		}
		c.Jobs = append(c.Jobs, j)
	case it.Secret != nil:
		return c.addSecret(doc, it.Secret, pos)
	case it.Semaphore != nil:
		if err := required(doc, "semaphore.name"); err != nil {
			return err
		}
		s := &Semaphore{Pos: pos, Name: it.Semaphore.Name, Max: 1}
		if m := it.Semaphore.Max; m != nil {
			if *m < 1 {
				return asConfig(doc.Errorf("semaphore.max", "must be a positive integer, not %d", *m))
			}
			s.Max = *m
		}
		if prev, dup := c.Semaphores[s.Name]; dup {
			return errAt(file, pos.Line, "", "semaphore %s is already defined at %s", s.Name, prev.Pos)
		}
		c.Semaphores[s.Name] = s
	case it.Queue != nil:
		if err := required(doc, "queue.name"); err != nil {
			return err
		}
		q := &Queue{Pos: pos, Name: it.Queue.Name, PerBranch: it.Queue.PerBranch}
		if prev, dup := c.Queues[q.Name]; dup {
			return errAt(file, pos.Line, "", "queue %s is already defined at %s", q.Name, prev.Pos)
		}
		c.Queues[q.Name] = q
	case it.Project != nil:
		p, err := it.Project.project(doc, pos)
		if err != nil {
			return err
		}
		c.Projects = append(c.Projects, p)
	}
	return nil
}

// required reports the first path the file did not write.
func required(doc *config.Doc, paths ...string) error {
	for _, p := range paths {
		if !doc.Has(p) {
			return asConfig(doc.Errorf(p, "missing (a required key)"))
		}
	}
	return nil
}

// job checks a job definition (at path of doc; top is false for a
// project-pipeline variant, whose name the shaper filled in) and returns it.
func (d *jobDef) job(doc *config.Doc, path string, pos Pos, top bool) (*Job, error) {
	at := func(key string) string { return path + "." + key }
	if top {
		if err := required(doc, at("name")); err != nil {
			return nil, err
		}
	}
	if d.PostReview != nil && !*d.PostReview {
		return nil, asConfig(doc.Errorf(at("post-review"), "false is not allowed (Zuul: once set, the post-review attribute may not be unset); remove the line"))
	}
	if doc.Has(at("semaphore")) {
		return nil, asConfig(doc.Errorf(at("semaphore"), "deprecated: use semaphores"))
	}
	for key, pbs := range map[string][]Playbook{"pre-run": d.PreRun, "run": d.Run, "post-run": d.PostRun, "cleanup-run": d.CleanupRun} {
		for i := range pbs {
			if err := required(doc, fmt.Sprintf("%s[%d].name", at(key), i)); err != nil {
				return nil, err
			}
		}
	}
	for i, u := range d.Secrets {
		p := fmt.Sprintf("%s[%d]", at("secrets"), i)
		if err := required(doc, p+".name", p+".secret"); err != nil {
			return nil, err
		}
		if !ansibleVarName.MatchString(u.Name) {
			return nil, asConfig(doc.Errorf(p+".name", "secret name %q is not a valid Ansible variable name (letters, digits, _)", u.Name))
		}
	}
	for i := range d.Dependencies {
		if err := required(doc, fmt.Sprintf("%s[%d].name", at("dependencies"), i)); err != nil {
			return nil, err
		}
	}
	j := &Job{
		Pos: pos, Name: d.Name, Abstract: d.Abstract, Final: d.Final, Description: d.Description,
		PreRun: d.PreRun, Run: d.Run, PostRun: d.PostRun, CleanupRun: d.CleanupRun,
		Vars: d.Vars, ExtraVars: d.ExtraVars, Secrets: d.Secrets, Deps: d.Dependencies,
		Semaphores: d.Semaphores, Branches: d.Branches, PostReview: d.PostReview,
		Provides: d.Provides, Requires: d.Requires, Timeout: int(d.Timeout), Keys: map[string]bool{},
	}
	for _, k := range jobKeys {
		if doc.Has(at(k)) {
			j.Keys[k] = true
		}
	}
	if !top {
		delete(j.Keys, "name") // the shaper's
	}
	j.HasParent, j.HasDeps = j.Keys["parent"], j.Keys["dependencies"]
	if d.Parent != nil {
		j.Parent = *d.Parent
	}
	if d.Nodeset != nil {
		for i, n := range d.Nodeset.Nodes {
			p := fmt.Sprintf("%s.nodes[%d]", at("nodeset"), i)
			if err := required(doc, p+".name", p+".label"); err != nil {
				return nil, err
			}
			j.Nodes = append(j.Nodes, n.Name)
		}
	}
	return j, nil
}

func (d *projectDef) project(doc *config.Doc, pos Pos) (*Project, error) {
	p := &Project{Pos: pos, Name: d.Name, Queue: d.Queue, Vars: d.Vars, Templates: d.Templates,
		Pipelines: map[string]*ProjectPipeline{}}
	for name, pd := range d.pipelines() {
		path := "project." + name
		if pd == nil {
			if doc.Has(path) {
				return nil, asConfig(doc.Errorf(path, "must be a mapping of fields, not empty"))
			}
			continue
		}
		pp := &ProjectPipeline{Pos: Pos{pos.File, doc.Line(path)}}
		for i := range pd.Jobs {
			jp := fmt.Sprintf("%s.jobs[%d]", path, i)
			j, err := pd.Jobs[i].job(doc, jp, Pos{pos.File, doc.Line(jp)}, false)
			if err != nil {
				return nil, err
			}
			pp.Jobs = append(pp.Jobs, ProjectJob{Variant: j})
		}
		p.Pipelines[name] = pp
	}
	return p, nil
}

func (c *Config) addSecret(doc *config.Doc, d *secretDef, pos Pos) error {
	if err := required(doc, "secret.name", "secret.data"); err != nil {
		return err
	}
	s := &Secret{Pos: pos, Name: d.Name}
	if d.Data.Kind != yaml.MappingNode {
		return asConfig(doc.Errorf("secret.data", "must be a mapping of key: value"))
	}
	data, err := secretValue(doc.File, &d.Data, "secret.data", s, map[*yaml.Node]bool{})
	if err != nil {
		return err
	}
	s.Data = data.(map[string]any)
	if prev, dup := c.Secrets[s.Name]; dup {
		return errAt(doc.File, pos.Line, "", "secret %s is already defined at %s", s.Name, prev.Pos)
	}
	c.Secrets[s.Name] = s
	return nil
}

// EncryptedTag is the YAML tag of a value encrypted with the project key.
const EncryptedTag = "!encrypted/pkcs1-oaep"

// Encrypted is an encrypted secret value: its ciphertext chunks.
type Encrypted struct{ Chunks []string }

// secretValue decodes a secret's data by hand: the decoder would drop the
// tags that mark encrypted values. path is the value's field path; s
// collects the paths of encrypted values (relative to data); open holds the
// mappings and lists being decoded, so an alias to one of them is an error.
func secretValue(file string, n *yaml.Node, path string, s *Secret, open map[*yaml.Node]bool) (any, error) {
	n = deref(n)
	if open[n] {
		return nil, errAt(file, n.Line, path, "the value contains itself (through an alias)")
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		open[n] = true
		defer delete(open, n)
	}
	if n.Tag == EncryptedTag {
		items := []*yaml.Node{n}
		if n.Kind == yaml.SequenceNode {
			items = n.Content
		}
		var chunks []string
		for _, e := range items {
			if e = deref(e); e.Kind != yaml.ScalarNode {
				return nil, errAt(file, e.Line, path, "an encrypted value must be a string or a list of strings")
			}
			chunks = append(chunks, e.Value)
			if strings.HasPrefix(e.Value, "PLACEHOLDER") {
				s.Placeholder = true
			}
		}
		s.Encrypted = append(s.Encrypted, strings.TrimPrefix(path, "secret.data."))
		return Encrypted{Chunks: chunks}, nil
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return nil, errAt(file, n.Line, path, "unknown tag %s (want %s)", n.Tag, EncryptedTag)
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			v, err := secretValue(file, n.Content[i+1], path+"."+k, s, open)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	case yaml.SequenceNode:
		var out []any
		for i, e := range n.Content {
			v, err := secretValue(file, e, fmt.Sprintf("%s[%d]", path, i), s, open)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	default:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, errAt(file, n.Line, path, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return v, nil
	}
}

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
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Pos is where a configuration object starts.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// ErrConfig is wrapped by every error about the configuration's content.
var ErrConfig = errors.New("zuul configuration error")

func errAt(file string, n *yaml.Node, format string, args ...any) error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return fmt.Errorf("%s:%d: %w: %s", file, line, ErrConfig, fmt.Sprintf(format, args...))
}

// Playbook is one pre-run, run or post-run entry.
type Playbook struct {
	Name       string
	Cleanup    bool
	Semaphores []string
}

// SecretUse is one entry of a job's secrets list.
type SecretUse struct {
	// Name is the Ansible variable the secret appears as.
	Name string
	// Secret is the name of the secret object.
	Secret       string
	PassToParent bool
}

// Dependency is one entry of a job's dependencies list.
type Dependency struct {
	Name string
	Soft bool
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
}

// JobKeys are the attributes Zuul's JobParser accepts (ZUUL.md §1).
var JobKeys = keySet("name parent description final protected abstract intermediate " +
	"attribute-control success-message failure-message hold-following-changes voting " +
	"semaphore semaphores tags provides requires secrets nodeset override-checkout " +
	"override-branch pre-timeout timeout post-timeout attempts pre-run run post-run " +
	"cleanup-run ansible-split-streams ansible-version roles required-projects vars " +
	"extra-vars host-vars group-vars include-vars dependencies allowed-projects post-review " +
	"branches files irrelevant-files match-on-config-updates deduplicate failure-output " +
	"workspace-scheme workspace-checkout variant-description image-build-name failure-url success-url")

var (
	playbookKeys   = keySet("name semaphores cleanup")
	secretUseKeys  = keySet("name secret pass-to-parent")
	dependencyKeys = keySet("name soft")
	nodesetKeys    = keySet("nodes groups alternatives")
	nodeKeys       = keySet("name label")
	groupKeys      = keySet("name nodes")
	secretKeys     = keySet("name data")
	semaphoreKeys  = keySet("name max")
	queueKeys      = keySet("name per-branch allow-circular-dependencies dependencies-by-topic")
	projectKeys    = keySet("name templates branches vars queue default-branch merge-mode description")
	pipelineKeys   = keySet("jobs debug fail-fast")
	topKeys        = keySet("job secret semaphore queue project nodeset project-template pragma")
)

func keySet(s string) map[string]bool {
	m := map[string]bool{}
	for _, k := range strings.Fields(s) {
		m[k] = true
	}
	return m
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
// file name used in errors.
func (c *Config) Parse(r io.Reader, name string) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	c.Files = append(c.Files, name)
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w: %v", name, ErrConfig, err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil // empty file
	}
	top := doc.Content[0]
	if top.Kind != yaml.SequenceNode {
		return errAt(name, top, "the file must be a list of objects (- job: ..., - project: ...)")
	}
	var errs []error
	for _, item := range top.Content {
		if err := c.parseItem(name, item); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) parseItem(file string, item *yaml.Node) error {
	if item.Kind != yaml.MappingNode || len(item.Content) != 2 {
		return errAt(file, item, "each list item must be a mapping with exactly one key (job, project, secret, semaphore, queue, nodeset)")
	}
	kind, body := item.Content[0].Value, item.Content[1]
	if !topKeys[kind] {
		return errAt(file, item.Content[0], "unknown configuration object %q", kind)
	}
	switch kind {
	case "job":
		j, err := parseJob(file, body, true)
		if err != nil {
			return err
		}
		c.Jobs = append(c.Jobs, j)
	case "secret":
		return c.parseSecret(file, body)
	case "semaphore":
		m, err := mapping(file, body, semaphoreKeys, "semaphore")
		if err != nil {
			return err
		}
		s := &Semaphore{Pos: Pos{file, body.Line}, Max: 1}
		if s.Name, err = str(file, m, "name", true); err != nil {
			return err
		}
		if n, ok := m["max"]; ok {
			if err := n.Decode(&s.Max); err != nil || s.Max < 1 {
				return errAt(file, n, "semaphore %s: max %q must be a positive integer", s.Name, n.Value)
			}
		}
		if prev, dup := c.Semaphores[s.Name]; dup {
			return errAt(file, body, "semaphore %s is already defined at %s", s.Name, prev.Pos)
		}
		c.Semaphores[s.Name] = s
	case "queue":
		m, err := mapping(file, body, queueKeys, "queue")
		if err != nil {
			return err
		}
		q := &Queue{Pos: Pos{file, body.Line}}
		if q.Name, err = str(file, m, "name", true); err != nil {
			return err
		}
		if n, ok := m["per-branch"]; ok {
			if err := n.Decode(&q.PerBranch); err != nil {
				return errAt(file, n, "queue %s: per-branch %q is not a boolean", q.Name, n.Value)
			}
		}
		if prev, dup := c.Queues[q.Name]; dup {
			return errAt(file, body, "queue %s is already defined at %s", q.Name, prev.Pos)
		}
		c.Queues[q.Name] = q
	case "project":
		p, err := parseProject(file, body)
		if err != nil {
			return err
		}
		c.Projects = append(c.Projects, p)
	default:
		// nodeset, project-template, pragma: accepted, not used by slipway.
		if body.Kind != yaml.MappingNode {
			return errAt(file, body, "%s must be a mapping", kind)
		}
	}
	return nil
}

// mapping checks n is a mapping whose keys are all in allowed and returns
// key -> value node.
func mapping(file string, n *yaml.Node, allowed map[string]bool, what string) (map[string]*yaml.Node, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errAt(file, n, "%s must be a mapping, not %s", what, kindName(n))
	}
	m := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if allowed != nil && !allowed[k.Value] {
			return nil, errAt(file, k, "%s: unknown key %q", what, k.Value)
		}
		if _, dup := m[k.Value]; dup {
			return nil, errAt(file, k, "%s: key %q given twice", what, k.Value)
		}
		m[k.Value] = n.Content[i+1]
	}
	return m, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the scalar %q", n.Value)
	case yaml.AliasNode:
		return kindName(n.Alias)
	}
	return "empty"
}

func str(file string, m map[string]*yaml.Node, key string, required bool) (string, error) {
	n, ok := m[key]
	if !ok {
		if required {
			return "", fmt.Errorf("%s: %w: missing required key %q", file, ErrConfig, key)
		}
		return "", nil
	}
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", errAt(file, n, "%s must be a string, not %s", key, kindName(n))
	}
	return n.Value, nil
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// strList accepts a string or a list of strings.
func strList(file string, n *yaml.Node, key string) ([]string, error) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode {
		return []string{n.Value}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, errAt(file, n, "%s must be a string or a list of strings", key)
	}
	var out []string
	for _, e := range n.Content {
		e = deref(e)
		if e.Kind != yaml.ScalarNode {
			return nil, errAt(file, e, "%s: each entry must be a string, not %s", key, kindName(e))
		}
		out = append(out, e.Value)
	}
	return out, nil
}

func decodeMap(file string, n *yaml.Node, key string) (map[string]any, error) {
	n = deref(n)
	if n.Kind != yaml.MappingNode {
		return nil, errAt(file, n, "%s must be a mapping, not %s", key, kindName(n))
	}
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		return nil, errAt(file, n, "%s: %v", key, err)
	}
	return m, nil
}

func parseJob(file string, n *yaml.Node, needName bool) (*Job, error) {
	m, err := mapping(file, n, JobKeys, "job")
	if err != nil {
		return nil, err
	}
	j := &Job{Pos: Pos{file, n.Line}, Keys: map[string]bool{}}
	for k := range m {
		j.Keys[k] = true
	}
	if j.Name, err = str(file, m, "name", needName); err != nil {
		return nil, err
	}
	what := "job " + j.Name
	wrap := func(err error) error {
		if err == nil {
			return nil
		}
		return fmt.Errorf("%s (in %s)", err, what)
	}
	if v, ok := m["parent"]; ok {
		if deref(v).Tag == "!!null" {
			j.HasParent = true // parent: null, a base job
		} else if j.Parent, err = str(file, m, "parent", false); err != nil {
			return nil, wrap(err)
		} else {
			j.HasParent = true
		}
	}
	for key, dst := range map[string]*bool{"abstract": &j.Abstract, "final": &j.Final} {
		if v, ok := m[key]; ok {
			if err := v.Decode(dst); err != nil {
				return nil, errAt(file, v, "%s: %s %q is not a boolean", what, key, v.Value)
			}
		}
	}
	if v, ok := m["post-review"]; ok {
		var b bool
		if err := v.Decode(&b); err != nil {
			return nil, errAt(file, v, "%s: post-review %q is not a boolean", what, v.Value)
		}
		if !b {
			return nil, errAt(file, v, "%s: post-review: false is not allowed (Zuul: once set, the post-review attribute may not be unset); remove the line", what)
		}
		j.PostReview = &b
	}
	if j.Description, err = str(file, m, "description", false); err != nil {
		return nil, wrap(err)
	}
	for _, key := range []string{"timeout", "pre-timeout", "post-timeout", "attempts"} {
		if v, ok := m[key]; ok {
			var i int
			if err := v.Decode(&i); err != nil || i < 0 {
				return nil, errAt(file, v, "%s: %s %q must be a whole number of seconds", what, key, v.Value)
			}
			if key == "timeout" {
				j.Timeout = i
			}
		}
	}
	for key, dst := range map[string]*[]Playbook{"pre-run": &j.PreRun, "run": &j.Run, "post-run": &j.PostRun, "cleanup-run": &j.CleanupRun} {
		if v, ok := m[key]; ok {
			if *dst, err = parsePlaybooks(file, v, what+" "+key); err != nil {
				return nil, err
			}
		}
	}
	for key, dst := range map[string]*map[string]any{"vars": &j.Vars, "extra-vars": &j.ExtraVars} {
		if v, ok := m[key]; ok {
			if *dst, err = decodeMap(file, v, what+" "+key); err != nil {
				return nil, err
			}
		}
	}
	for _, key := range []string{"host-vars", "group-vars"} {
		if v, ok := m[key]; ok {
			if _, err := decodeMap(file, v, what+" "+key); err != nil {
				return nil, err
			}
		}
	}
	if v, ok := m["secrets"]; ok {
		if j.Secrets, err = parseSecretUses(file, v, what); err != nil {
			return nil, err
		}
	}
	if v, ok := m["dependencies"]; ok {
		j.HasDeps = true
		if j.Deps, err = parseDeps(file, v, what); err != nil {
			return nil, err
		}
	}
	if _, ok := m["semaphore"]; ok {
		return nil, errAt(file, m["semaphore"], "%s: semaphore is deprecated: use semaphores", what)
	}
	for key, dst := range map[string]*[]string{"semaphores": &j.Semaphores, "branches": &j.Branches, "provides": &j.Provides, "requires": &j.Requires} {
		if v, ok := m[key]; ok {
			if *dst, err = strList(file, v, what+" "+key); err != nil {
				return nil, err
			}
		}
	}
	for _, key := range []string{"files", "irrelevant-files", "tags", "allowed-projects"} {
		if v, ok := m[key]; ok {
			if _, err := strList(file, v, what+" "+key); err != nil {
				return nil, err
			}
		}
	}
	if v, ok := m["nodeset"]; ok {
		if j.Nodes, err = parseNodeset(file, v, what); err != nil {
			return nil, err
		}
	}
	return j, nil
}

func parsePlaybooks(file string, n *yaml.Node, what string) ([]Playbook, error) {
	n = deref(n)
	var items []*yaml.Node
	switch n.Kind {
	case yaml.ScalarNode:
		items = []*yaml.Node{n}
	case yaml.SequenceNode:
		items = n.Content
	default:
		return nil, errAt(file, n, "%s must be a playbook path or a list of them", what)
	}
	var out []Playbook
	for _, it := range items {
		it = deref(it)
		if it.Kind == yaml.ScalarNode {
			out = append(out, Playbook{Name: it.Value})
			continue
		}
		m, err := mapping(file, it, playbookKeys, what+" entry")
		if err != nil {
			return nil, err
		}
		var pb Playbook
		if pb.Name, err = str(file, m, "name", true); err != nil {
			return nil, err
		}
		if v, ok := m["cleanup"]; ok {
			if err := v.Decode(&pb.Cleanup); err != nil {
				return nil, errAt(file, v, "%s: cleanup %q is not a boolean", what, v.Value)
			}
		}
		if v, ok := m["semaphores"]; ok {
			if pb.Semaphores, err = strList(file, v, what+" semaphores"); err != nil {
				return nil, err
			}
		}
		out = append(out, pb)
	}
	return out, nil
}

func parseSecretUses(file string, n *yaml.Node, what string) ([]SecretUse, error) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode {
		return []SecretUse{{Name: n.Value, Secret: n.Value}}, checkVarName(file, n, what, n.Value)
	}
	if n.Kind != yaml.SequenceNode {
		return nil, errAt(file, n, "%s: secrets must be a list", what)
	}
	var out []SecretUse
	for _, it := range n.Content {
		it = deref(it)
		if it.Kind == yaml.ScalarNode {
			if err := checkVarName(file, it, what, it.Value); err != nil {
				return nil, err
			}
			out = append(out, SecretUse{Name: it.Value, Secret: it.Value})
			continue
		}
		m, err := mapping(file, it, secretUseKeys, what+" secrets entry")
		if err != nil {
			return nil, err
		}
		var u SecretUse
		if u.Name, err = str(file, m, "name", true); err != nil {
			return nil, err
		}
		if u.Secret, err = str(file, m, "secret", true); err != nil {
			return nil, err
		}
		if v, ok := m["pass-to-parent"]; ok {
			if err := v.Decode(&u.PassToParent); err != nil {
				return nil, errAt(file, v, "%s: pass-to-parent %q is not a boolean", what, v.Value)
			}
		}
		if err := checkVarName(file, m["name"], what, u.Name); err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

func checkVarName(file string, n *yaml.Node, what, name string) error {
	if !ansibleVarName.MatchString(name) {
		return errAt(file, n, "%s: secret name %q is not a valid Ansible variable name (letters, digits, _)", what, name)
	}
	return nil
}

func parseDeps(file string, n *yaml.Node, what string) ([]Dependency, error) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode {
		return []Dependency{{Name: n.Value}}, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, errAt(file, n, "%s: dependencies must be a list", what)
	}
	var out []Dependency
	for _, it := range n.Content {
		it = deref(it)
		if it.Kind == yaml.ScalarNode {
			out = append(out, Dependency{Name: it.Value})
			continue
		}
		m, err := mapping(file, it, dependencyKeys, what+" dependencies entry")
		if err != nil {
			return nil, err
		}
		var d Dependency
		if d.Name, err = str(file, m, "name", true); err != nil {
			return nil, err
		}
		if v, ok := m["soft"]; ok {
			if err := v.Decode(&d.Soft); err != nil {
				return nil, errAt(file, v, "%s: soft %q is not a boolean", what, v.Value)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

func parseNodeset(file string, n *yaml.Node, what string) ([]string, error) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode {
		return nil, nil // a named nodeset from the tenant
	}
	m, err := mapping(file, n, nodesetKeys, what+" nodeset")
	if err != nil {
		return nil, err
	}
	var names []string
	if v, ok := m["nodes"]; ok {
		v = deref(v)
		if v.Kind != yaml.SequenceNode {
			return nil, errAt(file, v, "%s: nodeset nodes must be a list", what)
		}
		for _, it := range v.Content {
			nm, err := mapping(file, deref(it), nodeKeys, what+" node")
			if err != nil {
				return nil, err
			}
			name, err := str(file, nm, "name", true)
			if err != nil {
				return nil, err
			}
			if _, err := str(file, nm, "label", true); err != nil {
				return nil, err
			}
			names = append(names, name)
		}
	}
	if v, ok := m["groups"]; ok {
		v = deref(v)
		if v.Kind != yaml.SequenceNode {
			return nil, errAt(file, v, "%s: nodeset groups must be a list", what)
		}
		for _, it := range v.Content {
			if _, err := mapping(file, deref(it), groupKeys, what+" group"); err != nil {
				return nil, err
			}
		}
	}
	return names, nil
}

func (c *Config) parseSecret(file string, body *yaml.Node) error {
	m, err := mapping(file, body, secretKeys, "secret")
	if err != nil {
		return err
	}
	s := &Secret{Pos: Pos{file, body.Line}}
	if s.Name, err = str(file, m, "name", true); err != nil {
		return err
	}
	d, ok := m["data"]
	if !ok {
		return errAt(file, body, "secret %s: missing required key \"data\"", s.Name)
	}
	data, err := secretValue(file, d, "", s)
	if err != nil {
		return err
	}
	dm, ok := data.(map[string]any)
	if !ok {
		return errAt(file, d, "secret %s: data must be a mapping", s.Name)
	}
	s.Data = dm
	if prev, dup := c.Secrets[s.Name]; dup {
		return errAt(file, body, "secret %s is already defined at %s", s.Name, prev.Pos)
	}
	c.Secrets[s.Name] = s
	return nil
}

// EncryptedTag is the YAML tag of a value encrypted with the project key.
const EncryptedTag = "!encrypted/pkcs1-oaep"

// Encrypted is an encrypted secret value: its ciphertext chunks.
type Encrypted struct{ Chunks []string }

func secretValue(file string, n *yaml.Node, path string, s *Secret) (any, error) {
	n = deref(n)
	if n.Tag == EncryptedTag {
		chunks, err := strList(file, n, "secret "+s.Name+" "+path)
		if err != nil {
			return nil, err
		}
		for _, ch := range chunks {
			if strings.HasPrefix(ch, "PLACEHOLDER") {
				s.Placeholder = true
			}
		}
		s.Encrypted = append(s.Encrypted, path)
		return Encrypted{Chunks: chunks}, nil
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return nil, errAt(file, n, "secret %s: %s: unknown tag %s (want %s)", s.Name, path, n.Tag, EncryptedTag)
	}
	switch n.Kind {
	case yaml.MappingNode:
		out := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			p := k
			if path != "" {
				p = path + "." + k
			}
			v, err := secretValue(file, n.Content[i+1], p, s)
			if err != nil {
				return nil, err
			}
			out[k] = v
		}
		return out, nil
	case yaml.SequenceNode:
		var out []any
		for i, e := range n.Content {
			v, err := secretValue(file, e, fmt.Sprintf("%s[%d]", path, i), s)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	default:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, errAt(file, n, "secret %s: %s: %v", s.Name, path, err)
		}
		return v, nil
	}
}

func parseProject(file string, body *yaml.Node) (*Project, error) {
	if body.Kind != yaml.MappingNode {
		return nil, errAt(file, body, "project must be a mapping")
	}
	p := &Project{Pos: Pos{file, body.Line}, Pipelines: map[string]*ProjectPipeline{}}
	for i := 0; i+1 < len(body.Content); i += 2 {
		k, v := body.Content[i], body.Content[i+1]
		switch {
		case projectKeys[k.Value]:
			switch k.Value {
			case "name":
				p.Name = v.Value
			case "queue":
				p.Queue = v.Value
			case "vars":
				m, err := decodeMap(file, v, "project vars")
				if err != nil {
					return nil, err
				}
				p.Vars = m
			case "templates":
				t, err := strList(file, v, "project templates")
				if err != nil {
					return nil, err
				}
				p.Templates = t
			}
		case isPipeline(k.Value):
			pp, err := parsePipeline(file, k.Value, v)
			if err != nil {
				return nil, err
			}
			p.Pipelines[k.Value] = pp
		default:
			return nil, errAt(file, k, "project: unknown key %q (not a project attribute nor one of the tenant's pipelines: %s)", k.Value, strings.Join(pipelineNames(), ", "))
		}
	}
	return p, nil
}

func isPipeline(name string) bool { _, ok := Pipelines[name]; return ok }

func pipelineNames() []string {
	var names []string
	for n := range Pipelines {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func parsePipeline(file, name string, n *yaml.Node) (*ProjectPipeline, error) {
	m, err := mapping(file, n, pipelineKeys, "project pipeline "+name)
	if err != nil {
		return nil, err
	}
	pp := &ProjectPipeline{Pos: Pos{file, n.Line}}
	jobs, ok := m["jobs"]
	if !ok {
		return pp, nil
	}
	jobs = deref(jobs)
	if jobs.Kind != yaml.SequenceNode {
		return nil, errAt(file, jobs, "project pipeline %s: jobs must be a list", name)
	}
	for _, it := range jobs.Content {
		it = deref(it)
		if it.Kind == yaml.ScalarNode {
			pp.Jobs = append(pp.Jobs, ProjectJob{Variant: &Job{Pos: Pos{file, it.Line}, Name: it.Value, Keys: map[string]bool{}}})
			continue
		}
		if it.Kind != yaml.MappingNode || len(it.Content) != 2 {
			return nil, errAt(file, it, "project pipeline %s: each job must be a name or a mapping of one name to attributes", name)
		}
		jname := it.Content[0].Value
		body := deref(it.Content[1])
		var j *Job
		if body.Kind == yaml.ScalarNode && body.Tag == "!!null" {
			j = &Job{Name: jname, Keys: map[string]bool{}}
		} else {
			if j, err = parseJob(file, body, false); err != nil {
				return nil, err
			}
			if j.Name != "" && j.Name != jname {
				return nil, errAt(file, body, "project pipeline %s: job %s: name %q differs", name, jname, j.Name)
			}
			j.Name = jname
		}
		j.Pos = Pos{file, it.Line}
		pp.Jobs = append(pp.Jobs, ProjectJob{Variant: j})
	}
	return pp, nil
}

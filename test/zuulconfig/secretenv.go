package zuulconfig

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// CheckSecretEnvironment finds the playbooks and roles under root that put
// a secret where other users of the node can read it: an `environment:`
// value, or the command line of a command, shell or raw task, that
// templates a secret. Ansible runs a module with its environment prefixed
// to the command line (/bin/sh -c 'VAR=value python3 ...'), so
// `environment:` is as public as argv. A template holds a secret when it
// names a variable a job binds a secret to, as a whole or by a field the
// secret encrypts (slipway_s3.secret_key, not slipway_s3.endpoint), or a
// variable (play, block or task vars, set_fact, zuul.d job and project
// vars) whose value does. Secrets go in 0600 files named by --*-file flags.
func CheckSecretEnvironment(root string, cfg *Config) error {
	files, err := ansibleFiles(root)
	if err != nil {
		return err
	}
	t := newTaint(cfg)
	docs := map[string]*yaml.Node{}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return err
		}
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) != nil {
			continue // CheckPlaybooks reports it
		}
		docs[f] = &doc
		t.collect(&doc)
	}
	for _, j := range cfg.Jobs {
		t.define(j.Vars)
		t.define(j.ExtraVars)
	}
	for _, p := range cfg.Projects {
		t.define(p.Vars)
	}
	t.spread()
	var errs []error
	for _, f := range files {
		if doc := docs[f]; doc != nil {
			errs = append(errs, t.check(f, doc)...)
		}
	}
	return errors.Join(errs...)
}

// ansibleFiles lists the YAML files under root/playbooks and root/roles.
func ansibleFiles(root string) ([]string, error) {
	var out []string
	for _, dir := range []string{"playbooks", "roles"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				rel, _ := filepath.Rel(root, path)
				out = append(out, rel)
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

// taint knows which variables hold secrets.
type taint struct {
	// secretFields maps a secret's variable to its encrypted fields.
	secretFields map[string]map[string]bool
	// defs are the templates in each defined variable's value.
	defs map[string][]string
	// holds maps a tainted variable to the secret it holds.
	holds map[string]string
}

func newTaint(cfg *Config) *taint {
	t := &taint{secretFields: map[string]map[string]bool{}, defs: map[string][]string{}, holds: map[string]string{}}
	for _, j := range cfg.Jobs {
		for _, u := range j.Secrets {
			s, ok := cfg.Secrets[u.Secret]
			if !ok {
				continue // Validate reports it
			}
			if t.secretFields[u.Name] == nil {
				t.secretFields[u.Name] = map[string]bool{}
			}
			for _, p := range s.Encrypted {
				t.secretFields[u.Name][strings.SplitN(p, ".", 2)[0]] = true
			}
		}
	}
	return t
}

var (
	jinja = regexp.MustCompile(`(?s)\{\{.*?\}\}|\{%.*?%\}`)
	// ref is a variable, then optionally one field (.f or ['f']).
	ref = regexp.MustCompile(`\b([A-Za-z_][A-Za-z0-9_]*)(?:\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)|\s*\[\s*['"]([^'"]+)['"]\s*\])?`)
)

// secretIn returns the secret a template names ("" if none).
func (t *taint) secretIn(s string) string {
	for _, expr := range jinja.FindAllString(s, -1) {
		for _, m := range ref.FindAllStringSubmatch(expr, -1) {
			name, field := m[1], m[2]+m[3]
			if fields, ok := t.secretFields[name]; ok && (field == "" || fields[field]) {
				if field != "" {
					return name + "." + field
				}
				return name
			}
			if h, ok := t.holds[name]; ok {
				return h + " (through " + name + ")"
			}
		}
	}
	return ""
}

// define records variables and the templates of their values.
func (t *taint) define(vars map[string]any) {
	for k, v := range vars {
		t.defs[k] = append(t.defs[k], templates(v)...)
	}
}

func templates(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case map[string]any:
		var out []string
		for _, e := range x {
			out = append(out, templates(e)...)
		}
		return out
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, templates(e)...)
		}
		return out
	}
	return nil
}

var varKeys = map[string]bool{"vars": true, "set_fact": true, "ansible.builtin.set_fact": true}

// collect records the variables a playbook or task file defines.
func (t *taint) collect(n *yaml.Node) {
	walkMaps(n, func(k, v *yaml.Node) {
		if !varKeys[k.Value] || v.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			t.defs[v.Content[i].Value] = append(t.defs[v.Content[i].Value], scalars(v.Content[i+1])...)
		}
	})
}

// spread marks every variable whose value names a secret, until no more do.
func (t *taint) spread() {
	for changed := true; changed; {
		changed = false
		for name, tmpls := range t.defs {
			if _, done := t.holds[name]; done {
				continue
			}
			for _, s := range tmpls {
				if h := t.secretIn(s); h != "" {
					t.holds[name], changed = strings.SplitN(h, " ", 2)[0], true
					break
				}
			}
		}
	}
}

// commandKeys are the modules whose arguments become a command line.
var commandKeys = map[string]bool{
	"command": true, "ansible.builtin.command": true, "shell": true, "ansible.builtin.shell": true,
	"raw": true, "ansible.builtin.raw": true,
}

// check reports every environment value and command line in doc that
// templates a secret.
func (t *taint) check(file string, doc *yaml.Node) []error {
	var errs []error
	report := func(n *yaml.Node, what string) {
		if h := t.secretIn(n.Value); h != "" {
			errs = append(errs, errAt(file, n.Line, "", "%s templates the secret %s, which Ansible puts on the module's command line "+
				"for every user to read: write it to a 0600 file in a private directory and pass its --*-file flag", what, h))
		}
	}
	walkMaps(doc, func(k, v *yaml.Node) {
		switch {
		case k.Value == "environment":
			if v.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(v.Content); i += 2 {
					for _, s := range scalarNodes(v.Content[i+1]) {
						report(s, "environment "+v.Content[i].Value)
					}
				}
				return
			}
			for _, s := range scalarNodes(v) {
				report(s, "environment")
			}
		case commandKeys[k.Value]:
			if v.Kind == yaml.ScalarNode {
				report(v, k.Value)
				return
			}
			for i := 0; v.Kind == yaml.MappingNode && i+1 < len(v.Content); i += 2 {
				if a := v.Content[i].Value; a == "argv" || a == "cmd" || a == "_raw_params" {
					for _, s := range scalarNodes(v.Content[i+1]) {
						report(s, k.Value+" "+a)
					}
				}
			}
		}
	})
	return errs
}

// walkMaps calls f with every key and value of every mapping under n.
func walkMaps(n *yaml.Node, f func(k, v *yaml.Node)) {
	if n == nil {
		return
	}
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			f(n.Content[i], deref(n.Content[i+1]))
		}
	}
	for _, c := range n.Content {
		walkMaps(c, f)
	}
}

func scalarNodes(n *yaml.Node) []*yaml.Node {
	if n = deref(n); n == nil {
		return nil
	}
	if n.Kind == yaml.ScalarNode {
		return []*yaml.Node{n}
	}
	var out []*yaml.Node
	for _, c := range n.Content {
		out = append(out, scalarNodes(c)...)
	}
	return out
}

func scalars(n *yaml.Node) []string {
	var out []string
	for _, s := range scalarNodes(n) {
		out = append(out, s.Value)
	}
	return out
}

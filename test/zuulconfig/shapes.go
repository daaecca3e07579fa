package zuulconfig

import "gopkg.in/yaml.v3"

// Zuul takes several keys in a short form: a string for a list of one
// (branches: ^main$), a name for a mapping with only a name (run: a.yaml,
// dependencies: [x], secrets: [s]), a name for a named nodeset, and a
// project pipeline's jobs as names or one-key mappings of a name to its
// attributes. A shaper rewrites those short forms into the long ones, on
// copies that keep every line, so that the one strict decoder
// (internal/config) reads a single shape with exact field paths.
type shaper struct {
	file string
	err  error // the first entry no long form fits
}

type shape func(*yaml.Node) *yaml.Node

func (s *shaper) item(n *yaml.Node) *yaml.Node {
	return fields(n, map[string]shape{"job": jobShape, "project": s.project})
}

// jobShapes rewrite a job's keys; a project-pipeline variant uses them too.
var jobShapes = map[string]shape{
	"pre-run": playbooks, "run": playbooks, "post-run": playbooks, "cleanup-run": playbooks,
	"secrets":      func(n *yaml.Node) *yaml.Node { return each(n, named("name", "secret")) },
	"dependencies": func(n *yaml.Node) *yaml.Node { return each(n, named("name")) },
	"semaphores":   asList, "branches": asList, "provides": asList, "requires": asList,
	"files": asList, "irrelevant-files": asList, "tags": asList, "allowed-projects": asList,
	"nodeset": namedNodeset,
}

func jobShape(n *yaml.Node) *yaml.Node { return fields(n, jobShapes) }

func playbooks(n *yaml.Node) *yaml.Node {
	return each(n, func(e *yaml.Node) *yaml.Node {
		return fields(named("name")(e), map[string]shape{"semaphores": asList})
	})
}

// namedNodeset turns the name of a nodeset the tenant defines into an empty
// nodeset: the job then names no nodes of its own.
func namedNodeset(n *yaml.Node) *yaml.Node {
	if n = deref(n); n.Kind == yaml.ScalarNode && !isNull(n) {
		return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	}
	return n
}

func (s *shaper) project(n *yaml.Node) *yaml.Node {
	shapes := map[string]shape{"templates": asList}
	for name := range Pipelines {
		shapes[name] = func(n *yaml.Node) *yaml.Node {
			return fields(n, map[string]shape{"jobs": func(n *yaml.Node) *yaml.Node { return each(n, s.variant(name)) }})
		}
	}
	return fields(n, shapes)
}

// variant rewrites one entry of a project pipeline's jobs, a name or
// {name: attributes-or-null}, into a job mapping that has the name.
func (s *shaper) variant(pipeline string) shape {
	return func(it *yaml.Node) *yaml.Node {
		if it.Kind == yaml.ScalarNode && !isNull(it) {
			return named("name")(it)
		}
		if it.Kind != yaml.MappingNode || len(it.Content) != 2 {
			s.fail(it, "project pipeline %s: each job must be a name or a mapping of one name to attributes", pipeline)
			return it
		}
		name, body := it.Content[0], deref(it.Content[1])
		if isNull(body) {
			return named("name")(name)
		}
		if body.Kind != yaml.MappingNode {
			return body // the decoder says what it must be
		}
		out := *body
		out.Line, out.Content = it.Line, append([]*yaml.Node{key("name", name), name}, body.Content...)
		for i := 0; i+1 < len(body.Content); i += 2 {
			if body.Content[i].Value != "name" {
				continue
			}
			v := deref(body.Content[i+1])
			if v.Value != "" && v.Value != name.Value {
				s.fail(v, "project pipeline %s: job %s: name %q differs", pipeline, name.Value, v.Value)
			}
			out.Content = append([]*yaml.Node(nil), body.Content...)
			out.Content[i+1] = name
		}
		return jobShape(&out)
	}
}

func (s *shaper) fail(n *yaml.Node, format string, args ...any) {
	if s.err == nil {
		s.err = errAt(s.file, n.Line, "", format, args...)
	}
}

// fields returns a copy of mapping n with the value of each key that has a
// shape rewritten by it; any other node is returned as it is.
func fields(n *yaml.Node, shapes map[string]shape) *yaml.Node {
	if n = deref(n); n.Kind != yaml.MappingNode {
		return n
	}
	out := *n
	out.Content = append([]*yaml.Node(nil), n.Content...)
	for i := 0; i+1 < len(out.Content); i += 2 {
		if f, ok := shapes[out.Content[i].Value]; ok {
			out.Content[i+1] = f(out.Content[i+1])
		}
	}
	return &out
}

// asList turns a string into a list of one: Zuul's "a string or a list".
func asList(n *yaml.Node) *yaml.Node {
	if n = deref(n); n.Kind == yaml.ScalarNode && !isNull(n) {
		return &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Line: n.Line, Column: n.Column, Content: []*yaml.Node{n}}
	}
	return n
}

// each applies asList, then f to every entry.
func each(n *yaml.Node, f shape) *yaml.Node {
	if n = asList(n); n.Kind != yaml.SequenceNode {
		return n
	}
	out := *n
	out.Content = make([]*yaml.Node, len(n.Content))
	for i, e := range n.Content {
		out.Content[i] = f(deref(e))
	}
	return &out
}

// named turns a string entry into a mapping of each of keys to it.
func named(keys ...string) shape {
	return func(n *yaml.Node) *yaml.Node {
		if n = deref(n); n.Kind != yaml.ScalarNode || isNull(n) {
			return n
		}
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
		for _, k := range keys {
			m.Content = append(m.Content, key(k, n), n)
		}
		return m
	}
}

// key is a mapping key written where at is.
func key(name string, at *yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: name, Line: at.Line, Column: at.Column}
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

package buildimage

import (
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

// maxBuildFile bounds what Parse reads: a build file is hand-written YAML.
const maxBuildFile = 1 << 20

// LoadFile reads and parses the build file at path.
func LoadFile(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &FieldError{File: path, Msg: fmt.Sprintf("cannot read the build file: %v", errors.Unwrap(err))}
	}
	defer fh.Close()
	return Parse(fh, path)
}

// Parse decodes a build file strictly: unknown or repeated keys, wrong types
// and missing required fields are errors that name the file, line and field
// path (images[1].tags[0]) with the offending value. The document is walked
// as a yaml.Node tree rather than decoded with KnownFields(true), whose
// messages name the Go type instead of the field path the operator wrote.
// name is the file name used in errors and to resolve relative paths.
func Parse(r io.Reader, name string) (*File, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxBuildFile+1))
	if err != nil {
		return nil, &FieldError{File: name, Msg: fmt.Sprintf("reading: %v", err)}
	}
	if len(data) > maxBuildFile {
		return nil, &FieldError{File: name, Msg: fmt.Sprintf("larger than %d bytes", maxBuildFile)}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &FieldError{File: name, Line: yamlErrLine(err), Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	f := &File{Path: name, Dir: filepath.Dir(name), lines: map[string]int{}, Tags: TagPolicy{Change: DefaultChangeTag, Commit: DefaultCommitTag}}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &FieldError{File: name, Msg: "empty build file: it needs an `images` list"}
	}
	p := &parser{f: f}
	p.file(doc.Content[0])
	if p.err != nil {
		return nil, p.err
	}
	return f, nil
}

var yamlLineRe = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	m := yamlLineRe.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	var n int
	fmt.Sscanf(m[1], "%d", &n)
	return n
}

// parser walks the node tree; it keeps the first error only, so the user
// gets one clear line.
type parser struct {
	f   *File
	err error
}

func (p *parser) fail(n *yaml.Node, field, format string, args ...any) {
	if p.err != nil {
		return
	}
	line := 0
	if n != nil {
		line = n.Line
	}
	p.err = &FieldError{File: p.f.Path, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// fields walks a mapping, rejecting unknown and repeated keys and calling
// the handler of each known one.
func (p *parser) fields(n *yaml.Node, path string, handlers map[string]func(v *yaml.Node, field string)) {
	if p.err != nil {
		return
	}
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, path, "must be a mapping, not %s", describe(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content) && p.err == nil; i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := join(path, k.Value)
		h, ok := handlers[k.Value]
		if !ok || k.Kind != yaml.ScalarNode {
			p.fail(k, field, "unknown field %q (known: %s)", k.Value, known(handlers))
			return
		}
		if seen[k.Value] {
			p.fail(k, field, "repeated field %q", k.Value)
			return
		}
		seen[k.Value] = true
		p.f.lines[field] = k.Line
		h(v, field)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func known(h map[string]func(*yaml.Node, string)) string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// resolve follows aliases, so anchors work as YAML users expect.
func resolve(n *yaml.Node) *yaml.Node {
	for depth := 0; n.Kind == yaml.AliasNode && n.Alias != nil && depth < 16; depth++ {
		n = n.Alias
	}
	return n
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "empty"
		}
		return fmt.Sprintf("%q", n.Value)
	default:
		return "an alias"
	}
}

func (p *parser) str(n *yaml.Node, field string) string {
	if p.err != nil {
		return ""
	}
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.fail(n, field, "must be a string, not %s", describe(n))
		return ""
	}
	return n.Value
}

func (p *parser) strList(n *yaml.Node, field string) []string {
	if p.err != nil {
		return nil
	}
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		p.fail(n, field, "must be a list of strings, not %s", describe(n))
		return nil
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		p.f.lines[f] = c.Line
		out = append(out, p.str(c, f))
	}
	return out
}

func (p *parser) strMap(n *yaml.Node, field string) map[string]string {
	if p.err != nil {
		return nil
	}
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.fail(n, field, "must be a mapping of strings, not %s", describe(n))
		return nil
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content) && p.err == nil; i += 2 {
		k := p.str(n.Content[i], field)
		f := field + "." + k
		if _, dup := out[k]; dup {
			p.fail(n.Content[i], f, "repeated key %q", k)
			return nil
		}
		p.f.lines[f] = n.Content[i].Line
		out[k] = p.str(n.Content[i+1], f)
	}
	return out
}

func (p *parser) file(n *yaml.Node) {
	f := p.f
	var images *yaml.Node
	p.fields(n, "", map[string]func(*yaml.Node, string){
		"source": func(v *yaml.Node, field string) { f.Source = p.str(v, field) },
		"args":   func(v *yaml.Node, field string) { f.Args = p.strMap(v, field) },
		"tags": func(v *yaml.Node, field string) {
			p.fields(v, field, map[string]func(*yaml.Node, string){
				"change": func(v *yaml.Node, field string) { f.Tags.Change = p.str(v, field) },
				"commit": func(v *yaml.Node, field string) { f.Tags.Commit = p.str(v, field) },
			})
		},
		"images": func(v *yaml.Node, _ string) { images = v },
	})
	if p.err != nil {
		return
	}
	if images == nil {
		p.fail(n, "images", "missing: the build file needs an `images` list")
		return
	}
	images = resolve(images)
	if images.Kind != yaml.SequenceNode || len(images.Content) == 0 {
		p.fail(images, "images", "must be a non-empty list of images, not %s", describe(images))
		return
	}
	for i, in := range images.Content {
		im := &Image{index: i}
		p.f.lines[im.field("")] = in.Line
		p.image(in, im)
		if p.err != nil {
			return
		}
		f.Images = append(f.Images, im)
	}
}

func (p *parser) image(n *yaml.Node, im *Image) {
	p.fields(n, im.field(""), map[string]func(*yaml.Node, string){
		"name":       func(v *yaml.Node, field string) { im.Name = p.str(v, field) },
		"context":    func(v *yaml.Node, field string) { im.Context = p.str(v, field) },
		"dockerfile": func(v *yaml.Node, field string) { im.Dockerfile = p.str(v, field) },
		"target":     func(v *yaml.Node, field string) { im.Target = p.str(v, field) },
		"build_args": func(v *yaml.Node, field string) { im.BuildArgs = p.strMap(v, field) },
		"repository": func(v *yaml.Node, field string) { im.Repository = p.str(v, field) },
		"tags":       func(v *yaml.Node, field string) { im.Tags = p.strList(v, field) },
		"labels":     func(v *yaml.Node, field string) { im.Labels = p.strMap(v, field) },
		"depends_on": func(v *yaml.Node, field string) { im.DependsOn = p.strList(v, field) },
		"secrets": func(v *yaml.Node, field string) {
			v = resolve(v)
			if v.Kind != yaml.SequenceNode {
				p.fail(v, field, "must be a list of {id, env or file}, not %s", describe(v))
				return
			}
			for i, sn := range v.Content {
				sf := fmt.Sprintf("%s[%d]", field, i)
				p.f.lines[sf] = sn.Line
				var sec Secret
				p.fields(sn, sf, map[string]func(*yaml.Node, string){
					"id":   func(v *yaml.Node, field string) { sec.ID = p.str(v, field) },
					"env":  func(v *yaml.Node, field string) { sec.Env = p.str(v, field) },
					"file": func(v *yaml.Node, field string) { sec.File = p.str(v, field) },
				})
				im.Secrets = append(im.Secrets, sec)
			}
		},
		"native": func(v *yaml.Node, field string) {
			im.Native = &Native{}
			p.native(v, field, im.Native)
		},
	})
	if p.err != nil {
		return
	}
	if im.Name == "" {
		p.fail(n, im.field("name"), "missing: every image needs a name")
	}
}

func (p *parser) native(n *yaml.Node, path string, nat *Native) {
	p.fields(n, path, map[string]func(*yaml.Node, string){
		"base":       func(v *yaml.Node, field string) { nat.Base = p.str(v, field) },
		"base_image": func(v *yaml.Node, field string) { nat.BaseImage = p.str(v, field) },
		"env":        func(v *yaml.Node, field string) { nat.Env = p.strMap(v, field) },
		"entrypoint": func(v *yaml.Node, field string) { nat.Entrypoint = p.strList(v, field) },
		"cmd":        func(v *yaml.Node, field string) { nat.Cmd = p.strList(v, field) },
		"user":       func(v *yaml.Node, field string) { nat.User = p.str(v, field) },
		"workdir":    func(v *yaml.Node, field string) { nat.Workdir = p.str(v, field) },
		"layers": func(v *yaml.Node, field string) {
			v = resolve(v)
			if v.Kind != yaml.SequenceNode {
				p.fail(v, field, "must be a list of {src, dest}, not %s", describe(v))
				return
			}
			for i, ln := range v.Content {
				lf := fmt.Sprintf("%s[%d]", field, i)
				p.f.lines[lf] = ln.Line
				var l NativeLayer
				p.fields(ln, lf, map[string]func(*yaml.Node, string){
					"src":  func(v *yaml.Node, field string) { l.Src = p.str(v, field) },
					"dest": func(v *yaml.Node, field string) { l.Dest = p.str(v, field) },
				})
				nat.Layers = append(nat.Layers, l)
			}
		},
	})
}

// Package config is slipway's one strict decoder for the YAML and JSON files
// users write (build files, cluster specs, push targets and secrets, backup
// values). Unknown and repeated keys, wrong types and bad values are all one
// error type whose message reads
//
//	FILE:LINE: field.path: what is wrong (what is allowed)
//
// and never names a Go type. Stages decode into their own structs (yaml tags
// name the fields) and keep only their semantic checks, which report through
// Doc.Errorf so that they read the same way.
package config

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// DefaultMaxBytes bounds what Decode reads: these files are written by hand.
const DefaultMaxBytes = 4 << 20

// Error is a problem in a file a user wrote. It is a user error (exit 2).
// File is empty when the same fields came from elsewhere (a stage's flags,
// which the command may then name in Field); the message starts with Field.
type Error struct {
	File  string
	Line  int    // 0 when the problem has no line (an unreadable file)
	Field string // dotted path with list indexes: images[1].tags[0]
	Msg   string // what is wrong (what is allowed)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	for _, s := range []string{e.Field, e.Msg} {
		if s == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(s)
	}
	return b.String()
}

// UserError marks Error as the user's to fix (see internal/usererr).
func (*Error) UserError() {}

// Option changes how Decode reads a file.
type Option func(*options)

type options struct {
	maxBytes  int64
	emptyHint string
}

// MaxBytes bounds the size of the file (default DefaultMaxBytes).
func MaxBytes(n int64) Option { return func(o *options) { o.maxBytes = n } }

// EmptyHint says what an empty file is missing, e.g. "it needs an `images`
// list"; without it an empty file reads "empty file".
func EmptyHint(hint string) Option { return func(o *options) { o.emptyHint = hint } }

// Doc is a decoded file: it remembers where each field was written, so the
// stage's own checks can name the line, and which fields were written at all.
type Doc struct {
	File  string
	Root  *yaml.Node // the document's top node
	lines map[string]int
}

// Line returns the line where path (or, failing that, its nearest written
// parent) was written; 0 if none was.
func (d *Doc) Line(path string) int {
	for path != "" {
		if l, ok := d.lines[path]; ok {
			return l
		}
		path = parent(path)
	}
	return 0
}

// Has reports whether the file wrote path, which tells an unset field from
// one set to its zero value.
func (d *Doc) Has(path string) bool {
	_, ok := d.lines[path]
	return ok
}

// Errorf returns an Error at path, on the line where path was written.
func (d *Doc) Errorf(path, format string, args ...any) *Error {
	return &Error{File: d.File, Line: d.Line(path), Field: path, Msg: fmt.Sprintf(format, args...)}
}

func parent(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// DecodeFile reads the file at path into v (a pointer to a struct); see Decode.
func DecodeFile(path string, v any, opts ...Option) (*Doc, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read: " + pathErrText(err)}
	}
	defer fh.Close()
	return Decode(fh, path, v, opts...)
}

func pathErrText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Decode reads one YAML (or JSON) document from r into v, a pointer to a
// struct, strictly. name is the file name used in errors. Every problem with
// the content is an *Error.
func Decode(r io.Reader, name string, v any, opts ...Option) (*Doc, error) {
	o := options{maxBytes: DefaultMaxBytes}
	for _, opt := range opts {
		opt(&o)
	}
	data, err := io.ReadAll(io.LimitReader(r, o.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(data)) > o.maxBytes {
		return nil, &Error{File: name, Msg: fmt.Sprintf("larger than %d bytes (a hand-written file is far smaller)", o.maxBytes)}
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, syntaxError(name, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 || isNull(root.Content[0]) {
		msg := "empty file"
		if o.emptyHint != "" {
			msg += ": " + o.emptyHint
		}
		return nil, &Error{File: name, Msg: msg}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, &Error{File: name, Line: extra.Line, Msg: "a second YAML document (---): the file holds one"}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(name, err)
	}
	return DecodeNode(name, root.Content[0], v)
}

// DecodeNode decodes one node of a document the caller parsed itself (a
// section of a larger file) into v, with the same rules as Decode.
func DecodeNode(name string, node *yaml.Node, v any) (*Doc, error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, fmt.Errorf("config: decoding %s into a non-pointer %T", name, v)
	}
	d := &decoder{doc: &Doc{File: name, Root: node, lines: map[string]int{}}}
	if err := d.value("", node, rv.Elem()); err != nil {
		return nil, err
	}
	return d.doc, nil
}

var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

func syntaxError(name string, err error) error {
	msg := err.Error()
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	msg = strings.TrimPrefix(msg, "yaml: ")
	return &Error{File: name, Line: line, Msg: "not valid YAML: " + msg}
}

type decoder struct{ doc *Doc }

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) error {
	return &Error{File: d.doc.File, Line: n.Line, Field: path, Msg: fmt.Sprintf(format, args...)}
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	nodeType     = reflect.TypeOf(yaml.Node{})
	yamlUnmarsh  = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	textUnmarsh  = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// value decodes node n into v, the field at path.
func (d *decoder) value(path string, n *yaml.Node, v reflect.Value) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	t := v.Type()
	switch {
	case t == nodeType:
		v.Set(reflect.ValueOf(*n))
		return nil
	case t == durationType:
		if n.Kind != yaml.ScalarNode || isNull(n) {
			return d.fail(n, path, "must be a duration such as 90s, 5m or 1h30m, not %s", describe(n))
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil || dur < 0 {
			return d.fail(n, path, "%s is not a duration (use a number and a unit: 90s, 5m, 1h30m)", describe(n))
		}
		v.SetInt(int64(dur))
		return nil
	case t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(yamlUnmarsh):
		if err := n.Decode(v.Addr().Interface()); err != nil {
			return d.fail(n, path, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		return nil
	case t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(textUnmarsh):
		if n.Kind != yaml.ScalarNode || isNull(n) {
			return d.fail(n, path, "must be a single value, not %s", describe(n))
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			return d.fail(n, path, "%s", err.Error())
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.Set(reflect.Zero(t))
			return nil
		}
		p := reflect.New(t.Elem())
		if err := d.value(path, n, p.Elem()); err != nil {
			return err
		}
		v.Set(p)
	case reflect.Interface:
		var x any
		if err := n.Decode(&x); err != nil {
			return d.fail(n, path, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	case reflect.Struct:
		return d.structValue(path, n, v)
	case reflect.Map:
		return d.mapValue(path, n, v)
	case reflect.Slice:
		if isNull(n) {
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return d.fail(n, path, "must be a list, not %s", describe(n))
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, item := range n.Content {
			sub := fmt.Sprintf("%s[%d]", path, i)
			d.doc.lines[sub] = item.Line
			if err := d.value(sub, item, s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || isNull(n) {
			return d.fail(n, path, "must be a string, not %s", describe(n))
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			return d.fail(n, path, "must be true or false, not %s", describe(n))
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 0, t.Bits())
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			return d.fail(n, path, "must be a whole number, not %s", describe(n))
		}
		v.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		u, err := strconv.ParseUint(n.Value, 0, t.Bits())
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || err != nil {
			return d.fail(n, path, "must be a whole number of 0 or more, not %s", describe(n))
		}
		v.SetUint(u)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(n.Value, t.Bits())
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") || err != nil {
			return d.fail(n, path, "must be a number, not %s", describe(n))
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("config: %s: cannot decode into a %s", path, t)
	}
	return nil
}

// fields maps the yaml names of t's fields to their index paths, following
// `,inline` into embedded structs. A field without a yaml tag is named by
// its json tag, so Kubernetes API types (tolerations, affinity) decode by
// their own field names.
func fields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag, ok := f.Tag.Lookup("yaml")
			if !ok {
				tag = f.Tag.Get("json")
			}
			name, opts, _ := strings.Cut(tag, ",")
			if name == "-" {
				continue
			}
			idx := append(append([]int(nil), prefix...), i)
			if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if name == "" {
				name = strings.ToLower(f.Name)
			}
			out[name] = idx
		}
	}
	walk(t, nil)
	return out
}

func (d *decoder) structValue(path string, n *yaml.Node, v reflect.Value) error {
	if n.Kind != yaml.MappingNode {
		return d.fail(n, path, "must be a mapping of fields, not %s", describe(n))
	}
	known := fields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		sub := join(path, k.Value)
		f, ok := known[k.Value]
		if !ok || k.Kind != yaml.ScalarNode {
			return d.fail(k, sub, "unknown field (known: %s)", names(known))
		}
		if seen[k.Value] {
			return d.fail(k, sub, "given twice")
		}
		seen[k.Value] = true
		d.doc.lines[sub] = k.Line
		if err := d.value(sub, val, v.FieldByIndex(f)); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) mapValue(path string, n *yaml.Node, v reflect.Value) error {
	if isNull(n) {
		return nil
	}
	t := v.Type()
	if n.Kind != yaml.MappingNode {
		return d.fail(n, path, "must be a mapping of key: value, not %s", describe(n))
	}
	if t.Key().Kind() != reflect.String {
		return fmt.Errorf("config: %s: map keys must be strings, not %s", path, t.Key())
	}
	m := reflect.MakeMapWithSize(t, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		sub := join(path, k.Value)
		if k.Kind != yaml.ScalarNode || isNull(k) {
			return d.fail(k, path, "keys must be strings, not %s", describe(k))
		}
		key := reflect.New(t.Key()).Elem()
		key.SetString(k.Value)
		if m.MapIndex(key).IsValid() {
			return d.fail(k, sub, "given twice")
		}
		d.doc.lines[sub] = k.Line
		elem := reflect.New(t.Elem()).Elem()
		if err := d.value(sub, val, elem); err != nil {
			return err
		}
		m.SetMapIndex(key, elem)
	}
	v.Set(m)
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func names(known map[string][]int) string {
	out := make([]string, 0, len(known))
	for k := range known {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// describe names what a node holds, for "must be X, not Y" messages.
// Scalars are quoted; callers decoding secrets accept any scalar, so a secret
// value never reaches a message.
func describe(n *yaml.Node) string {
	switch {
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case isNull(n):
		return "empty"
	}
	return strconv.Quote(n.Value)
}

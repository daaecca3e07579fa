package config

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slipwayci/slipway/internal/usererr"
)

type secret string

func (s secret) String() string { return "<redacted>" }

type level int

func (l *level) UnmarshalText(b []byte) error {
	switch string(b) {
	case "low":
		*l = 1
	case "high":
		*l = 2
	default:
		return errors.New("must be low or high")
	}
	return nil
}

type Common struct {
	Owner string `yaml:"owner"`
}

type sample struct {
	Common   `yaml:",inline"`
	Name     string            `yaml:"name"`
	Count    *int              `yaml:"count"`
	Size     uint              `yaml:"size"`
	Ratio    float64           `yaml:"ratio"`
	Enabled  bool              `yaml:"enabled"`
	Timeout  time.Duration     `yaml:"timeout"`
	Level    level             `yaml:"level"`
	Password secret            `yaml:"password"`
	Tags     []string          `yaml:"tags"`
	Labels   map[string]string `yaml:"labels"`
	Items    []struct {
		ID    string `yaml:"id"`
		Ports []int  `yaml:"ports"`
	} `yaml:"items"`
	Hidden string `yaml:"-"`
	Nested *struct {
		Deep struct {
			On bool `yaml:"on"`
		} `yaml:"deep"`
	} `yaml:"nested"`
}

func TestDecodeOK(t *testing.T) {
	src := `# a comment
owner: ops
name: web
count: 3
size: 10
ratio: 0.5
enabled: true
timeout: 90s
level: high
password: 12345
tags: [a, "b"]
labels:
  x: true
  y: 1.20
items:
  - id: one
    ports: [80, 443]
nested:
  deep:
    on: false
`
	var s sample
	doc, err := Decode(strings.NewReader(src), "s.yaml", &s)
	if err != nil {
		t.Fatal(err)
	}
	if s.Owner != "ops" || s.Name != "web" || s.Count == nil || *s.Count != 3 || s.Size != 10 || s.Ratio != 0.5 || !s.Enabled ||
		s.Timeout != 90*time.Second || s.Level != 2 || s.Password != "12345" || len(s.Tags) != 2 || s.Tags[1] != "b" ||
		s.Labels["x"] != "true" || s.Labels["y"] != "1.20" || s.Items[0].Ports[1] != 443 || s.Nested == nil || s.Nested.Deep.On {
		t.Fatalf("decoded %+v", s)
	}
	for path, want := range map[string]int{"name": 3, "items[0].ports[1]": 17, "nested.deep.on": 20, "labels.y": 14, "items[0].missing": 16} {
		if got := doc.Line(path); got != want {
			t.Errorf("Line(%s) = %d, want %d", path, got, want)
		}
	}
	if doc.Has("size") != true || doc.Has("hidden") {
		t.Errorf("Has: size %v hidden %v", doc.Has("size"), doc.Has("hidden"))
	}
	e := doc.Errorf("items[0].id", "%q is taken (choose another)", "one")
	if e.Error() != `s.yaml:16: items[0].id: "one" is taken (choose another)` {
		t.Errorf("Errorf: %s", e)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown key", "name: a\nnmae: b\n", `f.yaml:2: nmae: unknown field (known: count, enabled, items, level, name, nested, owner, password, ratio, size, tags, timeout, labels)`},
		{"repeated key", "name: a\nname: b\n", `f.yaml:2: name: given twice`},
		{"repeated map key", "labels:\n  a: x\n  a: y\n", `f.yaml:3: labels.a: given twice`},
		{"string wants scalar", "name: [a]\n", `f.yaml:1: name: must be a string, not a list`},
		{"null string", "name:\n", `f.yaml:1: name: must be a string, not empty`},
		{"int", "count: many\n", `f.yaml:1: count: must be a whole number, not "many"`},
		{"uint negative", "size: -1\n", `f.yaml:1: size: must be a whole number of 0 or more, not "-1"`},
		{"bool", "enabled: yes please\n", `f.yaml:1: enabled: must be true or false, not "yes please"`},
		{"float", "ratio: half\n", `f.yaml:1: ratio: must be a number, not "half"`},
		{"duration", "timeout: 5\n", `f.yaml:1: timeout: "5" is not a duration (use a number and a unit: 90s, 5m, 1h30m)`},
		{"text unmarshaler", "level: mid\n", `f.yaml:1: level: must be low or high`},
		{"list", "tags: a\n", `f.yaml:1: tags: must be a list, not "a"`},
		{"nested list item", "items:\n  - id: a\n    ports: [80, x]\n", `f.yaml:3: items[0].ports[1]: must be a whole number, not "x"`},
		{"nested unknown", "nested:\n  deep:\n    off: true\n", `f.yaml:3: nested.deep.off: unknown field (known: on)`},
		{"struct wants mapping", "nested: 3\n", `f.yaml:1: nested: must be a mapping of fields, not "3"`},
		{"map wants mapping", "labels: [a]\n", `f.yaml:1: labels: must be a mapping of key: value, not a list`},
		{"top wants mapping", "- a\n", `f.yaml:1: must be a mapping of fields, not a list`},
		{"syntax", "name: a\n  b: c\n", `f.yaml:2: not valid YAML: mapping values are not allowed in this context`},
		{"empty", "# nothing\n", `f.yaml: empty file`},
		{"two documents", "name: a\n---\nname: b\n", `f.yaml:2: a second YAML document (---): the file holds one`},
		{"json", "{\"name\": \"a\", \"cnt\": 1}", `f.yaml:1: cnt: unknown field (known: count, enabled, items, level, name, nested, owner, password, ratio, size, tags, timeout, labels)`},
		{"secret never echoed", "password: {hunter2: x}\n", `f.yaml:1: password: must be a string, not a mapping`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s sample
			_, err := Decode(strings.NewReader(tt.src), "f.yaml", &s)
			if err == nil {
				t.Fatalf("no error, decoded %+v", s)
			}
			// known lists are sorted; the table writes labels last for readability
			want := strings.Replace(tt.want, "items, level, name, nested, owner, password, ratio, size, tags, timeout, labels", "items, labels, level, name, nested, owner, password, ratio, size, tags, timeout", 1)
			if err.Error() != want {
				t.Errorf("error\n got: %s\nwant: %s", err, want)
			}
			var ce *Error
			if !errors.As(err, &ce) || !usererr.Is(err) {
				t.Errorf("%T is not a user *config.Error", err)
			}
			if strings.Contains(err.Error(), "config.") || strings.Contains(err.Error(), "sample") {
				t.Errorf("message names a Go type: %s", err)
			}
		})
	}
}

func TestDecodeOptions(t *testing.T) {
	var s sample
	_, err := Decode(strings.NewReader(""), "b.yaml", &s, EmptyHint("it needs a `name`"))
	if err == nil || err.Error() != "b.yaml: empty file: it needs a `name`" {
		t.Errorf("empty hint: %v", err)
	}
	_, err = Decode(strings.NewReader("name: "+strings.Repeat("x", 100)), "b.yaml", &s, MaxBytes(50))
	if err == nil || err.Error() != "b.yaml: larger than 50 bytes (a hand-written file is far smaller)" {
		t.Errorf("max bytes: %v", err)
	}
	_, err = DecodeFile("/nonexistent/x.yaml", &s)
	if err == nil || err.Error() != "/nonexistent/x.yaml: cannot read: no such file or directory" || !usererr.Is(err) {
		t.Errorf("missing file: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add("name: a\ncount: 1\nitems: [{id: x, ports: [1]}]\n")
	f.Add("labels: {a: b}\nnested: {deep: {on: true}}\n")
	f.Add("- [\n")
	f.Fuzz(func(t *testing.T, src string) {
		var s sample
		_, err := Decode(strings.NewReader(src), "z.yaml", &s)
		if err != nil && !strings.HasPrefix(err.Error(), "z.yaml") {
			t.Fatalf("error does not start with the file name: %v", err)
		}
	})
}

func TestErrorText(t *testing.T) {
	for _, tc := range []struct {
		err  Error
		want string
	}{
		{Error{File: "b.yaml", Line: 3, Field: "images[0].name", Msg: "missing"}, "b.yaml:3: images[0].name: missing"},
		{Error{File: "b.yaml", Msg: "empty file"}, "b.yaml: empty file"},
		{Error{Field: "--tag", Msg: `"a/b" is not a valid tag`}, `--tag: "a/b" is not a valid tag`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

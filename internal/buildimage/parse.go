package buildimage

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/slipwayci/slipway/internal/config"
)

// maxBuildFile bounds what Parse reads: a build file is hand-written YAML.
const maxBuildFile = 1 << 20

var buildFileOptions = []config.Option{config.MaxBytes(maxBuildFile), config.EmptyHint("it needs an `images` list")}

// LoadFile reads and parses the build file at path (see Parse).
func LoadFile(path string) (*File, error) {
	f := newFile(path)
	doc, err := config.DecodeFile(path, f, buildFileOptions...)
	if err != nil {
		return nil, err
	}
	return f, f.check(doc)
}

// Parse decodes a build file strictly (internal/config): unknown or repeated
// keys, wrong types and missing required fields are errors that name the
// file, line and field path (images[1].tags[0]) with the offending value.
// name is the file name used in errors and to resolve relative paths.
func Parse(r io.Reader, name string) (*File, error) {
	f := newFile(name)
	doc, err := config.Decode(r, name, f, buildFileOptions...)
	if err != nil {
		return nil, err
	}
	return f, f.check(doc)
}

// newFile is a build file before decoding: the defaults of what it may omit.
func newFile(name string) *File {
	return &File{Path: name, Dir: filepath.Dir(name), Tags: TagPolicy{Change: DefaultChangeTag, Commit: DefaultCommitTag}}
}

// check makes sure the decoded file has what every build file needs.
func (f *File) check(doc *config.Doc) error {
	f.doc = doc
	if !doc.Has("images") {
		return &config.Error{File: doc.File, Line: doc.Root.Line, Field: "images", Msg: "missing: the build file needs an `images` list"}
	}
	if len(f.Images) == 0 {
		return doc.Errorf("images", "must be a non-empty list of images")
	}
	for i, im := range f.Images {
		field := fmt.Sprintf("images[%d]", i)
		switch {
		case im == nil:
			return doc.Errorf(field, "must be a mapping of fields, not empty")
		case im.Native == nil && doc.Has(field+".native"):
			return doc.Errorf(field+".native", "must be a mapping of fields, not empty")
		case im.Name == "":
			return doc.Errorf(field+".name", "missing: every image needs a name")
		}
		im.index = i
	}
	return nil
}

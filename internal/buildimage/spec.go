// Package buildimage builds the container images of a build file (or of one
// image given by flags) into OCI image layouts, with Zuul-aware tags and
// labels, using buildah, docker or a native go-containerregistry backend.
package buildimage

import (
	"fmt"
	"strings"
)

// Backends an image can be built with.
const (
	BackendBuildah = "buildah"
	BackendDocker  = "docker"
	BackendNative  = "native"
)

// Default tag templates (see TagPolicy).
const (
	DefaultChangeTag = "change_{change}_{patchset}"
	DefaultCommitTag = "{sha}"
)

// File is a parsed build file: what to build, in the operator's terms
// (modelled on zuul-jobs' container_images).
type File struct {
	// Path is the file's name as given, used in every error.
	Path string
	// Dir is the directory relative context paths are resolved against.
	Dir string
	// Source is the org.opencontainers.image.source label; empty means
	// derive it from the Zuul project.
	Source string
	// Args are build args given to every Dockerfile image and available as
	// ${NAME} in a native image's base.
	Args   map[string]string
	Tags   TagPolicy
	Images []*Image

	// lines maps a field path (images[1].tags[0]) to its line in Path.
	lines map[string]int
}

// TagPolicy holds the tag templates the Zuul pipeline selects.
type TagPolicy struct {
	// Change is the temporary tag of check and gate builds.
	Change string
	// Commit is the tag post builds add for the merged commit.
	Commit string
}

// Image is one image to build.
type Image struct {
	Name string
	// Context is the build context directory (absolute once resolved).
	Context string
	// Dockerfile is the Dockerfile path (absolute once resolved); it is
	// relative to Context in the build file, as in zuul-jobs.
	Dockerfile string
	Target     string
	BuildArgs  map[string]string
	// Repository is the image's repository without registry host.
	Repository string
	// Tags are the declared tag templates, used by post and tag builds and
	// by builds outside Zuul.
	Tags      []string
	Labels    map[string]string
	DependsOn []string
	// Secrets are files mounted into RUN steps (RUN --mount=type=secret),
	// never stored in the image or passed on a command line.
	Secrets []Secret
	// Native, when set, builds the image without a Dockerfile.
	Native *Native

	index int // position in the build file, for field paths
}

// Native describes an image assembled by slipway itself: a base, layers made
// from directories or files, and config changes.
type Native struct {
	// Base is an image reference, "" or "scratch" for none. ${NAME} is
	// replaced by the build arg NAME.
	Base string
	// BaseImage names an image of the same build used as the base.
	BaseImage  string
	Layers     []NativeLayer
	Env        map[string]string
	Entrypoint []string
	Cmd        []string
	User       string
	Workdir    string
}

// Secret is a build secret: the value of the environment variable Env, or
// the file File, visible to RUN --mount=type=secret,id=ID.
type Secret struct {
	ID   string
	Env  string
	File string
}

// NativeLayer adds Src (a directory or file, relative to the image's
// context) at Dest in the image.
type NativeLayer struct {
	Src  string
	Dest string
}

// field returns the field path of an image's field, as errors print it;
// for an image given by flags, the flag that set it.
func (im *Image) field(name string) string {
	if im.index < 0 {
		return flagOf(name)
	}
	if name == "" {
		return fmt.Sprintf("images[%d]", im.index)
	}
	return fmt.Sprintf("images[%d].%s", im.index, name)
}

// flagOf maps a field path to the single-image flag that sets it.
func flagOf(field string) string {
	if field == "" {
		return "flags"
	}
	base := field
	if i := strings.IndexByte(base, '['); i >= 0 {
		base = base[:i] // tags[1] → tags, native.layers[0].src → native.layers
	}
	if k, _, ok := strings.Cut(base, "."); ok && k != "native" {
		base = k // build_args.X → build_args
	}
	switch base {
	case "tags":
		return "--tag"
	case "labels":
		return "--label"
	case "secrets":
		return "--secret"
	case "build_args":
		return "--build-arg"
	case "native.layers":
		return "--add"
	}
	return "--" + strings.ReplaceAll(strings.TrimPrefix(base, "native."), "_", "-")
}

// Backend is the backend the image needs given the default for Dockerfiles.
func (im *Image) Backend(dockerfileBackend string) string {
	if im.Native != nil {
		return BackendNative
	}
	return dockerfileBackend
}

// FieldError is bad input: it names the file, line, field and value.
type FieldError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// errAt builds a FieldError for a field path of f.
func (f *File) errAt(field, format string, args ...any) *FieldError {
	return &FieldError{File: f.Path, Line: f.line(field), Field: field, Msg: fmt.Sprintf(format, args...)}
}

// line finds the line of field, or of its closest parent.
func (f *File) line(field string) int {
	for p := field; p != ""; {
		if l, ok := f.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0
}

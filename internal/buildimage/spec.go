// Package buildimage builds the container images of a build file (or of one
// image given by flags) into OCI image layouts, with Zuul-aware tags and
// labels, using buildah, docker or a native go-containerregistry backend.
package buildimage

import (
	"fmt"

	"github.com/slipwayci/slipway/internal/config"
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
	Path string `yaml:"-"`
	// Dir is the directory relative context paths are resolved against.
	Dir string `yaml:"-"`
	// Source is the org.opencontainers.image.source label; empty means
	// derive it from the Zuul project.
	Source string `yaml:"source"`
	// Args are build args given to every Dockerfile image and available as
	// ${NAME} in a native image's base.
	Args   map[string]string `yaml:"args"`
	Tags   TagPolicy         `yaml:"tags"`
	Images []*Image          `yaml:"images"`

	// doc knows the line of every field, for the semantic checks' errors.
	doc *config.Doc
}

// TagPolicy holds the tag templates the Zuul pipeline selects.
type TagPolicy struct {
	// Change is the temporary tag of check and gate builds.
	Change string `yaml:"change"`
	// Commit is the tag post builds add for the merged commit.
	Commit string `yaml:"commit"`
}

// Image is one image to build.
type Image struct {
	Name string `yaml:"name"`
	// Context is the build context directory (absolute once resolved).
	Context string `yaml:"context"`
	// Dockerfile is the Dockerfile path (absolute once resolved); it is
	// relative to Context in the build file, as in zuul-jobs.
	Dockerfile string            `yaml:"dockerfile"`
	Target     string            `yaml:"target"`
	BuildArgs  map[string]string `yaml:"build_args"`
	// Repository is the image's repository without registry host.
	Repository string `yaml:"repository"`
	// Tags are the declared tag templates, used by post and tag builds and
	// by builds outside Zuul.
	Tags      []string          `yaml:"tags"`
	Labels    map[string]string `yaml:"labels"`
	DependsOn []string          `yaml:"depends_on"`
	// Secrets are files mounted into RUN steps (RUN --mount=type=secret),
	// never stored in the image or passed on a command line.
	Secrets []Secret `yaml:"secrets"`
	// Native, when set, builds the image without a Dockerfile.
	Native *Native `yaml:"native"`

	index int // position in the build file, for field paths; -1 alone
}

// Native describes an image assembled by slipway itself: a base, layers made
// from directories or files, and config changes.
type Native struct {
	// Base is an image reference, "" or "scratch" for none. ${NAME} is
	// replaced by the build arg NAME.
	Base string `yaml:"base"`
	// BaseImage names an image of the same build used as the base.
	BaseImage  string            `yaml:"base_image"`
	Layers     []NativeLayer     `yaml:"layers"`
	Env        map[string]string `yaml:"env"`
	Entrypoint []string          `yaml:"entrypoint"`
	Cmd        []string          `yaml:"cmd"`
	User       string            `yaml:"user"`
	Workdir    string            `yaml:"workdir"`
}

// Secret is a build secret: the value of the environment variable Env, or
// the file File, visible to RUN --mount=type=secret,id=ID.
type Secret struct {
	ID   string `yaml:"id"`
	Env  string `yaml:"env"`
	File string `yaml:"file"`
}

// NativeLayer adds Src (a directory or file, relative to the image's
// context) at Dest in the image, or the Debian packages of a lock.
// ${NAME} in Src is replaced by the build arg NAME, so a binary built by
// the pipeline can be given by path on the command line.
type NativeLayer struct {
	Src    string       `yaml:"src"`
	Dest   string       `yaml:"dest"`
	Debian *DebianLayer `yaml:"debian"`
}

// DebianLayer is a layer made of Debian packages: every package of Lock
// (a file made by build-image lock-debian, relative to the image's
// context), downloaded by digest and unpacked without maintainer scripts.
type DebianLayer struct {
	Lock string `yaml:"lock"`

	lock *DebianLock
}

// field returns the field path of an image's field, as errors print it:
// images[1].tags[0] in a build file, tags[0] for the image built alone
// (which the command names by its flag).
func (im *Image) field(name string) string {
	switch {
	case im.index < 0:
		return name
	case name == "":
		return fmt.Sprintf("images[%d]", im.index)
	}
	return fmt.Sprintf("images[%d].%s", im.index, name)
}

// Backend is the backend the image needs given the default for Dockerfiles.
func (im *Image) Backend(dockerfileBackend string) string {
	if im.Native != nil {
		return BackendNative
	}
	return dockerfileBackend
}

package result

// BuildResult is written by build-image and read by push-registry.
type BuildResult struct {
	Header
	// Zuul identifies the change or ref the images were built for.
	Zuul   *ZuulRef     `json:"zuul,omitempty"`
	Images []BuiltImage `json:"images"`
}

// ResultKind implements Document.
func (r *BuildResult) ResultKind() string { return "BuildResult" }

// BuiltImage is one image build-image produced.
type BuiltImage struct {
	// Name is the image's name in the build file (e.g. "openedx").
	Name string `json:"name"`
	// Repository is where the image is meant to go, without registry host
	// (e.g. "acme/openedx"); push-registry prefixes each region's registry.
	Repository string   `json:"repository"`
	Tags       []string `json:"tags"`
	// ManifestDigest is the digest of the image manifest (or index).
	ManifestDigest string `json:"manifestDigest"`
	ConfigDigest   string `json:"configDigest"`
	MediaType      string `json:"mediaType"`
	// Size is the sum of the manifest, config and layer sizes in bytes.
	Size   int64             `json:"size"`
	Labels map[string]string `json:"labels,omitempty"`
	// Layout is the path of the OCI image layout holding the image.
	Layout string `json:"layout"`
	// Backend is "native", "buildah" or "docker".
	Backend string `json:"backend"`
}

// ZuulRef is the slice of the Zuul context that results record.
type ZuulRef struct {
	Pipeline string `json:"pipeline,omitempty"`
	Project  string `json:"project,omitempty"`
	Branch   string `json:"branch,omitempty"`
	Change   string `json:"change,omitempty"`
	Patchset string `json:"patchset,omitempty"`
	Newrev   string `json:"newrev,omitempty"`
	Tag      string `json:"tag,omitempty"`
	Buildset string `json:"buildset,omitempty"`
}

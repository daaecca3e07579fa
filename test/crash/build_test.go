package crash

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// epoch makes the sample images reproducible: equal worlds, equal digests.
const epoch = "1700000000"

// buildCommand builds the sample images (examples/images) into out, with
// its buildah state under work.
func buildCommand(t *testing.T, out, work string) *command {
	v := testenv.Require(t, "SLIPWAY_TEST_BASE_IMAGE", "SLIPWAY_TEST_REGISTRY_BUILDSET")
	testenv.Tool(t, "buildah")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	return &command{
		bin: "build-image",
		args: []string{"-f", example("images/build.yaml"), "--output", out, "--build-arg", "BASE_IMAGE=" + v[0],
			"--insecure-registry", v[1], "--source-date-epoch", epoch, "--work-dir", work,
			"--zuul-vars", example("images/zuul-vars.post.yaml")},
		dirs:  []string{out, work},
		state: func(t *testing.T) string { return buildState(t, out) },
		leftovers: func(t *testing.T) []string {
			var left []string
			entries, _ := os.ReadDir(work)
			for _, e := range entries {
				left = append(left, "in the work directory: "+e.Name())
			}
			return left
		},
		unchanged: func(o outcome) error {
			if n := strings.Count(o.stderr, "image unchanged since the last run"); n != 4 {
				return fmt.Errorf("%d of 4 images reported unchanged", n)
			}
			return nil
		},
	}
}

// buildState is the build result (images, digests, tags, labels) and, per
// layout on disk, the manifest its index names: the result must describe
// what is there, and nothing else may be in the output directory.
func buildState(t *testing.T, out string) string {
	t.Helper()
	var res result.BuildResult
	if err := result.ReadFile(filepath.Join(out, "build-result.json"), &res); err != nil {
		return "no build result: " + err.Error()
	}
	var b strings.Builder
	names := []string{"build-result.json"}
	for _, im := range res.Images {
		fmt.Fprintf(&b, "%s %s manifest %s config %s tags %v labels %v\n", im.Name, im.Repository, im.ManifestDigest, im.ConfigDigest, im.Tags, im.Labels)
		var index struct {
			Manifests []struct{ Digest string } `json:"manifests"`
		}
		data, err := os.ReadFile(filepath.Join(im.Layout, "index.json"))
		if err == nil {
			err = json.Unmarshal(data, &index)
		}
		for _, m := range index.Manifests {
			fmt.Fprintf(&b, "  layout %s holds %s\n", filepath.Base(im.Layout), m.Digest)
		}
		if err != nil {
			fmt.Fprintf(&b, "  layout %s: %v\n", filepath.Base(im.Layout), err)
		}
		names = append(names, filepath.Base(im.Layout))
	}
	entries, _ := os.ReadDir(out)
	for _, e := range entries {
		if !slices.Contains(names, e.Name()) {
			fmt.Fprintf(&b, "unexpected in the output directory: %s\n", e.Name())
		}
	}
	return b.String()
}

func crashBuildImage(t *testing.T) {
	crash(t, "build-image", 3, scenario{name: "sample images", setup: func(t *testing.T, id string) *command {
		dir := filepath.Join(t.TempDir(), id)
		return buildCommand(t, filepath.Join(dir, "images"), filepath.Join(dir, "work"))
	}})
}

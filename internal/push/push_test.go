package push

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipwayci/slipway/internal/push/pushtest"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
	"github.com/slipwayci/slipway/internal/usererr"
)

// TestPushTwoRegions pushes a layout to region A (filesystem) and region B
// (Swift), checks the digests with skopeo in both regions and on the
// Magnum-node registry that reads B's Swift container, then pushes again and
// checks nothing is uploaded.
func TestPushTwoRegions(t *testing.T) {
	regions := regionsAB(t)
	node := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_B_NODE")
	img := pushtest.RandomImage(t, 3, 700_000)
	want := pushtest.Digest(t, img)
	repo := pushtest.UniqueRepo(t)
	out := t.TempDir()

	o := layoutOpts(t, regions, img, repo, "v1", "latest")
	res, err := run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	// Written as the command writes them.
	resultFile, zuulFile := filepath.Join(out, "push.json"), filepath.Join(out, "zuul.json")
	if err := result.WriteFile(resultFile, res, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ZuulReturn(res).WriteFile(zuulFile); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{
		regions[0].Registry + "/" + repo + ":v1",
		regions[1].Registry + "/" + repo + ":v1",
		regions[1].Registry + "/" + repo + ":latest",
		node + "/" + repo + ":v1", // same Swift container, another registry process
	} {
		if got := skopeoDigest(t, ref); got != want {
			t.Errorf("skopeo %s: digest %s, want %s", ref, got, want)
		}
	}
	var onDisk result.PushResult
	if err := result.ReadFile(resultFile, &onDisk); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(res.Images, onDisk.Images); diff != "" {
		t.Errorf("result file differs from returned result (-want +got):\n%s", diff)
	}
	for _, r := range onDisk.Images[0].Regions {
		got := []any{r.Digest, r.BlobsUploaded, r.BlobsPresent, r.Verified, r.Tags}
		wantR := []any{want, 4, 0, true, []string{"v1", "latest"}}
		if diff := cmp.Diff(wantR, got); diff != "" {
			t.Errorf("region %s (-want +got):\n%s", r.Region, diff)
		}
		if r.BytesUploaded < 3*700_000 {
			t.Errorf("region %s: bytesUploaded %d, want >= %d", r.Region, r.BytesUploaded, 3*700_000)
		}
	}
	ref, err := onDisk.Images[0].Reference("b")
	if err != nil || ref != regions[1].Registry+"/"+repo+"@"+want {
		t.Errorf("Reference(b) = %q, %v", ref, err)
	}
	var zr struct {
		Zuul struct {
			Artifacts []struct {
				Name, URL string
				Metadata  map[string]any
			}
		}
	}
	data, err := os.ReadFile(zuulFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &zr); err != nil {
		t.Fatal(err)
	}
	if len(zr.Zuul.Artifacts) != 2 || zr.Zuul.Artifacts[1].URL != "docker://"+regions[1].Registry+"/"+repo+"@"+want {
		t.Errorf("zuul_return artifacts = %+v", zr.Zuul.Artifacts)
	}

	// Rerun: idempotent, 0 blob bytes.
	res2, err := run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res2.Images[0].Regions {
		if r.BytesUploaded != 0 || r.BlobsUploaded != 0 || r.BlobsPresent != 4 {
			t.Errorf("rerun region %s: uploaded %d blobs / %d bytes, present %d; want 0/0/4", r.Region, r.BlobsUploaded, r.BytesUploaded, r.BlobsPresent)
		}
	}
}

// TestPushIndex copies a multi-arch index whole: the index digest and every
// child manifest land in both regions.
func TestPushIndex(t *testing.T) {
	regions := regionsAB(t)
	var ii v1.ImageIndex = mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var children []v1.Image
	for _, arch := range []string{"amd64", "arm64"} {
		img := pushtest.RandomImage(t, 2, 200_000)
		children = append(children, img)
		ii = mutate.AppendManifests(ii, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	repo := pushtest.UniqueRepo(t)
	o := layoutOpts(t, regions, ii, repo, "multi")
	res, err := run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	want := pushtest.Digest(t, ii)
	if res.Images[0].Digest != want {
		t.Errorf("result digest %s, want %s", res.Images[0].Digest, want)
	}
	for _, r := range regions {
		if got := skopeoDigest(t, r.Registry+"/"+repo+":multi"); got != want {
			t.Errorf("region %s: index digest %s, want %s", r.Name, got, want)
		}
		for _, c := range children {
			d := pushtest.Digest(t, c)
			if got := skopeoDigest(t, r.Registry+"/"+repo+"@"+d); got != d {
				t.Errorf("region %s: child %s reads back as %s", r.Name, d, got)
			}
		}
		if got := res.Images[0].Regions[0].BlobsUploaded; got != 6 {
			t.Errorf("blobs uploaded = %d, want 6 (2 configs + 4 layers)", got)
		}
	}
}

// TestPushBuildResult pushes build-image's result: two images sharing base
// layers, the second mounting them from the first's repository.
func TestPushBuildResult(t *testing.T) {
	regions := regionsAB(t)
	base := pushtest.RandomImage(t, 2, 300_000)
	extra := func() v1.Image {
		layers, err := pushtest.RandomImage(t, 1, 50_000).Layers()
		if err != nil {
			t.Fatal(err)
		}
		img, err := mutate.AppendLayers(base, layers...)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	imgs := []v1.Image{extra(), extra()}
	dir := t.TempDir()
	repoPrefix := pushtest.UniqueRepo(t)
	br := result.BuildResult{}
	for i, img := range imgs {
		layoutDir := filepath.Join(dir, "layout", string(rune('a'+i)))
		p, err := layout.Write(layoutDir, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		// One index entry per tag, all the same digest, as build-image writes.
		for _, tag := range []string{"main", "stable"} {
			if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
				t.Fatal(err)
			}
		}
		br.Images = append(br.Images, result.BuiltImage{
			Name:           []string{"openedx", "mfe"}[i],
			Repository:     repoPrefix + "/" + []string{"openedx", "mfe"}[i],
			Tags:           []string{"main", "stable"},
			ManifestDigest: pushtest.Digest(t, img),
			Layout:         filepath.Join("layout", string(rune('a'+i))), // relative to the result file
		})
	}
	brFile := filepath.Join(dir, "build.json")
	if err := result.WriteFile(brFile, &br, 0o644); err != nil {
		t.Fatal(err)
	}
	o := quietOpts(regions)
	o.BuildResult, o.Tags = brFile, []string{"extra"}
	res, err := run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	for i, pi := range res.Images {
		if pi.Name != br.Images[i].Name || pi.Digest != br.Images[i].ManifestDigest {
			t.Errorf("image %d: %s %s, want %s %s", i, pi.Name, pi.Digest, br.Images[i].Name, br.Images[i].ManifestDigest)
		}
		for _, r := range pi.Regions {
			if diff := cmp.Diff([]string{"main", "stable", "extra"}, r.Tags); diff != "" {
				t.Errorf("tags (-want +got):\n%s", diff)
			}
			host, repo, _ := cut(r.Repository)
			if got := skopeoDigest(t, host+"/"+repo+":extra"); got != pi.Digest {
				t.Errorf("%s:extra = %s, want %s", r.Repository, got, pi.Digest)
			}
		}
	}
	// The second image shares base's 2 layers: mounted, not uploaded.
	for _, r := range res.Images[1].Regions {
		if r.BlobsMounted != 2 || r.BlobsUploaded != 2 {
			t.Errorf("region %s: mfe mounted %d uploaded %d, want 2 and 2 (config + own layer)", r.Region, r.BlobsMounted, r.BlobsUploaded)
		}
	}
}

func cut(repository string) (string, string, bool) {
	for i := 0; i < len(repository); i++ {
		if repository[i] == '/' {
			return repository[:i], repository[i+1:], true
		}
	}
	return repository, "", false
}

// TestPushDockerArchive pushes a docker save tarball.
func TestPushDockerArchive(t *testing.T) {
	regions := regionsAB(t)
	img := pushtest.RandomImage(t, 2, 100_000)
	tag, _ := name.NewTag("example.invalid/app:v1")
	file := filepath.Join(t.TempDir(), "app.tar")
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		t.Fatal(err)
	}
	srcImg, err := tarball.ImageFromPath(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := pushtest.Digest(t, srcImg)
	repo := pushtest.UniqueRepo(t)
	o := quietOpts(regions)
	o.Source, o.Repository, o.Tags = "docker-archive:"+file, repo, []string{"v1"}
	if _, err := run(t, o); err != nil {
		t.Fatal(err)
	}
	for _, r := range regions {
		if got := skopeoDigest(t, r.Registry+"/"+repo+":v1"); got != want {
			t.Errorf("region %s: %s, want %s", r.Name, got, want)
		}
	}
}

// TestPromote seeds the buildset registry with an independent client, then
// promotes by digest to both regions and tags there.
func TestPromote(t *testing.T) {
	regions := regionsAB(t)
	buildset := testenv.Get(t, "SLIPWAY_TEST_REGISTRY_BUILDSET")
	img := pushtest.RandomImage(t, 2, 200_000)
	want := pushtest.Digest(t, img)
	repo := pushtest.UniqueRepo(t)
	src, _ := name.ParseReference(buildset + "/" + repo + ":gate")
	if err := remote.Write(src, img); err != nil {
		t.Fatal(err)
	}

	o := quietOpts(regions)
	o.Source, o.RequireDigest, o.Tags = buildset+"/"+repo+":gate", true, []string{"post"}
	if _, err := run(t, o); err == nil || !usererr.Is(err) {
		t.Fatalf("promote from a tag: err = %v, want a bad-input error", err)
	}
	if got := pushtest.TagDigest(t, regions[0].Registry, repo, "post"); got != "" {
		t.Fatalf("tag moved after a refused promote: %s", got)
	}

	o.Source = buildset + "/" + repo + "@" + want
	res, err := run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Images[0].Source != buildset+"/"+repo+"@"+want {
		t.Errorf("source = %q", res.Images[0].Source)
	}
	for _, r := range regions {
		if got := skopeoDigest(t, r.Registry+"/"+repo+":post"); got != want {
			t.Errorf("region %s: post = %s, want %s", r.Name, got, want)
		}
	}
	// Promote through a build result and --from-registry.
	br := result.BuildResult{Images: []result.BuiltImage{{Name: "app", Repository: repo, ManifestDigest: want, Tags: []string{"rc"}}}}
	brFile := filepath.Join(t.TempDir(), "build.json")
	if err := result.WriteFile(brFile, &br, 0o644); err != nil {
		t.Fatal(err)
	}
	o2 := quietOpts(regions)
	o2.BuildResult, o2.FromRegistry, o2.RequireDigest = brFile, buildset, true
	res2, err := run(t, o2)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res2.Images[0].Regions {
		if r.BlobsUploaded != 0 || r.BlobsPresent != 3 {
			t.Errorf("region %s: second promote uploaded %d present %d, want 0 and 3", r.Region, r.BlobsUploaded, r.BlobsPresent)
		}
		host, path, _ := cut(r.Repository)
		if got := pushtest.TagDigest(t, host, path, "rc"); got != want {
			t.Errorf("region %s: rc = %q, want %s", r.Region, got, want)
		}
		if got := pushtest.TagDigest(t, host, path, "post"); got != want {
			t.Errorf("region %s: post tag changed to %q (promote never deletes or moves other tags)", r.Region, got)
		}
	}
}

func layerSize(t *testing.T, l v1.Layer) int64 {
	t.Helper()
	n, err := l.Size()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

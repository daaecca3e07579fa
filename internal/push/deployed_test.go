package push

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/slipwayci/slipway/internal/push/pushtest"
	"github.com/slipwayci/slipway/internal/usererr"
)

// TestVerifyDeployed checks a site's deployed images (a deploy-k8s status:
// images pinned to the node registry) in one region, as a failover's
// preflight does: whole passes, a damaged blob in that region fails naming
// it, and bad files or regions are bad input.
func TestVerifyDeployed(t *testing.T) {
	k := testKeystone(t)
	img := pushtest.RandomImage(t, 2, 300<<10)
	layers, _ := img.Layers()
	l1, _ := layers[1].Digest()
	repo := pushtest.UniqueRepo(t)
	regions := []Region{k.region("a"), k.region("b")}
	o := k.storageOpts(t, regions, img, repo, "v1")
	res, err := run(t, o)
	if err != nil {
		t.Fatal(err)
	}
	b := res.Images[0].Regions[1]
	if b.NodeRepository == "" {
		t.Fatalf("region b has no node repository: %+v", b)
	}
	pinned := b.NodeRepository + "@" + res.Images[0].Digest
	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	status := file("status.json", `{"namespace": "demo", "images": [{"reference": "x", "pinned": "`+pinned+`", "digest": "`+res.Images[0].Digest+`"},
		{"reference": "y", "pinned": "`+pinned+`"}]}`)
	verify := func(f, region string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		return Verify(ctx, VerifyOptions{DeployedFile: f, DeployedRegion: region, Deep: true, Regions: regions, Auth: k.auth(),
			Conn: Conn{Retry: fastRetry(), StateDir: o.StateDir, RegistryBinary: o.RegistryBinary}})
	}
	if err := verify(status, "b"); err != nil {
		t.Fatalf("deployed images of a good push: %v", err)
	}

	for _, tc := range []struct {
		name, body, region, want string
	}{
		{"tag, not digest", `{"images": [{"pinned": "` + b.NodeRepository + `:v1"}]}`, "b", `images[0].pinned: "` + b.NodeRepository + `:v1" is not repository@digest`},
		{"other registry", `{"images": [{"pinned": "registry.example:5000/x@` + res.Images[0].Digest + `"}]}`, "b", "is not pulled from region b (its nodes pull localhost:5000)"},
		{"unknown region", `{"images": [{"pinned": "` + pinned + `"}]}`, "c", `region "c" is not among the targets' regions`},
		{"no images", `{"namespace": "demo", "images": []}`, "b", "no images (is the site deployed?)"},
		{"not JSON", `namespace: demo`, "b", "not a deploy-k8s status or deploy result"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := verify(file(tc.name+".json", tc.body), tc.region)
			if !usererr.Is(err) {
				t.Fatalf("got %v, want a bad-input error", err)
			}
			pushtest.MustContain(t, err.Error(), tc.want)
		})
	}

	zeroBlob(t, k.store(t, "b"), l1)
	err = verify(status, "b")
	if !errors.Is(err, ErrMismatch) || usererr.Is(err) {
		t.Fatalf("a damaged blob in region b: got %v, want a mismatch", err)
	}
	pushtest.MustContain(t, err.Error(), "region b: repository "+repo, l1.String(), "0 bytes")
	// Region a's nodes pull the same localhost:5000 address: checked in
	// region a, the image is whole.
	if err := verify(status, "a"); err != nil {
		t.Fatalf("the same images in region a (undamaged): %v", err)
	}
}

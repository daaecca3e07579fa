package crash

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/objects"

	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/push/pushtest"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

func crashPushRegistry(t *testing.T) {
	v := testenv.Require(t, "SLIPWAY_TEST_REGISTRY_A", "SLIPWAY_TEST_REGISTRY_B")
	regions := map[string]string{"a": v[0], "b": v[1]}
	swift := openSwift(t)
	build := pushImages(t)
	run := deploytest.RandHex(3)
	crash(t, "push-registry", 4,
		scenario{name: "push to a and b", setup: func(t *testing.T, id string) *command {
			ns := "crash-" + run + "-" + id
			dir := t.TempDir()
			res := filepath.Join(dir, "push.json")
			return &command{
				bin: "push-registry",
				args: []string{"push", "--build-result", build, "--region", "a=" + v[0] + "/" + ns, "--region", "b=" + v[1] + "/" + ns,
					"--result", res, "--request-timeout", requestTimeout},
				env:       []string{"HOME=" + dir},
				dirs:      []string{dir},
				state:     func(t *testing.T) string { return pushState(t, res, regions, ns) },
				leftovers: func(t *testing.T) []string { return swift.uploads(t, ns) },
				unchanged: nothingPushed(res),
			}
		}},
		// verify --deep --repair of a push whose two layers were damaged
		// in region a's Swift: killed before the first damaged blob's
		// objects are deleted and after both are, the rerun copies them
		// from region b. By default only these points (alwaysOnly).
		scenario{name: "verify --deep --repair", always: []string{"push.repair-delete:1", "push.repair-deleted:2"}, alwaysOnly: true, setup: func(t *testing.T, id string) *command {
			w := newSwiftWorld(t, swift, "crash-"+run+"-repair-"+id)
			w.damage(t)
			c := w.command(t, "verify", "--result", w.res, "--deep", "--repair")
			c.unchanged = func(o outcome) error {
				if strings.Contains(o.stderr, "repaired a damaged blob") || o.stdout != "verified\n" {
					return fmt.Errorf("stdout %q, stderr:\n%s", o.stdout, tail(o.stderr, 5))
				}
				return nil
			}
			return c
		}},
		// A push of a new tag over the damaged blobs: killed after one is
		// deleted and before the other is, no tag has moved; the rerun
		// repairs both and tags.
		scenario{name: "push over damaged blobs", always: []string{"push.repair-deleted:1", "push.repair-delete:2"}, alwaysOnly: true, setup: func(t *testing.T, id string) *command {
			w := newSwiftWorld(t, swift, "crash-"+run+"-over-"+id)
			w.damage(t)
			res := filepath.Join(w.dir, "push-v2.json")
			c := w.command(t, "push", "--source", "oci:"+w.layout, "--repository", w.repo, "--tag", "v2", "--result", res)
			c.unchanged = nothingPushed(res)
			return c
		}},
	)
}

// requestTimeout is push-registry's --request-timeout in the harness: the
// test Swift stalls for tens of seconds on a loaded machine (as in
// hack/pipeline.sh).
const requestTimeout = "2m"

// nothingPushed checks that a push (its result in res) uploaded and
// mounted nothing.
func nothingPushed(res string) func(outcome) error {
	return func(outcome) error {
		var pr result.PushResult
		if err := result.ReadFile(res, &pr); err != nil {
			return err
		}
		for _, im := range pr.Images {
			for _, r := range im.Regions {
				if r.BlobsUploaded+r.BlobsMounted > 0 {
					return fmt.Errorf("%s in region %s: %d blobs uploaded, %d mounted", im.Name, r.Region, r.BlobsUploaded, r.BlobsMounted)
				}
			}
		}
		return nil
	}
}

// pushImages writes a build result of two images as build-image writes
// one: a base and an image built on it, whose base layer is mounted, not
// uploaded again. They are small, the same in every world (equal worlds,
// equal digests): the Swift behind the test registries takes seconds a
// blob on a loaded machine.
func pushImages(t *testing.T) string {
	t.Helper()
	base := pushtest.RandomImage(t, 1, 1<<20)
	top, err := random.Layer(256<<10, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	app, err := mutate.AppendLayers(base, top)
	if err != nil {
		t.Fatal(err)
	}
	var br result.BuildResult
	for _, im := range []struct {
		name, repo string
		img        v1.Image
	}{{"openedx", "acme/openedx", base}, {"mfe", "acme/openedx-mfe", app}} {
		br.Images = append(br.Images, result.BuiltImage{Name: im.name, Repository: im.repo, Tags: []string{"1.0", "latest"},
			ManifestDigest: pushtest.Digest(t, im.img), Layout: pushtest.WriteLayout(t, im.img)})
	}
	p := filepath.Join(t.TempDir(), "build-result.json")
	if err := result.WriteFile(p, &br, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pushState is, per image and region, the repository (namespace ns
// replaced), tags and digest of the result, what each tag resolves to in
// the registry, and whether every blob of the manifest is there in full.
func pushState(t *testing.T, resFile string, regions map[string]string, ns string) string {
	t.Helper()
	var pr result.PushResult
	if err := result.ReadFile(resFile, &pr); err != nil {
		return "no push result: " + err.Error()
	}
	var lines []string
	for _, im := range pr.Images {
		for _, r := range im.Regions {
			repo := strings.ReplaceAll(r.Repository, ns, "NS")
			lines = append(lines, fmt.Sprintf("%s region %s: %s %s tags %v verified %t", im.Name, r.Region, repo, r.Digest, r.Tags, r.Verified))
			for _, tag := range r.Tags {
				lines = append(lines, fmt.Sprintf("  %s:%s -> %s", repo, tag, tagDigest(r.Repository+":"+tag)))
			}
			lines = append(lines, blobsPresent(r.Repository+"@"+r.Digest, regions[r.Region])...)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func tagDigest(ref string) string {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return err.Error()
	}
	d, err := remote.Head(r)
	if err != nil {
		return "missing: " + err.Error()
	}
	return d.Digest.String()
}

// blobsPresent checks every blob of the image at ref by HEAD: present, and
// of the size the manifest says (no zero-byte leftovers of an upload).
func blobsPresent(ref, host string) []string {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return []string{err.Error()}
	}
	img, err := remote.Image(r)
	if err != nil {
		return []string{"  " + ref + ": " + err.Error()}
	}
	m, err := img.Manifest()
	if err != nil {
		return []string{"  " + ref + ": " + err.Error()}
	}
	var out []string
	for _, d := range append(m.Layers, m.Config) {
		resp, err := http.Head("http://" + host + "/v2/" + r.Context().RepositoryStr() + "/blobs/" + d.Digest.String())
		if err != nil {
			out = append(out, "  blob "+d.Digest.String()+": "+err.Error())
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.ContentLength != d.Size {
			out = append(out, fmt.Sprintf("  blob %s: %s, %d bytes of %d", d.Digest, resp.Status, resp.ContentLength, d.Size))
		}
	}
	return out
}

// regionSwift is the Swift container of each region (both registries
// store there, through Keystone).
type regionSwift struct {
	sc         map[string]*gophercloud.ServiceClient
	containers map[string]string
}

func openSwift(t *testing.T) regionSwift {
	t.Helper()
	v := testenv.Require(t, "SLIPWAY_TEST_SWIFT_KEYSTONE_AUTH_URL", "SLIPWAY_TEST_SWIFT_KEYSTONE_USER", "SLIPWAY_TEST_SWIFT_KEYSTONE_PASSWORD",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN", "SLIPWAY_TEST_SWIFT_KEYSTONE_PROJECT",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_A", "SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_A",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_B", "SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_B")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pc, err := openstack.AuthenticatedClient(ctx, gophercloud.AuthOptions{IdentityEndpoint: v[0], Username: v[1], Password: v[2],
		DomainName: v[3], TenantName: v[4], AllowReauth: true})
	if err != nil {
		t.Fatalf("Keystone: %v", err)
	}
	rs := regionSwift{sc: map[string]*gophercloud.ServiceClient{}, containers: map[string]string{"a": v[6], "b": v[8]}}
	for name, region := range map[string]string{"a": v[5], "b": v[7]} {
		if rs.sc[name], err = openstack.NewObjectStorageV1(pc, gophercloud.EndpointOpts{Region: region}); err != nil {
			t.Fatalf("object store of %s: %v", region, err)
		}
	}
	return rs
}

// uploads lists the objects of upload sessions left in either region's
// container under namespace ns.
func (rs regionSwift) uploads(t *testing.T, ns string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []string
	for _, region := range []string{"a", "b"} {
		pages, err := objects.List(rs.sc[region], rs.containers[region], objects.ListOpts{Prefix: "files/docker/registry/v2/repositories/" + ns + "/"}).AllPages(ctx)
		if err != nil {
			t.Fatalf("listing region %s's container: %v", region, err)
		}
		names, err := objects.ExtractNames(pages)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if strings.Contains(n, "/_uploads/") {
				out = append(out, "upload session in region "+region+": "+n)
			}
		}
	}
	return out
}

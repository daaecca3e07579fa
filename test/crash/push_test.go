package crash

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/objectstorage/v1/objects"

	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

func crashPushRegistry(t *testing.T) {
	v := testenv.Require(t, "SLIPWAY_TEST_REGISTRY_A", "SLIPWAY_TEST_REGISTRY_B")
	regions := map[string]string{"a": v[0], "b": v[1]}
	swift := openSwift(t)
	build := pushedImages(t, builtImages(t), "openedx", "mfe")
	run := deploytest.RandHex(3)
	crash(t, "push-registry", scenario{name: "push to a and b", setup: func(t *testing.T, id string) *command {
		ns := "crash-" + run + "-" + id
		dir := t.TempDir()
		res := filepath.Join(dir, "push.json")
		return &command{
			bin: "push-registry",
			args: []string{"push", "--build-result", build, "--region", "a=" + v[0] + "/" + ns, "--region", "b=" + v[1] + "/" + ns,
				"--result", res},
			env:       []string{"HOME=" + dir},
			dirs:      []string{dir},
			state:     func(t *testing.T) string { return pushState(t, res, regions, ns) },
			leftovers: func(t *testing.T) []string { return swift.uploads(t, ns) },
			unchanged: func(outcome) error {
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
			},
		}
	}})
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

// pushedImages writes a build result of the named images of the one at
// build: region b's Swift storage takes a few seconds a blob, so the
// scenario pushes an image and one built on it (whose base layers are
// mounted, not uploaded again) rather than all four.
func pushedImages(t *testing.T, build string, names ...string) string {
	t.Helper()
	var br result.BuildResult
	if err := result.ReadFile(build, &br); err != nil {
		t.Fatal(err)
	}
	br.Images = slices.DeleteFunc(br.Images, func(im result.BuiltImage) bool { return !slices.Contains(names, im.Name) })
	if len(br.Images) != len(names) {
		t.Fatalf("the sample build has %d of the images %v", len(br.Images), names)
	}
	p := filepath.Join(t.TempDir(), "build-result.json")
	if err := result.WriteFile(p, &br, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

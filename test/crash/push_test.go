package crash

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

func crashPushRegistry(t *testing.T) {
	v := testenv.Require(t, "SLIPWAY_TEST_REGISTRY_A", "SLIPWAY_TEST_REGISTRY_B", "SLIPWAY_TEST_REGISTRY_DATA_A",
		"SLIPWAY_TEST_SWIFT_AUTH_URL", "SLIPWAY_TEST_SWIFT_USER", "SLIPWAY_TEST_SWIFT_KEY")
	regions := map[string]string{"a": v[0], "b": v[1]}
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
			env:   []string{"HOME=" + dir},
			dirs:  []string{dir},
			state: func(t *testing.T) string { return pushState(t, res, regions, ns) },
			leftovers: func(t *testing.T) []string {
				left := uploadsOnDisk(v[2], ns)
				return append(left, uploadsInSwift(t, v[3], v[4], v[5], ns)...)
			},
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

// uploadsOnDisk lists upload sessions left in region A's filesystem
// storage under namespace ns.
func uploadsOnDisk(root, ns string) []string {
	matches, _ := filepath.Glob(filepath.Join(root, "docker/registry/v2/repositories", ns, "*", "*", "_uploads", "*"))
	for i, m := range matches {
		matches[i] = "upload session in region a: " + m
	}
	return matches
}

// uploadsInSwift lists objects of upload sessions left in region B's Swift
// container under namespace ns.
func uploadsInSwift(t *testing.T, authURL, user, key, ns string) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, authURL, nil)
	req.Header.Set("X-Auth-User", user)
	req.Header.Set("X-Auth-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	storage, token := resp.Header.Get("X-Storage-Url"), resp.Header.Get("X-Auth-Token")
	q := url.Values{"format": {"json"}, "prefix": {"files/docker/registry/v2/repositories/" + ns + "/"}}
	req, _ = http.NewRequest(http.MethodGet, storage+"/docker_registry?"+q.Encode(), nil)
	req.Header.Set("X-Auth-Token", token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var objects []struct{ Name string }
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &objects); err != nil {
			t.Fatalf("listing Swift: %v: %s", err, body)
		}
	}
	var out []string
	for _, o := range objects {
		if strings.Contains(o.Name, "/_uploads/") {
			out = append(out, "upload session in region b: "+o.Name)
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

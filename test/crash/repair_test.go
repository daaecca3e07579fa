package crash

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipwayci/slipway/internal/push/pushtest"
	"github.com/slipwayci/slipway/internal/testenv"
)

// swiftWorld is an image of its own pushed (tag v1) to two storage-backed
// regions, push-registry running its own registry on each region's Swift
// container, as on a Magnum cluster: there it can repair a damaged blob.
// Its content is random, since worlds must not share the blobs one of
// them damages; the node registries on the same containers are how the
// state is read, independently of push-registry.
type swiftWorld struct {
	swift                   regionSwift
	nodes                   map[string]string // region → node registry on its container
	dir, stateDir, registry string
	targets, secrets        string
	layout, repo, res       string
	digest                  string
	blobs                   []v1.Descriptor // the layers, then the config
}

func newSwiftWorld(t *testing.T, swift regionSwift, ns string) *swiftWorld {
	t.Helper()
	v := testenv.Require(t, "SLIPWAY_TEST_SWIFT_KEYSTONE_AUTH_URL", "SLIPWAY_TEST_SWIFT_KEYSTONE_USER", "SLIPWAY_TEST_SWIFT_KEYSTONE_PASSWORD",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_DOMAIN", "SLIPWAY_TEST_SWIFT_KEYSTONE_PROJECT",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_A", "SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_A",
		"SLIPWAY_TEST_SWIFT_KEYSTONE_REGION_B", "SLIPWAY_TEST_SWIFT_KEYSTONE_CONTAINER_B",
		"SLIPWAY_TEST_REGISTRY_A", "SLIPWAY_TEST_REGISTRY_B_NODE")
	w := &swiftWorld{swift: swift, nodes: map[string]string{"a": v[9], "b": v[10]}, dir: t.TempDir(),
		registry: testenv.Tool(t, "docker-registry"), repo: ns + "/img"}
	w.stateDir, w.res = filepath.Join(w.dir, "state"), filepath.Join(w.dir, "push.json")
	w.targets, w.secrets = filepath.Join(w.dir, "targets.yaml"), filepath.Join(w.dir, "secrets.yaml")
	var b strings.Builder
	b.WriteString("regions:\n")
	for _, r := range []struct{ name, region, container string }{{"a", v[5], v[6]}, {"b", v[7], v[8]}} {
		// 1 MiB segments: each layer is a large object of two.
		fmt.Fprintf(&b, "  - name: %s\n    swift:\n      authurl: %s\n      authversion: 3\n      region: %s\n      container: %s\n"+
			"      username: %s\n      domain: %s\n      tenant: %s\n      tenantdomain: %s\n      chunksize: 1048576\n      insecureskipverify: true\n",
			r.name, v[0], r.region, r.container, v[1], v[3], v[4], v[3])
	}
	if err := os.WriteFile(w.targets, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.secrets, []byte("swift_credentials:\n  a: {password: "+v[2]+"}\n  b: {password: "+v[2]+"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	img := pushtest.RandomImage(t, 2, 1500<<10)
	w.digest = pushtest.Digest(t, img)
	w.layout = pushtest.WriteLayout(t, img)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	w.blobs = append(slices.Clone(m.Layers), m.Config)
	c := w.command(t, "push", "--source", "oci:"+w.layout, "--repository", w.repo, "--tag", "v1", "--result", w.res)
	if o := run(t, c, nil); o.code != 0 {
		t.Fatalf("pushing the image to damage: %s", o)
	}
	return w
}

// command is push-registry verb on the world's regions, checked by the
// world's state; a killed run must have moved no tag unless it reached
// the tag step.
func (w *swiftWorld) command(t *testing.T, verb string, args ...string) *command {
	home := t.TempDir()
	return &command{
		bin: "push-registry",
		args: append([]string{verb, "--targets", w.targets, "--secrets-file", w.secrets, "--state-dir", w.stateDir,
			"--registry-binary", w.registry, "--request-timeout", requestTimeout}, args...),
		env:   []string{"HOME=" + home},
		dirs:  []string{w.dir, home},
		state: w.state,
		leftovers: func(t *testing.T) []string {
			left := w.swift.uploads(t, strings.TrimSuffix(w.repo, "/img"))
			// A registry's state (config, logs) is removed with it.
			entries, _ := filepath.Glob(filepath.Join(w.stateDir, "*-*"))
			for _, e := range entries {
				left = append(left, "registry state "+e)
			}
			return left
		},
		afterKill: func(t *testing.T, killed outcome) {
			for _, region := range []string{"a", "b"} {
				if got := w.tag(t, region, "v1"); got != "the image" {
					t.Errorf("killed %s: tag v1 in region %s is %s", verb, region, got)
				}
				if slices.Contains(killed.steps, "push.tag") {
					continue
				}
				if got := w.tag(t, region, "v2"); got != "missing" {
					t.Errorf("killed before the tag step (steps reached: %s), tag v2 in region %s moved: %s",
						strings.Join(slices.Compact(slices.Clone(killed.steps)), " "), region, got)
				}
			}
		},
	}
}

// damage zeroes the first layer's object in region a's Swift (what a
// failed upload leaves) and flips the bytes of the second's first segment
// (corruption at rest, size kept: a HEAD cannot see it), as the storage
// tests of internal/push do.
func (w *swiftWorld) damage(t *testing.T) {
	t.Helper()
	sc, container := w.swift.sc["a"], w.swift.containers["a"]
	pushtest.ZeroObject(t, sc, container, blobObject(w.blobs[0].Digest))
	pushtest.CorruptObject(t, sc, container, blobObject(w.blobs[1].Digest))
}

// blobObject is the Swift object of a blob's data in distribution's
// layout.
func blobObject(d v1.Hash) string {
	return "files/docker/registry/v2/blobs/" + d.Algorithm + "/" + d.Hex[:2] + "/" + d.Hex + "/data"
}

// state is, in each region, what tags v1 and v2 point at (the image, by
// name) and whether each blob reads back whole (GET through the node
// registry on the region's container: size and sha256).
func (w *swiftWorld) state(t *testing.T) string {
	t.Helper()
	var lines []string
	for _, region := range []string{"a", "b"} {
		lines = append(lines, fmt.Sprintf("region %s: v1 -> %s, v2 -> %s", region, w.tag(t, region, "v1"), w.tag(t, region, "v2")))
		for i, d := range w.blobs {
			lines = append(lines, fmt.Sprintf("  blob %d: %s", i, w.readBack(region, d)))
		}
	}
	return strings.Join(lines, "\n")
}

func (w *swiftWorld) tag(t *testing.T, region, tag string) string {
	switch got := pushtest.TagDigest(t, w.nodes[region], w.repo, tag); got {
	case "":
		return "missing"
	case w.digest:
		return "the image"
	default:
		return got
	}
}

func (w *swiftWorld) readBack(region string, d v1.Descriptor) string {
	resp, err := http.Get("http://" + w.nodes[region] + "/v2/" + w.repo + "/blobs/" + d.Digest.String())
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.Status
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	switch {
	case err != nil:
		return fmt.Sprintf("reading it: %v", err)
	case n != d.Size:
		return fmt.Sprintf("%d bytes, want %d", n, d.Size)
	case "sha256:"+hex.EncodeToString(h.Sum(nil)) != d.Digest.String():
		return "content does not match its digest"
	}
	return "whole"
}

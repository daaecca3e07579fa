// Package deploytest gives the deploy stage's tests (the logic's and the
// command's) the real Kubernetes control plane, a copy of the example
// platform tree, push results and branches of their own.
package deploytest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// Kube is the real test control plane (hack/servers/kube.sh).
type Kube struct {
	Kubeconfig string
	Core       kubernetes.Interface
}

// RequireKube returns the test control plane, or skips (fails under
// SLIPWAY_TEST_STRICT) when it is not running.
func RequireKube(t *testing.T) *Kube {
	t.Helper()
	return requireKube(t, "SLIPWAY_TEST_KUBECONFIG")
}

// RequireKubeB returns region B's control plane (hack/servers/kube-b.sh),
// the DR site's cluster.
func RequireKubeB(t *testing.T) *Kube {
	t.Helper()
	return requireKube(t, "SLIPWAY_TEST_KUBE_B_KUBECONFIG")
}

func requireKube(t *testing.T, env string) *Kube {
	t.Helper()
	kc := testenv.Get(t, env)
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &Kube{Kubeconfig: kc, Core: core}
}

// RandHex returns 2n random hex digits, for names no other test uses.
func RandHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// UniqueBranch gives each test its own platform branch (and namespace):
// deleting namespaces is slow, so tests never share or reuse one.
func UniqueBranch(name string) string { return "platform/t-" + name + "-" + RandHex(3) }

// Branch is UniqueBranch, its namespace deleted when the test ends.
func (k *Kube) Branch(t *testing.T, name string) string {
	b := UniqueBranch(name)
	k.DeleteAtEnd(t, strings.TrimPrefix(b, "platform/"))
	return b
}

// DeleteAtEnd deletes namespace ns when the test ends (without waiting for
// it to go), unless the test failed: every deploy leaves pods on the shared
// kwok node, whose pod capacity is finite, and a failed test's namespace is
// kept for inspection.
func (k *Kube) DeleteAtEnd(t *testing.T, ns string) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("namespace %s kept for inspection", ns)
			return
		}
		if err := k.Core.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Logf("deleting namespace %s: %v", ns, err)
		}
	})
}

// DigestOf is a made-up image digest derived from s.
func DigestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ExampleDir is examples/platform of this repository.
func ExampleDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "examples", "platform")
}

// PlatformTree copies examples/platform into a temporary directory.
func PlatformTree(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "platform")
	testenv.CopyDir(t, ExampleDir(), dst)
	return dst
}

// PushResult builds a push result for images (name to digest) pushed to
// regions A and B.
func PushResult(images map[string]string) *result.PushResult {
	pr := &result.PushResult{}
	for _, name := range slices.Sorted(maps.Keys(images)) {
		digest := images[name]
		pr.Images = append(pr.Images, result.PushedImage{Name: name, Digest: digest, Regions: []result.RegionPushed{
			{Region: "A", Repository: "registry-a.example:5000/" + name, Digest: digest, Tags: []string{"18.0.0"}},
			{Region: "B", Repository: "registry-b.example:5000/" + name, Digest: digest, Tags: []string{"18.0.0"}},
		}})
	}
	return pr
}

// NodeRegistry gives every image of pr in region the node repository a
// Magnum node pulls (host/path, e.g. localhost:5000/overhangio/openedx).
func NodeRegistry(pr *result.PushResult, region, host string) {
	for i := range pr.Images {
		for j := range pr.Images[i].Regions {
			if r := &pr.Images[i].Regions[j]; r.Region == region {
				r.NodeRepository = host + "/" + pr.Images[i].Name
			}
		}
	}
}

// WritePushNode is WritePush with region A's nodes pulling from
// localhost:5000, as Magnum's do.
func WritePushNode(t *testing.T, seed string) (string, string) {
	t.Helper()
	return writePush(t, seed, func(pr *result.PushResult) { NodeRegistry(pr, "A", "localhost:5000") })
}

// WritePush writes a push result for the example's two images with digests
// derived from seed, and returns its path and the openedx digest.
func WritePush(t *testing.T, seed string) (string, string) {
	t.Helper()
	return writePush(t, seed, func(*result.PushResult) {})
}

func writePush(t *testing.T, seed string, edit func(*result.PushResult)) (string, string) {
	t.Helper()
	dOpenedx, dMFE := DigestOf(seed+"openedx"), DigestOf(seed+"mfe")
	pr := PushResult(map[string]string{"overhangio/openedx": dOpenedx, "overhangio/openedx-mfe": dMFE})
	edit(pr)
	p := filepath.Join(t.TempDir(), "push.json")
	if err := result.WriteFile(p, pr, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, dOpenedx
}

// NeverReady makes kwok keep the pods of the example's Deployment name
// Running but never Ready.
func NeverReady(t *testing.T, tree, name string) {
	t.Helper()
	head := "  name: " + name + "\n  labels:\n    app.kubernetes.io/name: " + name + "\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: " + name + "\n  template:\n    metadata:\n"
	testenv.Edit(t, tree, "k8s/deployments.yml", head, head+"      annotations:\n        test.kwok/never-ready: \"true\"\n")
}

package deploy

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// kube is the real test control plane (hack/servers/kube.sh).
type kube struct {
	kubeconfig string
	core       kubernetes.Interface
}

func requireKube(t *testing.T) *kube {
	t.Helper()
	kc := testenv.Get(t, "SLIPWAY_TEST_KUBECONFIG")
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &kube{kubeconfig: kc, core: core}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// uniqueBranch gives each test its own platform branch (and namespace):
// deleting namespaces is slow, so tests never share or reuse one.
func uniqueBranch(t *testing.T, name string) string {
	return "platform/t-" + name + "-" + randHex(3)
}

func digestOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// platformTree copies examples/platform into a temporary directory.
func platformTree(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "platform")
	testenv.CopyDir(t, filepath.Join("..", "..", "examples", "platform"), dst)
	return dst
}

// edit rewrites file rel in dir with old replaced by new, failing when old is
// not there.
func edit(t *testing.T, dir, rel, old, new string) { testenv.Edit(t, dir, rel, old, new) }

// writePush writes a push result for the example's two images with digests
// derived from seed, and returns its path and the openedx digest.
func writePush(t *testing.T, seed string) (string, string) {
	t.Helper()
	dOpenedx, dMFE := digestOf(seed+"openedx"), digestOf(seed+"mfe")
	pr := pushResult(map[string]string{"overhangio/openedx": dOpenedx, "overhangio/openedx-mfe": dMFE})
	p := filepath.Join(t.TempDir(), "push.json")
	if err := result.WriteFile(p, pr, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, dOpenedx
}

func (k *kube) opts(t *testing.T, branch, manifests, push string) Options {
	return Options{
		Kubeconfig:  k.kubeconfig,
		Branch:      branch,
		Manifests:   manifests,
		PushResult:  push,
		Region:      "A",
		AllowImages: []string{"docker.io/redis", "docker.io/caddy"},
		Timeout:     60 * time.Second,
		Out:         io.Discard,
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// deploymentImage returns the first container image of a Deployment.
func (k *kube) deploymentImage(t *testing.T, ns, name string) string {
	t.Helper()
	d, err := k.core.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

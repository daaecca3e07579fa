package deploy

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// kube is the real test control plane (hack/servers/kube.sh).
type kube struct{ *deploytest.Kube }

func requireKube(t *testing.T) kube { return kube{deploytest.RequireKube(t)} }

func (k kube) opts(t *testing.T, branch, manifests, push string) Options {
	return Options{
		Kubeconfig:  k.Kubeconfig,
		Branch:      branch,
		Manifests:   []string{manifests},
		PushResult:  push,
		Region:      "A",
		AllowImages: []string{"docker.io/redis", "docker.io/caddy"},
		Out:         io.Discard,
	}
}

// example gives a test its own copy of the example tree, a push result for
// it, a branch with its namespace and the options that deploy them; digest
// is the openedx image's.
func (k kube) example(t *testing.T, name string) (tree, branch, ns string, opts Options, digest string) {
	tree = deploytest.PlatformTree(t)
	push, digest := deploytest.WritePush(t, "v1")
	branch = k.Branch(t, name)
	ns, _ = NamespaceFor(branch, DefaultBranchPrefix, "")
	return tree, branch, ns, k.opts(t, branch, tree, push), digest
}

// backupExample is example with the backup image, at dBackup, in the push
// result too; ns is the branch's namespace.
func (k kube) backupExample(t *testing.T, name, dBackup string) (branch, ns string, opts Options) {
	t.Helper()
	tree := deploytest.PlatformTree(t)
	pr := deploytest.PushResult(map[string]string{"overhangio/openedx": deploytest.DigestOf("openedx"),
		"overhangio/openedx-mfe": deploytest.DigestOf("mfe"), "slipway/backup": dBackup})
	push := filepath.Join(t.TempDir(), "push.json")
	if err := result.WriteFile(push, pr, 0o644); err != nil {
		t.Fatal(err)
	}
	branch = k.Branch(t, name)
	ns, _ = NamespaceFor(branch, DefaultBranchPrefix, "")
	return branch, ns, k.opts(t, branch, tree, push)
}

// failCMSJob makes kwok fail the pod of the example's cms-job.
func failCMSJob(t *testing.T, tree string) {
	t.Helper()
	const head = "  name: cms-job\n  labels:\n    app.kubernetes.io/component: job\nspec:\n  backoffLimit: 0\n  template:\n"
	testenv.Edit(t, tree, "k8s/jobs.yml", head+"    spec:\n", head+"    metadata:\n      annotations:\n        test.kwok/fail: \"true\"\n    spec:\n")
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// scaleByHand sets the replicas of Deployment name in ns, as kubectl scale
// would: drift the next deploy or status must see.
func (k kube) scaleByHand(t *testing.T, ctx context.Context, ns, name string, replicas int32) {
	t.Helper()
	scale, err := k.Core.AppsV1().Deployments(ns).GetScale(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = replicas
	if _, err := k.Core.AppsV1().Deployments(ns).UpdateScale(ctx, name, scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// deploymentImage returns the first container image of a Deployment.
func (k kube) deploymentImage(t *testing.T, ns, name string) string {
	t.Helper()
	d, err := k.Core.AppsV1().Deployments(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d.Spec.Template.Spec.Containers[0].Image
}

package realnode

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/testenv"
)

// requireNodeB is region B's real node, node-b0 in region B's control plane
// (hack/servers/node-b.sh), with the node registry on region B's container.
func requireNodeB(t testing.TB) *node {
	t.Helper()
	v := testenv.Require(t, "SLIPWAY_TEST_NODE_B", "SLIPWAY_TEST_NODE_B_TAINT", "SLIPWAY_TEST_NODE_B_REGISTRY_NAME",
		"SLIPWAY_TEST_REGISTRY_B", "SLIPWAY_TEST_REGISTRY_BUILDSET", "SLIPWAY_TEST_BASE_IMAGE",
		"SLIPWAY_TEST_KUBE_B_KUBECONFIG", "SLIPWAY_TEST_KUBECTL", "SLIPWAY_TESTENV_DIR")
	return newNode(t, &node{Name: v[0], Taint: v[1], Region: "b", RegistryName: v[2], Registry: v[3], Buildset: v[4],
		BaseImage: v[5], Kubeconfig: v[6], Kubectl: v[7], EnvDir: v[8]})
}

// manifestStatus is the HTTP status of a HEAD of repo@digest at registry.
func manifestStatus(t *testing.T, registry, repo, digest string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, "http://"+registry+"/v2/"+repo+"/manifests/"+digest, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestPushedImageRunsOnNodeB: an image push-registry pushed to region B runs
// on node-b0 in region B's cluster, deployed by deploy-k8s --region b and
// pulled as localhost:5000/<repo>@sha256:... through region B's node
// registry, from region B's Swift container; region A's node registry does
// not have it.
func TestPushedImageRunsOnNodeB(t *testing.T) {
	t.Parallel()
	n := requireNodeB(t)
	v := testenv.Require(t, "SLIPWAY_TEST_NODE_B_REGISTRY", "SLIPWAY_TEST_NODE_REGISTRY")
	nodeRegB, nodeRegA := v[0], v[1]
	im := pushImage(t, n, "hello-b")
	// The first pull of an image reads it from Swift: more than the
	// failure cases' 15 s on a loaded machine.
	d := deploy(t, n, workload{Name: "hello", Image: im.Repo, ProgressDeadline: 120}, im.NodePushResult)
	if d.Err != nil {
		t.Fatalf("deploy-k8s deploy --region b: %v\n%s", d.Err, d.Stderr)
	}
	pod := onePod(t, n, d.Namespace)
	if pod.Spec.NodeName != n.Name {
		t.Errorf("pod %s on node %q, want %s", pod.Name, pod.Spec.NodeName, n.Name)
	}
	if pod.Status.Phase != corev1.PodRunning || !podReady(pod) {
		t.Errorf("pod %s is %s, ready %v; want Running and Ready", pod.Name, pod.Status.Phase, podReady(pod))
	}
	if want := n.RegistryName + "/" + im.Repo + "@" + im.Digest; pod.Spec.Containers[0].Image != want {
		t.Errorf("image %q, want %q", pod.Spec.Containers[0].Image, want)
	}
	if len(pod.Status.ContainerStatuses) != 1 {
		t.Fatalf("pod %s has %d container statuses", pod.Name, len(pod.Status.ContainerStatuses))
	}
	if id := pod.Status.ContainerStatuses[0].ImageID; id != n.RegistryName+"/"+im.Repo+"@"+im.Digest {
		t.Errorf("imageID %q, want the pushed %s/%s@%s", id, n.RegistryName, im.Repo, im.Digest)
	}
	var logs string
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := poll.Until(ctx, poll.Constant(250*time.Millisecond), func(context.Context) (bool, error) {
		var err error
		logs, err = kubectl(t, n, "-n", d.Namespace, "logs", pod.Name)
		return err == nil && logs == im.Marker, nil
	})
	if err != nil {
		t.Errorf("kubectl logs %s = %q; want the container's own line %q", pod.Name, logs, im.Marker)
	}

	// containerd got the manifest from region B's node registry.
	log, err := os.ReadFile(filepath.Join(n.EnvDir, "logs", "node-b-registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	req := regexp.MustCompile(`"GET /v2/` + regexp.QuoteMeta(im.Repo) + `/manifests/` + im.Digest + `[ ?][^"]*" 200 .*"containerd/`)
	if !req.Match(log) {
		t.Errorf("region B's node registry's log has no containerd GET of %s@%s", im.Repo, im.Digest)
	}
	// The two regions' stores are apart: the image is in region B's only.
	if s := manifestStatus(t, nodeRegB, im.Repo, im.Digest); s != http.StatusOK {
		t.Errorf("region B's node registry: HEAD %s@%s = %d, want 200", im.Repo, im.Digest, s)
	}
	if s := manifestStatus(t, nodeRegA, im.Repo, im.Digest); s != http.StatusNotFound {
		t.Errorf("region A's node registry: HEAD %s@%s = %d, want 404 (pushed to region B only)", im.Repo, im.Digest, s)
	}
}

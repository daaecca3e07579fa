package realnode

import (
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/slipwayci/slipway/internal/testenv"
)

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
	waitMarker(t, n, d.Namespace, pod.Name, im)

	// containerd got the manifest from region B's node registry.
	pulled, err := pulledByContainerd(n, "node-b-registry.log", im)
	if err != nil {
		t.Fatal(err)
	}
	if !pulled {
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

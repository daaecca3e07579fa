// Package realnode tests what only a real kubelet shows (hack/servers/node.sh):
// an image pushed to region A is pulled by digest through the node registry
// and run by containerd on node-a0, deploy-k8s diagnoses real failed
// rollouts, and `hack/testenv.sh down` leaves nothing of the node behind.
package realnode

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/testenv"
)

// bin returns the path of a stage binary ("deploy-k8s") built from this
// checkout as the pipeline builds it.
func bin(t testing.TB, name string) string {
	t.Helper()
	return testenv.Binary(t, "", "./cmd/"+name)
}

// node is a real test node (node-a0 of region A, node-b0 of region B) and
// the servers around it.
type node struct {
	Name, Taint  string
	Region       string // the node's region: a or b
	RegistryName string // what the node calls its registry: localhost:5000
	Registry     string // the region's CI registry, 127.0.0.1:PORT
	Buildset     string
	BaseImage    string
	Kubeconfig   string
	Kubectl      string
	EnvDir       string
	Core         kubernetes.Interface
}

// nodeEnv names the environment of one region's node: the node's name is
// in Prefix (its taint, registry name and IP in Prefix_TAINT,
// Prefix_REGISTRY_NAME, Prefix_IP), the region's CI registry in Registry,
// its control plane's kubeconfig in Kubeconfig; State is its directory
// under the env dir.
type nodeEnv struct{ Region, State, Prefix, Registry, Kubeconfig string }

// nodeA is node-a0 of region A (hack/servers/node.sh); nodeB is node-b0 in
// region B's control plane (hack/servers/node-b.sh), with the node
// registry on region B's container.
var (
	nodeA = nodeEnv{"a", "node", "SLIPWAY_TEST_NODE", "SLIPWAY_TEST_REGISTRY_A", "SLIPWAY_TEST_KUBECONFIG"}
	nodeB = nodeEnv{"b", "node-b", "SLIPWAY_TEST_NODE_B", "SLIPWAY_TEST_REGISTRY_B", "SLIPWAY_TEST_KUBE_B_KUBECONFIG"}
)

func requireNode(t testing.TB) *node { t.Helper(); return requireNodeOf(t, nodeA) }

func requireNodeB(t testing.TB) *node { t.Helper(); return requireNodeOf(t, nodeB) }

func requireNodeOf(t testing.TB, e nodeEnv) *node {
	t.Helper()
	v := testenv.Require(t, e.Prefix, e.Prefix+"_TAINT", e.Prefix+"_REGISTRY_NAME",
		e.Registry, "SLIPWAY_TEST_REGISTRY_BUILDSET", "SLIPWAY_TEST_BASE_IMAGE",
		e.Kubeconfig, "SLIPWAY_TEST_KUBECTL", "SLIPWAY_TESTENV_DIR")
	return newNode(t, &node{Name: v[0], Taint: v[1], Region: e.Region, RegistryName: v[2], Registry: v[3], Buildset: v[4],
		BaseImage: v[5], Kubeconfig: v[6], Kubectl: v[7], EnvDir: v[8]})
}

// newNode connects n to its control plane.
func newNode(t testing.TB, n *node) *node {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", n.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if n.Core, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return n
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func run(t testing.TB, dir string, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// image is one image built and pushed to the node's region by the project's own
// stages, with its push result as CI wrote it and as the node names it.
type image struct {
	Repo, Digest string
	// Marker is the line the image's entrypoint prints first.
	Marker string
	// PushResult names the CI registry (127.0.0.1:PORT); NodePushResult
	// names localhost:5000, what a Magnum CI's push result says (its region
	// registry listens on localhost:5000 of the CI node).
	PushResult, NodePushResult string
}

// pushImage builds a native image (the busybox base plus a script printing
// a line unique to this run) with build-image and pushes it to the node's
// region with push-registry.
func pushImage(t testing.TB, n *node, name string) *image {
	t.Helper()
	dir := t.TempDir()
	im := &image{Repo: "acme/realnode-" + name + "-" + randHex(3)}
	im.Marker = "realnode " + im.Repo + " started"
	if err := os.MkdirAll(filepath.Join(dir, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho '" + im.Marker + "'\nexec sleep 3600\n"
	if err := os.WriteFile(filepath.Join(dir, "app", "run.sh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := run(t, dir, bin(t, "build-image"), "--native", "--repository", im.Repo, "--base", n.BaseImage,
		"--add", "app:/app", "--entrypoint", `["/bin/sh","/app/run.sh"]`, "--insecure-registry", n.Buildset,
		"--output", "out"); err != nil {
		t.Fatalf("build-image: %v\n%s", err, stderr)
	}
	var data []byte
	im.PushResult, data, im.Digest = pushBuild(t, n, dir)
	im.NodePushResult = filepath.Join(dir, "push-node.json")
	node := bytes.ReplaceAll(data, []byte(`"`+n.Registry+"/"), []byte(`"`+n.RegistryName+"/"))
	if err := os.WriteFile(im.NodePushResult, node, 0o644); err != nil {
		t.Fatal(err)
	}
	return im
}

// pushBuild pushes the one image build-image built into dir/out to the
// node's region with push-registry; it returns the push result it wrote
// (dir/push.json), its content and the image's digest.
func pushBuild(t testing.TB, n *node, dir string) (file string, data []byte, digest string) {
	t.Helper()
	file = filepath.Join(dir, "push.json")
	if _, stderr, err := run(t, dir, bin(t, "push-registry"), "push", "--build-result", "out/build-result.json",
		"--region", n.Region+"="+n.Registry, "--result", file); err != nil {
		t.Fatalf("push-registry: %v\n%s", err, stderr)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Images []struct {
			Digest string `json:"digest"`
		} `json:"images"`
	}
	if err := json.Unmarshal(data, &pr); err != nil || len(pr.Images) != 1 {
		t.Fatalf("push result %s: %v\n%s", file, err, data)
	}
	return file, data, pr.Images[0].Digest
}

// waitMarker waits for the log of pod in ns to be im's marker line: it may
// reach the log file a moment after the pod is ready.
func waitMarker(t *testing.T, n *node, ns, pod string, im *image) {
	t.Helper()
	var logs string
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := poll.Until(ctx, poll.Constant(250*time.Millisecond), func(context.Context) (bool, error) {
		var err error
		logs, err = kubectl(t, n, "-n", ns, "logs", pod)
		return err == nil && logs == im.Marker, nil
	})
	if err != nil {
		t.Errorf("kubectl logs %s = %q; want the container's own line %q", pod, logs, im.Marker)
	}
}

// pulledByContainerd reports whether the node registry's log (logs/name
// under the env dir) has containerd's GET of im's manifest by digest.
func pulledByContainerd(n *node, name string, im *image) (bool, error) {
	log, err := os.ReadFile(filepath.Join(n.EnvDir, "logs", name))
	if err != nil {
		return false, err
	}
	req := regexp.MustCompile(`"GET /v2/` + regexp.QuoteMeta(im.Repo) + `/manifests/` + im.Digest + `[ ?][^"]*" 200 .*"containerd/`)
	return req.Match(log), nil
}

// deleteManifest removes the image's manifest from the region's registry: the
// push result still names a digest the region no longer has.
func deleteManifest(t testing.TB, n *node, im *image) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, "http://"+n.Registry+"/v2/"+im.Repo+"/manifests/"+im.Digest, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("deleting %s@%s from region %s: %s", im.Repo, im.Digest, n.Region, resp.Status)
	}
}

// workload is a Deployment of one container, placed on the real node.
type workload struct {
	Name  string
	Image string
	// Container is the YAML of the container's fields after name and image,
	// each line indented by 8 spaces.
	Container string
	// MinReady is spec.minReadySeconds: a container that crashes right after
	// it starts then never counts as available.
	MinReady int
	// ProgressDeadline is spec.progressDeadlineSeconds; 0 means 15, short
	// for the failure cases. A rollout meant to succeed sets more: a first
	// pull through Swift and a container start take longer than 15 s on a
	// loaded machine.
	ProgressDeadline int
	// Extra is more manifest YAML after the Deployment (from "---").
	Extra string
}

func (w workload) manifest(n *node) string {
	deadline := w.ProgressDeadline
	if deadline == 0 {
		deadline = 15
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s}
spec:
  replicas: 1
  progressDeadlineSeconds: %[7]d
  minReadySeconds: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
%[3]s      terminationGracePeriodSeconds: 1
      containers:
      - name: %[1]s-main
        image: %[4]s
%[5]s%[6]s`, w.Name, w.MinReady, n.placement("      "), w.Image, w.Container, w.Extra, deadline)
}

// placement is the YAML of the pod spec fields that put a pod on n: its
// hostname selector and a toleration of its taint, each line indented by
// indent.
func (n *node) placement(indent string) string {
	return indent + "nodeSelector: {kubernetes.io/hostname: " + n.Name + "}\n" +
		indent + "tolerations: [{key: " + n.Taint + ", operator: Exists, effect: NoSchedule}]\n"
}

// jobPod is the YAML of the pod spec of a one-off Job on n: container
// runs script with /bin/sh in image, never restarted; each line indented by
// indent.
func (n *node) jobPod(indent, container, image, script string) string {
	return indent + "restartPolicy: Never\n" + n.placement(indent) + fmt.Sprintf(`%[1]scontainers:
%[1]s- name: %[2]s
%[1]s  image: %[3]s
%[1]s  command: [/bin/sh, -c, %[4]q]
`, indent, container, image, script)
}

// apply writes manifest to a file named name and applies it with kubectl.
func apply(t testing.TB, n *node, name, manifest string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, n, "apply", "-f", f); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

// tempNamespace names a namespace of its own for the test (rn-prefix-HEX)
// and deletes it when the test ends.
func tempNamespace(t testing.TB, n *node, prefix string) string {
	ns := "rn-" + prefix + "-" + randHex(3)
	t.Cleanup(func() { _ = n.Core.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	return ns
}

// createNamespace creates a tempNamespace.
func createNamespace(t testing.TB, n *node, prefix string) string {
	t.Helper()
	ns := tempNamespace(t, n, prefix)
	if _, err := n.Core.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// runPod applies the manifest of pod name in ns and waits up to timeout for
// it to end; it returns the ended pod.
func runPod(t testing.TB, n *node, ns, name, manifest string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	apply(t, n, "pod.yaml", manifest)
	var pod *corev1.Pod
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := poll.Until(ctx, poll.Constant(500*time.Millisecond), func(ctx context.Context) (bool, error) {
		p, err := n.Core.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s did not end: %v (last status %+v)", ns, name, err, pod)
	}
	return pod
}

// deployed is what one deploy-k8s deploy left.
type deployed struct {
	Namespace      string
	Stdout, Stderr string
	Err            error
}

// deploy runs deploy-k8s deploy for w on a branch of its own; the namespace
// is deleted when the test ends.
func deploy(t testing.TB, n *node, w workload, pushResult string) deployed {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "manifests"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifests", "deploy.yaml"), []byte(w.manifest(n)), 0o644); err != nil {
		t.Fatal(err)
	}
	d := deployed{Namespace: tempNamespace(t, n, w.Name)}
	d.Stdout, d.Stderr, d.Err = run(t, dir, bin(t, "deploy-k8s"), "deploy", "--branch", "platform/"+d.Namespace,
		"--manifests", "manifests", "--push-result", pushResult, "--region", n.Region, "--kubeconfig", n.Kubeconfig,
		"--timeout", "2m")
	return d
}

// kubectl runs the control plane's kubectl.
func kubectl(t testing.TB, n *node, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(n.Kubectl, append([]string{"--kubeconfig", n.Kubeconfig}, args...)...)
	cmd.Env = append(os.Environ(), "KUBECACHEDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

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
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/slipwayci/slipway/internal/testenv"
)

// binDir holds the stage binaries, built once for the package.
var binDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "realnode-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// repoRoot is the checkout this test file is in.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var buildBins = sync.OnceValue(func() error {
	cmd := exec.Command("go", "build", "-trimpath", "-o", binDir+"/", "./cmd/build-image", "./cmd/push-registry", "./cmd/deploy-k8s")
	cmd.Dir = repoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
})

// bin returns the path of a stage binary built from this checkout.
func bin(t testing.TB, name string) string {
	t.Helper()
	if err := buildBins(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(binDir, name)
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

func requireNode(t testing.TB) *node {
	t.Helper()
	v := testenv.Require(t, "SLIPWAY_TEST_NODE", "SLIPWAY_TEST_NODE_TAINT", "SLIPWAY_TEST_NODE_REGISTRY_NAME",
		"SLIPWAY_TEST_REGISTRY_A", "SLIPWAY_TEST_REGISTRY_BUILDSET", "SLIPWAY_TEST_BASE_IMAGE",
		"SLIPWAY_TEST_KUBECONFIG", "SLIPWAY_TEST_KUBECTL", "SLIPWAY_TESTENV_DIR")
	return newNode(t, &node{Name: v[0], Taint: v[1], Region: "a", RegistryName: v[2], Registry: v[3], Buildset: v[4],
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
	im.PushResult = filepath.Join(dir, "push.json")
	if _, stderr, err := run(t, dir, bin(t, "push-registry"), "push", "--build-result", "out/build-result.json",
		"--region", n.Region+"="+n.Registry, "--result", im.PushResult); err != nil {
		t.Fatalf("push-registry: %v\n%s", err, stderr)
	}
	data, err := os.ReadFile(im.PushResult)
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Images []struct {
			Digest string `json:"digest"`
		} `json:"images"`
	}
	if err := json.Unmarshal(data, &pr); err != nil || len(pr.Images) != 1 {
		t.Fatalf("push result %s: %v\n%s", im.PushResult, err, data)
	}
	im.Digest = pr.Images[0].Digest
	im.NodePushResult = filepath.Join(dir, "push-node.json")
	node := bytes.ReplaceAll(data, []byte(`"`+n.Registry+"/"), []byte(`"`+n.RegistryName+"/"))
	if err := os.WriteFile(im.NodePushResult, node, 0o644); err != nil {
		t.Fatal(err)
	}
	return im
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
  progressDeadlineSeconds: %[8]d
  minReadySeconds: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      nodeSelector: {kubernetes.io/hostname: %[3]s}
      tolerations: [{key: %[4]s, operator: Exists, effect: NoSchedule}]
      terminationGracePeriodSeconds: 1
      containers:
      - name: %[1]s-main
        image: %[5]s
%[6]s%[7]s`, w.Name, w.MinReady, n.Name, n.Taint, w.Image, w.Container, w.Extra, deadline)
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
	d := deployed{Namespace: "rn-" + w.Name + "-" + randHex(3)}
	t.Cleanup(func() {
		_ = n.Core.CoreV1().Namespaces().Delete(context.Background(), d.Namespace, metav1.DeleteOptions{})
	})
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

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// checkRealNode checks what the pipeline did on the test env's real kubelet
// node: the sample platform's static site (examples/local) runs there from
// the digest the push stage pushed, Running and Ready behind its readiness
// probe, `kubectl logs` shows the container's own output, and the
// static-check job, run by the deploy job and once more by `deploy-k8s
// run-job`, runs a real container to completion with its log streamed.
func checkRealNode(t *testing.T, kc kubernetes.Interface, ns, state string, push *result.PushResult) {
	t.Helper()
	env := testenv.Require(t, "SLIPWAY_TEST_NODE", "SLIPWAY_TEST_KUBECTL", "SLIPWAY_TEST_KUBECONFIG")
	node, kubectl, kubeconfig := env[0], env[1], env[2]
	ctx := context.Background()

	digest := ""
	for _, im := range push.Images {
		if im.Name == "static" {
			digest = im.Digest
		}
	}
	if digest == "" {
		t.Fatal("the push result has no image static")
	}
	pods, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=static"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("%d pods of Deployment static, want 1", len(pods.Items))
	}
	pod := pods.Items[0]
	if pod.Spec.NodeName != node {
		t.Fatalf("pod %s runs on %q, want the real node %s", pod.Name, pod.Spec.NodeName, node)
	}
	ready := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if pod.Status.Phase != corev1.PodRunning || !ready || len(pod.Status.ContainerStatuses) != 1 {
		t.Fatalf("pod %s: phase %s ready %t, %d container statuses", pod.Name, pod.Status.Phase, ready, len(pod.Status.ContainerStatuses))
	}
	// The kubelet reports the image containerd resolved; kwok would echo the
	// spec. Its digest is the one push-registry pushed.
	cs := pod.Status.ContainerStatuses[0]
	if _, got, _ := strings.Cut(cs.ImageID, "@"); got != digest {
		t.Errorf("container static runs imageID %q, want digest %s", cs.ImageID, digest)
	}
	if cs.ContainerID == "" || !strings.HasPrefix(cs.ContainerID, "containerd://") || cs.RestartCount != 0 {
		t.Errorf("container static: id %q, %d restarts; want a containerd container that never restarted", cs.ContainerID, cs.RestartCount)
	}

	// kubectl logs: busybox httpd -v logs each readiness probe's request.
	out, err := exec.Command(kubectl, "--kubeconfig", kubeconfig, "-n", ns, "logs", pod.Name).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl logs %s: %v\n%s", pod.Name, err, out)
	}
	if !strings.Contains(string(out), "response:200") || strings.Contains(string(out), "kwok") {
		t.Errorf("kubectl logs %s shows no request the container served:\n%s", pod.Name, out)
	}

	// The deploy job ran static-check on the node and streamed its log.
	var deploy result.DeployResult
	readResult(t, state, "slipway-deploy-k8s", "deploy-result.json", &deploy)
	if len(deploy.Jobs) != 1 || deploy.Jobs[0].Template != "static-check" || !deploy.Jobs[0].Succeeded {
		t.Errorf("deploy ran jobs %+v, want static-check, succeeded", deploy.Jobs)
	}
	logFile := filepath.Join(state, "jobs", "slipway-deploy-k8s", "logs", "slipway", "logs", "deploy-k8s.log")
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(deploy.Jobs) == 1 && !strings.Contains(string(logs), deploy.Jobs[0].Name+": static-check: the site is in the image") {
		t.Errorf("%s lacks the static-check container's log:\n%s", logFile, logs)
	}

	// run-job, by hand after the pipeline: a real container, to completion,
	// its log on stderr; kept (--job-cleanup never) to see where it ran.
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "bin", "deploy-k8s"), "run-job", "--branch", "platform/demo",
		"--namespace-prefix", strings.TrimSuffix(ns, "demo"), "--kubeconfig", kubeconfig,
		"--job", "static-check", "--job-cleanup", "never", "--timeout", "3m")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("deploy-k8s run-job: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(stdout.String(), "job="), " ")
	if !strings.Contains(stdout.String(), "template=static-check succeeded=true") ||
		!strings.Contains(stderr.String(), name+": index.html") || !strings.Contains(stderr.String(), name+": static-check: the site is in the image") {
		t.Fatalf("run-job did not report and stream static-check:\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	jobPods, err := kc.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	if len(jobPods.Items) != 1 || jobPods.Items[0].Spec.NodeName != node || jobPods.Items[0].Status.Phase != corev1.PodSucceeded {
		t.Fatalf("job %s: pods %d, want one Succeeded on %s", name, len(jobPods.Items), node)
	}
	if st := jobPods.Items[0].Status.ContainerStatuses; len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode != 0 {
		t.Errorf("job %s: container status %+v, want terminated with exit code 0", name, st)
	}
	if _, got, _ := strings.Cut(jobPods.Items[0].Status.ContainerStatuses[0].ImageID, "@"); got != digest {
		t.Errorf("job %s ran imageID %q, want digest %s", name, jobPods.Items[0].Status.ContainerStatuses[0].ImageID, digest)
	}
}

package realnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/result"
)

// onePod returns the only pod of namespace ns.
func onePod(t *testing.T, n *node, ns string) *corev1.Pod {
	t.Helper()
	pods, err := n.Core.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("%d pods in %s, want 1", len(pods.Items), ns)
	}
	return &pods.Items[0]
}

// TestPushedImageRunsOnNode: an image pushed to region A runs on node-a0,
// pulled by digest through the node registry, whether the manifests name it
// localhost:5000 (as on Magnum) or the CI registry's own address (as the
// local pipeline's push results do); its container's log is its own output.
func TestPushedImageRunsOnNode(t *testing.T) {
	t.Parallel()
	n := requireNode(t)
	im := pushImage(t, n, "hello")
	for _, c := range []struct{ name, pushResult, registry string }{
		{"localhost:5000", im.NodePushResult, n.RegistryName},
		{"CI registry address", im.PushResult, n.Registry},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := deploy(t, n, workload{Name: "hello", Image: im.Repo, ProgressDeadline: 120}, c.pushResult)
			if d.Err != nil {
				t.Fatalf("deploy-k8s deploy: %v\n%s", d.Err, d.Stderr)
			}
			pod := onePod(t, n, d.Namespace)
			want := c.registry + "/" + im.Repo + "@" + im.Digest
			if pod.Spec.NodeName != n.Name {
				t.Errorf("pod %s on node %q, want %s", pod.Name, pod.Spec.NodeName, n.Name)
			}
			if pod.Status.Phase != corev1.PodRunning || !podReady(pod) {
				t.Errorf("pod %s is %s, ready %v; want Running and Ready", pod.Name, pod.Status.Phase, podReady(pod))
			}
			if len(pod.Status.ContainerStatuses) != 1 {
				t.Fatalf("pod %s has %d container statuses", pod.Name, len(pod.Status.ContainerStatuses))
			}
			if got := pod.Spec.Containers[0].Image; got != want {
				t.Errorf("image %q, want %q", got, want)
			}
			// containerd reports the image by the first name it was pulled
			// under: either subtest's registry name, always this digest.
			if id := pod.Status.ContainerStatuses[0].ImageID; !strings.HasSuffix(id, "/"+im.Repo+"@"+im.Digest) {
				t.Errorf("imageID %q, want the pushed %s@%s", id, im.Repo, im.Digest)
			}
			waitMarker(t, n, d.Namespace, pod.Name, im)
		})
	}
	t.Cleanup(func() {
		// The node registry served the manifest by digest to containerd.
		pulled, err := pulledByContainerd(n, "node-registry.log", im)
		if err != nil {
			t.Error(err)
			return
		}
		if !pulled {
			t.Errorf("the node registry's log has no containerd GET of %s@%s", im.Repo, im.Digest)
		}
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// TestDeployDiagnosesFailures: for rollouts that fail on a real node,
// deploy-k8s's error names the workload, the pod, the container, the cause
// in the kubelet's or the registry's words, and the next step.
func TestDeployDiagnosesFailures(t *testing.T) {
	t.Parallel()
	n := requireNode(t)
	im := pushImage(t, n, "app")
	gone := pushImage(t, n, "gone")
	deleteManifest(t, n, gone)

	type want struct {
		// cause: every pattern must match (the failure in the kubelet's,
		// containerd's or the registry's words).
		cause []string
		// next: the next step, a pattern that must match.
		next string
	}
	for _, c := range []struct {
		name       string
		w          workload
		pushResult string
		want       want
	}{{
		name:       "digest missing in the region",
		w:          workload{Name: "gone", Image: gone.Repo},
		pushResult: gone.NodePushResult,
		want: want{
			cause: []string{`ErrImagePull|ImagePullBackOff`, regexp.QuoteMeta(n.RegistryName + "/" + gone.Repo + "@" + gone.Digest), `not found`},
			// The fix is in the registry, not the manifests: push the
			// image to region a again (or verify the push).
			next: `(?i)push-registry|push .*region a|region a.*push`,
		},
	}, {
		name: "crash loop",
		w: workload{Name: "crash", Image: im.Repo, MinReady: 5, Container: `        command: [/bin/sh, -c, "echo reading /etc/app.conf; echo 'fatal: /etc/app.conf: no such file' >&2; exit 3"]
`},
		pushResult: im.NodePushResult,
		want: want{
			// The container is either waiting in CrashLoopBackOff or has just
			// exited again: both must show the exit code.
			cause: []string{`CrashLoopBackOff|Back-off restarting failed container`, `fatal: /etc/app.conf: no such file`, `(?i)exit(ed)?( code)?:? 3\b`},
			next:  `(?i)roll back|deploy again`,
		},
	}, {
		name: "out of memory",
		w: workload{Name: "oom", Image: im.Repo, MinReady: 5, Container: `        command: [/bin/sh, -c, "echo allocating 64 MiB; exec dd if=/dev/zero of=/dev/null bs=64M count=1"]
        resources: {limits: {memory: 16Mi}}
`},
		pushResult: im.NodePushResult,
		want: want{
			cause: []string{`OOMKilled`, `allocating 64 MiB`},
			next:  `(?i)memory`,
		},
	}, {
		name: "readiness probe fails",
		w: workload{Name: "unready", Image: im.Repo, Container: `        readinessProbe: {httpGet: {path: /healthz, port: 8080}, periodSeconds: 1}
`},
		pushResult: im.NodePushResult,
		want: want{
			cause: []string{`Ready=False`, `Readiness probe failed`, `connection refused`},
			next:  `(?i)roll back|deploy again`,
		},
	}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			d := deploy(t, n, c.w, c.pushResult)
			if d.Err == nil {
				t.Fatalf("deploy-k8s deploy succeeded; want a failed rollout\n%s", d.Stderr)
			}
			msg := lastLine(d.Stderr)
			if !strings.HasPrefix(msg, "deploy-k8s: ") {
				t.Fatalf("no error line from deploy-k8s:\n%s", d.Stderr)
			}
			pod := onePod(t, n, d.Namespace)
			names := map[string]string{
				"the workload":  "Deployment.apps/" + c.w.Name,
				"the pod":       pod.Name,
				"the container": c.w.Name + "-main",
			}
			for what, s := range names {
				if !strings.Contains(msg, s) {
					t.Errorf("the error does not name %s (%s)", what, s)
				}
			}
			for _, p := range c.want.cause {
				if !regexp.MustCompile(p).MatchString(msg) {
					t.Errorf("the error does not give the cause: no match for %s", p)
				}
			}
			if !regexp.MustCompile(c.want.next).MatchString(msg) {
				t.Errorf("the error does not give the next step: no match for %s", c.want.next)
			}
			if t.Failed() {
				t.Logf("deploy-k8s error:\n%s", msg)
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestRunJobOnNode: `deploy-k8s run-job` runs a real container to completion
// on node-a0 and streams its log; a failing job exits 1 with its last lines.
func TestRunJobOnNode(t *testing.T) {
	t.Parallel()
	n := requireNode(t)
	im := pushImage(t, n, "job")
	job := func(name, script string) string {
		return fmt.Sprintf(`---
apiVersion: batch/v1
kind: Job
metadata:
  name: %[1]s
  labels: {slipway.dev/job-template: "true"}
spec:
  template:
    spec:
%[2]s`, name, n.jobPod("      ", name, im.Repo, script))
	}
	w := workload{Name: "web", Image: im.Repo, ProgressDeadline: 120}
	w.Extra = job("migrate", "for i in 1 2 3; do echo migration step $i on $(hostname); done") +
		job("broken", "echo checking schema; echo 'schema version 7 unknown' >&2; exit 4")
	d := deploy(t, n, w, im.NodePushResult)
	if d.Err != nil {
		t.Fatalf("deploy-k8s deploy: %v\n%s", d.Err, d.Stderr)
	}
	runJob := func(name string) (string, error) {
		_, stderr, err := run(t, t.TempDir(), bin(t, "deploy-k8s"), "run-job", "--branch", "platform/"+d.Namespace,
			"--job", name, "--kubeconfig", n.Kubeconfig, "--timeout", "2m")
		return stderr, err
	}
	stderr, err := runJob("migrate")
	if err != nil {
		t.Fatalf("run-job migrate: %v\n%s", err, stderr)
	}
	for i := 1; i <= 3; i++ {
		if line := fmt.Sprintf("migration step %d on migrate-", i); !strings.Contains(stderr, line) {
			t.Errorf("run-job's output lacks the container's line %q:\n%s", line, stderr)
		}
	}
	stderr, err = runJob("broken")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("run-job broken: %v, want exit code 1\n%s", err, stderr)
	}
	msg := lastLine(stderr)
	for _, s := range []string{"broken", "schema version 7 unknown"} {
		if !strings.Contains(msg, s) {
			t.Errorf("run-job's error does not name %q:\n%s", s, msg)
		}
	}
}

// TestRunCronJobOnNode: `deploy-k8s run-job --cronjob` runs a deployed,
// suspended CronJob's jobTemplate once in a real container on node-a0 (an
// image pushed to region A, pulled by the node as localhost:5000/...): its
// line is streamed to stderr and the result names the pod, the digest the
// node ran and exit code 0; one that exits 3 exits 1 naming the exit code
// and its termination message; a CronJob that is not there exits 2 naming
// it and the namespace.
func TestRunCronJobOnNode(t *testing.T) {
	t.Parallel()
	n := requireNode(t)
	im := pushImage(t, n, "cronjob")
	image := n.RegistryName + "/" + im.Repo + "@" + im.Digest
	cronJob := func(name, script string) string {
		return fmt.Sprintf(`---
apiVersion: batch/v1
kind: CronJob
metadata: {name: %[1]s}
spec:
  schedule: "0 0 31 2 *"
  suspend: true
  jobTemplate:
    spec:
      backoffLimit: 0
      template:
        spec:
%[2]s`, name, n.jobPod("          ", "step", image, script))
	}
	dir := t.TempDir()
	manifests := filepath.Join(dir, "cronjobs.yaml")
	if err := os.WriteFile(manifests, []byte(cronJob("hello", "echo failover step ran on $(hostname)")+
		cronJob("broken", "echo checking; echo 'restore journal interrupted' > /dev/termination-log; exit 3")), 0o644); err != nil {
		t.Fatal(err)
	}
	ns := tempNamespace(t, n, "cronnode")
	common := []string{"--branch", "platform/" + ns, "--kubeconfig", n.Kubeconfig}
	deployK8s := func(args ...string) (int, string, string) {
		stdout, stderr, err := run(t, dir, bin(t, "deploy-k8s"), append(args, common...)...)
		var exit *exec.ExitError
		switch {
		case err == nil:
			return 0, stdout, stderr
		case errors.As(err, &exit):
			return exit.ExitCode(), stdout, stderr
		}
		t.Fatalf("deploy-k8s %s: %v", args[0], err)
		return 0, "", ""
	}
	code, stdout, stderr := deployK8s("deploy", "--manifests", manifests, "--allow-image", n.RegistryName+"/"+im.Repo, "--timeout", "2m")
	if code != 0 {
		t.Fatalf("deploy: exit %d\n%s%s", code, stdout, stderr)
	}
	runJob := func(name string) (int, string, string, *result.DeployResult) {
		file := filepath.Join(dir, name+".json")
		code, stdout, stderr := deployK8s("run-job", "--cronjob", name, "--timeout", "3m", "--result", file)
		var res result.DeployResult
		if code != cli.ExitUsage {
			if err := result.ReadFile(file, &res); err != nil {
				t.Errorf("run-job --cronjob %s wrote no result: %v", name, err)
			}
		}
		return code, stdout, stderr, &res
	}

	code, stdout, stderr, res := runJob("hello")
	if code != 0 || len(res.Jobs) != 1 {
		t.Fatalf("run-job --cronjob hello: exit %d, jobs %+v\n%s%s", code, res.Jobs, stdout, stderr)
	}
	jr := res.Jobs[0]
	t.Logf("run-job --cronjob hello: %s", stdout)
	if !strings.Contains(stderr, jr.Name+": failover step ran on ") {
		t.Errorf("the container's line was not streamed to stderr:\n%s", stderr)
	}
	if want := fmt.Sprintf("job=%s cronjob=hello pod=%s exit=0 succeeded=true\n", jr.Name, jr.Pod); stdout != want || !strings.HasPrefix(jr.Pod, jr.Name+"-") {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if jr.ImageDigest != im.Digest || jr.ExitCode == nil || *jr.ExitCode != 0 || !jr.Succeeded || !jr.Deleted {
		t.Errorf("result job %+v: want digest %s run, exit code 0, succeeded and cleaned up", jr, im.Digest)
	}

	code, stdout, stderr, res = runJob("broken")
	if code != cli.ExitFailed || len(res.Jobs) != 1 {
		t.Fatalf("run-job --cronjob broken: exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	msg := lastLine(stderr)
	t.Logf("run-job --cronjob broken: %s", msg)
	for _, s := range []string{"Job.batch/broken-", "container step exited 3 (Error)", `termination message "restore journal interrupted"`, "checking"} {
		if !strings.Contains(msg, s) {
			t.Errorf("run-job's error does not name %q:\n%s", s, msg)
		}
	}
	if jr := res.Jobs[0]; jr.ExitCode == nil || *jr.ExitCode != 3 || jr.TerminationMessage != "restore journal interrupted\n" || jr.Succeeded || jr.Pod == "" {
		t.Errorf("result job %+v: want exit code 3, the termination message, failed, its pod", jr)
	}

	code, stdout, stderr, _ = runJob("nope")
	if code != cli.ExitUsage || stdout != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 ||
		!strings.Contains(stderr, `"nope"`) || !strings.Contains(stderr, "namespace "+ns) {
		t.Errorf("missing cronjob: exit %d stdout %q stderr %q; want exit 2, one line naming it and namespace %s", code, stdout, stderr, ns)
	}
}

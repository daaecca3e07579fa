package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/crane"

	"github.com/slipwayci/slipway/internal/cli"
	"github.com/slipwayci/slipway/internal/deploy/deploytest"
	"github.com/slipwayci/slipway/internal/result"
	"github.com/slipwayci/slipway/internal/testenv"
)

// TestRunCronJobOnNode: `deploy-k8s run-job --cronjob` runs a deployed,
// suspended CronJob's jobTemplate once in a real container on node-a0 (the
// busybox base image pushed to region A, pulled by the node as
// localhost:5000/...): its line is streamed to stderr and the result names
// the pod, the digest the node ran and exit code 0; one that exits 3 exits
// 1 naming the exit code and its termination message; a CronJob that is not
// there exits 2 naming it and the namespace.
func TestRunCronJobOnNode(t *testing.T) {
	v := testenv.Require(t, "SLIPWAY_TEST_NODE", "SLIPWAY_TEST_NODE_TAINT", "SLIPWAY_TEST_NODE_REGISTRY_NAME",
		"SLIPWAY_TEST_REGISTRY_A", "SLIPWAY_TEST_BASE_IMAGE", "SLIPWAY_TEST_BASE_DIGEST")
	node, taint, nodeRegistry, registryA, base, baseDigest := v[0], v[1], v[2], v[3], v[4], v[5]
	k := deploytest.RequireKube(t)
	// The base image into region A's registry, which the node pulls from as localhost:5000.
	repo := "slipway-test/cronjob-busybox"
	if err := crane.Copy(base, registryA+"/"+repo+":1", crane.Insecure, crane.WithContext(context.Background())); err != nil {
		t.Fatalf("copying %s to region A: %v", base, err)
	}
	image := nodeRegistry + "/" + repo + "@" + baseDigest
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
          restartPolicy: Never
          nodeSelector: {kubernetes.io/hostname: %[2]s}
          tolerations: [{key: %[3]s, operator: Exists, effect: NoSchedule}]
          containers:
          - name: step
            image: %[4]s
            command: [/bin/sh, -c, %[5]q]
`, name, node, taint, image, script)
	}
	dir := t.TempDir()
	manifests := filepath.Join(dir, "cronjobs.yaml")
	if err := os.WriteFile(manifests, []byte(cronJob("hello", "echo failover step ran on $(hostname)")+
		cronJob("broken", "echo checking; echo 'restore journal interrupted' > /dev/termination-log; exit 3")), 0o644); err != nil {
		t.Fatal(err)
	}
	branch := k.Branch(t, "cronnode")
	ns := strings.TrimPrefix(branch, "platform/")
	common := []string{"--branch", branch, "--kubeconfig", k.Kubeconfig}
	code, stdout, stderr := runCLI(t, append([]string{"deploy", "--manifests", manifests, "--allow-image", nodeRegistry + "/" + repo, "--timeout", "2m"}, common...)...)
	if code != 0 {
		t.Fatalf("deploy: exit %d\n%s%s", code, stdout, stderr)
	}
	runJob := func(name string) (int, string, string, *result.DeployResult) {
		file := filepath.Join(dir, name+".json")
		code, stdout, stderr := runCLI(t, append([]string{"run-job", "--cronjob", name, "--timeout", "3m", "--result", file}, common...)...)
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
	if jr.ImageDigest != baseDigest || jr.ExitCode == nil || *jr.ExitCode != 0 || !jr.Succeeded || !jr.Deleted {
		t.Errorf("result job %+v: want digest %s run, exit code 0, succeeded and cleaned up", jr, baseDigest)
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

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

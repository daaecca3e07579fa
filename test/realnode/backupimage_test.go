package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayci/slipway/internal/poll"
	"github.com/slipwayci/slipway/internal/testenv"
)

// TestBackupImageRunsOnNode: the backup image (examples/images/backup,
// built natively from Debian packages and the static binaries, pushed to
// region A) runs on node-a0 as the backup CronJobs run it (user 65532,
// read-only root filesystem): mariadb-dump, mariadb, mongodump and backup
// each print their version in a real container.
func TestBackupImageRunsOnNode(t *testing.T) {
	t.Parallel()
	n := requireNode(t)
	tools := testenv.Require(t, "SLIPWAY_TEST_MONGODUMP", "SLIPWAY_TEST_MONGORESTORE")
	dir := t.TempDir()
	// The backup binary as the pipeline builds it.
	cmd := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "backup"), "./cmd/backup")
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the backup binary: %v\n%s", err, out)
	}
	if _, stderr, err := run(t, dir, bin(t, "build-image"), "--file", filepath.Join(repoRoot(), "examples/images/backup/build.yaml"),
		"--output", "out", "--source-date-epoch", "1700000000",
		"--build-arg", "BACKUP_BIN="+filepath.Join(dir, "backup"),
		"--build-arg", "MONGODUMP_BIN="+tools[0], "--build-arg", "MONGORESTORE_BIN="+tools[1]); err != nil {
		t.Fatalf("build-image (Debian packages from deb.debian.org unless ~/.cache/slipway/debs has them): %v\n%s", err, stderr)
	}
	if _, stderr, err := run(t, dir, bin(t, "push-registry"), "push", "--build-result", "out/build-result.json",
		"--region", n.Region+"="+n.Registry, "--result", "push.json"); err != nil {
		t.Fatalf("push-registry: %v\n%s", err, stderr)
	}
	data, err := os.ReadFile(filepath.Join(dir, "push.json"))
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Images []struct {
			Digest string `json:"digest"`
		} `json:"images"`
	}
	if err := json.Unmarshal(data, &pr); err != nil || len(pr.Images) != 1 {
		t.Fatalf("push result: %v\n%s", err, data)
	}
	image := n.RegistryName + "/slipway/backup@" + pr.Images[0].Digest

	containers := []struct{ name, command, want string }{
		{"mariadb-dump", `["/usr/bin/mariadb-dump", "--version"]`, "mariadb-dump  Ver 10.19 Distrib 10.11"},
		{"mariadb", `["/usr/bin/mariadb", "--version"]`, "Distrib 10.11"},
		{"mongodump", `["/usr/local/bin/mongodump", "--version"]`, "mongodump version:"},
		{"backup", `["/usr/local/bin/backup", "version"]`, "backup "},
	}
	ns := "rn-backupimage-" + randHex(3)
	ctx := context.Background()
	if _, err := n.Core.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Core.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	var specs []string
	for _, c := range containers {
		specs = append(specs, fmt.Sprintf(`  - name: %s
    image: %s
    command: %s
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false}
    volumeMounts: [{name: tmp, mountPath: /tmp}]`, c.name, image, c.command))
	}
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: versions, namespace: %s}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  nodeSelector: {kubernetes.io/hostname: %s}
  tolerations: [{key: %s, operator: Exists, effect: NoSchedule}]
  securityContext: {runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532}
  volumes: [{name: tmp, emptyDir: {medium: Memory}}]
  containers:
%s
`, ns, n.Name, n.Taint, strings.Join(specs, "\n"))
	f := filepath.Join(dir, "pod.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, n, "apply", "-f", f); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
	var pod *corev1.Pod
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	err = poll.Until(wctx, poll.Constant(500*time.Millisecond), func(ctx context.Context) (bool, error) {
		p, err := n.Core.CoreV1().Pods(ns).Get(ctx, "versions", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		pod = p
		return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed, nil
	})
	if err != nil {
		t.Fatalf("pod %s/versions did not end: %v (last status %+v)", ns, err, pod)
	}
	if pod.Status.Phase != corev1.PodSucceeded {
		t.Errorf("pod %s/versions %s, want Succeeded: %+v", ns, pod.Status.Phase, pod.Status.ContainerStatuses)
	}
	for _, c := range containers {
		logs, err := kubectl(t, n, "-n", ns, "logs", "versions", "-c", c.name)
		if err != nil || !strings.Contains(logs, c.want) {
			t.Errorf("container %s (%s): %v, log %q; want %q", c.name, c.command, err, logs, c.want)
		}
	}
	for _, s := range pod.Status.ContainerStatuses {
		if !strings.HasSuffix(s.ImageID, "/slipway/backup@"+pr.Images[0].Digest) {
			t.Errorf("container %s ran image %q, want the pushed %s", s.Name, s.ImageID, pr.Images[0].Digest)
		}
	}
}

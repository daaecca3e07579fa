package realnode

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

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
	backupBin := bin(t, "backup")
	if _, stderr, err := run(t, dir, bin(t, "build-image"), "--file", filepath.Join(testenv.RepoRoot(), "examples/images/backup/build.yaml"),
		"--output", "out", "--source-date-epoch", "1700000000",
		"--build-arg", "BACKUP_BIN="+backupBin,
		"--build-arg", "MONGODUMP_BIN="+tools[0], "--build-arg", "MONGORESTORE_BIN="+tools[1]); err != nil {
		t.Fatalf("build-image (Debian packages from deb.debian.org unless ~/.cache/slipway/debs has them): %v\n%s", err, stderr)
	}
	_, _, digest := pushBuild(t, n, dir)
	image := n.RegistryName + "/slipway/backup@" + digest

	containers := []struct{ name, command, want string }{
		{"mariadb-dump", `["/usr/bin/mariadb-dump", "--version"]`, "mariadb-dump  Ver 10.19 Distrib 10.11"},
		{"mariadb", `["/usr/bin/mariadb", "--version"]`, "Distrib 10.11"},
		{"mongodump", `["/usr/local/bin/mongodump", "--version"]`, "mongodump version:"},
		{"backup", `["/usr/local/bin/backup", "version"]`, "backup "},
	}
	ns := createNamespace(t, n, "backupimage")
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
%s  securityContext: {runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532}
  volumes: [{name: tmp, emptyDir: {medium: Memory}}]
  containers:
%s
`, ns, n.placement("  "), strings.Join(specs, "\n"))
	pod := runPod(t, n, ns, "versions", manifest, 5*time.Minute)
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
		if !strings.HasSuffix(s.ImageID, "/slipway/backup@"+digest) {
			t.Errorf("container %s ran image %q, want the pushed %s", s.Name, s.ImageID, digest)
		}
	}
}

package deploy

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipwayci/slipway/internal/cli"
)

// runCLI runs deploy-k8s with args and returns exit code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	app := App()
	var stdout, stderr bytes.Buffer
	app.Writer, app.ErrWriter = &stdout, &stderr
	code := cli.Run(context.Background(), app, append([]string{"deploy-k8s"}, args...))
	return code, stdout.String(), stderr.String()
}

func TestCLIExitCodes(t *testing.T) {
	k := requireKube(t)
	tree := platformTree(t)
	push, _ := writePush(t, "v1")
	common := []string{"--kubeconfig", k.kubeconfig, "--manifests", tree, "--push-result", push, "--region", "A",
		"--allow-image", "docker.io/redis", "--allow-image", "docker.io/caddy"}

	code, stdout, stderr := runCLI(t, append([]string{"deploy", "--branch", "main"}, common...)...)
	if code != cli.ExitUsage || stdout != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, `branch "main"`) {
		t.Errorf("bad branch: exit %d, stdout %q, stderr %q; want exit 2, one line naming the branch", code, stdout, stderr)
	}

	code, stdout, _ = runCLI(t, "namespace", "--branch", "platform/Acme_EU")
	if code != 0 || stdout != "acme-eu\n" {
		t.Errorf("namespace: exit %d stdout %q, want acme-eu", code, stdout)
	}

	branch := uniqueBranch(t, "cli")
	code, stdout, stderr = runCLI(t, append([]string{"deploy", "--branch", branch, "--timeout", "60s"}, common...)...)
	if code != 0 || !strings.HasPrefix(stdout, "namespace=") || !strings.Contains(stdout, "revision=1 changed=true") {
		t.Fatalf("deploy: exit %d stdout %q stderr %s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "workloads ready") {
		t.Errorf("no rollout progress on stderr: %s", stderr)
	}
	code, stdout, _ = runCLI(t, append([]string{"deploy", "--branch", branch}, common...)...)
	if code != 0 || !strings.Contains(stdout, "revision=1 changed=false") {
		t.Errorf("re-deploy: exit %d stdout %q, want no change", code, stdout)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	k := requireKube(t)
	tree := platformTree(t)
	push, _ := writePush(t, "v1")
	const value1, value2 = "Sup3r-s3cret-db-password-1", "Sup3r-s3cret-db-password-2"
	secretDoc := "apiVersion: v1\nkind: Secret\nmetadata: {name: openedx-db}\nstringData: {MYSQL_PASSWORD: " + value1 + "}\n"
	if err := os.WriteFile(filepath.Join(tree, "k8s", "secret.yml"), []byte(secretDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	edit(t, tree, "kustomization.yml", "- k8s/volumes.yml\n", "- k8s/volumes.yml\n- k8s/secret.yml\n")
	branch := uniqueBranch(t, "secret")
	resultFile := filepath.Join(t.TempDir(), "deploy.json")
	common := []string{"--kubeconfig", k.kubeconfig, "--branch", branch, "--manifests", tree, "--push-result", push,
		"--region", "A", "--allow-image", "docker.io/redis", "--allow-image", "docker.io/caddy"}

	var all strings.Builder
	code, stdout, stderr := runCLI(t, append([]string{"--debug", "deploy", "--timeout", "60s", "--result", resultFile}, common...)...)
	all.WriteString(stdout + stderr)
	if code != 0 {
		t.Fatalf("deploy: exit %d: %s", code, stderr)
	}
	edit(t, tree, "k8s/secret.yml", value1, value2)
	code, stdout, stderr = runCLI(t, append([]string{"--debug", "diff"}, common...)...)
	all.WriteString(stdout + stderr)
	if code != 0 || !strings.Contains(stdout, "~ Secret/openedx-db") {
		t.Errorf("diff: exit %d, stdout %s: want the Secret shown as changed", code, stdout)
	}
	// A failing deploy (bad region) with --debug prints error details.
	code, stdout, stderr = runCLI(t, append(append([]string{"--debug", "deploy"}, common...), "--region", "nowhere")...)
	all.WriteString(stdout + stderr)
	if code != cli.ExitUsage {
		t.Errorf("bad region: exit %d", code)
	}
	res, err := os.ReadFile(resultFile)
	if err != nil {
		t.Fatal(err)
	}
	all.Write(res)
	for _, leak := range []string{value1, value2, "PRIVATE KEY"} {
		if strings.Contains(all.String(), leak) {
			t.Errorf("output or result file contains %q", leak)
		}
	}
	// Revision records hold manifests, so they are Secrets, not ConfigMaps.
	ns, _ := NamespaceFor(branch, DefaultBranchPrefix, "")
	rec, err := k.core.CoreV1().Secrets(ns).Get(context.Background(), recordName(1), metav1.GetOptions{})
	if err != nil || rec.Type != "slipway.dev/revision" {
		t.Errorf("revision record: %v, type %q", err, rec.Type)
	}
}
